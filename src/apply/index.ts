export { apply, rollback, conversionStatus, APPLY_SCOPE } from './apply.js'
export type { ApplyOptions, RollbackOptions, ConversionStatus, TableStatus } from './apply.js'
export { initConfig, reverseReach } from './init.js'
export type { InitConfigOptions } from './init.js'
