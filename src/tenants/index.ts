/**
 * Tenant lifecycle on a converted database: create, list, show, suspend, resume, delete, export and
 * import tenants. Built on the catalog, the migration runner (lock, ledger scope `tenants`) and the
 * tenant model of the config. See docs/tenants.md.
 *
 * @module
 */
export { tenantModel, tenantIdType, type TenantModel, type TenantTable, type TenantTableRole, type TenantEdge, type SharedReference } from './model.js'
export { TENANTS_DDL, LIFECYCLE_STATUSES, ensureTenantTables, findTenant, readTenants, type LifecycleStatus, type TenantRow } from './store.js'
export type { TenantOptions } from './session.js'
export { createTenant, insertTenant, validateSlug, SLUG_PATTERN, type NewTenant } from './create.js'
export { listTenants, showTenant, suspendTenant, resumeTenant, type TableUsage, type TenantUsage, type UsageOptions } from './usage.js'
export { deleteTenant, TENANTS_SCOPE, type DeleteTenantOptions, type DeleteTenantResult, type TableCount } from './delete.js'
export { exportTenant, type ExportTenantOptions, type ExportTenantResult, type ExportedTable } from './export.js'
export { importTenant, planImport, type ImportTenantOptions, type ImportTenantResult, type ImportPlan, type DriftItem } from './import.js'
