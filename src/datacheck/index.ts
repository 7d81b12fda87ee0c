/**
 * The data check: read-only facts about the data and the database that decide whether the plan's steps can
 * all succeed — so that `apply` is refused up front instead of stopping half-applied.
 */
export { assertDataReady, checkData, DEFAULT_CHECK_TIMEOUT_MS, preconditionsOf, runDataCheck, type DataCheckOptions, type DataCheckResult } from './check.js'
export { factFindings } from './facts.js'
export { DataCheckError, describeFinding, renderFindings, type DataCheckEvent, type Finding } from './findings.js'
