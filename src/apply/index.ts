export { apply, rollback, conversionStatus, readiness, readinessWindows, resetReadiness, APPLY_SCOPE } from './apply.js'
export type { ApplyOptions, RollbackOptions, ConversionStatus, TableStatus, TableReadiness, ReadinessWindow } from './apply.js'
export { initConfig, reverseReach } from './init.js'
export type { InitConfigOptions } from './init.js'
