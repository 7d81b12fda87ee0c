/**
 * Tenantize core API (`import … from 'tenantize'`). The application runtime lives in `tenantize/runtime`.
 *
 * - SQL text: {@link quoteIdent}, {@link quoteLiteral}, {@link qualifiedName}, {@link roleName} — the only
 *   way Tenantize turns names and literals into SQL.
 * - Catalog: {@link introspect} — one consistent read of a live database into an immutable snapshot.
 * - Migrations: {@link migrateUp}, {@link migrateDown}, {@link migrateStatus}, {@link createMigration}.
 * - Tenants: {@link createTenant}, {@link listTenants}, {@link showTenant}, {@link suspendTenant},
 *   {@link resumeTenant}, {@link deleteTenant}, {@link importTenant}, {@link exportTenant} — the lifecycle after the conversion.
 * - Errors: every deliberate error is a {@link TenantizeError} with a stable {@link ErrorCodes} code.
 */
export { ErrorCodes, TenantizeError, isTenantizeError } from './errors.js'
export type { ErrorCode, Problem, TenantizeErrorOptions } from './errors.js'
export { quoteIdent, quoteLiteral, qualifiedName, roleName, identList, parseQualifiedName } from './sql/index.js'
export type { QualifiedName } from './sql/index.js'
export * from './catalog/index.js'
export {
  migrateUp,
  migrateDown,
  migrateStatus,
  createMigration,
  loadMigrations,
  migrationStatus,
  planUp,
  planDown,
  DEFAULT_TIMEOUTS,
  MIGRATION_FILE,
  NO_TRANSACTION_HEADER,
  LOCK_KEY,
  LEDGER_SCHEMA,
} from './migrate/index.js'
export type {
  MigrateEvent,
  MigrateOptions,
  MigrateUpOptions,
  MigrateDownOptions,
  MigrateResult,
  CreateMigrationOptions,
  Migration,
  MigrationFile,
  AppliedMigration,
  MigrationState,
  MigrationStatus,
  TimeoutPolicy,
  PreflightCheck,
  CheckStatus,
} from './migrate/index.js'
export { RLS_SECURITY_FIXES, missingRlsFixes } from './pg-security.js'
export type { RlsSecurityFix } from './pg-security.js'
export { redactUrl, resolveDatabaseUrl } from './db/url.js'
export { startEmbeddedPostgres } from './db/embedded.js'
export type { EmbeddedServer, EmbeddedOptions } from './db/embedded.js'
export { verify, exitCodeFor, renderReport, LINT_RULES, PROBE_CHECKS, REPORT_FORMATS } from './verify/index.js'
export type { VerifyOptions, VerifyReport, Finding, Severity, ReportFormat } from './verify/index.js'
export { apply, rollback, conversionStatus } from './apply/index.js'
export type { ApplyOptions, BatchTiming, RollbackOptions, ConversionStatus, TableStatus } from './apply/index.js'
export { proposeConfig } from './plan/classify.js'
export { parseConfig, configJsonSchema } from './plan/config.js'
export type { TenantizeConfig, TableConfig, ScopeConfig } from './plan/config.js'
export { planConversion } from './plan/plan.js'
export type { Plan, Step, ManualStep, LockLevel } from './plan/steps.js'
export {
  createTenant,
  insertTenant,
  validateSlug,
  SLUG_PATTERN,
  listTenants,
  showTenant,
  suspendTenant,
  resumeTenant,
  deleteTenant,
  importTenant,
  planImport,
  exportTenant,
  findTenant,
  readTenants,
  tenantModel,
  LIFECYCLE_STATUSES,
  TENANTS_SCOPE,
} from './tenants/index.js'
export type {
  TenantOptions,
  NewTenant,
  TenantRow,
  LifecycleStatus,
  TenantUsage,
  TableUsage,
  UsageOptions,
  DeleteTenantOptions,
  DeleteTenantResult,
  TableCount,
  ImportTenantOptions,
  ImportTenantResult,
  ImportPlan,
  DriftItem,
  ExportTenantOptions,
  ExportTenantResult,
  ExportedTable,
  TenantModel,
  TenantTable,
} from './tenants/index.js'
