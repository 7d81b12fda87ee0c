/**
 * `tenantize/runtime` — tenant context for applications.
 *
 * - {@link withTenant} makes a tenant current for an async flow (AsyncLocalStorage); ids are checked
 *   against their type first ({@link createTenantContext} for `bigint` or `text` ids).
 * - {@link tenantPool} wraps a node-postgres `Pool`: every query runs in a transaction whose first
 *   statement sets the tenant transaction-locally; outside any context it throws instead of running
 *   unscoped. Unscoped work goes only through {@link TenantPool.asSystem} and a separate pool.
 * - Every error is a {@link TenantRuntimeError} with a stable `code`, and never contains a tenant id.
 *
 * This entry point imports nothing heavy: `pg` is used for types only and is never loaded by it. The
 * adapters for postgres.js, Kysely, Drizzle and Prisma live in their own entry points
 * (`tenantize/runtime/postgres`, `…/kysely`, `…/drizzle`, `…/prisma`), so this one never loads an ORM.
 *
 * @module
 */
export {
  withTenant,
  currentTenant,
  requireTenant,
  assertSameTenant,
  createTenantContext,
  type TenantContext,
  type TenantContextOptions,
  type WithTenantOptions,
} from './context.js'
export { parseTenantId, TENANT_ID_TYPES, type TenantIdType } from './tenant-id.js'
export {
  contextSql,
  validateContextSetting,
  CONTEXT_STRATEGIES,
  DEFAULT_CONTEXT_SETTING,
  type ContextSql,
  type PreparedContext,
  type ContextSqlOptions,
  type ContextStrategy,
} from './context-sql.js'
export { callSiteOf, type ObserveOption, type ObserveOptions, type UnscopedQueryEvent } from './observe.js'
export { tenantPool, type TenantPool, type TenantPoolOptions, type SystemDb, type Queryable } from './pg.js'
export {
  TenantRuntimeError,
  TenantContextMissingError,
  TenantContextConflictError,
  TenantAccessError,
  InvalidTenantIdError,
  SystemContextError,
  TenantRuntimeErrorCodes,
  isTenantRuntimeError,
  type TenantRuntimeErrorCode,
} from './errors.js'
export { currentAuth, type TenantAuth, type Principal, type TenantSource } from './http/auth-context.js'
export { createRbac, DEFAULT_ROLES, isPermissionGrant, assertCurrentCan, type Rbac, type RoleMatrix, type RoleDefinition, type RbacSubject } from './rbac.js'
export { createApiKeyStore, type ApiKeyStore, type ApiKeyStoreOptions, type CreateApiKeyInput, type ApiKeyInfo, type CreatedApiKey } from './api-keys.js'
export { createAuditLog, actorOf, AUDIT_SETTINGS, type AuditLog, type AuditLogOptions, type AuditEntry, type AuditContext } from './audit.js'
