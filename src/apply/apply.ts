import type pg from 'pg'
import { introspect } from '../catalog/index.js'
import { assertDataReady } from '../datacheck/index.js'
import { withClient } from '../db/connect.js'
import { ErrorCodes, TenantizeError } from '../errors.js'
import { crashPoint, readLedger, runUnits, sleep, type RunnerOptions, type MigrateResult, type Unit, type UnitContext } from '../migrate/index.js'
import type { TenantizeConfig } from '../plan/config.js'
import { splitKey } from '../plan/config.js'
import { planConversion } from '../plan/plan.js'
import type { Phase, Plan, Step } from '../plan/steps.js'
import { qualifiedName, quoteIdent, quoteLiteral } from '../sql/quote.js'
import { assertConfigMatchesCatalog } from './config-check.js'
import { configChecksum, forgetFrozenPlan, readFrozenPlan, saveFrozenPlan, stepChecksum, unitName } from './frozen-plan.js'

/** Ledger scope of plan steps (migration files use `migrate`). */
export const APPLY_SCOPE = 'apply'

export interface ApplyOptions extends RunnerOptions {
  readonly config: TenantizeConfig
  /** `schema`: columns, backfills, constraints, indexes (the app keeps working); `enforce`: RLS, policies, roles, grants. */
  readonly phase: Phase | 'all'
  /** Rows in the first and largest backfill batch (default: the config's batchSize); see batchTargetMs. */
  readonly batchSize?: number
  /** Shortest pause between backfill batches, ms (default 10). */
  readonly batchPauseMs?: number
  /**
   * Batches sized by time: the first has `batchSize` rows; each next one is sized from the last one's duration
   * toward this many ms — smaller after a slower batch, back up (×1.5, at most `batchSize`) after one under
   * half of it. Default {@link DEFAULT_BATCH_TARGET_MS}; 0: every batch has `batchSize` rows.
   */
  readonly batchTargetMs?: number
  /**
   * The share of the time the backfill spends in its batches, 0 < share ≤ 1: after a batch of t ms it pauses
   * t × (1 − share) / share ms (at least `batchPauseMs`), so the app keeps the rest of a core. Default
   * {@link DEFAULT_BACKFILL_SHARE}; 1: the pause is `batchPauseMs` alone.
   */
  readonly backfillShare?: number
  /** Called after every backfill batch with its rows, its duration and what comes next (monitoring, benchmarks). */
  readonly onBatch?: (batch: BatchTiming) => void
  /**
   * Parallel workers PostgreSQL may add to apply's own statements (its session's `max_parallel_workers_per_gather`
   * and `max_parallel_maintenance_workers`): its counts and index builds. Default 0: apply keeps to one core and
   * the app keeps the others (each worker is one more busy process beside the app's).
   */
  readonly parallelWorkers?: number
  /** Enforce only these tables (`schema.table` keys): a canary cut-over. The other enforce steps run with the first. */
  readonly tables?: readonly string[]
  /** Enforce although writes without a tenant context were counted (see {@link readiness}): they will fail from now on. */
  readonly ignoreReadiness?: boolean
}

const relationOf = (step: Step): string[] => {
  if (step.table === null) return []
  const { schema, name } = splitKey(step.table)
  return [qualifiedName(schema, name)]
}

function stepUnit(step: Step, index: number, direction: 'up' | 'down', options: ApplyOptions | undefined): Unit {
  const sql = direction === 'up' ? step.up : step.down
  const name = unitName(index, step)
  return {
    name,
    phase: step.phase,
    table: step.table,
    version: String(index + 1),
    checksum: stepChecksum(step),
    source: `plan step ${step.id}`,
    noTransaction: !step.transactional,
    statements: sql.map((text) => ({ text, line: 1, relations: relationOf(step) })),
    downSql: step.down,
    advice: direction === 'up'
      ? 'fix what the error names (the data, a lock held elsewhere, a privilege, or the config), then run tenantize apply again: it resumes at this step'
      : 'fix what the error names, then run tenantize rollback again: it resumes at this step',
    ...(direction === 'up' && step.backfill !== undefined && options !== undefined ? { custom: (ctx: UnitContext) => backfill(ctx, name, step, options) } : {}),
  }
}

/** Default {@link ApplyOptions.batchTargetMs}: a batch holds its row locks and takes a CPU for about this long. */
export const DEFAULT_BATCH_TARGET_MS = 100
/** Default {@link ApplyOptions.backfillShare}. */
export const DEFAULT_BACKFILL_SHARE = 1

export interface BatchTiming {
  /** The backfill step (ledger name). */
  readonly step: string
  readonly rows: number
  /** Rows asked for (the batch's size). */
  readonly size: number
  /** The batch statement, ms (its last try when a lock timeout made it retry). */
  readonly ms: number
  readonly nextSize: number
  readonly pauseMs: number
}

export interface BatchPacing {
  /** The first and largest size. */
  readonly maxSize: number
  /** 0: every batch has `maxSize` rows. */
  readonly targetMs: number
  readonly share: number
  readonly minPauseMs: number
}

/** Batches never get smaller than this share of `maxSize` (at least 1 row): beyond it the per-batch costs dominate. */
const MIN_SIZE_SHARE = 0.01

/** The pacing of {@link ApplyOptions}, validated (a TypeError names the option). */
export function batchPacing(options: Pick<ApplyOptions, 'batchSize' | 'batchPauseMs' | 'batchTargetMs' | 'backfillShare' | 'config'>): BatchPacing {
  const pacing = {
    maxSize: options.batchSize ?? options.config.batchSize,
    targetMs: options.batchTargetMs ?? DEFAULT_BATCH_TARGET_MS,
    share: options.backfillShare ?? DEFAULT_BACKFILL_SHARE,
    minPauseMs: options.batchPauseMs ?? 10,
  }
  if (!Number.isInteger(pacing.maxSize) || pacing.maxSize < 1) throw new TypeError(`batchSize must be a whole number of at least 1, not ${pacing.maxSize}`)
  if (!(pacing.targetMs >= 0)) throw new TypeError(`batchTargetMs must be 0 or more, not ${pacing.targetMs}`)
  if (!(pacing.share > 0 && pacing.share <= 1)) throw new TypeError(`backfillShare must be more than 0 and at most 1, not ${pacing.share}`)
  if (!(pacing.minPauseMs >= 0)) throw new TypeError(`batchPauseMs must be 0 or more, not ${pacing.minPauseMs}`)
  return pacing
}

/**
 * PURE: the next batch's size and the pause before it, from the last batch's size and duration (ms). Over the
 * target, the size it would have taken the target at the same rate; under half of it, ×1.5; else the same.
 * Always between 1 % of `maxSize` (at least 1) and `maxSize`.
 */
export function paceBatch(pacing: BatchPacing, size: number, ms: number): { size: number; pauseMs: number } {
  const pauseMs = Math.max(pacing.minPauseMs, (ms * (1 - pacing.share)) / pacing.share)
  if (pacing.targetMs <= 0) return { size: pacing.maxSize, pauseMs }
  const min = Math.max(1, Math.ceil(pacing.maxSize * MIN_SIZE_SHARE))
  const next = ms > pacing.targetMs ? Math.floor((size * pacing.targetMs) / ms) : ms < pacing.targetMs / 2 ? Math.ceil(size * 1.5) : size
  return { size: Math.min(pacing.maxSize, Math.max(min, next)), pauseMs }
}

/** Batched keyset backfill: bounded batches, each one statement and its own transaction, progress kept with it for a restart. */
async function backfill(ctx: UnitContext, name: string, step: Step, options: ApplyOptions): Promise<void> {
  const spec = step.backfill!
  const client = ctx.client
  const pacing = batchPacing(options)
  let size = pacing.maxSize
  // Keys travel as text (see Backfill): the same text must mean the same value in every session that resumes.
  await client.query(`SELECT pg_catalog.set_config('DateStyle', 'ISO, YMD', false), pg_catalog.set_config('IntervalStyle', 'postgres', false), pg_catalog.set_config('extra_float_digits', '3', false)`)
  const saved = (await client.query<{ last_key: { last: (string | null)[] | null; upper: (string | null)[]; text?: boolean } | null; rows_done: string }>('SELECT last_key, rows_done FROM tenantize.backfill_progress WHERE scope = $1 AND step = $2', [APPLY_SCOPE, name])).rows[0]
  // Progress saved by a version that kept keys as JavaScript values cannot be trusted: start over (the batches skip filled rows).
  const resumable = saved?.last_key?.text === true
  // Batches stop at the highest key of when the backfill first started: the fill trigger handles rows added since.
  const upperRow = (resumable ? saved?.last_key?.upper : undefined) ?? Object.values((await client.query<Record<string, string | null>>(spec.upperKeySql)).rows[0] ?? {})
  let last: (string | null)[] | null = (resumable ? saved?.last_key?.last : undefined) ?? null
  let done = Number(saved?.rows_done ?? 0)
  if (!resumable) done = 0
  const remaining = Number((await client.query<{ remaining: string }>(spec.remainingSql)).rows[0]?.remaining ?? 0)
  const total = done + remaining
  const started = performance.now()
  let doneHere = 0
  const keyOf = (row: Record<string, string | number | null>): (string | null)[] => spec.keyColumns.map((_, i) => row[`k${i + 1}`] as string | null)
  // A batch's commit need not wait for its WAL to reach the disk: a server crash loses the last batches with
  // their progress rows (one transaction each, WAL in order), and the backfill resumes before them. The step's
  // ledger row commits durably after the loop, and with it everything before.
  const synchronous = (await client.query<{ was: string }>(`SELECT pg_catalog.current_setting('synchronous_commit') AS was`)).rows[0]?.was ?? 'on'
  await client.query(`SELECT pg_catalog.set_config('synchronous_commit', 'off', false)`)
  try {
    for (;;) {
      if (upperRow.length === 0) break
      let row: Record<string, string | number | null> | undefined
      const params = [...(last ?? spec.keyColumns.map(() => null)), size, ...upperRow]
      let ms = 0
      await ctx.retrying(`${step.table ?? name} backfill`, async () => {
        const began = performance.now()
        if (spec.savesProgress === true) {
          // One statement, its own transaction: the batch and its progress row commit together, in one round trip.
          row = (await client.query<Record<string, string | number | null>>(spec.batchSql, [...params, APPLY_SCOPE, name, JSON.stringify(upperRow), done])).rows[0]
          ms = performance.now() - began
          return
        }
        // A plan frozen by an earlier version: its batch statement leaves the progress row to this transaction.
        await client.query('BEGIN')
        try {
          row = (await client.query<Record<string, string | number | null>>(spec.batchSql, params)).rows[0]
          if (row !== undefined) {
            await client.query(
              `INSERT INTO tenantize.backfill_progress (scope, step, last_key, rows_done) VALUES ($1, $2, $3, $4)
               ON CONFLICT (scope, step) DO UPDATE SET last_key = EXCLUDED.last_key, rows_done = EXCLUDED.rows_done, updated_at = clock_timestamp()`,
              [APPLY_SCOPE, name, JSON.stringify({ last: keyOf(row), upper: upperRow, text: true }), done + Number(row['updated'])],
            )
          }
          await client.query('COMMIT')
          ms = performance.now() - began
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined)
          throw error
        }
      })
      if (row === undefined) break
      crashPoint('batch')
      const key = keyOf(row)
      if (last !== null && key.every((k, i) => k === last![i])) {
        throw new TenantizeError(ErrorCodes.MIGRATION_FAILED, `the backfill made no progress: the batch after key (${key.join(', ')}) ended at the same key`, {
          object: step.table ?? name,
          fix: 'report it with the table definition; the key columns must have a total order (a primary key or NOT NULL unique key)',
        })
      }
      last = key
      done += Number(row['updated'])
      doneHere += Number(row['updated'])
      const seconds = (performance.now() - started) / 1000
      const rate = seconds > 0 ? doneHere / seconds : 0
      ctx.emit({ event: 'progress', migration: name, phase: step.phase, table: step.table, done, total, rowsPerSecond: rate, etaSeconds: rate > 0 ? Math.max(0, total - done) / rate : null })
      const next = paceBatch(pacing, size, ms)
      options.onBatch?.({ step: name, rows: Number(row['updated']), size, ms, nextSize: next.size, pauseMs: next.pauseMs })
      size = next.size
      if (next.pauseMs > 0) await sleep(next.pauseMs)
    }
  } finally {
    await client.query(`SELECT pg_catalog.set_config('synchronous_commit', $1, false)`, [synchronous]).catch(() => undefined)
  }
  const left = Number((await client.query<{ remaining: string }>(spec.remainingSql)).rows[0]?.remaining ?? 0)
  if (left > 0 && spec.reverse) {
    throw new TenantizeError(ErrorCodes.MIGRATION_FAILED, `${left} row(s) are referenced by rows of several tenants, so no single tenant owns them`, {
      object: step.table ?? name,
      fix: 'make the table global in the config (shared, read-only to the app), or give each tenant its own row, then run apply again',
    })
  }
  if (left > 0) {
    throw new TenantizeError(ErrorCodes.MIGRATION_FAILED, `${left} row(s) have no parent row to take their tenant from (their foreign key is NULL or dangling)`, {
      object: step.table ?? name,
      fix: `give them a parent or delete them (SELECT * FROM ${spec.table} WHERE <tenant column> IS NULL), then run apply again; the backfill resumes where it stopped`,
    })
  }
  if (spec.vacuumAfter === true) {
    // The backfill left a dead version of every row it filled, which the app's index scans read through until
    // a vacuum (this server's autovacuum may be off, or far behind), and the new column has no statistics.
    // SHARE UPDATE EXCLUSIVE: reads and writes go on; SKIP_LOCKED: when autovacuum holds the table already,
    // it is doing this work, and the step does not wait for it.
    await ctx.retrying(`${step.table ?? name} VACUUM (ANALYZE)`, async () => {
      await client.query(`VACUUM (ANALYZE, SKIP_LOCKED) ${spec.table}`)
    })
  }
  await client.query('DELETE FROM tenantize.backfill_progress WHERE scope = $1 AND step = $2', [APPLY_SCOPE, name])
}

interface Loaded {
  readonly plan: Plan
  readonly applied: ReadonlySet<string>
  readonly frozen: boolean
}

/** The frozen plan when steps are applied, else a fresh one from the current catalog. */
async function loadPlan(client: pg.Client, config: TenantizeConfig, inTransaction: boolean): Promise<Loaded> {
  const applied = new Set((await readLedger(client, APPLY_SCOPE)).map((a) => a.name))
  const frozen = await readFrozenPlan(client)
  if (frozen !== undefined && applied.size > 0) {
    if (frozen.configChecksum !== configChecksum(config)) {
      throw new TenantizeError(ErrorCodes.CONFIG, 'the configuration changed after apply started; the steps already applied were planned from the old one', {
        object: 'tenantize.config.json',
        fix: 'restore the configuration apply started with, or run tenantize rollback first and apply again',
      })
    }
    return { plan: frozen.plan, applied, frozen: true }
  }
  const catalog = await introspect(client, { inTransaction })
  return { plan: planConversion(catalog, config), applied, frozen: false }
}

/** With `tables`, the enforce steps of other tables are left for a later run (schema steps always run). */
function onlyTables(steps: { step: Step; index: number }[], plan: Plan, tables: readonly string[] | undefined): { step: Step; index: number }[] {
  if (tables === undefined) return steps
  const known = new Set(plan.steps.filter((s) => s.id.startsWith('rls:')).map((s) => s.table))
  const unknown = tables.filter((t) => !known.has(t))
  if (unknown.length > 0) {
    throw new TenantizeError(ErrorCodes.USAGE, `${unknown.join(', ')} ${unknown.length === 1 ? 'is not a table' : 'are not tables'} the plan enforces; nothing was changed`, { object: '--tables', fix: `name tables as schema.table, from: ${[...known].join(', ')}` })
  }
  return steps.filter(({ step }) => step.phase === 'schema' || !(step.id.startsWith('rls:') || step.id.startsWith('view:')) || tables.includes(step.table ?? ''))
}

export interface TableReadiness {
  readonly table: string
  /** Write statements counted with a tenant context since the schema phase (or the last reset). */
  readonly withContext: number
  /** Write statements without one: after enforce, each of them fails. */
  readonly withoutContext: number
}

async function readReadiness(client: pg.ClientBase): Promise<TableReadiness[] | undefined> {
  const exists = (await client.query<{ ok: boolean }>(`SELECT pg_catalog.to_regclass('tenantize.readiness') IS NOT NULL AS ok`)).rows[0]?.ok === true
  if (!exists) return undefined
  const { rows } = await client.query<{ table_name: string; with_context: string; without_context: string }>('SELECT table_name, with_context, without_context FROM tenantize.readiness ORDER BY table_name COLLATE "C"')
  return rows.map((r) => ({ table: r.table_name, withContext: Number(r.with_context), withoutContext: Number(r.without_context) }))
}

/** Per tenant table, the write statements counted with and without a tenant context (empty before the schema phase). Reads only. */
export async function readiness(databaseUrl: string): Promise<TableReadiness[]> {
  return withClient(databaseUrl, async (client) => (await readReadiness(client)) ?? [])
}

/** The comment on `tenantize.readiness` that keeps when the window was last reset (dropped with the view at rollback). */
const RESET_MARK = 'tenantize readiness window reset at '

/** Start a new readiness window: every count back to zero (e.g. once the app that sets the context is deployed). */
export async function resetReadiness(databaseUrl: string): Promise<void> {
  await withClient(databaseUrl, async (client) => {
    await client.query('BEGIN')
    try {
      await client.query(`SELECT pg_catalog.setval(pg_catalog.format('%I.%I', s.schemaname, s.sequencename)::pg_catalog.regclass, 1, false)
                            FROM pg_catalog.pg_sequences s
                           WHERE s.schemaname = 'tenantize' AND s.sequencename LIKE 'ctx\\_%'`)
      // When the window started, for `tenantize status --readiness`: a comment on the view, so rollback leaves nothing behind.
      await client.query(`DO $reset$ BEGIN
          IF pg_catalog.to_regclass('tenantize.readiness') IS NOT NULL THEN
            EXECUTE pg_catalog.format('COMMENT ON VIEW tenantize.readiness IS %L', ${quoteLiteral(RESET_MARK)} || pg_catalog.to_char(pg_catalog.clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'));
          END IF;
        END $reset$`)
      await client.query('COMMIT')
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined)
      throw error
    }
  })
}

export interface ReadinessWindow extends TableReadiness {
  /** When counting started for this table: its counter step applied, or the last reset if later (ISO 8601, UTC). */
  readonly since: string | null
  /** Its enforce step ran: writes without a tenant context now fail instead of being counted. */
  readonly enforced: boolean
}

/**
 * {@link readiness} with, per table, when its window started and whether it is enforced already (what
 * `tenantize status --readiness` shows). Empty before the schema phase. Reads only.
 */
export async function readinessWindows(databaseUrl: string): Promise<ReadinessWindow[]> {
  return withClient(databaseUrl, async (client) => {
    const counts = await readReadiness(client)
    if (counts === undefined) return []
    const { rows } = await client.query<{ name: string; at: string }>(
      `SELECT name, pg_catalog.to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at FROM tenantize.migrations WHERE scope = $1 AND name ~ '^[0-9]+_(readiness|rls):'`,
      [APPLY_SCOPE],
    )
    const counting = new Map<string, string>()
    const enforced = new Set<string>()
    for (const r of rows) {
      const m = /^\d+_(readiness|rls):(.*)$/s.exec(r.name)
      if (m?.[1] === 'readiness') counting.set(m[2]!, r.at)
      else if (m?.[1] === 'rls') enforced.add(m[2]!)
    }
    const comment = (await client.query<{ c: string | null }>(`SELECT pg_catalog.obj_description('tenantize.readiness'::pg_catalog.regclass, 'pg_class') AS c`)).rows[0]?.c ?? ''
    const reset = comment.startsWith(RESET_MARK) ? comment.slice(RESET_MARK.length) : undefined
    // Both are ISO 8601 in UTC with microseconds: the later one sorts last.
    const later = (a: string | undefined, b: string | undefined): string | null => ([a, b].filter((x) => x !== undefined).sort().at(-1) ?? null)
    return counts.map((c) => ({ ...c, since: later(counting.get(c.table), reset), enforced: enforced.has(c.table) }))
  })
}

/** Enforce refuses while the tables it would enforce still get writes without a tenant context: each would fail once RLS is on. */
async function assertReady(client: pg.ClientBase, pending: readonly Step[]): Promise<void> {
  const enforcing = new Set(pending.filter((s) => s.id.startsWith('rls:')).map((s) => s.table))
  if (enforcing.size === 0) return
  const counts = await readReadiness(client)
  const blocking = (counts ?? []).filter((r) => enforcing.has(r.table) && r.withoutContext > 0)
  if (blocking.length === 0) return
  throw new TenantizeError(ErrorCodes.PREFLIGHT, `${blocking.length} table(s) still get writes without a tenant context: each would fail once row-level security is on; nothing was changed`, {
    object: 'apply --phase enforce',
    problems: blocking.map((r) => ({ object: r.table, message: `${r.withoutContext} write statement(s) without a tenant context, ${r.withContext} with one, since the schema phase or the last reset`, fix: 'deploy the app with tenant context (withTenant) for this table, reset the window (tenantize status --readiness --reset) and watch it stay at 0; or enforce other tables first (--tables), or pass --ignore-readiness to enforce anyway (those writes then fail)' })),
  })
}

function phaseSteps(plan: Plan, phase: Phase | 'all'): { step: Step; index: number }[] {
  return plan.steps.map((step, index) => ({ step, index })).filter(({ step }) => phase === 'all' || step.phase === phase)
}

/**
 * Run the conversion plan (or one phase of it) through the runner: ledger (scope `apply`), lock,
 * pre-flight, backup, lock_timeout + retry, batched backfills with progress, resumable after a crash.
 */
export async function apply(options: ApplyOptions): Promise<MigrateResult & { plan: Plan }> {
  batchPacing(options)
  if (options.parallelWorkers !== undefined && !(Number.isInteger(options.parallelWorkers) && options.parallelWorkers >= 0)) throw new TypeError(`parallelWorkers must be a whole number of 0 or more, not ${options.parallelWorkers}`)
  let chosen: Plan | undefined
  const result = await runUnits('up', { ...options, scope: APPLY_SCOPE }, async (client) => {
    // For the whole session: the data checks' counts, the index builds, the backfill's counts of rows left.
    const workers = String(options.parallelWorkers ?? 0)
    await client.query(`SELECT pg_catalog.set_config('max_parallel_workers_per_gather', $1, false), pg_catalog.set_config('max_parallel_maintenance_workers', $1, false)`, [workers])
    await assertConfigMatchesCatalog(client, options.config)
    const loaded = await loadPlan(client, options.config, options.dryRun === true)
    chosen = loaded.plan
    const wanted = onlyTables(phaseSteps(loaded.plan, options.phase), loaded.plan, options.tables)
    if (options.phase === 'enforce') {
      const pendingSchema = phaseSteps(loaded.plan, 'schema').filter(({ step, index }) => !loaded.applied.has(unitName(index, step)))
      if (pendingSchema.length > 0) {
        throw new TenantizeError(ErrorCodes.PREFLIGHT, `${pendingSchema.length} schema step(s) are not applied yet; nothing was changed`, { object: 'apply --phase enforce', fix: 'run tenantize apply --phase schema first' })
      }
    }
    if (options.phase !== 'schema' && loaded.plan.enforceBlockers.length > 0) {
      throw new TenantizeError(ErrorCodes.PREFLIGHT, 'the app role would not be bound by row-level security; nothing was changed', {
        object: `role ${options.config.roles.app}`,
        problems: loaded.plan.enforceBlockers.map((b) => ({ object: b.object, message: b.reason, fix: b.fix })),
      })
    }
    const pending = wanted.filter(({ step, index }) => !loaded.applied.has(unitName(index, step)))
    if (options.ignoreReadiness !== true) await assertReady(client, pending.map(({ step }) => step))
    // Facts before steps: what the data shows now refuses the run before anything changed, not half-way.
    await assertDataReady(client, loaded.plan, { steps: pending.map(({ step }) => step), inTransaction: options.dryRun === true })
    if (!loaded.frozen && options.dryRun !== true) await saveFrozenPlan(client, options.config, loaded.plan)
    return pending.map(({ step, index }) => stepUnit(step, index, 'up', options))
  })
  return { ...result, plan: chosen! }
}

export interface RollbackOptions extends RunnerOptions {
  readonly config: TenantizeConfig
  /** `enforce`: the emergency path — RLS, policies and grants off, data model kept. `all`: everything. */
  readonly phase: 'enforce' | 'all'
  /** Roll back even though several tenants own rows (they would be merged into one). */
  readonly mergeTenants?: boolean
  /** After a complete rollback, also drop Tenantize's own schema (ledger, event log, frozen plan): nothing of it is left. */
  readonly purge?: boolean
}

/** Which tenants own rows in each table whose tenant column the plan added (rollback would merge them). */
async function tenantsByTable(client: pg.Client, plan: Plan, applied: ReadonlySet<string>): Promise<{ table: string; tenants: number }[]> {
  const out: { table: string; tenants: number }[] = []
  for (const [index, step] of plan.steps.entries()) {
    // Only columns that got the default tenant record tenancy nowhere else; derived ones copy their parent's.
    if (step.addsTenantColumn === undefined || step.addsTenantColumn.derived || step.table === null || !applied.has(unitName(index, step))) continue
    const { schema, name } = splitKey(step.table)
    const { rows } = await client.query<{ n: string }>(`SELECT count(DISTINCT ${quoteIdent(step.addsTenantColumn.column)})::bigint AS n FROM ${qualifiedName(schema, name)}`)
    out.push({ table: step.table, tenants: Number(rows[0]?.n ?? 0) })
  }
  return out
}

/** Reverse applied steps, newest first. Refuses to merge tenants unless told to. */
export async function rollback(options: RollbackOptions): Promise<MigrateResult> {
  const result = await runUnits('down', { ...options, scope: APPLY_SCOPE }, async (client) => {
    const applied = new Set((await readLedger(client, APPLY_SCOPE)).map((a) => a.name))
    const frozen = await readFrozenPlan(client)
    if (frozen === undefined || applied.size === 0) return []
    const steps = phaseSteps(frozen.plan, options.phase === 'all' ? 'all' : 'enforce').filter(({ step, index }) => applied.has(unitName(index, step)))
    if (options.phase === 'all' && options.mergeTenants !== true) {
      const owners = (await tenantsByTable(client, frozen.plan, applied)).filter((t) => t.tenants > 1)
      const distinct = Number((await client.query<{ n: string }>(`SELECT count(*)::bigint AS n FROM ${qualifiedName(splitKey(options.config.tenant.table).schema, splitKey(options.config.tenant.table).name)}`).catch(() => ({ rows: [{ n: '1' }] }))).rows[0]?.n ?? 1)
      if (owners.length > 0) {
        throw new TenantizeError(ErrorCodes.PREFLIGHT, `rows of ${owners.length} table(s) belong to more than one tenant: rolling back would merge them into one database of mixed tenants; nothing was changed`, {
          object: `${distinct} tenants`,
          problems: owners.map((o) => ({ object: o.table, message: `holds rows of ${o.tenants} tenants`, fix: 'move the other tenants out first (tenantize tenant export ID --to URL, then tenantize tenant delete ID), or pass --merge-tenants to merge them knowingly' })),
        })
      }
    }
    return steps.reverse().map(({ step, index }) => stepUnit(step, index, 'down', undefined))
  })
  if (options.dryRun !== true && options.phase === 'all') {
    await withClient(options.databaseUrl, async (client) => {
      if ((await readLedger(client, APPLY_SCOPE)).length > 0) return
      await forgetFrozenPlan(client)
      if (options.purge !== true) return
      const others = await readLedger(client, 'migrate')
      if (others.length > 0) {
        throw new TenantizeError(ErrorCodes.PREFLIGHT, `the ledger also records ${others.length} migration file(s) applied with tenantize migrate; the schema tenantize was kept`, { object: 'rollback --purge', fix: 'roll those back with tenantize migrate down first, or keep the schema' })
      }
      await client.query('DROP SCHEMA IF EXISTS tenantize CASCADE')
    })
  }
  return result
}

export interface TableStatus {
  readonly table: string
  readonly class: string
  readonly tenantColumn: string | null
  readonly tenantNotNull: boolean | null
  readonly rlsEnabled: boolean | null
  readonly rlsForced: boolean | null
  readonly policyPresent: boolean | null
  readonly tenantIndexPresent: boolean | null
}

export interface ConversionStatus {
  readonly steps: readonly { readonly name: string; readonly phase: Phase; readonly title: string; readonly applied: boolean }[]
  readonly tables: readonly TableStatus[]
  /** No converted table lacks what its applied phases give it (`tenantize status` exits 1 otherwise). */
  readonly healthy: boolean
  /** What is missing, one entry per table and protection, e.g. `{ table: 'public.notes', problem: 'row-level security is not forced' }`. */
  readonly problems: readonly { readonly table: string; readonly problem: string }[]
}

/**
 * PURE: what a converted table lacks. A tenant column must be NOT NULL; once the schema phase is complete
 * the tenant index must be valid; once any enforce step ran, RLS must be enabled and forced with a policy.
 */
export function statusProblems(steps: ConversionStatus['steps'], tables: readonly TableStatus[]): { table: string; problem: string }[] {
  const enforced = steps.some((s) => s.phase === 'enforce' && s.applied)
  const schemaDone = steps.length > 0 && steps.every((s) => s.phase !== 'schema' || s.applied)
  const out: { table: string; problem: string }[] = []
  for (const t of tables) {
    if (t.class === 'global' || t.class === 'excluded') continue
    if (t.tenantNotNull === false) out.push({ table: t.table, problem: 'the tenant column allows NULL' })
    if (schemaDone && t.tenantIndexPresent === false) out.push({ table: t.table, problem: 'no valid index leads with the tenant column' })
    if (enforced && t.rlsEnabled === false) out.push({ table: t.table, problem: 'row-level security is off' })
    if (enforced && t.rlsForced === false) out.push({ table: t.table, problem: 'row-level security is not forced' })
    if (enforced && t.policyPresent === false) out.push({ table: t.table, problem: 'the tenant policy is missing' })
  }
  return out
}

/** The tables (config keys) with a valid, ready index leading with their tenant column. */
async function tenantIndexValid(client: pg.Client, tables: readonly { table: string; column: string }[]): Promise<Set<string>> {
  if (tables.length === 0) return new Set()
  const { rows } = await client.query<{ key: string }>(
    `SELECT t.key FROM unnest($1::text[], $2::text[], $3::text[]) AS t(key, reg, col)
      WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attname = t.col AND NOT a.attisdropped
                     WHERE i.indrelid = pg_catalog.to_regclass(t.reg) AND i.indkey[0] = a.attnum AND i.indisvalid AND i.indisready)`,
    [tables.map((t) => t.table), tables.map((t) => { const { schema, name } = splitKey(t.table); return qualifiedName(schema, name) }), tables.map((t) => t.column)],
  )
  return new Set(rows.map((r) => r.key))
}

/** The ledger of plan steps and, per table, what `tenantize.status` shows (an INVALID index counts as absent). Reads only. */
export async function conversionStatus(databaseUrl: string): Promise<ConversionStatus> {
  return withClient(databaseUrl, async (client) => {
    const applied = new Set((await readLedger(client, APPLY_SCOPE)).map((a) => a.name))
    const frozen = await readFrozenPlan(client)
    const steps = (frozen?.plan.steps ?? []).map((step, index) => ({ name: unitName(index, step), phase: step.phase, title: step.title, applied: applied.has(unitName(index, step)) }))
    const hasView = (await client.query<{ ok: boolean }>(`SELECT to_regclass('tenantize.status') IS NOT NULL AS ok`)).rows[0]?.ok === true
    const rows = hasView
      ? (await client.query<{ table_name: string; class: string; tenant_column: string | null; tenant_not_null: boolean | null; rls_enabled: boolean | null; rls_forced: boolean | null; policy_present: boolean | null; tenant_index_present: boolean | null }>(`SELECT * FROM tenantize.status ORDER BY table_name COLLATE "C"`)).rows
      : []
    const validIndex = await tenantIndexValid(client, rows.filter((r) => r.tenant_index_present === true).map((r) => ({ table: r.table_name, column: r.tenant_column! })))
    const tables = rows.map((r) => ({
      table: r.table_name, class: r.class, tenantColumn: r.tenant_column, tenantNotNull: r.tenant_not_null, rlsEnabled: r.rls_enabled, rlsForced: r.rls_forced, policyPresent: r.policy_present,
      // An INVALID index (a concurrent build cut short) serves no query: it is not present.
      tenantIndexPresent: r.tenant_index_present === true ? validIndex.has(r.table_name) : r.tenant_index_present,
    }))
    const problems = statusProblems(steps, tables)
    return { steps, tables, healthy: problems.length === 0, problems }
  })
}

