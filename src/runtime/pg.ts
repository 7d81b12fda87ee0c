import type { Pool, PoolClient, QueryResult, QueryResultRow } from 'pg'
import { contextSql, type ContextSqlOptions } from './context-sql.js'
import { SystemContextError } from './errors.js'
import { assertTransactionTenant, beginWithContext, tenantForTransaction, transactionEnded } from './adapters/scope.js'
import { runScopedOnPool, type ConnectingPool } from './adapters/pg-scoped.js'
import { createObserver, tenantFor, type ObserveOptions } from './observe.js'

/** Something that runs one statement: a tenant pool, a transaction, the system handle. */
export interface Queryable {
  /**
   * Run one statement and return node-postgres' result.
   *
   * **Warning:** `text` is raw SQL. Never build it from user input: pass values as bind parameters
   * (`$1`, `$2`, …) in `values`.
   */
  query<R extends QueryResultRow = QueryResultRow>(text: string, values?: readonly unknown[]): Promise<QueryResult<R>>
}

/** Explicit, unscoped access through the separately configured system pool. */
export interface SystemDb extends Queryable {
  /** Run `fn` in one transaction on the system pool: `BEGIN`, `fn`, `COMMIT` (or `ROLLBACK` and rethrow). */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>
}

/** A node-postgres pool whose every query runs scoped to the current tenant. See {@link tenantPool}. */
export interface TenantPool extends Queryable {
  /**
   * Run `fn` in one transaction scoped to the current tenant. `tx` is valid only until `fn` settles
   * and only under the same tenant. Do not call `db.query` inside `fn`: it would take a second
   * connection (and wait forever on a pool of size 1); use `tx.query`.
   *
   * @throws {TenantContextMissingError} outside any `withTenant` context, before touching the database.
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>
  /**
   * Run `fn` with unscoped access through the `systemPool` given to {@link tenantPool} — meant to be
   * a different role (e.g. one with BYPASSRLS for migrations, jobs, admin screens). There is no other
   * way to run unscoped queries through tenantize.
   *
   * @throws {SystemContextError} when no `systemPool` is configured.
   */
  asSystem<T>(fn: (system: SystemDb) => Promise<T>): Promise<T>
}

export interface TenantPoolOptions extends ContextSqlOptions, ObserveOptions {
  /**
   * A separate pool, normally connected as a separate role, used only by {@link TenantPool.asSystem}.
   * It must not be the tenant pool itself.
   */
  readonly systemPool?: Pool
}

type Target = Pick<Pool, 'query'> | Pick<PoolClient, 'query'>

function run<R extends QueryResultRow>(target: Target, text: string, values: readonly unknown[] | undefined): Promise<QueryResult<R>> {
  const query = target.query.bind(target) as (text: string, values?: unknown[]) => Promise<QueryResult<R>>
  return values === undefined ? query(text) : query(text, values as unknown[])
}

/**
 * Check out a client, run `begin` (one simple-protocol round trip), `work`, then `COMMIT`; on any
 * error `ROLLBACK` and rethrow. The client goes back to the pool only when the transaction is known
 * to be over; a client that failed (connection error, failed ROLLBACK) is released with the error so
 * the pool discards it.
 */
async function inTransaction<T>(pool: Pool, begin: string, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  let broken: Error | undefined
  // The pool stops listening while a client is checked out; without a listener a dropped connection
  // would crash the process.
  const onError = (error: Error): void => {
    broken ??= error
  }
  client.on('error', onError)
  try {
    await client.query(begin)
    const result = await work(client)
    await client.query('COMMIT')
    return result
  } catch (error) {
    if (broken === undefined) {
      try {
        await client.query('ROLLBACK')
      } catch (rollbackError) {
        broken = rollbackError instanceof Error ? rollbackError : new Error('ROLLBACK failed')
      }
    }
    throw error
  } finally {
    client.off('error', onError)
    client.release(broken)
  }
}

/** A transaction handle that refuses to run after its transaction ended or under another tenant. */
async function withHandle<T>(client: PoolClient, tenantId: string | undefined, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  let open = true
  const tx: Queryable = Object.freeze({
    async query<R extends QueryResultRow = QueryResultRow>(text: string, values?: readonly unknown[]): Promise<QueryResult<R>> {
      if (!open) throw transactionEnded()
      if (tenantId !== undefined) assertTransactionTenant(tenantId)
      return run<R>(client, text, values)
    },
  })
  try {
    return await fn(tx)
  } finally {
    open = false
  }
}

function systemDb(systemPool: Pool): SystemDb {
  return Object.freeze({
    query<R extends QueryResultRow = QueryResultRow>(text: string, values?: readonly unknown[]): Promise<QueryResult<R>> {
      return run<R>(systemPool, text, values)
    },
    transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      return inTransaction(systemPool, 'BEGIN', (client) => withHandle(client, undefined, fn))
    },
  })
}

/**
 * Wrap your existing node-postgres `Pool` (it is not replaced or reconfigured) so that every query runs
 * in a transaction scoped to the current tenant of {@link withTenant}:
 *
 * - `db.query(…)`: `SELECT pg_catalog.set_config('tenantize.tenant_id', '<id>', true)` and the statement
 *   in one round trip, as one implicit transaction (no `BEGIN` / `COMMIT`; an error rolls it back);
 * - `db.transaction(fn)`: `BEGIN; SELECT pg_catalog.set_config(…)` in one round trip, the work, `COMMIT`
 *   (or `ROLLBACK` on error).
 *
 * The setting is transaction-local, so nothing stays on the connection.
 * Outside any tenant context it throws {@link TenantContextMissingError} without touching the database.
 *
 * ```ts
 * const db = tenantPool(new pg.Pool({ connectionString: APP_URL }), { systemPool: new pg.Pool({ connectionString: ADMIN_URL }) })
 * await withTenant(orgId, () => db.query('SELECT * FROM invoice WHERE id = $1', [id]))
 * ```
 *
 * @throws {TypeError} for an unknown strategy or an invalid setting name.
 * @throws {SystemContextError} when `systemPool` is the tenant pool itself.
 */
export function tenantPool(pool: Pool, options: TenantPoolOptions = {}): TenantPool {
  const { systemPool } = options
  if (systemPool !== undefined && systemPool === pool) {
    throw new SystemContextError('systemPool must be a separate pool (normally another role), not the tenant pool itself')
  }
  const context = contextSql(options)
  const observer = createObserver('pg', options.observe)
  const system = systemPool === undefined ? undefined : systemDb(systemPool)

  return Object.freeze({
    async query<R extends QueryResultRow = QueryResultRow>(text: string, values?: readonly unknown[]): Promise<QueryResult<R>> {
      const tenantId = observer === undefined ? tenantForTransaction() : tenantFor(observer, () => String(text))
      if (tenantId === undefined) return run<R>(pool, text, values) // observed: unscoped, as without tenantize
      // The context and the statement in one round trip, one implicit transaction: no BEGIN / COMMIT.
      return runScopedOnPool<QueryResult<R>>(pool as unknown as ConnectingPool, context, tenantId, text, values)
    },
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      const tenantId = observer === undefined ? tenantForTransaction() : tenantFor(observer, 'transaction')
      if (tenantId === undefined) return inTransaction(pool, 'BEGIN', (client) => withHandle(client, undefined, fn))
      return inTransaction(pool, beginWithContext(context, tenantId), (client) => withHandle(client, tenantId, fn))
    },
    async asSystem<T>(fn: (system: SystemDb) => Promise<T>): Promise<T> {
      if (system === undefined) {
        throw new SystemContextError('asSystem needs a separate system pool: pass tenantPool(pool, { systemPool })')
      }
      return fn(system)
    },
  })
}
