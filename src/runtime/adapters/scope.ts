import { currentTenant, requireTenant } from '../context.js'
import type { ContextSql } from '../context-sql.js'
import { TenantContextConflictError, TenantContextMissingError } from '../errors.js'

/**
 * The tenant a new transaction is for: the current one.
 * @throws {TenantContextMissingError} outside any `withTenant` context — before any connection is taken.
 */
export function tenantForTransaction(): string {
  return requireTenant()
}

/**
 * The statement that opens a tenant transaction: `begin` (default `BEGIN`) and the context in one
 * simple-protocol message, so the context costs no round trip of its own. The context is
 * {@link ContextSql.local} (`SET LOCAL`, which the server does not plan), since it follows `BEGIN`.
 */
export function beginWithContext(context: ContextSql, tenantId: string, begin = 'BEGIN'): string {
  return `${begin}; ${context.local(tenantId)}`
}

/**
 * Check that work on a transaction begun for `tenantId` still runs for that tenant.
 * @throws {TenantContextMissingError} when no tenant is current.
 * @throws {TenantContextConflictError} when another tenant is current.
 */
export function assertTransactionTenant(tenantId: string): void {
  const current = currentTenant()
  if (current === undefined) throw new TenantContextMissingError()
  if (current !== tenantId) throw new TenantContextConflictError('this transaction belongs to a tenant other than the current one')
}

/** The error for a transaction handle used after its transaction ended. */
export function transactionEnded(): TenantContextMissingError {
  return new TenantContextMissingError('this transaction has ended: run its queries inside the transaction callback')
}
