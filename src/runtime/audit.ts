import { qualifiedName, quoteIdent, quoteLiteral } from '../sql/quote.js'
import type { SqlRunner } from './api-keys.js'
import { requireTenant } from './context.js'
import { currentAuth, type Principal } from './http/auth-context.js'

/**
 * The transaction-local settings the audit trigger reads (`current_setting(…, true)`), next to the
 * tenant setting. They are set with `set_config(…, true)` and vanish at the end of the transaction.
 */
export const AUDIT_SETTINGS = Object.freeze({ actor: 'tenantize.actor_id', requestId: 'tenantize.request_id' })

/** Something with tenant transactions: your `tenantPool`. */
export interface TransactionalRunner extends SqlRunner {
  transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T>
}

export interface AuditLogOptions {
  /** Tenant-scoped writes: your `tenantPool`. */
  readonly db: TransactionalRunner
  /** Needed only by {@link AuditLog.prune}: a system pool allowed to delete every tenant's old rows. */
  readonly system?: SqlRunner
  /** Where `tenantize add audit` put `audit_log` and its functions. Default `public`. */
  readonly schema?: string
  /** Default `org_id`. */
  readonly tenantColumn?: string
}

/** One audit row written by the application (the trigger writes the same columns for row changes). */
export interface AuditEntry {
  /** What happened, e.g. `login`, `export`, `api-key.create`. */
  readonly action: string
  readonly table?: string
  readonly rowId?: string
  readonly before?: unknown
  readonly after?: unknown
  /** Default: the current request's principal (`user:<id>`, `api-key:<id>`), see {@link actorOf}. */
  readonly actor?: string
  /** Default: the current request's id. */
  readonly requestId?: string
}

export interface AuditContext {
  readonly actor?: string | undefined
  readonly requestId?: string | undefined
}

export interface AuditLog {
  /** Write one row for the current tenant. @throws {TenantContextMissingError} outside `withTenant`. */
  record(entry: AuditEntry, tx?: SqlRunner): Promise<void>
  /**
   * `db.transaction(fn)` whose first statement sets the actor and request id for the audit trigger, so
   * row changes made in `fn` are attributed. Defaults come from the current request.
   */
  transaction<T>(fn: (tx: SqlRunner) => Promise<T>, context?: AuditContext): Promise<T>
  /** Set the actor and request id for the rest of the transaction `tx` (transaction-local). */
  setContext(tx: SqlRunner, context?: AuditContext): Promise<void>
  /**
   * Delete rows older than `olderThan` (a PostgreSQL interval such as `'90 days'`, sent as a parameter)
   * in batches of `batchSize` (default 10,000), each batch its own statement through the system pool,
   * until none are left. Returns how many rows were deleted.
   * @throws {TypeError} without a `system` pool or with a bad batch size.
   */
  prune(options: { readonly olderThan: string; readonly batchSize?: number }): Promise<number>
}

/** `user:<id>`, `api-key:<id>` or `anonymous` — how audit rows name who acted. */
export function actorOf(principal: Principal): string {
  switch (principal.kind) {
    case 'user':
      return `user:${principal.userId}`
    case 'api-key':
      return `api-key:${principal.keyId}`
    case 'anonymous':
      return 'anonymous'
  }
}

function defaults(context: AuditContext | undefined): { actor: string | null; requestId: string | null } {
  const auth = currentAuth()
  return {
    actor: context?.actor ?? (auth === undefined ? null : actorOf(auth.principal)),
    requestId: context?.requestId ?? auth?.requestId ?? null,
  }
}

/**
 * The runtime half of `tenantize add audit`: application events, trigger attribution and retention.
 *
 * ```ts
 * const audit = createAuditLog({ db, system: systemPool })
 * await audit.transaction((tx) => tx.query('UPDATE invoice SET paid = true WHERE id = $1', [id])) // trigger row with actor + request id
 * await audit.record({ action: 'export', table: 'invoice' })
 * await audit.prune({ olderThan: '90 days' })
 * ```
 */
export function createAuditLog(options: AuditLogOptions): AuditLog {
  const schema = options.schema ?? 'public'
  const table = qualifiedName(schema, 'audit_log')
  const prune = qualifiedName(schema, 'audit_log_prune')
  const tenant = quoteIdent(options.tenantColumn ?? 'org_id')
  const setStatement = `SELECT set_config(${quoteLiteral(AUDIT_SETTINGS.actor)}, coalesce($1, ''), true), set_config(${quoteLiteral(AUDIT_SETTINGS.requestId)}, coalesce($2, ''), true)`

  async function setContext(tx: SqlRunner, context?: AuditContext): Promise<void> {
    const { actor, requestId } = defaults(context)
    await tx.query(setStatement, [actor, requestId])
  }

  return Object.freeze({
    async record(entry: AuditEntry, tx?: SqlRunner): Promise<void> {
      const tenantId = requireTenant()
      if (typeof entry.action !== 'string' || entry.action.length === 0) throw new TypeError('audit: action must be a non-empty string')
      const { actor, requestId } = defaults(entry)
      const json = (value: unknown): string | null => (value === undefined ? null : JSON.stringify(value))
      await (tx ?? options.db).query(
        `INSERT INTO ${table} (${tenant}, "actor", "action", "table_name", "row_id", "before", "after", "request_id") VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8)`,
        [tenantId, actor, entry.action, entry.table ?? null, entry.rowId ?? null, json(entry.before), json(entry.after), requestId],
      )
    },

    transaction<T>(fn: (tx: SqlRunner) => Promise<T>, context?: AuditContext): Promise<T> {
      return options.db.transaction(async (tx) => {
        await setContext(tx, context)
        return fn(tx)
      })
    },

    setContext,

    async prune(pruneOptions: { readonly olderThan: string; readonly batchSize?: number }): Promise<number> {
      const system = options.system
      if (system === undefined) throw new TypeError('audit: prune needs the system option (a pool that may delete every tenant\'s old rows)')
      const batchSize = pruneOptions.batchSize ?? 10_000
      if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 1_000_000) throw new TypeError('audit: batchSize must be a whole number from 1 to 1,000,000')
      let total = 0
      for (;;) {
        const { rows } = await system.query(`SELECT ${prune}($1::interval, $2) AS deleted`, [pruneOptions.olderThan, batchSize])
        const deleted = Number((rows[0] as { deleted: number }).deleted)
        total += deleted
        if (deleted < batchSize) return total
      }
    },
  })
}
