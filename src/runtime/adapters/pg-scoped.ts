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
 * In the extended form the context statement is a prepared statement of its own, parsed once per
 * connection (`SELECT pg_catalog.set_config('<setting>', $1, true)` under a name derived from its text),
 * then only bound to the tenant id and executed: the server does not parse and plan it for every
 * statement. A pooler in transaction mode (PgBouncer before 1.21) may send the next exchange to a server
 * connection that does not have it (or already has it): the server answers that exchange with an error
 * before it reaches the caller's statement, which therefore did not run; {@link runScoped} then sends the
 * statement again with the context as an unnamed statement, as it does from then on for that connection.
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
 * Per connection, the prepared context statements written on it — or `unprepared` once its server lacked
 * one it had (or had one it had not): a pooler in transaction mode between them.
 */
const preparedOn = new WeakMap<ProtocolConnection, Set<string> | 'unprepared'>()

/** The server's answer to binding a prepared statement it does not have (26000), or to parsing one it has (42P05). */
function missesPrepared(error: Error, name: string): boolean {
  const code = (error as { code?: unknown }).code
  return (code === '26000' || code === '42P05') && error.message.includes(`"${name}"`)
}

/**
 * A node-postgres query that carries its tenant context. It is a thenable: it resolves to the driver's
 * result (or rejects with the statement's error) once the server is ready again, so that
 * {@link ScopedQuery.transactionStatus} is known by then.
 */
export class ScopedQuery extends BaseQuery implements PromiseLike<unknown> {
  readonly #context: ContextSql
  readonly #tenantId: string
  readonly #prepared: boolean
  /** Results of the statements before the caller's still to be swallowed. */
  #skip = 0
  #extended = false
  /** `SET LOCAL`: `COMMIT` goes after the caller's statement, before the Sync. */
  #commit = false
  /** The caller's statement completed (extended protocol: what follows is the suffix). */
  #completed = false
  /** The next ReadyForQuery answers this query. */
  #ending = false
  /** The server lacked the prepared context statement (or had it already): nothing ran, send again unprepared. */
  #retry = false
  #named: string | undefined
  #error: Error | undefined
  #result: unknown
  #status: TransactionStatus
  readonly #outcome: Promise<unknown>
  #resolve!: (result: unknown) => void
  #reject!: (error: Error) => void
  #detach: () => void = () => undefined

  /**
   * @param prepared use the context's prepared statement where the connection allows (default); `false`
   *   writes it as an unnamed statement.
   */
  constructor(context: ContextSql, tenantId: string, config: string | QueryConfig, values?: readonly unknown[], prepared = true) {
    super(config, values)
    // An id the statement would refuse (empty, NUL) is refused here with its error, whichever form is sent.
    if (typeof tenantId !== 'string' || tenantId.length === 0 || tenantId.includes('\0')) context.statement(tenantId)
    this.#context = context
    this.#tenantId = tenantId
    this.#prepared = prepared
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

  /** The statement did not run because the server lacked the prepared context statement; send it again with `prepared` false. */
  get retryUnprepared(): boolean {
    return this.#retry
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
    const context = this.#context
    // SET LOCAL goes the extended way even without parameters: Citus sends the query string of a
    // propagated SET LOCAL to the workers, and in a simple-protocol string that is the caller's statement too.
    if (context.strategy === 'set_config' && !this.requiresPreparation()) {
      this.#skip = 1
      connection.query(`${context.statement(this.#tenantId)};\n${this.text}`)
      return null
    }
    this.#extended = true
    connection.stream.cork?.()
    try {
      if (context.strategy === 'set_config') {
        this.#skip = 1
        this.#writeSetConfig(connection)
      } else {
        this.#skip = 2
        this.#commit = true
        writeStatement(connection, 'BEGIN')
        writeStatement(connection, context.statement(this.#tenantId))
      }
      this.prepare(connection) // the caller's Parse / Bind / Describe, then _getRows: Execute, COMMIT (SET LOCAL), Sync
    } finally {
      connection.stream.uncork?.()
    }
    return null
  }

  /** The context statement: its prepared form where the connection keeps it, parsed on first use; otherwise unnamed. */
  #writeSetConfig(connection: ProtocolConnection): void {
    const prepared = this.#prepared ? this.#context.prepared : undefined
    let names = prepared === undefined ? 'unprepared' : preparedOn.get(connection)
    if (prepared === undefined || names === 'unprepared') {
      writeStatement(connection, this.#context.statement(this.#tenantId))
      return
    }
    if (names === undefined) preparedOn.set(connection, (names = new Set()))
    if (!names.has(prepared.name)) {
      connection.parse({ text: prepared.text, name: prepared.name, types: [] })
      names.add(prepared.name)
    }
    this.#named = prepared.name
    connection.bind({ statement: prepared.name, values: [this.#tenantId] })
    connection.execute({})
  }

  override _getRows(connection: ProtocolConnection, rows: number | undefined): void {
    connection.execute({ portal: this.portal, ...(rows === undefined ? {} : { rows }) })
    if (this.#commit) writeStatement(connection, 'COMMIT')
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
    // The prepared context statement failed, so the server skipped everything up to the Sync.
    if (this.#named !== undefined && this.#skip > 0 && fromServer(error) && missesPrepared(error, this.#named)) {
      preparedOn.set(connection, 'unprepared')
      this.#retry = true
    }
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
 * failed `SET LOCAL` transaction is rolled back. When the server lacked the prepared context statement
 * (a pooler in transaction mode), nothing ran, and the statement is sent once more with the context
 * unprepared.
 *
 * @returns what `io.send` returns.
 * @throws the statement's error, unchanged.
 */
export async function runScoped<R>(io: ScopedIo<R>, context: ContextSql, tenantId: string, config: string | QueryConfig, values?: readonly unknown[]): Promise<R> {
  let query = new ScopedQuery(context, tenantId, config, values)
  let value: R | undefined
  let failure: unknown
  let failed = false
  try {
    value = await io.send(query)
  } catch (error) {
    failed = true
    failure = error
  }
  if (failed && query.retryUnprepared && query.transactionStatus === 'I') {
    query = new ScopedQuery(context, tenantId, config, values, false)
    failed = false
    failure = undefined
    try {
      value = await io.send(query)
    } catch (error) {
      failed = true
      failure = error
    }
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
