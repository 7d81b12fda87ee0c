export { apply, rollback, conversionStatus, readiness, readinessWindows, resetReadiness, APPLY_SCOPE, DEFAULT_BATCH_TARGET_MS, DEFAULT_BACKFILL_SHARE } from './apply.js'
export type { ApplyOptions, BatchTiming, RollbackOptions, ConversionStatus, TableStatus, TableReadiness, ReadinessWindow } from './apply.js'
export { initConfig, reverseReach } from './init.js'
export type { InitConfigOptions } from './init.js'
