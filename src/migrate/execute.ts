import type pg from 'pg'
import { ErrorCodes, TenantizeError, classifySqlstate } from '../errors.js'
import { caret, type Statement } from './split.js'

type Queryable = Pick<pg.Client, 'query'>

/** How long a statement may wait for a lock and run, and how lock timeouts are retried. */
export interface TimeoutPolicy {
  /** `lock_timeout` for every statement, ms. Default 1000. */
  readonly lockTimeoutMs: number
  /** `statement_timeout` for every statement, ms; 0 = none. Default 0. */
  readonly statementTimeoutMs: number
  /** Tries in all when a statement hits lock_timeout. Default 10. */
  readonly tries: number
  /** First back-off delay, doubled each try up to 10 s. Default 500. */
  readonly retryDelayMs: number
}

export const DEFAULT_TIMEOUTS: TimeoutPolicy = Object.freeze({ lockTimeoutMs: 1000, statementTimeoutMs: 0, tries: 10, retryDelayMs: 500 })

/** A session that blocked one of our statements, as seen in pg_stat_activity. */
export interface Blocker {
  readonly pid: number
  readonly user: string | null
  readonly application: string | null
  readonly state: string | null
  readonly query: string | null
  readonly transactionStart: Date | null
}

export function describeBlockers(blockers: readonly Blocker[]): string {
  if (blockers.length === 0) return 'the blocking session was not caught in the act'
  return blockers
    .map((b) => {
      const parts = [b.user === null ? undefined : `user ${b.user}`, b.application ? `application "${b.application}"` : undefined, b.state === null ? undefined : `state ${b.state}`, b.transactionStart === null ? undefined : `in a transaction since ${b.transactionStart.toISOString()}`, b.query ? `last query: ${b.query.replace(/\s+/g, ' ').slice(0, 120)}` : undefined].filter(Boolean)
      return `pid ${b.pid} (${parts.join(', ')})`
    })
    .join('; ')
}

export async function applyTimeouts(client: Queryable, policy: TimeoutPolicy): Promise<void> {
  await client.query(`SELECT pg_catalog.set_config('lock_timeout', $1, false), pg_catalog.set_config('statement_timeout', $2, false)`, [
    `${Math.max(0, Math.round(policy.lockTimeoutMs))}ms`,
    `${Math.max(0, Math.round(policy.statementTimeoutMs))}ms`,
  ])
}

/**
 * Run `fn` while a second connection watches whom our backend waits for (pg_blocking_pids), so that a
 * lock timeout can name the blocking session even after it has moved on.
 */
export async function watchBlockers<T>(monitor: Queryable, pid: number, pollMs: number, fn: () => Promise<T>): Promise<{ result: T; blockers: Blocker[] } | { error: unknown; blockers: Blocker[] }> {
  let blockers: Blocker[] = []
  let inFlight: Promise<void> = Promise.resolve()
  const poll = (): void => {
    inFlight = inFlight.then(async () => {
      try {
        const { rows } = await monitor.query<{ pid: number; usename: string | null; application_name: string | null; state: string | null; query: string | null; xact_start: Date | null }>(
          `SELECT a.pid, a.usename, a.application_name, a.state, left(a.query, 300) AS query, a.xact_start
             FROM pg_catalog.pg_stat_activity a WHERE a.pid = ANY (pg_catalog.pg_blocking_pids($1)) ORDER BY a.pid`,
          [pid],
        )
        if (rows.length > 0) {
          blockers = rows.map((r) => ({ pid: r.pid, user: r.usename, application: r.application_name, state: r.state, query: r.query, transactionStart: r.xact_start }))
        }
      } catch {
        // The monitor is best effort: a failed poll must not fail the migration.
      }
    })
  }
  const timer = setInterval(poll, pollMs)
  try {
    const result = await fn()
    return { result, blockers }
  } catch (error) {
    return { error, blockers }
  } finally {
    clearInterval(timer)
    await inFlight
  }
}

export function isLockTimeout(error: unknown): boolean {
  return (error as { code?: string } | undefined)?.code === '55P03'
}

/**
 * Errors worth another try with back-off, besides lock_timeout: a serialization failure (40001), a
 * deadlock (40P01) and out of memory (53200) go away once the competing work has.
 */
export const TRANSIENT_SQLSTATES: readonly string[] = Object.freeze(['40001', '40P01', '53200'])

export function isTransient(error: unknown): boolean {
  return TRANSIENT_SQLSTATES.includes((error as { code?: string } | undefined)?.code ?? '')
}

/** Wait `ms`; an abort `signal` ends the wait early (the caller checks the signal next). */
export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted === true) return resolve()
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })

export function backoff(policy: TimeoutPolicy, attempt: number): number {
  return Math.min(10_000, policy.retryDelayMs * 2 ** (attempt - 1))
}

export interface PgError {
  message: string
  code?: string
  position?: string
  detail?: string
  hint?: string
}

/** A statement's PostgreSQL error as `TZ_MIGRATION_FAILED`, pointing at file:line:column with a caret. */
export function statementError(error: unknown, file: string, statement: Statement, fix: string): TenantizeError {
  const pgErr = error as PgError
  let where = `${file}:${statement.line}`
  let excerpt = ''
  const pos = pgErr.position === undefined ? NaN : Number(pgErr.position) - 1
  if (Number.isInteger(pos) && pos >= 0 && pos <= statement.text.length) {
    const c = caret(statement.text, pos)
    where = `${file}:${statement.line + c.line - 1}:${c.column}`
    excerpt = `\n${c.excerpt}`
  }
  const extra = [pgErr.detail ? `DETAIL: ${pgErr.detail}` : '', pgErr.hint ? `HINT: ${pgErr.hint}` : ''].filter(Boolean).join(' ')
  // The statement is wrong (syntax, objects, data): TZ_MIGRATION_FAILED. The environment is (privileges,
  // resources, a broken connection, the server): the code of the SQLSTATE class, and its fix first.
  const env = pgErr.code === undefined ? undefined : classifySqlstate(pgErr.code)
  const environmental = env !== undefined && ([ErrorCodes.PRIVILEGE, ErrorCodes.TRANSIENT, ErrorCodes.RESOURCES, ErrorCodes.SERVER, ErrorCodes.CONNECTION] as string[]).includes(env.code)
  return new TenantizeError(environmental ? env.code : ErrorCodes.MIGRATION_FAILED, `${pgErr.message}${pgErr.code ? ` (SQLSTATE ${pgErr.code})` : ''}${extra ? ` ${extra}` : ''}${excerpt}`, {
    object: where,
    fix: environmental ? `${env.fix}; ${fix}` : fix,
    details: { sqlstate: pgErr.code },
    cause: error,
  })
}

/** Indexes left INVALID (by a failed CREATE INDEX CONCURRENTLY), each with the statement that clears it. */
export async function invalidIndexes(client: Queryable): Promise<{ index: string; fix: string }[]> {
  const { rows } = await client.query<{ index: string }>(
    `SELECT i.indexrelid::regclass::text AS index FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
     ORDER BY 1`,
  )
  return rows.map((r) => ({ index: r.index, fix: `correct the cause and run again: a concurrent build of the same name drops it first (or DROP INDEX CONCURRENTLY ${r.index})` }))
}

export function lockTimeoutError(object: string, policy: TimeoutPolicy, blockers: readonly Blocker[]): TenantizeError {
  const kill = blockers.map((b) => `SELECT pg_terminate_backend(${b.pid})`).join('; ')
  return new TenantizeError(ErrorCodes.LOCK_TIMEOUT, `could not get a lock within ${policy.lockTimeoutMs} ms in ${policy.tries} tries; blocked by ${describeBlockers(blockers)}`, {
    object,
    fix: `end the blocking transaction${kill === '' ? '' : ` (${kill})`} or run at a quieter time; --lock-timeout and --retries change the limits`,
    details: { blockers: blockers.map((b) => b.pid) },
  })
}
