import { AsyncLocalStorage } from 'node:async_hooks'
import { TenantAccessError, TenantContextConflictError, TenantContextMissingError } from './errors.js'
import { TENANT_ID_TYPES, parseTenantId, type TenantIdType } from './tenant-id.js'

/** What is current in one async flow: the canonical tenant id and the id type it was checked against. */
interface TenantScope {
  readonly tenantId: string
  readonly idType: TenantIdType
}

/**
 * The one store of the current tenant. Every {@link TenantContext} shares it, so there is exactly one
 * current tenant per async flow, and adapters read it without knowing which context set it.
 */
const storage = new AsyncLocalStorage<TenantScope>()

export interface WithTenantOptions {
  /**
   * Allow running under a different tenant while another one is current (e.g. an admin job that visits
   * tenants in turn from inside a tenant request). Without it, nesting a different tenant throws
   * {@link TenantContextConflictError}. Nesting the same tenant is always allowed.
   */
  readonly allowNested?: boolean
}

export interface TenantContextOptions {
  /** The type of the tenant key column ids are checked against. Default `uuid`. */
  readonly idType?: TenantIdType
}

/** Tenant context functions bound to one id type. See {@link createTenantContext}. */
export interface TenantContext {
  readonly idType: TenantIdType
  /**
   * Run `fn` with `tenantId` as the current tenant, for everything `fn` starts, awaited or not.
   * The id is checked against the id type first. A lazy thenable `fn` returns (a Prisma or Drizzle
   * query) is started inside, so `withTenant(id, () => prisma.invoice.findMany())` runs as `id`.
   *
   * @throws {InvalidTenantIdError} when the id is not valid for the id type (before `fn` runs).
   * @throws {TenantContextConflictError} when a different tenant is already current and
   *   `allowNested` is not set.
   */
  withTenant<T>(tenantId: string, fn: () => T, options?: WithTenantOptions): T
  /** The current tenant's id (canonical form), or `undefined` outside any context. */
  currentTenant(): string | undefined
  /** The current tenant's id. @throws {TenantContextMissingError} outside any context. */
  requireTenant(): string
  /**
   * Check that a resource (a row the app loaded, a tenant id from a URL) belongs to the current tenant.
   * @throws {TenantAccessError} when it does not, or when there is no current tenant.
   */
  assertSameTenant(resourceTenantId: string): void
}

/** The current tenant's id (canonical form), or `undefined` outside any context. */
function currentTenant(): string | undefined {
  return storage.getStore()?.tenantId
}

/** The current tenant's id. @throws {TenantContextMissingError} outside any context. */
function requireTenant(): string {
  const scope = storage.getStore()
  if (scope === undefined) throw new TenantContextMissingError()
  return scope.tenantId
}

/**
 * Check that a resource (a row the app loaded, a tenant id from a URL) belongs to the current tenant;
 * the resource's id is compared in canonical form (e.g. uuids case-insensitively).
 * @throws {TenantAccessError} when it does not, or when there is no current tenant.
 */
function assertSameTenant(resourceTenantId: string): void {
  const scope = storage.getStore()
  if (scope === undefined) {
    throw new TenantAccessError('no tenant context: a resource can only be checked inside withTenant(tenantId, fn)')
  }
  let resource: string
  try {
    resource = parseTenantId(resourceTenantId, scope.idType)
  } catch {
    throw new TenantAccessError('the resource has no valid tenant id, so it does not belong to the current tenant')
  }
  if (resource !== scope.tenantId) throw new TenantAccessError()
}

/**
 * Start a lazy thenable while the tenant is current. Query builders such as Prisma's and Drizzle's
 * return thenables that run only when awaited; `withTenant(id, () => prisma.invoice.findMany())` would
 * otherwise run the query where it is awaited — outside this tenant's context, or inside another one.
 * Native promises are already running and are returned as they are.
 */
function startLazy<T>(result: T): T {
  if (result instanceof Promise || typeof (result as { then?: unknown } | null | undefined)?.then !== 'function') return result
  return Promise.resolve(result) as T
}

/**
 * Tenant context functions whose ids are checked against `idType` (`uuid` by default, `bigint`, `text`).
 * All contexts share one current tenant per async flow: a tenant set through one is seen by the others
 * and by every adapter, and the nesting rules hold across them.
 *
 * ```ts
 * const tenants = createTenantContext({ idType: 'bigint' })
 * await tenants.withTenant('42', () => db.query('SELECT * FROM invoice'))
 * ```
 */
export function createTenantContext(options: TenantContextOptions = {}): TenantContext {
  const idType = options.idType ?? 'uuid'
  if (!TENANT_ID_TYPES.includes(idType)) {
    throw new TypeError(`unknown tenant id type ${JSON.stringify(idType)}: expected one of ${TENANT_ID_TYPES.join(', ')}`)
  }
  function withTenant<T>(tenantId: string, fn: () => T, withOptions: WithTenantOptions = {}): T {
    const canonical = parseTenantId(tenantId, idType)
    const outer = storage.getStore()
    if (outer?.tenantId === canonical) return startLazy(fn())
    if (outer !== undefined && withOptions.allowNested !== true) throw new TenantContextConflictError()
    return storage.run(Object.freeze({ tenantId: canonical, idType }), () => startLazy(fn()))
  }
  return Object.freeze({ idType, withTenant, currentTenant, requireTenant, assertSameTenant })
}

const defaultContext = createTenantContext()

/**
 * Run `fn` with `tenantId` (a uuid) as the current tenant. Every query a tenantize adapter issues inside
 * runs in a transaction scoped to this tenant. For `bigint` or `text` ids use {@link createTenantContext}.
 *
 * ```ts
 * await withTenant(orgId, () => db.query('SELECT * FROM invoice'))   // sees only orgId's rows
 * ```
 *
 * @throws {InvalidTenantIdError} when `tenantId` is not a uuid (before `fn` runs).
 * @throws {TenantContextConflictError} when a different tenant is already current and
 *   `options.allowNested` is not set. Nesting the same tenant is fine.
 */
export function withTenant<T>(tenantId: string, fn: () => T, options?: WithTenantOptions): T {
  return defaultContext.withTenant(tenantId, fn, options)
}

export { currentTenant, requireTenant, assertSameTenant }
