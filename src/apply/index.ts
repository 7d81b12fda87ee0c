export { apply, rollback, conversionStatus, APPLY_SCOPE } from './apply.js'
export type { ApplyOptions, RollbackOptions, ConversionStatus, TableStatus } from './apply.js'
