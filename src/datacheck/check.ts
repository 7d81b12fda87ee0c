import pg from 'pg'
import { withClient } from '../db/connect.js'
import type { Plan, Precondition, Step } from '../plan/steps.js'
import { factFindings } from './facts.js'
import { DataCheckError, type DataCheckEvent, type Finding } from './findings.js'

type Queryable = Pick<pg.Client, 'query'>

/** Default statement_timeout of each check: a count over a big table may take minutes, never forever. */
export const DEFAULT_CHECK_TIMEOUT_MS = 300_000

export interface DataCheckOptions {
  /** Check only these steps (those still to run); default: every step of the plan. */
  readonly steps?: readonly Step[]
  /** statement_timeout of each query, ms (default {@link DEFAULT_CHECK_TIMEOUT_MS}). A check that times out is a finding. */
  readonly statementTimeoutMs?: number
  /** The client is in a transaction already (then each check runs in a savepoint of it). */
  readonly inTransaction?: boolean
  readonly onEvent?: (event: DataCheckEvent) => void
}

export interface DataCheckResult {
  readonly findings: readonly Finding[]
  /** Preconditions run (each distinct one once). */
  readonly checked: number
  readonly durationMs: number
}

/** The distinct preconditions of `steps`, in step order (a precondition guarding several steps runs once). */
export function preconditionsOf(steps: readonly Step[]): Precondition[] {
  const seen = new Map<string, Precondition>()
  for (const s of steps) for (const p of s.preconditions ?? []) if (!seen.has(p.id)) seen.set(p.id, p)
  return [...seen.values()]
}

/**
 * Read-only: run the preconditions of `steps` and gather the database-wide facts they depend on (privileges,
 * invalid indexes), inside one READ ONLY REPEATABLE READ transaction (so every count sees the same
 * snapshot), each query under `statement_timeout`. Changes nothing; takes only ACCESS SHARE locks.
 */
export async function checkData(client: Queryable, plan: Plan, options: DataCheckOptions = {}): Promise<DataCheckResult> {
  const started = performance.now()
  const steps = options.steps ?? plan.steps
  const timeout = options.statementTimeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS
  if (!Number.isInteger(timeout) || timeout < 0) throw new TypeError(`statementTimeoutMs must be a whole number of ms, got ${timeout}`)
  const emit = options.onEvent ?? (() => undefined)
  const own = options.inTransaction !== true
  if (own) await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
  try {
    /** Each query in a savepoint rolled back afterwards: the timeout does not outlive it, and an error does not end the transaction. */
    const guarded = async <T>(fn: () => Promise<T>): Promise<T> => {
      await client.query('SAVEPOINT tenantize_data_check')
      try {
        await client.query(`SELECT pg_catalog.set_config('statement_timeout', $1, true)`, [String(timeout)])
        return await fn()
      } finally {
        await client.query('ROLLBACK TO SAVEPOINT tenantize_data_check')
        await client.query('RELEASE SAVEPOINT tenantize_data_check')
      }
    }
    const findings: Finding[] = await guarded(() => factFindings(client, steps))
    const checks = preconditionsOf(steps)
    const unchecked = (p: Precondition, error: unknown): Finding => {
      const e = error as { code?: string; message?: string }
      return {
        id: p.id,
        kind: 'unchecked',
        table: p.table,
        title: p.title,
        count: 0,
        samples: [e.code === '57014' ? `no answer within statement_timeout ${timeout} ms` : `${e.code ?? 'error'}: ${e.message ?? String(error)}`],
        fixes: [`run the check by hand (read-only): ${p.countSql}`, ...(e.code === '57014' ? ['or give the check more time (statementTimeoutMs)'] : [])],
      }
    }
    // The counts go to the server in batches, one round trip each (a savepoint, the timeout, up to BATCH counts, the
    // rollback to the savepoint): at 1,000 tables, five round trips per check were most of the check's time.
    for (let i = 0; i < checks.length; ) {
      const batch = nextBatch(checks, i)
      const t = performance.now()
      const run = await countBatch(client, batch, timeout)
      const shareMs = (performance.now() - t) / Math.max(1, run.counts.length + (run.error === undefined ? 0 : 1))
      for (const [j, n] of run.counts.entries()) {
        const p = batch[j]!
        emit({ event: 'data-check-start', id: p.id, table: p.table, index: i + j + 1, total: checks.length })
        const s = performance.now()
        if (n > 0) {
          try {
            const samples = await guarded(async () => (await client.query<{ sample: string | null }>(p.sampleSql)).rows.map((r) => r.sample ?? 'NULL'))
            findings.push({ id: p.id, kind: 'rows', table: p.table, title: p.title, count: n, samples, fixes: p.fixes })
          } catch (error) {
            findings.push(unchecked(p, error))
          }
        }
        emit({ event: 'data-check-done', id: p.id, table: p.table, index: i + j + 1, total: checks.length, count: n, durationMs: shareMs + performance.now() - s })
      }
      i += run.counts.length
      if (run.error !== undefined) {
        // The check that failed: the batch's statements after it did not run, the next batch starts after it.
        const p = batch[run.counts.length]!
        emit({ event: 'data-check-start', id: p.id, table: p.table, index: i + 1, total: checks.length })
        findings.push(unchecked(p, run.error))
        emit({ event: 'data-check-done', id: p.id, table: p.table, index: i + 1, total: checks.length, count: 0, durationMs: shareMs })
        i += 1
      }
    }
    return { findings, checked: checks.length, durationMs: performance.now() - started }
  } finally {
    if (own) await client.query('ROLLBACK').catch(() => undefined)
  }
}

/** Counts sent in one round trip at most, and their SQL text's length at most (characters). */
const BATCH = 64
const BATCH_CHARS = 256 * 1024
const SAVEPOINT = 'tenantize_data_check'

/** The checks from `from` on that go into one round trip: at least one. */
function nextBatch(checks: readonly Precondition[], from: number): Precondition[] {
  const batch: Precondition[] = []
  let chars = 0
  for (let i = from; i < checks.length && batch.length < BATCH; i++) {
    chars += checks[i]!.countSql.length
    if (batch.length > 0 && chars > BATCH_CHARS) break
    batch.push(checks[i]!)
  }
  return batch
}

/**
 * The counts of `batch` in one simple-query message: `SAVEPOINT; set_config(statement_timeout); count 1; …;
 * count n; ROLLBACK TO SAVEPOINT; RELEASE`. Since PostgreSQL 13 the timeout applies to each statement of
 * such a message on its own, as when each count was sent alone. A count that fails ends the message there
 * (the transaction is aborted back to the savepoint): the counts before it are those whose rows arrived,
 * one row each, so the failed one is the next (`error`), and the caller goes on after it.
 */
async function countBatch(client: Queryable, batch: readonly Precondition[], timeout: number): Promise<{ counts: number[]; error?: unknown }> {
  const text = [
    `SAVEPOINT ${SAVEPOINT}`,
    // A whole number of ms, written into the text: a simple-query message of several statements takes no parameters.
    `SELECT pg_catalog.set_config('statement_timeout', '${Math.max(0, Math.trunc(Number(timeout) || 0))}', true)`,
    ...batch.map((p) => p.countSql),
    `ROLLBACK TO SAVEPOINT ${SAVEPOINT}`,
    `RELEASE SAVEPOINT ${SAVEPOINT}`,
  ].join(';\n')
  const rows: unknown[] = []
  try {
    await new Promise<void>((resolve, reject) => {
      const q = client.query(new pg.Query(text))
      q.on('row', (row: unknown) => rows.push(row))
      q.on('end', () => resolve())
      q.on('error', reject)
    })
  } catch (error) {
    // Rows: the set_config's, then one per count that ran. None: the savepoint or the timeout failed, not a count.
    const back = client.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}; RELEASE SAVEPOINT ${SAVEPOINT}`)
    if (rows.length === 0) {
      await back.catch(() => undefined)
      throw error
    }
    await back
    return { counts: rows.slice(1).map(countOf), error }
  }
  const counts = rows.slice(1).map(countOf)
  if (counts.length !== batch.length) throw new Error(`data check: ${counts.length} counts for ${batch.length} checks (each check must be one query returning one row)`)
  return { counts }
}

const countOf = (row: unknown): number => Number((row as { n?: string | number | null }).n ?? 0)

/** {@link checkData} on a connection of its own. */
export async function runDataCheck(databaseUrl: string, plan: Plan, options: Omit<DataCheckOptions, 'inTransaction'> = {}): Promise<DataCheckResult> {
  return withClient(databaseUrl, (client) => checkData(client, plan, options), { applicationName: 'tenantize data check' })
}

/** Run {@link checkData} and refuse with every finding at once ({@link DataCheckError}) when there is any. */
export async function assertDataReady(client: Queryable, plan: Plan, options: DataCheckOptions = {}): Promise<DataCheckResult> {
  const result = await checkData(client, plan, options)
  if (result.findings.length > 0) throw new DataCheckError(result.findings)
  return result
}
