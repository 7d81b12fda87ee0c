import { CompiledQuery, PostgresDriver } from 'kysely'
import type {
  DatabaseConnection,
  DatabaseIntrospector,
  Dialect,
  DialectAdapter,
  Driver,
  QueryCompiler,
  QueryResult,
  TransactionSettings,
} from 'kysely'
import { contextSql, type ContextSql, type ContextSqlOptions } from './context-sql.js'
import { assertTransactionTenant, beginWithContext, tenantForTransaction, transactionEnded } from './adapters/scope.js'
import { runScoped, type ScopedIo, type ScopedQuery } from './adapters/pg-scoped.js'

export interface TenantDialectOptions extends ContextSqlOptions {
  /**
   * Only for a dialect other than Kysely's `PostgresDialect` (whose statements already take one round
   * trip with their context): write a statement outside a transaction together with its `BEGIN` and
   * `COMMIT` without waiting in between — for a driver that pipelines (a node-postgres `Pool` created
   * with `pipeline: true`); others would queue the statements.
   */
  readonly pipeline?: boolean
}

const ISOLATION_LEVELS = ['read uncommitted', 'read committed', 'repeatable read', 'serializable'] as const
const ACCESS_MODES = ['read only', 'read write'] as const

/** `BEGIN`, or `START TRANSACTION …` with Kysely's transaction settings (checked against PostgreSQL's values). */
function startStatement(settings: TransactionSettings): string {
  const { isolationLevel, accessMode } = settings
  if (isolationLevel === undefined && accessMode === undefined) return 'BEGIN'
  let statement = 'START TRANSACTION'
  if (isolationLevel !== undefined) {
    if (!(ISOLATION_LEVELS as readonly string[]).includes(isolationLevel)) {
      throw new TypeError(`isolation level ${JSON.stringify(isolationLevel)} is not one of PostgreSQL's: ${ISOLATION_LEVELS.join(', ')}`)
    }
    statement += ` ISOLATION LEVEL ${isolationLevel.toUpperCase()}`
  }
  if (accessMode !== undefined) {
    if (!(ACCESS_MODES as readonly string[]).includes(accessMode)) {
      throw new TypeError(`access mode ${JSON.stringify(accessMode)} is not one of ${ACCESS_MODES.join(', ')}`)
    }
    statement += ` ${accessMode.toUpperCase()}`
  }
  return statement
}

/**
 * A connection of the wrapped driver, bound to the tenant that was current when it was acquired. Inside
 * a transaction begun through the driver, statements pass through; any other statement runs in a tenant
 * transaction of its own.
 */
class TenantConnection implements DatabaseConnection {
  /** A transaction begun by {@link TenantDriver.beginTransaction} is open: its context is set. */
  inTransaction = false
  released = false

  constructor(
    readonly inner: DatabaseConnection,
    readonly tenantId: string,
    private readonly context: ContextSql,
    private readonly pipeline: boolean,
    /** The inner connection is Kysely's node-postgres one: it hands `sql` to `client.query` as it is. */
    private readonly nodePostgres: boolean,
  ) {}

  check(): void {
    if (this.released) throw transactionEnded()
    assertTransactionTenant(this.tenantId)
  }

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    this.check()
    if (this.inTransaction) return this.inner.executeQuery<R>(compiledQuery)
    if (this.nodePostgres) return this.scoped<R>(compiledQuery)
    const begin = CompiledQuery.raw(beginWithContext(this.context, this.tenantId))
    if (this.pipeline) {
      // A failed statement aborts the transaction: nothing runs without its context, COMMIT ends it.
      const steps = await Promise.allSettled([this.inner.executeQuery(begin), this.inner.executeQuery<R>(compiledQuery), this.inner.executeQuery(CompiledQuery.raw('COMMIT'))])
      for (const step of steps) if (step.status === 'rejected') throw step.reason
      return (steps[1] as PromiseFulfilledResult<QueryResult<R>>).value
    }
    await this.inner.executeQuery(begin)
    try {
      const result = await this.inner.executeQuery<R>(compiledQuery)
      await this.inner.executeQuery(CompiledQuery.raw('COMMIT'))
      return result
    } catch (error) {
      await this.rollbackQuietly()
      throw error
    }
  }

  /**
   * The statement and its context in one round trip (see runScoped): the query object that carries both
   * goes to node-postgres in place of the SQL text, which Kysely's PostgresConnection passes to
   * `client.query` unchanged — node-postgres writes any object with `submit()` as it is.
   */
  scoped<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const io: ScopedIo<QueryResult<R>> = {
      send: (query) => this.inner.executeQuery<R>({ ...compiledQuery, sql: query as ScopedQuery & string }),
      rollback: () => this.inner.executeQuery(CompiledQuery.raw('ROLLBACK')),
      // Kysely releases a connection without an error; the pool drops it once its socket is closed.
      discard: () => undefined,
    }
    return runScoped(io, this.context, this.tenantId, compiledQuery.sql, compiledQuery.parameters)
  }

  async *streamQuery<R>(compiledQuery: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    this.check()
    if (this.inTransaction) {
      yield* this.inner.streamQuery<R>(compiledQuery, chunkSize)
      return
    }
    await this.inner.executeQuery(CompiledQuery.raw(beginWithContext(this.context, this.tenantId)))
    let completed = false
    try {
      yield* this.inner.streamQuery<R>(compiledQuery, chunkSize)
      completed = true
    } finally {
      if (completed) await this.inner.executeQuery(CompiledQuery.raw('COMMIT'))
      else await this.rollbackQuietly()
    }
  }

  /** End a transaction after an error. A failure here means a broken connection: the original error wins. */
  async rollbackQuietly(): Promise<void> {
    try {
      await this.inner.executeQuery(CompiledQuery.raw('ROLLBACK'))
    } catch {
      // the connection is gone; the error that led here is the one to report
    }
  }
}

function unwrap(connection: DatabaseConnection): TenantConnection {
  if (!(connection instanceof TenantConnection)) throw new TypeError('tenantDialect: not a connection of this driver')
  return connection
}

/** The dialect's driver, with every connection scoped to a tenant. */
class TenantDriver implements Driver {
  private readonly nodePostgres: boolean

  constructor(
    private readonly inner: Driver,
    private readonly context: ContextSql,
    private readonly pipeline: boolean,
  ) {
    this.nodePostgres = inner instanceof PostgresDriver
  }

  init(): Promise<void> {
    return this.inner.init()
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const tenantId = tenantForTransaction() // before a connection is taken from the pool
    return new TenantConnection(await this.inner.acquireConnection(), tenantId, this.context, this.pipeline, this.nodePostgres)
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const tenant = unwrap(connection)
    tenant.check()
    // BEGIN and the context in one message: one round trip, like the driver's own BEGIN.
    await tenant.inner.executeQuery(CompiledQuery.raw(beginWithContext(this.context, tenant.tenantId, startStatement(settings))))
    tenant.inTransaction = true
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const tenant = unwrap(connection)
    try {
      await this.inner.commitTransaction(tenant.inner)
    } finally {
      tenant.inTransaction = false
    }
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const tenant = unwrap(connection)
    try {
      await this.inner.rollbackTransaction(tenant.inner)
    } finally {
      tenant.inTransaction = false
    }
  }

  async savepoint(connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    if (this.inner.savepoint === undefined) throw new Error('The `savepoint` method is not supported by this driver')
    await this.inner.savepoint(unwrap(connection).inner, name, compileQuery)
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    if (this.inner.rollbackToSavepoint === undefined) throw new Error('The `rollbackToSavepoint` method is not supported by this driver')
    await this.inner.rollbackToSavepoint(unwrap(connection).inner, name, compileQuery)
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    if (this.inner.releaseSavepoint === undefined) throw new Error('The `releaseSavepoint` method is not supported by this driver')
    await this.inner.releaseSavepoint(unwrap(connection).inner, name, compileQuery)
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    const tenant = unwrap(connection)
    tenant.released = true
    if (tenant.inTransaction) {
      // Never hand a connection back inside a tenant transaction.
      tenant.inTransaction = false
      await tenant.rollbackQuietly()
    }
    await this.inner.releaseConnection(tenant.inner)
  }

  destroy(): Promise<void> {
    return this.inner.destroy()
  }
}

/**
 * Wrap your Kysely dialect (e.g. `new PostgresDialect({ pool })` over your existing pool) so that every
 * query of the `Kysely` instance built on it runs scoped to the current tenant of {@link withTenant}:
 *
 * - a statement outside a transaction runs with its context in one round trip, one implicit transaction
 *   (no `BEGIN` / `COMMIT`; an error rolls it back) — with Kysely's `PostgresDialect`; over other
 *   dialects `BEGIN; <context>` in one round trip, the statement, `COMMIT`;
 * - `db.transaction()` / `db.startTransaction()` begin with `BEGIN; <context>` (or `START TRANSACTION
 *   ISOLATION LEVEL …; <context>`) in one round trip; statements inside must run under the same tenant;
 * - outside any tenant context, taking a connection throws {@link TenantContextMissingError} before the
 *   pool is touched.
 *
 * ```ts
 * const db = new Kysely<DB>({ dialect: tenantDialect(new PostgresDialect({ pool })) })
 * const system = new Kysely<DB>({ dialect: new PostgresDialect({ pool: systemPool }) }) // unscoped, another role
 * await withTenant(orgId, () => db.selectFrom('invoice').selectAll().execute())
 * ```
 *
 * The wrapped dialect's connections must run a parameterless statement list (`BEGIN; SELECT …`) as one
 * simple-protocol query, as Kysely's `PostgresDialect` (node-postgres) does.
 *
 * @throws {TypeError} for an unknown strategy or an invalid setting name.
 */
export function tenantDialect(dialect: Dialect, options: TenantDialectOptions = {}): Dialect {
  const context = contextSql(options)
  const pipeline = options.pipeline === true
  return Object.freeze({
    createDriver: (): Driver => new TenantDriver(dialect.createDriver(), context, pipeline),
    createQueryCompiler: (): QueryCompiler => dialect.createQueryCompiler(),
    createAdapter: (): DialectAdapter => dialect.createAdapter(),
    createIntrospector: (db: Parameters<Dialect['createIntrospector']>[0]): DatabaseIntrospector => dialect.createIntrospector(db),
  })
}
