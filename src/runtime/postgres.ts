import type { ParameterOrFragment, ParameterOrJSON, PendingQuery, Row, RowList, Sql, TransactionSql, UnsafeQueryOptions } from 'postgres'
import { contextSql, type ContextSql, type ContextSqlOptions } from './context-sql.js'
import { SystemContextError } from './errors.js'
import { assertTransactionTenant, beginWithContext, tenantForTransaction, transactionEnded } from './adapters/scope.js'
import { createObserver, tenantFor, type ObserveOptions } from './observe.js'

/** What `sql.begin` resolves to: the callback's value, with an array of promises resolved element-wise. */
export type UnwrapPromiseArray<T> = T extends unknown[] ? { [K in keyof T]: T[K] extends Promise<infer R> ? R : T[K] } : T

/** postgres.js' tagged template over a wrapped `sql`: every query runs scoped to the current tenant. See {@link tenantSql}. */
export interface TenantSql<TTypes extends Record<string, unknown>> {
  /**
   * Run one query in its own tenant transaction. `BEGIN` with the context, the query and `COMMIT` are
   * pipelined: written together, one round trip for a prepared statement.
   *
   * Interpolated values are bound parameters; fragments and helpers (`sql(object)`, `sql('column')`,
   * `` sql`…` ``) come from your own `sql` and are not executed on their own. postgres.js' query
   * modifiers (`.values()`, `.cursor()`, `.forEach()` …) are available inside {@link TenantSql.begin}.
   *
   * @throws {TenantContextMissingError} outside any `withTenant` context, before touching the database.
   */
  <T extends readonly (object | undefined)[] = Row[]>(
    template: TemplateStringsArray,
    ...parameters: readonly ParameterOrFragment<TTypes[keyof TTypes]>[]
  ): Promise<RowList<T>>
  /**
   * Run raw SQL in its own tenant transaction, like the tagged form.
   *
   * **Warning:** `query` is raw SQL. Never build it from user input: pass values as `$1`, `$2` … in `parameters`.
   */
  unsafe<T extends unknown[] = (Row & Iterable<Row>)[]>(
    query: string,
    parameters?: ParameterOrJSON<TTypes[keyof TTypes]>[],
    options?: UnsafeQueryOptions,
  ): Promise<RowList<T>>
  /**
   * postgres.js' `sql.begin`, scoped to the current tenant: the context statement is the transaction's
   * first statement, pipelined with the first query of `fn`. `tx` is postgres.js' own transaction `sql`
   * (savepoints, modifiers, helpers), usable only until `fn` settles and only under the same tenant.
   *
   * @throws {TenantContextMissingError} outside any `withTenant` context, before touching the database.
   */
  begin<T>(fn: (tx: TransactionSql<TTypes>) => T | Promise<T>): Promise<UnwrapPromiseArray<T>>
  /** With transaction options, e.g. `'isolation level serializable'` (postgres.js keeps only letters and spaces). */
  begin<T>(options: string, fn: (tx: TransactionSql<TTypes>) => T | Promise<T>): Promise<UnwrapPromiseArray<T>>
  /**
   * Run `fn` with the unscoped `systemSql` given to {@link tenantSql} — meant to be another role. There is
   * no other way to run unscoped queries through tenantize.
   *
   * @throws {SystemContextError} when no `systemSql` is configured.
   */
  asSystem<T>(fn: (system: Sql<TTypes>) => Promise<T>): Promise<T>
}

export interface TenantSqlOptions<TTypes extends Record<string, unknown>> extends ContextSqlOptions, ObserveOptions {
  /** A separate `sql`, normally connected as another role, used only by {@link TenantSql.asSystem}. */
  readonly systemSql?: Sql<TTypes>
}

type Settled<T> = PromiseSettledResult<T>

/**
 * Reserve a connection and write `BEGIN; <context>`, the work and `COMMIT` without waiting in between
 * (postgres.js pipelines queries on one connection). A failed statement aborts the transaction, so the
 * work never runs without its context, and `COMMIT` then answers `ROLLBACK`.
 */
async function pipelined<R>(sql: Sql<Record<string, unknown>>, begin: string, work: (reserved: Sql<Record<string, unknown>>) => PendingQuery<never>): Promise<R> {
  const reserved = await sql.reserve()
  try {
    const results: [Settled<unknown>, Settled<unknown>, Settled<RowList<Row[]>>] = await Promise.allSettled([
      reserved.unsafe(begin).execute(),
      work(reserved).execute(),
      reserved.unsafe('COMMIT').execute(),
    ])
    for (const result of results) if (result.status === 'rejected') throw result.reason
    const [, done, commit] = results as [unknown, PromiseFulfilledResult<R>, PromiseFulfilledResult<RowList<Row[]>>]
    if (commit.value.command !== 'COMMIT') throw new Error(`the tenant transaction ended with ${commit.value.command} instead of COMMIT`)
    return done.value
  } finally {
    reserved.release()
  }
}

/** `tx` that refuses to run after its transaction or under another tenant (helpers stay usable). */
function guarded<TTypes extends Record<string, unknown>>(tx: TransactionSql<TTypes>, tenantId: string, isOpen: () => boolean): TransactionSql<TTypes> {
  const check = (): void => {
    if (!isOpen()) throw transactionEnded()
    assertTransactionTenant(tenantId)
  }
  const checked = new Set<PropertyKey>(['unsafe', 'file', 'savepoint'])
  return new Proxy(tx, {
    apply(target, thisArg, args: unknown[]) {
      const first = args[0] as { raw?: unknown } | undefined
      if (first !== null && typeof first === 'object' && Array.isArray(first.raw)) check()
      return Reflect.apply(target, thisArg, args) as unknown
    },
    get(target, key) {
      const value = Reflect.get(target, key, target) as unknown
      if (!checked.has(key) || typeof value !== 'function') return value
      return (...args: unknown[]) => {
        check()
        return Reflect.apply(value, target, args) as unknown
      }
    },
  })
}

/**
 * Wrap your existing postgres.js `sql` (it is not replaced or reconfigured) so that every query runs in
 * a transaction scoped to the current tenant of {@link withTenant}; the context is set transaction-locally
 * (`set_config(…, true)` or `SET LOCAL`), so nothing stays on the connection. Outside any tenant context
 * it throws {@link TenantContextMissingError} without touching the database.
 *
 * ```ts
 * const sql = postgres(APP_URL)
 * const tsql = tenantSql(sql, { systemSql: postgres(ADMIN_URL) })
 * await withTenant(orgId, () => tsql`SELECT * FROM invoice WHERE id = ${id}`)
 * await withTenant(orgId, () => tsql.begin(async (tx) => { await tx`…`; await tx`…` }))
 * ```
 *
 * Behind PgBouncer in transaction mode, create `sql` with `prepare: false` (PgBouncer before 1.21 does not
 * keep prepared statements).
 *
 * @throws {TypeError} for an unknown strategy or an invalid setting name.
 * @throws {SystemContextError} when `systemSql` is `sql` itself.
 */
export function tenantSql<TTypes extends Record<string, unknown>>(sql: Sql<TTypes>, options: TenantSqlOptions<TTypes> = {}): TenantSql<TTypes> {
  const { systemSql } = options
  if (systemSql !== undefined && systemSql === sql) {
    throw new SystemContextError('systemSql must be a separate sql (normally another role), not the tenant sql itself')
  }
  const context: ContextSql = contextSql(options)
  const observer = createObserver('postgres.js', options.observe)
  const base = sql as unknown as Sql<Record<string, unknown>>

  /** The work in a tenant transaction of its own; outside any context, observed, the work alone (unscoped). */
  async function one<R>(text: () => string, work: (reserved: Sql<Record<string, unknown>>) => PendingQuery<never>): Promise<R> {
    const tenantId = observer === undefined ? tenantForTransaction() : tenantFor(observer, text)
    if (tenantId === undefined) return (await work(base)) as R
    return pipelined<R>(base, beginWithContext(context, tenantId), work)
  }

  function tagged(template: TemplateStringsArray, ...parameters: readonly unknown[]): Promise<unknown> {
    if (!Array.isArray((template as { raw?: unknown } | undefined)?.raw)) {
      return Promise.reject(new TypeError('tenantSql is a tag for queries; build helpers and fragments with your own sql'))
    }
    const text = (): string => template.reduce((all, part, i) => `${all}$${i}${part}`)
    return one(text, (reserved) => (reserved as unknown as (t: TemplateStringsArray, ...p: readonly unknown[]) => PendingQuery<never>)(template, ...parameters))
  }

  /**
   * Without parameters postgres.js sends `unsafe` text as a simple-protocol query: the context statement
   * goes in front of it in the same query string — one message, one implicit transaction, no reserved
   * connection, no `BEGIN` / `COMMIT`. Not with `SET LOCAL` (Citus sends the whole string of a propagated
   * `SET LOCAL` to the workers), nor for an empty text.
   */
  async function simple(query: string, queryOptions: UnsafeQueryOptions | undefined): Promise<unknown> {
    const tenantId = observer === undefined ? tenantForTransaction() : tenantFor(observer, query)
    if (tenantId === undefined) return base.unsafe(query, [], queryOptions)
    const statement = context.statement(tenantId)
    const result = (await base.unsafe(`${statement};\n${query}`, [], { ...queryOptions, simple: true } as UnsafeQueryOptions)) as unknown
    if (!Array.isArray(result) || !Array.isArray(result[0])) {
      // Only the context statement answered (the text was a comment): an empty result, never its row.
      return new ((result as object).constructor as new () => unknown)()
    }
    const rest = (result as unknown[]).slice(1)
    return rest.length === 1 ? rest[0] : rest
  }

  function unsafe(query: string, parameters?: unknown[] | UnsafeQueryOptions, queryOptions?: UnsafeQueryOptions): Promise<unknown> {
    // postgres.js' own signature: unsafe(text, options) when the second argument is not an array.
    const [values, options] = parameters === undefined || Array.isArray(parameters) ? [parameters, queryOptions] : [undefined, parameters]
    const explicit = (options as { simple?: unknown } | undefined)?.simple
    const asSimple = explicit !== undefined ? explicit === true : values === undefined || values.length === 0
    if (asSimple && context.strategy === 'set_config' && typeof query === 'string' && query.trim() !== '') return simple(query, options)
    return one(() => String(query), (reserved) => reserved.unsafe(query, (values ?? []) as never[], options) as PendingQuery<never>)
  }

  async function begin(...args: [(tx: TransactionSql<TTypes>) => unknown] | [string, (tx: TransactionSql<TTypes>) => unknown]): Promise<unknown> {
    const [transactionOptions, fn] = args.length === 1 ? ['', args[0]] : args
    const tenantId = observer === undefined ? tenantForTransaction() : tenantFor(observer, 'transaction')
    if (tenantId === undefined) return sql.begin(transactionOptions, fn)
    const statement = context.local(tenantId) // after postgres.js' BEGIN
    return sql.begin(transactionOptions, async (tx) => {
      // Not awaited: written ahead of the first query of fn, in the same round trip. Should it fail, the
      // transaction is aborted and postgres.js rolls it back with this error.
      const contextSet = tx.unsafe(statement).execute()
      let open = true
      try {
        const result = fn(guarded(tx, tenantId, () => open))
        return await (Array.isArray(result) ? Promise.all(result) : result)
      } finally {
        open = false
        await contextSet
      }
    })
  }

  async function asSystem<T>(fn: (system: Sql<TTypes>) => Promise<T>): Promise<T> {
    if (systemSql === undefined) {
      throw new SystemContextError('asSystem needs a separate system sql: pass tenantSql(sql, { systemSql })')
    }
    return fn(systemSql)
  }

  return Object.freeze(Object.assign(tagged, { unsafe, begin, asSystem })) as unknown as TenantSql<TTypes>
}
