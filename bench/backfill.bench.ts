/**
 * Backfill throughput (goal 4 of issue #14): `apply --phase schema`'s batched keyset backfill of a child
 * table's tenant column ÷ one hand-written UPDATE of the same rows, as rows per second (goal ≥ 0.5); the
 * longest batch (goal ≤ 200 ms); and throughput at the largest size ÷ at 100,000 rows (goal ≥ 0.8).
 *
 * Per size: `organizations` (the tenant table, two tenants), `projects` (1,000 rows with `org_id`) and
 * `tasks` (the size, child of projects: its `org_id` is derived from the project's). First the baseline:
 * a nullable column added by hand and filled by one `UPDATE … FROM projects` (no trigger), then dropped and
 * the table rewritten compact again (VACUUM FULL). Then `apply --phase schema` runs as a user runs it —
 * batches of at most the config's size, sized by time (apply's default target), each one statement that also
 * saves its progress row (its own transaction, one round trip), paced by apply's default share — and the
 * backfill step is timed by apply's own start/finish events (its two counts of rows left included). A batch's
 * duration is its statement's as apply's `onBatch` reports it.
 *
 * Quick: 100,000 and 1,000,000 rows. `--full`: 5,000,000 too. To try other pacing: BENCH_BATCH_TARGET_MS,
 * BENCH_BACKFILL_SHARE (apply's batchTargetMs and backfillShare; the rows then say so).
 */
import pg from 'pg'
import { apply, DEFAULT_BACKFILL_SHARE, DEFAULT_BATCH_TARGET_MS, type BatchTiming } from '../src/apply/index.js'
import { introspect } from '../src/catalog/index.js'
import { withClient } from '../src/db/connect.js'
import { createScratchDatabase } from '../src/db/provision.js'
import { resolveTestServer, type TestServer } from '../src/db/test-server.js'
import type { MigrateEvent } from '../src/migrate/index.js'
import { proposeConfig } from '../src/plan/classify.js'
import { parseConfig } from '../src/plan/config.js'
import { quoteIdent } from '../src/sql/quote.js'
import { quantile, type BenchMeasure, type BenchOptions } from './result.js'

const PAUSE_MS = 10
const envNumber = (name: string): number | undefined => (process.env[name] === undefined || process.env[name] === '' ? undefined : Number(process.env[name]))
const TARGET_MS = envNumber('BENCH_BATCH_TARGET_MS') ?? DEFAULT_BATCH_TARGET_MS
const SHARE = envNumber('BENCH_BACKFILL_SHARE') ?? DEFAULT_BACKFILL_SHARE
const WORKERS = envNumber('BENCH_PARALLEL_WORKERS')
const DEFAULT_TENANT = '00000000-0000-4000-8000-0000000000b1'

interface Run {
  readonly rows: number
  /** The batches and their pauses, from the step's start to the last batch's report. */
  readonly backfillMs: number
  /** The step's VACUUM (ANALYZE) after the batches (what is left of the step's time). */
  readonly vacuumMs: number
  readonly bigMs: number
  readonly batches: number
  readonly batchSize: number
  readonly longestBatchMs: number
  readonly p95BatchMs: number
  /** Rows per batch: smallest and median. */
  readonly minSize: number
  readonly medianSize: number
  readonly pausedMs: number
  readonly batchesMs: number
  readonly version: string
}

async function run(server: TestServer, rows: number): Promise<Run> {
  const db = await createScratchDatabase(server.url, 'bench_backfill')
  const role = `${db.name}_app`
  const client = new pg.Client(db.url)
  await client.connect()
  try {
    await client.query(`
      CREATE TABLE organizations (id uuid PRIMARY KEY, slug text NOT NULL UNIQUE, name text NOT NULL);
      INSERT INTO organizations VALUES ('${DEFAULT_TENANT}', 'default', 'Default'), ('00000000-0000-4000-8000-0000000000b2', 'other', 'Other');
      CREATE TABLE projects (id bigint PRIMARY KEY, org_id uuid NOT NULL REFERENCES organizations (id), name text NOT NULL);
      CREATE TABLE tasks (id bigint PRIMARY KEY, project_id bigint NOT NULL REFERENCES projects (id), body text NOT NULL);
      INSERT INTO projects SELECT g, CASE WHEN g % 2 = 0 THEN '${DEFAULT_TENANT}'::uuid ELSE '00000000-0000-4000-8000-0000000000b2' END, 'project ' || g FROM generate_series(1, 1000) g;
      INSERT INTO tasks SELECT g, 1 + g % 1000, md5(g::text) FROM generate_series(1, ${rows}) g;
      CREATE INDEX tasks_project_id ON tasks (project_id);`)
    await client.query('VACUUM ANALYZE tasks')
    const version = (await client.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0]?.v ?? '?'

    // The baseline: one UPDATE of every row, written by hand.
    await client.query('ALTER TABLE tasks ADD COLUMN baseline_org_id uuid')
    const t0 = performance.now()
    const big = await client.query('UPDATE tasks AS c SET baseline_org_id = p.org_id FROM projects AS p WHERE p.id = c.project_id')
    const bigMs = performance.now() - t0
    if (big.rowCount !== rows) throw new Error(`the big UPDATE changed ${big.rowCount} rows, expected ${rows}`)
    await client.query('ALTER TABLE tasks DROP COLUMN baseline_org_id')
    await client.query('VACUUM FULL tasks')
    await client.query('ANALYZE tasks')

    const catalog = await introspect(client)
    // The tenant table exists: the plan derives each child's tenant from its parent (the backfill).
    const config = parseConfig(proposeConfig(catalog, { defaultTenantId: DEFAULT_TENANT, appRole: role, tenantTable: { schema: 'public', name: 'organizations' } }).config)
    let started: number | undefined
    let finishedMs: number | undefined
    let lastBatchAt: number | undefined
    const batches: BatchTiming[] = []
    const onEvent = (e: MigrateEvent): void => {
      if (!('migration' in e) || !e.migration.includes('backfill:public.tasks')) return
      if (e.event === 'start') started = performance.now()
      if (e.event === 'finish') finishedMs = e.durationMs
    }
    const onBatch = (b: BatchTiming): void => {
      if (!b.step.includes('backfill:public.tasks')) return
      batches.push(b)
      lastBatchAt = performance.now()
    }
    await apply({ databaseUrl: db.url, config, phase: 'schema', batchPauseMs: PAUSE_MS, batchTargetMs: TARGET_MS, backfillShare: SHARE, ...(WORKERS === undefined ? {} : { parallelWorkers: WORKERS }), onEvent, onBatch })
    if (started === undefined || finishedMs === undefined || lastBatchAt === undefined) throw new Error('apply ran no backfill of public.tasks')
    // The batches' time ends with the last one (and its pause); the rest of the step is its VACUUM (ANALYZE).
    const loopMs = Math.min(finishedMs, lastBatchAt - started + (batches[batches.length - 1]?.pauseMs ?? 0))
    const filled = Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM tasks WHERE ${quoteIdent(config.tenant.column)} IS NOT NULL`)).rows[0]?.n)
    if (filled !== rows) throw new Error(`the backfill filled ${filled} rows, expected ${rows}`)
    const ms = batches.map((b) => b.ms)
    const sizes = batches.map((b) => b.size)
    return {
      rows, backfillMs: loopMs, vacuumMs: finishedMs - loopMs, bigMs, batches: batches.length, batchSize: config.batchSize, longestBatchMs: Math.max(...ms), p95BatchMs: quantile(ms, 0.95),
      minSize: Math.min(...sizes), medianSize: quantile(sizes, 0.5), pausedMs: batches.reduce((a, b) => a + b.pauseMs, 0), batchesMs: ms.reduce((a, b) => a + b, 0), version,
    }
  } finally {
    await client.end()
    await db.drop()
    await withClient(server.url, (c) => c.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`)).catch(() => undefined)
  }
}

export default async function backfillBench(options: BenchOptions): Promise<readonly BenchMeasure[]> {
  const sizes = options.full ? [100_000, 1_000_000, 5_000_000] : [100_000, 1_000_000]
  const server = await resolveTestServer()
  try {
    const runs: Run[] = []
    for (const rows of sizes) {
      const r = await run(server, rows)
      console.error(`# backfill ${rows}: batched ${rate(r.rows, r.backfillMs)} (${r.batches} batches of ${r.minSize}–${r.batchSize} rows, median ${r.medianSize}; longest ${r.longestBatchMs.toFixed(0)} ms, p95 ${r.p95BatchMs.toFixed(0)} ms; in batches ${(r.batchesMs / 1000).toFixed(1)} s, paused ${(r.pausedMs / 1000).toFixed(1)} s of ${(r.backfillMs / 1000).toFixed(1)} s; then VACUUM (ANALYZE) ${(r.vacuumMs / 1000).toFixed(1)} s), one UPDATE ${rate(r.rows, r.bigMs)}`)
      runs.push(r)
    }
    const first = runs[0]!
    const last = runs[runs.length - 1]!
    const out: BenchMeasure[] = runs.map((r) => ({
      name: `batched backfill ÷ one big UPDATE, ${r.rows.toLocaleString('en')} rows (throughput)`,
      value: r.bigMs / r.backfillMs,
      unit: '×',
      min: 0.5,
      note: `${rate(r.rows, r.backfillMs)} (${r.batches} batches of ${r.minSize.toLocaleString('en')}–${r.batchSize.toLocaleString('en')} rows, median ${r.medianSize.toLocaleString('en')}, sized toward ${TARGET_MS} ms; paused ${(r.pausedMs / 1000).toFixed(1)} s of ${(r.backfillMs / 1000).toFixed(1)} s (share ${SHARE}, at least ${PAUSE_MS} ms); each batch one statement with its progress row, counts of rows left; the step's VACUUM (ANALYZE) after it, ${(r.vacuumMs / 1000).toFixed(1)} s, not counted, like the dead rows the big UPDATE leaves) vs ${rate(r.rows, r.bigMs)} (no trigger); PostgreSQL ${r.version} (${server.kind})`,
    }))
    out.push({
      name: 'longest backfill batch (one transaction)',
      value: Math.max(...runs.map((r) => r.longestBatchMs)),
      unit: 'ms',
      limit: 200,
      note: `${runs.map((r) => `${r.rows.toLocaleString('en')} rows: longest ${r.longestBatchMs.toFixed(0)} ms, p95 ${r.p95BatchMs.toFixed(0)} ms`).join('; ')} (the batch statement, as apply's onBatch reports it; target ${TARGET_MS} ms)`,
    })
    out.push({
      name: `backfill throughput at ${last.rows.toLocaleString('en')} ÷ at ${first.rows.toLocaleString('en')} rows`,
      value: (last.rows / last.backfillMs) / (first.rows / first.backfillMs),
      unit: '×',
      min: 0.8,
      note: options.full ? '' : 'quick mode: 1M for 5M (npm run bench -- --full)',
    })
    return out
  } finally {
    await server.stop()
  }
}

function rate(rows: number, ms: number): string {
  return `${Math.round(rows / (ms / 1000)).toLocaleString('en')} rows/s`
}
