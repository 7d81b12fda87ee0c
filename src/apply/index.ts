export { apply, rollback, conversionStatus, readiness, resetReadiness, APPLY_SCOPE } from './apply.js'
export type { ApplyOptions, RollbackOptions, ConversionStatus, TableStatus, TableReadiness } from './apply.js'
export { initConfig, reverseReach } from './init.js'
export type { InitConfigOptions } from './init.js'
