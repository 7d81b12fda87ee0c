import pg from 'pg'
import type { QueryConfig } from 'pg'
import type { ContextSql } from '../context-sql.js'

/**
 * One statement and its tenant context in ONE round trip on a node-postgres client, without `BEGIN` /
 * `COMMIT` and without the client's `pipeline` option.
 *
 * The context statement is written in the same protocol exchange as the statement, before one Sync
 * (extended protocol, for a statement with parameters) or as the first statement of the same query
 * string (simple protocol): PostgreSQL runs what comes before a Sync — and the statements of one query
 * string — as one implicit transaction, so `set_config(…, true)` holds for exactly that statement and is
 * gone when the server answers. A failing statement rolls the implicit transaction back.
 *
 * With `SET LOCAL` (Citus) the extended form wraps the statement in `BEGIN` … `COMMIT` before the Sync
 * (`SET LOCAL` outside a transaction block only warns); a statement that fails there leaves the
 * transaction aborted, which {@link runScoped}'s callers end with `ROLLBACK`.
 *
 * node-postgres internals this relies on (stable through pg 8): a query object with `submit(connection)`
 * is written by the client as it is, its `handle…` methods receive the server's answers, and the
 * connection writes `parse` / `bind` / `execute` / `sync` / `query` messages.
 */

/** The protocol writer node-postgres hands to `submit`. */
interface ProtocolConnection {
  parse(message: { text: string; name?: string; types?: number[] }): void
  bind(message: { portal?: string; statement?: string; values?: unknown[] }): void
  execute(message: { portal?: string; rows?: number }): void
  query(text: string): void
  on(event: 'readyForQuery', listener: (message: { status?: string }) => void): unknown
  on(event: 'end', listener: () => void): unknown
  removeListener(event: string, listener: (...args: never[]) => void): unknown
  sync(): void
  stream: { cork?: () => void; uncork?: () => void }
  parsedStatements: Record<string, string | undefined>
  submittedNamedStatements: Record<string, string | undefined>
}

/** The parts of node-postgres' `Query` this subclass uses or overrides. */
interface QueryInternals {
  text?: string
  name?: string
  values?: unknown
  rows?: number
  portal: string
  callback?: (error: Error | null, result?: unknown) => void
  requiresPreparation(): boolean
  prepare(connection: ProtocolConnection): void
  submit(connection: ProtocolConnection): Error | null
  handleRowDescription(message: unknown): void
  handleDataRow(message: unknown): void
  handleCommandComplete(message: unknown, connection: ProtocolConnection): void
  handleEmptyQuery(connection: ProtocolConnection): void
  handleError(error: Error, connection: ProtocolConnection): void
  handleReadyForQuery(connection: ProtocolConnection): void
  _getRows(connection: ProtocolConnection, rows: number | undefined): void
}

const BaseQuery = pg.Query as unknown as new (config: string | QueryConfig, values?: readonly unknown[]) => QueryInternals

/** `ReadyForQuery`'s transaction status afterwards: `I` idle, `T` in a transaction, `E` in a failed one; `undefined` unknown (the connection failed). */
export type TransactionStatus = 'I' | 'T' | 'E' | undefined

/** An error the server sent (the connection is in step with the server afterwards), not one raised on the client. */
const fromServer = (error: Error): boolean => typeof (error as { severity?: unknown }).severity === 'string'

/**
 * A node-postgres query that carries its tenant context. It is a thenable: it resolves to the driver's
 * result (or rejects with the statement's error) once the server is ready again, so that
 * {@link ScopedQuery.transactionStatus} is known by then.
 */
export class ScopedQuery extends BaseQuery implements PromiseLike<unknown> {
  readonly #prefix: readonly string[]
  readonly #suffix: readonly string[]
  readonly #simplePrefix: string
  /** Results of the statements before the caller's still to be swallowed. */
  #skip = 0
  #extended = false
  /** The caller's statement completed (extended protocol: what follows is the suffix). */
  #completed = false
  /** The next ReadyForQuery answers this query. */
  #ending = false
  #error: Error | undefined
  #result: unknown
  #status: TransactionStatus
  readonly #outcome: Promise<unknown>
  #resolve!: (result: unknown) => void
  #reject!: (error: Error) => void
  #detach: () => void = () => undefined

  constructor(context: ContextSql, tenantId: string, config: string | QueryConfig, values?: readonly unknown[]) {
    super(config, values)
    const statement = context.statement(tenantId)
    this.#simplePrefix = `${statement};\n`
    if (context.strategy === 'set_config') {
      this.#prefix = [statement]
      this.#suffix = []
    } else {
      this.#prefix = ['BEGIN', statement]
      this.#suffix = ['COMMIT']
    }
    this.#outcome = new Promise((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
    this.callback = (error, result) => {
      if (error !== null && error !== undefined) this.#error ??= error
      else this.#result = result
    }
  }

  /** The transaction status the server reported after this query; `undefined` before, or when the connection failed. */
  get transactionStatus(): TransactionStatus {
    return this.#status
  }

  then<A = unknown, B = never>(onFulfilled?: ((value: unknown) => A | PromiseLike<A>) | null, onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<A | B> {
    return this.#outcome.then(onFulfilled, onRejected)
  }

  #finish(status: TransactionStatus): void {
    this.#detach()
    this.#status = status
    if (this.#error === undefined) this.#resolve(this.#result)
    else this.#reject(this.#error)
  }

  override submit(connection: ProtocolConnection): Error | null {
    if (typeof this.text !== 'string') return new Error('tenantize: a scoped query needs its text (named statements without text are not supported)')
    if (this.rows !== undefined) return new Error('tenantize: the `rows` option (reading a portal in pages) needs a transaction: use transaction()')
    if (this.values !== undefined && !Array.isArray(this.values)) return new Error('Query values must be an array')
    const named = this.name === undefined || this.name === '' ? undefined : connection.parsedStatements[this.name] ?? connection.submittedNamedStatements[this.name]
    if (named !== undefined && named !== this.text) return new Error(`Prepared statements must be unique - '${String(this.name)}' was used for a different statement`)
    const onReady = (message: { status?: string }): void => {
      if (!this.#ending) return // an earlier query's answer on a pipelined client
      const status = message.status
      this.#finish(status === 'I' || status === 'T' || status === 'E' ? status : undefined)
    }
    const onEnd = (): void => {
      this.#error ??= new Error('tenantize: the connection ended before the statement completed')
      this.#finish(undefined)
    }
    connection.on('readyForQuery', onReady)
    connection.on('end', onEnd)
    this.#detach = () => {
      connection.removeListener('readyForQuery', onReady)
      connection.removeListener('end', onEnd)
    }
    // SET LOCAL goes the extended way even without parameters: Citus sends the query string of a
    // propagated SET LOCAL to the workers, and in a simple-protocol string that is the caller's statement too.
    if (!this.requiresPreparation() && this.#prefix.length === 1) {
      this.#skip = 1
      connection.query(this.#simplePrefix + this.text)
      return null
    }
    this.#extended = true
    this.#skip = this.#prefix.length
    connection.stream.cork?.()
    try {
      for (const statement of this.#prefix) writeStatement(connection, statement)
      this.prepare(connection) // the caller's Parse / Bind / Describe, then _getRows: Execute, the suffix, Sync
    } finally {
      connection.stream.uncork?.()
    }
    return null
  }

  override _getRows(connection: ProtocolConnection, rows: number | undefined): void {
    connection.execute({ portal: this.portal, ...(rows === undefined ? {} : { rows }) })
    for (const statement of this.#suffix) writeStatement(connection, statement)
    connection.sync()
  }

  #swallowing(): boolean {
    return this.#skip > 0 || (this.#extended && this.#completed)
  }

  override handleRowDescription(message: unknown): void {
    if (!this.#swallowing()) super.handleRowDescription(message)
  }

  override handleDataRow(message: unknown): void {
    if (!this.#swallowing()) super.handleDataRow(message)
  }

  override handleCommandComplete(message: unknown, connection: ProtocolConnection): void {
    if (this.#skip > 0) {
      this.#skip--
      return
    }
    if (this.#extended && this.#completed) return
    this.#completed = true
    super.handleCommandComplete(message, connection)
  }

  override handleEmptyQuery(connection: ProtocolConnection): void {
    this.#completed = true
    super.handleEmptyQuery(connection)
  }

  override handleError(error: Error, connection: ProtocolConnection): void {
    super.handleError(error, connection)
    // A server error is followed by ReadyForQuery (onReady settles then); a client-side one that is not
    // answered by the server (nothing sent, a broken connection, a read timeout) settles now.
    if (!this.#ending && !fromServer(error)) this.#finish(undefined)
    else this.#ending = true
  }

  override handleReadyForQuery(connection: ProtocolConnection): void {
    this.#ending = true
    super.handleReadyForQuery(connection)
  }
}

function writeStatement(connection: ProtocolConnection, text: string): void {
  connection.parse({ text, name: '', types: [] })
  connection.bind({})
  connection.execute({})
}

/** How {@link runScoped} reaches the connection. */
export interface ScopedIo<R> {
  /** Write the query (e.g. `client.query(query)`) and await it. */
  send(query: ScopedQuery): Promise<R>
  /** `ROLLBACK` on the same connection. */
  rollback(): Promise<unknown>
  /** The connection's state is unknown (it failed mid-statement): it must not serve anyone again. */
  discard(error: Error): void
}

/**
 * Run one statement with its tenant context in one round trip. Afterwards the connection is outside any
 * transaction: one the statement opened (`BEGIN` sent as a statement) is rolled back and refused, a
 * failed `SET LOCAL` transaction is rolled back.
 *
 * @returns what `io.send` returns.
 * @throws the statement's error, unchanged.
 */
export async function runScoped<R>(io: ScopedIo<R>, context: ContextSql, tenantId: string, config: string | QueryConfig, values?: readonly unknown[]): Promise<R> {
  const query = new ScopedQuery(context, tenantId, config, values)
  let value: R | undefined
  let failure: unknown
  let failed = false
  try {
    value = await io.send(query)
  } catch (error) {
    failed = true
    failure = error
  }
  const status = query.transactionStatus
  if (status === undefined) {
    const error = failure instanceof Error ? failure : new Error('tenantize: the connection failed during a tenant statement')
    io.discard(error)
    throw error
  }
  if (status !== 'I') {
    try {
      await io.rollback()
    } catch (error) {
      io.discard(error instanceof Error ? error : new Error('ROLLBACK failed'))
      throw failed ? failure : error
    }
    if (!failed) throw new TypeError('tenantize: a statement run on its own opened a transaction (it was rolled back): use transaction() for several statements')
  }
  if (failed) throw failure
  return value as R
}

/** The part of a node-postgres `Pool` {@link runScopedOnPool} uses. */
export interface ConnectingPool {
  connect(): Promise<PooledClient>
}

/** The part of a node-postgres `PoolClient` {@link runScopedOnPool} uses. */
export interface PooledClient {
  query(text: string): Promise<unknown>
  on(event: 'error', listener: (error: Error) => void): unknown
  off(event: 'error', listener: (error: Error) => void): unknown
  release(error?: Error | boolean): void
}

/**
 * Check a client out of `pool`, run one statement with its context in one round trip ({@link runScoped})
 * and check it back in — with the error when its state is unknown, so that the pool discards it.
 */
export async function runScopedOnPool<R>(pool: ConnectingPool, context: ContextSql, tenantId: string, config: string | QueryConfig, values?: readonly unknown[]): Promise<R> {
  const client = await pool.connect()
  let broken: Error | undefined
  // The pool stops listening while a client is checked out; without a listener a dropped connection
  // would crash the process.
  const onError = (error: Error): void => {
    broken ??= error
  }
  client.on('error', onError)
  try {
    const submit = client.query.bind(client) as unknown as (query: ScopedQuery) => PromiseLike<unknown>
    const io: ScopedIo<R> = {
      send: async (query) => (await submit(query)) as R,
      rollback: () => client.query('ROLLBACK'),
      discard: (error) => {
        broken ??= error
      },
    }
    return await runScoped(io, context, tenantId, config, values)
  } finally {
    client.off('error', onError)
    client.release(broken)
  }
}
