import type { Pool, PoolClient, QueryConfig } from 'pg'
import { eq, type Column, type SQL } from 'drizzle-orm'
import { contextSql, type ContextSql, type ContextSqlOptions } from './context-sql.js'
import { assertTransactionTenant, beginWithContext, tenantForTransaction, transactionEnded } from './adapters/scope.js'
import { runScoped, type ScopedIo, type ScopedQuery } from './adapters/pg-scoped.js'
import { createObserver, type ObserveOptions } from './observe.js'
import { currentTenant, requireTenant } from './context.js'

export interface TenantDrizzlePoolOptions extends ContextSqlOptions, ObserveOptions {}

type QueryText = string | QueryConfig
type Query = (config: QueryText, values?: unknown) => Promise<unknown>

/**
 * A lone transaction start with no parameters: `BEGIN` / `START TRANSACTION`, optionally followed by
 * transaction modes (letters, spaces, commas only — so no comment or second statement can hide in it).
 */
const TRANSACTION_START = /^\s*(?:begin|start\s+transaction)\b[a-z\s,]*?\s*;?\s*$/i

/** The start statement without its trailing `;`, when `config` is one, else `undefined`. */
function transactionStart(config: QueryText, values: unknown): string | undefined {
  if (Array.isArray(values) ? values.length > 0 : values !== undefined) return undefined
  const spec = typeof config === 'string' ? { text: config } : config
  if (typeof spec.text !== 'string' || spec.name !== undefined || (spec.values !== undefined && spec.values.length > 0)) return undefined
  return TRANSACTION_START.test(spec.text) ? spec.text.trim().replace(/;$/, '') : undefined
}

function rejectUnsupported(config: unknown, rest: readonly unknown[]): void {
  if (rest.some((arg) => typeof arg === 'function')) {
    throw new TypeError('tenantDrizzlePool: callback-style query() is not supported, use the promise it returns')
  }
  if (config === null || config === undefined) throw new TypeError('Client was passed a null or undefined query')
}

function isSubmittable(config: unknown): boolean {
  return typeof (config as { submit?: unknown }).submit === 'function'
}

/**
 * A checked-out client scoped to `tenantId`. Which state it is in comes from the server (the transaction
 * status of the last ReadyForQuery), not from parsing SQL:
 * - idle, and the statement is a lone `BEGIN …`: sent together with the context, one round trip;
 * - idle, any other statement: it runs with its context in one round trip (see runScoped);
 * - in a transaction: statements pass through (the context is set at its start).
 * Released inside a transaction, the client is rolled back before it goes back to the pool.
 */
function scopedClient(client: PoolClient, tenantId: string, context: ContextSql): PoolClient {
  const query = client.query.bind(client) as Query
  let scoped = false // the current transaction was opened with the context
  let released = false
  let broken: Error | undefined
  const onError = (error: Error): void => {
    broken ??= error
  }
  client.on('error', onError)

  /** A statement on its own: with its context in one round trip, no BEGIN / COMMIT (see runScoped). */
  function ownTransaction(config: QueryText, values: unknown): Promise<unknown> {
    const io: ScopedIo<unknown> = {
      send: (scoped) => (query as unknown as (q: ScopedQuery) => PromiseLike<unknown>)(scoped) as Promise<unknown>,
      rollback: () => query('ROLLBACK'),
      discard: (error) => {
        broken ??= error
      },
    }
    return runScoped(io, context, tenantId, config, Array.isArray(values) ? (values as unknown[]) : undefined)
  }

  async function scopedQuery(config: QueryText, values?: unknown, ...rest: unknown[]): Promise<unknown> {
    rejectUnsupported(config, [values, ...rest])
    if (released) throw transactionEnded()
    assertTransactionTenant(tenantId)
    const status = client.getTransactionStatus()
    if (status !== 'T' && status !== 'E') {
      scoped = false
      const start = transactionStart(config, values)
      if (start !== undefined) {
        const results = await query(beginWithContext(context, tenantId, start))
        scoped = true
        return Array.isArray(results) ? results[0] : results
      }
      if (isSubmittable(config)) {
        throw new TypeError('tenantDrizzlePool: a streaming query (cursor) must run inside a transaction (BEGIN first)')
      }
      return ownTransaction(config, values)
    }
    if (!scoped && status === 'T') {
      await query(context.local(tenantId)) // inside the block the app opened
      scoped = true
    }
    return query(config, values)
  }

  function release(error?: Error | boolean): void {
    if (released) {
      client.release(error) // node-postgres throws its own "already released" error
      return
    }
    released = true
    client.off('error', onError)
    const failure = error instanceof Error ? error : broken
    if (failure === undefined && error !== true && client.getTransactionStatus() !== 'I') {
      void query('ROLLBACK').then(
        () => client.release(),
        (rollbackError: unknown) => client.release(rollbackError instanceof Error ? rollbackError : true),
      )
      return
    }
    client.release(failure ?? error)
  }

  return new Proxy(client, {
    get(target, key) {
      if (key === 'query') return scopedQuery
      if (key === 'release') return release
      const value = Reflect.get(target, key, target) as unknown
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
  })
}

/**
 * Wrap your existing node-postgres `Pool` (it is not replaced or reconfigured) for Drizzle's node-postgres
 * driver: every query of `drizzle({ client: tenantDrizzlePool(pool) })` runs scoped to the current tenant
 * of {@link withTenant}.
 *
 * - `db.select()…`, `db.insert()…`, `db.execute()` outside a transaction: the context and the statement
 *   in one round trip, one implicit transaction (no `BEGIN` / `COMMIT`; an error rolls it back).
 * - `db.transaction(fn, config)`: Drizzle's `begin …` is sent together with the context (one round trip);
 *   nested `tx.transaction()` savepoints pass through. Statements must run under the same tenant.
 * - Outside any tenant context, every query and `connect()` throw {@link TenantContextMissingError}
 *   before the pool is touched.
 *
 * ```ts
 * const db = drizzle({ client: tenantDrizzlePool(pool), schema })
 * const system = drizzle({ client: systemPool, schema }) // unscoped, another role
 * await withTenant(orgId, () => db.select().from(invoice))
 * ```
 *
 * The result is the same pool seen through a proxy: `query` and `connect` are scoped, everything else
 * (`end`, `on`, counts) is the pool's own. It works with any code that uses a pool only through
 * `query` and `connect` (promise style).
 *
 * @throws {TypeError} for an unknown strategy or an invalid setting name.
 */
export function tenantDrizzlePool(pool: Pool, options: TenantDrizzlePoolOptions = {}): Pool {
  const context = contextSql(options)
  const observer = createObserver('drizzle', options.observe)
  /** Outside any context with the `observe` option: the pool's own, unscoped, as without tenantize. */
  const observed = (): boolean => observer !== undefined && currentTenant() === undefined

  async function connect(...args: unknown[]): Promise<PoolClient> {
    rejectUnsupported(true, args)
    if (observed()) {
      observer?.report('transaction') // Drizzle takes a client for a transaction; statements use query()
      return pool.connect()
    }
    const tenantId = tenantForTransaction() // before a client is taken from the pool
    return scopedClient(await pool.connect(), tenantId, context)
  }

  async function query(config: QueryText, values?: unknown, ...rest: unknown[]): Promise<unknown> {
    rejectUnsupported(config, [values, ...rest])
    if (observed()) {
      observer?.report(typeof config === 'string' ? config : String(config.text))
      return (pool.query as Query)(config, values)
    }
    if (isSubmittable(config)) {
      throw new TypeError('tenantDrizzlePool: a streaming query (cursor) needs a client: use connect() and a transaction')
    }
    const client = await connect()
    try {
      return await (client.query as Query)(config, values)
    } finally {
      client.release()
    }
  }

  return new Proxy(pool, {
    get(target, key) {
      if (key === 'query') return query
      if (key === 'connect') return connect
      const value = Reflect.get(target, key, target) as unknown
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
  })
}

/**
 * The explicit tenant predicate for a Drizzle query: `column = $tenant` with the current tenant of
 * {@link withTenant} — for Citus, where a query filtered only by row-level security goes to every shard
 * and one with the predicate on the distribution column is routed to the tenant's shard. Row-level
 * security stays the backstop; the predicate never changes what the query returns.
 *
 * ```ts
 * await withTenant(orgId, () => db.select().from(invoice).where(and(tenantFilter(invoice.orgId), eq(invoice.id, id))))
 * ```
 *
 * @throws {TenantContextMissingError} outside any `withTenant` context.
 */
export function tenantFilter(column: Column): SQL {
  return eq(column, requireTenant())
}
