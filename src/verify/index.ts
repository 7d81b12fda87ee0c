/**
 * `tenantize verify`: prove tenant isolation. Lints (pure, over the catalog), the live probe (as the app
 * role inside BEGIN … ROLLBACK), the pooler leak probe, and reports (text, JSON, JUnit, HTML).
 */
export { verify, verifyClient, exitCodeFor, assembleReport, probeFindings, poolerFindings } from './verify.js'
export type { VerifyOptions, VerifyCoreOptions } from './verify.js'
export { LINT_RULES, lintCatalog, runLints, buildModel, summarizeModel, loadSqlParser, CATEGORIES, DEFAULT_SETTING, TENANT_COLUMN_NAMES } from './lints/index.js'
export type { LintRule, RuleCategory, ModelOptions, TenantModel, ModelTable } from './lints/index.js'
export { runProbe } from './probe/probe.js'
export type { ProbeOptions, ProbeNotRun } from './probe/probe.js'
export { PROBE_CHECKS, PROBE_META, POOLER_CHECKS } from './probe/registry.js'
export type { LiveCheck } from './probe/registry.js'
export { probePooler } from './pooler.js'
export { renderReport, renderText, renderJunit, renderHtml, reportSchema, reportJsonSchema, REPORT_FORMATS } from './report/index.js'
export type { ReportFormat } from './report/index.js'
export * from './types.js'
