import type pg from 'pg'
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
    for (const [i, p] of checks.entries()) {
      const t = performance.now()
      emit({ event: 'data-check-start', id: p.id, table: p.table, index: i + 1, total: checks.length })
      let count = 0
      try {
        const found = await guarded(async () => {
          const n = Number((await client.query<{ n: string }>(p.countSql)).rows[0]?.n ?? 0)
          const samples = n > 0 ? (await client.query<{ sample: string | null }>(p.sampleSql)).rows.map((r) => r.sample ?? 'NULL') : []
          return { n, samples }
        })
        count = found.n
        if (found.n > 0) findings.push({ id: p.id, kind: 'rows', table: p.table, title: p.title, count: found.n, samples: found.samples, fixes: p.fixes })
      } catch (error) {
        const e = error as { code?: string; message?: string }
        findings.push({
          id: p.id,
          kind: 'unchecked',
          table: p.table,
          title: p.title,
          count: 0,
          samples: [e.code === '57014' ? `no answer within statement_timeout ${timeout} ms` : `${e.code ?? 'error'}: ${e.message ?? String(error)}`],
          fixes: [`run the check by hand (read-only): ${p.countSql}`, ...(e.code === '57014' ? ['or give the check more time (statementTimeoutMs)'] : [])],
        })
      }
      emit({ event: 'data-check-done', id: p.id, table: p.table, index: i + 1, total: checks.length, count, durationMs: performance.now() - t })
    }
    return { findings, checked: checks.length, durationMs: performance.now() - started }
  } finally {
    if (own) await client.query('ROLLBACK').catch(() => undefined)
  }
}

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
