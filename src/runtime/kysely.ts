import {
  AliasNode,
  AndNode,
  BinaryOperationNode,
  ColumnNode,
  CompiledQuery,
  IdentifierNode,
  JoinNode,
  OperationNodeTransformer,
  OperatorNode,
  PostgresDriver,
  QueryNode,
  ReferenceNode,
  TableNode,
  ValueNode,
} from 'kysely'
import type {
  DeleteQueryNode,
  KyselyPlugin,
  OperationNode,
  PluginTransformQueryArgs,
  PluginTransformResultArgs,
  QueryId,
  RootOperationNode,
  SelectQueryNode,
  UpdateQueryNode,
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
import { createObserver, type ObserveOptions, type Observer } from './observe.js'
import { currentTenant } from './context.js'

export interface TenantDialectOptions extends ContextSqlOptions, ObserveOptions {
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

/**
 * A connection taken outside any tenant context by a driver with the `observe` option: statements run
 * unscoped, as without tenantize, and each statement outside a transaction is reported.
 */
class ObservedConnection implements DatabaseConnection {
  inTransaction = false

  constructor(
    readonly inner: DatabaseConnection,
    private readonly observer: Observer,
  ) {}

  executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    if (!this.inTransaction) this.observer.report(compiledQuery.sql)
    return this.inner.executeQuery<R>(compiledQuery)
  }

  streamQuery<R>(compiledQuery: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    if (!this.inTransaction) this.observer.report(compiledQuery.sql)
    return this.inner.streamQuery<R>(compiledQuery, chunkSize)
  }
}

function innerOf(connection: DatabaseConnection): DatabaseConnection {
  if (connection instanceof TenantConnection || connection instanceof ObservedConnection) return connection.inner
  throw new TypeError('tenantDialect: not a connection of this driver')
}

function scopedOrObserved(connection: DatabaseConnection): TenantConnection | ObservedConnection {
  if (connection instanceof TenantConnection || connection instanceof ObservedConnection) return connection
  throw new TypeError('tenantDialect: not a connection of this driver')
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
    private readonly observer: Observer | undefined,
  ) {
    this.nodePostgres = inner instanceof PostgresDriver
  }

  init(): Promise<void> {
    return this.inner.init()
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    // Before a connection is taken from the pool. Observed, a connection outside any context is unscoped.
    if (this.observer !== undefined && currentTenant() === undefined) return new ObservedConnection(await this.inner.acquireConnection(), this.observer)
    const tenantId = tenantForTransaction()
    return new TenantConnection(await this.inner.acquireConnection(), tenantId, this.context, this.pipeline, this.nodePostgres)
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    if (connection instanceof ObservedConnection) {
      this.observer?.report('transaction')
      await this.inner.beginTransaction(connection.inner, settings)
      connection.inTransaction = true
      return
    }
    const tenant = unwrap(connection)
    tenant.check()
    // BEGIN and the context in one message: one round trip, like the driver's own BEGIN.
    await tenant.inner.executeQuery(CompiledQuery.raw(beginWithContext(this.context, tenant.tenantId, startStatement(settings))))
    tenant.inTransaction = true
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const tenant = scopedOrObserved(connection)
    try {
      await this.inner.commitTransaction(tenant.inner)
    } finally {
      tenant.inTransaction = false
    }
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const tenant = scopedOrObserved(connection)
    try {
      await this.inner.rollbackTransaction(tenant.inner)
    } finally {
      tenant.inTransaction = false
    }
  }

  async savepoint(connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    if (this.inner.savepoint === undefined) throw new Error('The `savepoint` method is not supported by this driver')
    await this.inner.savepoint(innerOf(connection), name, compileQuery)
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    if (this.inner.rollbackToSavepoint === undefined) throw new Error('The `rollbackToSavepoint` method is not supported by this driver')
    await this.inner.rollbackToSavepoint(innerOf(connection), name, compileQuery)
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    if (this.inner.releaseSavepoint === undefined) throw new Error('The `releaseSavepoint` method is not supported by this driver')
    await this.inner.releaseSavepoint(innerOf(connection), name, compileQuery)
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    if (connection instanceof ObservedConnection) {
      await this.inner.releaseConnection(connection.inner)
      return
    }
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
  const observer = createObserver('kysely', options.observe)
  return Object.freeze({
    createDriver: (): Driver => new TenantDriver(dialect.createDriver(), context, pipeline, observer),
    createQueryCompiler: (): QueryCompiler => dialect.createQueryCompiler(),
    createAdapter: (): DialectAdapter => dialect.createAdapter(),
    createIntrospector: (db: Parameters<Dialect['createIntrospector']>[0]): DatabaseIntrospector => dialect.createIntrospector(db),
  })
}

/** Tenant tables for {@link tenantRoutingPlugin}: names (`table` or `schema.table`) with the tenant column each. */
export interface TenantRoutingOptions {
  /** Table names (`invoice`, `billing.invoice`) holding the tenant column, or a map of table name to its tenant column. */
  readonly tables: readonly string[] | Readonly<Record<string, string>>
  /** The tenant column of the tables listed as names. Default `org_id`. */
  readonly column?: string
}

/** A table a query reads or writes, as written in it: its name, schema and alias. */
interface TableReference {
  readonly table: string
  readonly schema: string | undefined
  readonly alias: string | undefined
}

function tableReference(node: OperationNode): TableReference | undefined {
  let alias: string | undefined
  let target = node
  if (AliasNode.is(node)) {
    if (!IdentifierNode.is(node.alias)) return undefined
    alias = node.alias.name
    target = node.node
  }
  if (!TableNode.is(target)) return undefined
  return { table: target.table.identifier.name, schema: target.table.schema?.name, alias }
}

/** The AND-ed conditions of a WHERE or ON condition. */
function conjuncts(node: OperationNode | undefined): OperationNode[] {
  if (node === undefined) return []
  if (AndNode.is(node)) return [...conjuncts(node.left), ...conjuncts(node.right)]
  return [node]
}

/** `condition` is already one of the conjuncts (a subquery built with the plugin is transformed when built and again inside its outer query). */
function hasCondition(existing: OperationNode | undefined, condition: OperationNode): boolean {
  const wanted = canonical(condition)
  return conjuncts(existing).some((c) => canonical(c) === wanted)
}

/** JSON with sorted keys: Kysely's transformer rebuilds nodes with their keys in another order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) : v,
  )
}

/** Adds the explicit tenant predicate (see {@link tenantRoutingPlugin}). */
class TenantRoutingTransformer extends OperationNodeTransformer {
  constructor(
    private readonly columns: ReadonlyMap<string, string>,
    private readonly tenantId: string,
  ) {
    super()
  }

  /** `reference.column = $tenant` for a tenant table, else undefined. */
  private predicate(node: OperationNode): OperationNode | undefined {
    const ref = tableReference(node)
    if (ref === undefined) return undefined
    const column = this.columns.get(ref.schema === undefined ? ref.table : `${ref.schema}.${ref.table}`) ?? (ref.schema === undefined ? undefined : this.columns.get(ref.table))
    if (column === undefined) return undefined
    const qualifier = ref.alias !== undefined ? TableNode.create(ref.alias) : ref.schema !== undefined ? TableNode.createWithSchema(ref.schema, ref.table) : TableNode.create(ref.table)
    return BinaryOperationNode.create(ReferenceNode.create(ColumnNode.create(column), qualifier), OperatorNode.create('='), ValueNode.create(this.tenantId))
  }

  /** Predicates for the FROM tables into WHERE, for joined tables into their ON (a WHERE would turn a LEFT JOIN into an inner one). */
  private route<T extends SelectQueryNode | UpdateQueryNode | DeleteQueryNode>(node: T, whereTables: readonly OperationNode[]): T {
    let result = node
    const joins = node.joins ?? []
    // Rows of a FROM table null-extended by a RIGHT or FULL join would be dropped by a WHERE on it.
    const nullExtended = joins.some((join) => join.joinType === 'RightJoin' || join.joinType === 'FullJoin')
    if (!nullExtended) {
      for (const table of whereTables) {
        const predicate = this.predicate(table)
        if (predicate !== undefined && !hasCondition(result.where?.where, predicate)) result = QueryNode.cloneWithWhere(result, predicate)
      }
    }
    if (joins.length > 0) {
      const routed = joins.map((join) => {
        const predicate = this.predicate(join.table)
        if (predicate === undefined || hasCondition(join.on?.on, predicate)) return join
        if (join.on !== undefined) return JoinNode.cloneWithOn(join, predicate)
        return join // a join without ON (CROSS, LATERAL): left as it is
      })
      result = { ...result, joins: Object.freeze(routed) }
    }
    return result
  }

  protected override transformSelectQuery(node: SelectQueryNode, queryId?: QueryId): SelectQueryNode {
    const transformed = super.transformSelectQuery(node, queryId)
    return this.route(transformed, transformed.from?.froms ?? [])
  }

  protected override transformUpdateQuery(node: UpdateQueryNode, queryId?: QueryId): UpdateQueryNode {
    const transformed = super.transformUpdateQuery(node, queryId)
    return this.route(transformed, [...(transformed.table === undefined ? [] : [transformed.table]), ...(transformed.from?.froms ?? [])])
  }

  protected override transformDeleteQuery(node: DeleteQueryNode, queryId?: QueryId): DeleteQueryNode {
    const transformed = super.transformDeleteQuery(node, queryId)
    return this.route(transformed, [...transformed.from.froms, ...(transformed.using?.tables ?? [])])
  }
}

/**
 * A Kysely plugin that adds the explicit tenant predicate `table.org_id = $tenant` to every select,
 * update and delete that reads a tenant table, with the current tenant of {@link withTenant} — for Citus,
 * where a query filtered only by row-level security goes to every shard and one with the predicate is
 * routed to the tenant's shard. Row-level security stays the backstop: the predicate never widens what a
 * query sees (the policies already restrict it to the tenant), so results are the same with or without it.
 *
 * FROM tables get it in WHERE (not when a RIGHT or FULL join could null-extend them), joined tables in
 * their ON (a LEFT JOIN stays a LEFT JOIN), subqueries and CTEs their own. Inserts are left alone (the
 * tenant column's default fills it from the context). Outside any context the query is left as it is (the
 * scoped dialect refuses it, or reports it with `observe`).
 *
 * ```ts
 * const db = new Kysely<DB>({ dialect: tenantDialect(new PostgresDialect({ pool }), { strategy: 'set-local' }), plugins: [tenantRoutingPlugin({ tables: ['invoice', 'invoice_line'] })] })
 * ```
 *
 * @throws {TypeError} for an empty table list or an invalid name.
 */
export function tenantRoutingPlugin(options: TenantRoutingOptions): KyselyPlugin {
  const column = options.column ?? 'org_id'
  const entries: [string, string][] = Array.isArray(options.tables) ? (options.tables as readonly string[]).map((t) => [t, column]) : Object.entries(options.tables as Record<string, string>)
  if (entries.length === 0) throw new TypeError('tenantRoutingPlugin: list the tenant tables (tables: [\'invoice\', …]) whose queries get the tenant predicate')
  for (const [table, col] of entries) {
    if (typeof table !== 'string' || table === '' || table.split('.').length > 2 || typeof col !== 'string' || col === '') {
      throw new TypeError(`tenantRoutingPlugin: ${JSON.stringify(table)} → ${JSON.stringify(col)} is not "table" or "schema.table" with a tenant column name`)
    }
  }
  const columns: ReadonlyMap<string, string> = new Map(entries)
  return Object.freeze({
    transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
      const tenantId = currentTenant()
      if (tenantId === undefined) return args.node
      return new TenantRoutingTransformer(columns, tenantId).transformNode(args.node, args.queryId)
    },
    transformResult<R>(args: PluginTransformResultArgs): Promise<QueryResult<R>> {
      return Promise.resolve(args.result as QueryResult<R>)
    },
  })
}
