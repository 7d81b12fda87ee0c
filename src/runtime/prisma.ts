import type {
  IsolationLevel,
  SqlDriverAdapter,
  SqlDriverAdapterFactory,
  SqlQuery,
  SqlResultSet,
  Transaction,
} from '@prisma/driver-adapter-utils'
import { contextSql, type ContextSql, type ContextSqlOptions } from './context-sql.js'
import { beginWithContext, tenantForTransaction } from './adapters/scope.js'
import { runScopedOnPool, type ConnectingPool, type PooledClient } from './adapters/pg-scoped.js'
import { createObserver, type ObserveOptions, type Observer } from './observe.js'
import { currentTenant } from './context.js'

export interface TenantPrismaAdapterOptions extends ContextSqlOptions, ObserveOptions {
  /**
   * Only for a driver adapter other than `@prisma/adapter-pg` (whose statements already take one round
   * trip with their context): for a statement outside a transaction, write the context statement, the
   * statement and `COMMIT` without waiting in between (after the adapter's own `BEGIN`) — for a driver
   * that pipelines; others would queue the statements.
   */
  readonly pipeline?: boolean
}

interface Settings {
  readonly context: ContextSql
  readonly pipeline: boolean
  readonly observer: Observer | undefined
}
/**
 * The same `strategy`, `setting` and `observe` as the adapter's. With `observe`, a batch
 * `$transaction([...])` outside any context runs as Prisma's own (the adapter reports and runs it
 * unscoped) instead of throwing.
 */
export interface TenantPrismaOptions extends ContextSqlOptions, ObserveOptions {}

function statement(sql: string): SqlQuery {
  return { sql, args: [], argTypes: [] }
}

/** End a transaction of the inner adapter the way Prisma does: `COMMIT` as a query unless it uses phantom queries. */
async function commit(tx: Transaction): Promise<void> {
  if (!tx.options.usePhantomQuery) {
    try {
      await tx.executeRaw(statement('COMMIT'))
    } catch (error) {
      await tx.rollback()
      throw error
    }
  }
  await tx.commit()
}

async function rollback(tx: Transaction): Promise<void> {
  try {
    if (!tx.options.usePhantomQuery) await tx.executeRaw(statement('ROLLBACK'))
  } finally {
    await tx.rollback()
  }
}

/** Start a transaction on the inner adapter and set the context as its first statement. */
async function begin(inner: SqlDriverAdapter, context: ContextSql, tenantId: string, isolationLevel?: IsolationLevel): Promise<Transaction> {
  const tx = await inner.startTransaction(isolationLevel)
  try {
    await tx.executeRaw(statement(context.statement(tenantId)))
  } catch (error) {
    await rollback(tx).catch(() => undefined)
    throw error
  }
  return tx
}

/**
 * `@prisma/adapter-pg`'s adapter runs every statement as `this.client.query(…)` and starts transactions
 * with `this.client.connect()`, where `client` is the node-postgres pool `underlyingDriver()` returns.
 * The pool, when the adapter is that one; else undefined.
 */
function nodePostgresPool(inner: SqlDriverAdapter): (ConnectingPool & { query: unknown }) | undefined {
  const adapter = inner as SqlDriverAdapter & { underlyingDriver?: () => unknown; client?: unknown }
  const driver = typeof adapter.underlyingDriver === 'function' ? adapter.underlyingDriver() : undefined
  const pool = driver as Partial<ConnectingPool & { query: unknown }> | undefined
  if (pool === undefined || adapter.client !== driver || typeof pool.connect !== 'function' || typeof pool.query !== 'function') return undefined
  return pool as ConnectingPool & { query: unknown }
}

/**
 * The inner adapter seeing `client` in place of its pool: its own code (argument mapping, result types,
 * error conversion) runs unchanged, and every statement goes through `client`.
 */
function through(inner: SqlDriverAdapter, client: object): SqlDriverAdapter {
  return Object.create(inner, { client: { value: client } }) as SqlDriverAdapter
}

/** One statement in a tenant transaction of its own. */
async function once<T>(inner: SqlDriverAdapter, { context, pipeline }: Settings, work: (tx: Transaction) => Promise<T>): Promise<T> {
  const tenantId = tenantForTransaction()
  if (pipeline) return pipelined(await inner.startTransaction(), context.statement(tenantId), work)
  const tx = await begin(inner, context, tenantId)
  let result: T
  try {
    result = await work(tx)
  } catch (error) {
    await rollback(tx).catch(() => undefined)
    throw error
  }
  await commit(tx)
  return result
}

/**
 * The context statement, the work and (unless the adapter commits by itself) `COMMIT`, written without
 * waiting in between. A failed statement aborts the transaction, so the work never runs without its
 * context, and the `COMMIT` then ends it as a rollback.
 */
async function pipelined<T>(tx: Transaction, contextStatement: string, work: (tx: Transaction) => Promise<T>): Promise<T> {
  const sendsCommit = !tx.options.usePhantomQuery
  const steps = await Promise.allSettled([
    tx.executeRaw(statement(contextStatement)),
    work(tx),
    ...(sendsCommit ? [tx.executeRaw(statement('COMMIT'))] : []),
  ])
  const failed = steps.find((step) => step.status === 'rejected')
  if (failed !== undefined) {
    // With COMMIT sent the transaction is over already: rollback() only hands the connection back.
    await (sendsCommit ? tx.rollback() : rollback(tx)).catch(() => undefined)
    throw failed.reason
  }
  await tx.commit()
  return (steps[1] as PromiseFulfilledResult<T>).value
}

/**
 * A pool for the inner adapter whose statements carry the current tenant's context, one round trip each
 * (see runScoped), and whose clients begin transactions with the context in the same message as `BEGIN`.
 */
function scopedPool(pool: ConnectingPool, context: ContextSql, tenantId: string): object {
  return {
    query: (config: string | QueryConfigLike, values?: readonly unknown[]) => runScopedOnPool(pool, context, tenantId, config as string, values),
    connect: async () => beginsWithContext(await pool.connect(), context, tenantId),
  }
}

type QueryConfigLike = { text: string; values?: unknown[] }

/**
 * A checked-out client whose first statement, the adapter's plain `BEGIN`, goes out as
 * `BEGIN; <context>`: one round trip, like the `BEGIN` alone.
 */
function beginsWithContext(client: PooledClient, context: ContextSql, tenantId: string): PooledClient {
  let first = true
  const query = (config: string | QueryConfigLike, ...rest: unknown[]): unknown => {
    const text = typeof config === 'string' ? config : config.text
    const opening = first && text === 'BEGIN'
    first = false
    if (!opening) return (client.query as (...args: unknown[]) => unknown)(config, ...rest)
    const begin = beginWithContext(context, tenantId)
    return (client.query as (...args: unknown[]) => unknown)(typeof config === 'string' ? begin : { ...config, text: begin }, ...rest)
  }
  return new Proxy(client, {
    get(target, key) {
      if (key === 'query') return query
      const value = Reflect.get(target, key, target) as unknown
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
  })
}

function tenantAdapter(inner: SqlDriverAdapter, settings: Settings): SqlDriverAdapter {
  const { context, observer } = settings
  const pool = nodePostgresPool(inner)
  const scoped = (): SqlDriverAdapter | undefined => (pool === undefined ? undefined : through(inner, scopedPool(pool, context, tenantForTransaction())))
  /** Outside any context with the `observe` option: report `sql`; the caller runs it on the inner adapter, unscoped. */
  const observed = (sql: string): boolean => {
    if (observer === undefined || currentTenant() !== undefined) return false
    observer.report(sql)
    return true
  }
  const adapter: SqlDriverAdapter = {
    provider: inner.provider,
    adapterName: inner.adapterName,
    queryRaw: (query: SqlQuery): Promise<SqlResultSet> => {
      if (observed(query.sql)) return inner.queryRaw(query)
      const view = scoped()
      return view === undefined ? once(inner, settings, (tx) => tx.queryRaw(query)) : inner.queryRaw.call(view, query)
    },
    executeRaw: (query: SqlQuery): Promise<number> => {
      if (observed(query.sql)) return inner.executeRaw(query)
      const view = scoped()
      return view === undefined ? once(inner, settings, (tx) => tx.executeRaw(query)) : inner.executeRaw.call(view, query)
    },
    async executeScript(): Promise<void> {
      throw new TypeError('tenantPrismaAdapter: scripts (migrations) are system work; run them through an unscoped adapter')
    },
    // Prisma runs the statements of an interactive transaction from whichever request's async context
    // dispatches its tick (see tenantPrisma), so a transaction is bound to its tenant when it starts
    // and its statements are not checked against the current tenant.
    startTransaction: async (isolationLevel?: IsolationLevel): Promise<Transaction> => {
      if (observed('transaction')) return inner.startTransaction(isolationLevel)
      const tenantId = tenantForTransaction()
      // With an isolation level the adapter sends SET TRANSACTION after BEGIN, which must precede any query.
      if (pool === undefined || isolationLevel !== undefined) return begin(inner, context, tenantId, isolationLevel)
      return inner.startTransaction.call(through(inner, scopedPool(pool, context, tenantId)))
    },
    dispose: () => inner.dispose(),
  }
  if (inner.getConnectionInfo !== undefined) {
    const info = inner.getConnectionInfo.bind(inner)
    adapter.getConnectionInfo = () => info()
  }
  return Object.freeze(adapter)
}

/**
 * Wrap your Prisma 7 driver adapter factory (e.g. `new PrismaPg(pool)` over your existing pool) so that
 * every query of a `PrismaClient` built on it runs scoped to the current tenant of {@link withTenant}:
 * it wraps the adapter itself, so model queries, `$queryRaw`/`$executeRaw`, `$transaction([...])` and
 * interactive `$transaction(async (tx) => …)` are all covered (`$extends` query hooks are not).
 *
 * - A statement outside a transaction: the context and the statement in one round trip, one implicit
 *   transaction (with `@prisma/adapter-pg`; over other adapters `BEGIN`, the context, the statement, `COMMIT`).
 * - Every transaction Prisma starts sets the context as its first statement (in the same message as
 *   `BEGIN` with `@prisma/adapter-pg`, unless an isolation level is set), and belongs to the tenant
 *   current when it started.
 * - Outside any tenant context, queries and transactions throw {@link TenantContextMissingError}
 *   before the pool is touched (Prisma rethrows it as its own error class with the same `code`).
 *
 * Wrap the client in {@link tenantPrisma} as well: Prisma defers some requests to a tick shared with
 * other requests, where no adapter can tell which tenant they belong to.
 *
 * ```ts
 * const prisma = tenantPrisma(new PrismaClient({ adapter: tenantPrismaAdapter(new PrismaPg(pool)) }))
 * const system = new PrismaClient({ adapter: new PrismaPg(systemPool) }) // unscoped, another role
 * await withTenant(orgId, () => prisma.invoice.findMany())
 * ```
 *
 * @throws {TypeError} for an unknown strategy or an invalid setting name.
 */
export function tenantPrismaAdapter(factory: SqlDriverAdapterFactory, options: TenantPrismaAdapterOptions = {}): SqlDriverAdapterFactory {
  const settings: Settings = { context: contextSql(options), pipeline: options.pipeline === true, observer: createObserver('prisma', options.observe) }
  return Object.freeze({
    provider: factory.provider,
    adapterName: factory.adapterName,
    connect: async (): Promise<SqlDriverAdapter> => tenantAdapter(await factory.connect(), settings),
  })
}

/** The methods of a PrismaClient {@link tenantPrisma} reroutes. */
interface PrismaClientLike {
  $transaction(arg: unknown, options?: unknown): Promise<unknown>
  $executeRawUnsafe(query: string): unknown
  $extends(...extensions: unknown[]): unknown
}

interface ModelDelegateLike {
  findFirst(args: unknown): unknown
  findFirstOrThrow(args: unknown): unknown
}

function isDelegate(value: unknown): value is ModelDelegateLike & Record<PropertyKey, unknown> {
  const delegate = value as Partial<ModelDelegateLike> & { findUnique?: unknown } | null
  return typeof value === 'object' && value !== null && typeof delegate?.findUnique === 'function' && typeof delegate.findFirst === 'function'
}

function bound(target: object, key: PropertyKey): unknown {
  const value = Reflect.get(target, key, target) as unknown
  return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
}

/** A model delegate whose findUnique(OrThrow) run as findFirst(OrThrow): same where, same result, never batched. */
function delegateProxy(delegate: ModelDelegateLike & Record<PropertyKey, unknown>): unknown {
  return new Proxy(delegate, {
    get(target, key) {
      if (key === 'findUnique') return (args: unknown) => target.findFirst(args)
      if (key === 'findUniqueOrThrow') return (args: unknown) => target.findFirstOrThrow(args)
      return bound(target, key)
    },
  })
}

/**
 * Make a PrismaClient built on {@link tenantPrismaAdapter} safe when several tenants' requests meet in
 * one tick. Prisma defers two kinds of requests to a `process.nextTick` shared by every request of that
 * tick, so they run in the async context of whichever request came first — possibly another tenant's:
 *
 * - `findUnique` / `findUniqueOrThrow` outside a transaction, which Prisma also merges across callers
 *   into one query. Here they run as `findFirst` / `findFirstOrThrow` (the same `where` on unique
 *   fields finds the same row), which Prisma neither defers nor merges.
 * - batch `$transaction([...])`. Here the tenant is read when `$transaction` is called and its context
 *   statement is the batch's first statement (the adapter's, set at the start, is overridden by it).
 *
 * Interactive transactions need nothing: the adapter binds a transaction to its tenant when it starts,
 * which Prisma does in the caller's context. `$extends` on the result returns a client wrapped again.
 *
 * ```ts
 * const prisma = tenantPrisma(new PrismaClient({ adapter: tenantPrismaAdapter(new PrismaPg(pool)) }))
 * ```
 *
 * Pass the same `strategy` / `setting` as to the adapter.
 *
 * @throws {TypeError} for an unknown strategy or an invalid setting name.
 */
export function tenantPrisma<C extends object>(client: C, options: TenantPrismaOptions = {}): C {
  const context = contextSql(options)
  const prisma = client as unknown as PrismaClientLike
  const delegates = new Map<PropertyKey, unknown>()

  function transaction(arg: unknown, transactionOptions?: unknown): Promise<unknown> {
    if (!Array.isArray(arg)) return prisma.$transaction(arg, transactionOptions)
    // Observed outside any context: Prisma's own batch, which the adapter reports and runs unscoped.
    if (options.observe !== undefined && currentTenant() === undefined) return prisma.$transaction(arg, transactionOptions)
    let tenantId: string
    try {
      tenantId = tenantForTransaction()
    } catch (error) {
      return Promise.reject(error)
    }
    const first = prisma.$executeRawUnsafe(context.statement(tenantId))
    return prisma.$transaction([first, ...(arg as unknown[])], transactionOptions).then((results) => (results as unknown[]).slice(1))
  }

  return new Proxy(client, {
    get(target, key) {
      if (key === '$transaction') return transaction
      if (key === '$extends') return (...extensions: unknown[]) => tenantPrisma(prisma.$extends(...extensions) as object, options)
      const value = Reflect.get(target, key, target) as unknown
      if (isDelegate(value)) {
        if (!delegates.has(key)) delegates.set(key, delegateProxy(value))
        return delegates.get(key)
      }
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
  })
}

/** Operations whose `where` is a WhereInput: the tenant condition is AND-ed to it. */
const FILTERED = new Set(['findFirst', 'findFirstOrThrow', 'findMany', 'count', 'aggregate', 'groupBy', 'updateMany', 'updateManyAndReturn', 'deleteMany'])
/** Operations whose `where` is a WhereUniqueInput: the tenant field is added beside the unique fields. */
const UNIQUE = new Set(['findUnique', 'findUniqueOrThrow', 'update', 'delete', 'upsert'])

/** The `$allOperations` hook's argument, as Prisma passes it. */
interface AllOperationsParams {
  model?: string
  operation: string
  args: Record<string, unknown> | undefined
  query: (args: unknown) => Promise<unknown>
}

/**
 * A Prisma client extension that adds the explicit tenant condition `{ orgId: <tenant> }` to the `where`
 * of every read, update and delete of the models listed — for Citus, where a query filtered only by
 * row-level security goes to every shard, and one with the distribution column is routed to the tenant's
 * shard. Row-level security stays the backstop: the condition never widens what a query sees, so results
 * are the same with or without it. Creates are left alone (the tenant column's default fills it from the
 * context); outside any context queries are left as they are.
 *
 * `models` maps a model name to its tenant field (the Prisma field, e.g. `orgId` for `org_id`).
 *
 * ```ts
 * const prisma = tenantPrisma(new PrismaClient({ adapter: tenantPrismaAdapter(new PrismaPg(pool), { strategy: 'set-local' }) }), { strategy: 'set-local' })
 *   .$extends(tenantRouting({ models: { Invoice: 'orgId', InvoiceLine: 'orgId' } }))
 * ```
 *
 * @throws {TypeError} for an empty model map.
 */
export function tenantRouting(options: { readonly models: Readonly<Record<string, string>> }): { name: string; query: { $allModels: { $allOperations(params: AllOperationsParams): Promise<unknown> } } } {
  const fields = new Map(Object.entries(options.models ?? {}))
  if (fields.size === 0 || [...fields.values()].some((f) => typeof f !== 'string' || f === '')) {
    throw new TypeError("tenantRouting: map each tenant model to its tenant field, e.g. { models: { Invoice: 'orgId' } }")
  }
  return {
    name: 'tenantize-routing',
    query: {
      $allModels: {
        $allOperations({ model, operation, args, query }: AllOperationsParams): Promise<unknown> {
          const field = model === undefined ? undefined : fields.get(model)
          const tenantId = currentTenant()
          if (field === undefined || tenantId === undefined) return query(args)
          const where = args?.['where'] as Record<string, unknown> | undefined
          if (FILTERED.has(operation)) {
            const condition = { [field]: tenantId }
            return query({ ...args, where: where === undefined ? condition : { AND: [where, condition] } })
          }
          if (UNIQUE.has(operation) && where !== undefined && !(field in where)) {
            return query({ ...args, where: { ...where, [field]: tenantId } })
          }
          return query(args)
        },
      },
    },
  }
}
