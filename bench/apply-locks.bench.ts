/**
 * `apply` while the application keeps working (goals 3 and 6 of issue #14): how long is a write ever
 * blocked, and how much slower is the app while apply runs?
 *
 * Per size: `organizations` (the tenant table, two tenants), `meters` (1,000 rows with `org_id`) and
 * `readings` (the size, child of meters: its tenant is backfilled from the meter's). An app role (no
 * superuser, no BYPASSRLS, granted the tables like an app's role) and a steady workload: 4 clients, each
 * as the app role with its tenant's context (`SET ROLE`, `tenantize.tenant_id`), one statement every
 * 10 ms — alternately an insert into `readings` and the latest 20 readings of one of its meters — so
 * row-level security applies from the moment apply enforces it. Three windows, each on the same table:
 * 1. idle: 3 s of the workload alone (the baseline p95);
 * 2. the naive hand-written migration, in one transaction as migration tools run it: `ADD COLUMN … NOT NULL
 *    DEFAULT`, `UPDATE … FROM meters`, `CREATE INDEX` (not concurrently) — then rolled back and the table
 *    rewritten compact (VACUUM FULL), so the next window starts from the same table;
 * 3. `apply --phase schema`, a readiness reset (the app sets the context), `apply --phase enforce`.
 * The stall is the longest write; p95 is over every statement of the window; a failed write is any error.
 * Each statement of window 3 is also counted under the apply step running when it started (backfill, index
 * build, validation, other, or between steps), and a fourth window, 3 s after apply, gives the p95 of the
 * converted app alone (policies and triggers, no apply running): what is left of the rise is apply's CPU.
 *
 * Quick: 100,000 and 1,000,000 rows. `--full`: 5,000,000 too.
 */
import pg from 'pg'
import { apply, DEFAULT_BACKFILL_SHARE, DEFAULT_BATCH_TARGET_MS, resetReadiness, type BatchTiming } from '../src/apply/index.js'
import { introspect } from '../src/catalog/index.js'
import { withClient } from '../src/db/connect.js'
import { createScratchDatabase } from '../src/db/provision.js'
import { resolveTestServer, type TestServer } from '../src/db/test-server.js'
import type { MigrateEvent } from '../src/migrate/index.js'
import { proposeConfig } from '../src/plan/classify.js'
import { parseConfig } from '../src/plan/config.js'
import { quoteIdent } from '../src/sql/quote.js'
import { quantile, type BenchMeasure, type BenchOptions } from './result.js'

const TENANTS = ['00000000-0000-4000-8000-0000000000b1', '00000000-0000-4000-8000-0000000000b2'] as const
const CLIENTS = 4
const PERIOD_MS = 10
const IDLE_MS = 3000
const envNumber = (name: string): number | undefined => (process.env[name] === undefined || process.env[name] === '' ? undefined : Number(process.env[name]))
/** apply's pacing of the backfill (its defaults unless BENCH_BATCH_TARGET_MS / BENCH_BACKFILL_SHARE say otherwise). */
const TARGET_MS = envNumber('BENCH_BATCH_TARGET_MS') ?? DEFAULT_BATCH_TARGET_MS
const SHARE = envNumber('BENCH_BACKFILL_SHARE') ?? DEFAULT_BACKFILL_SHARE
const WORKERS = envNumber('BENCH_PARALLEL_WORKERS')

interface Window {
  /** Latency of every statement, ms. */
  readonly all: number[]
  /** When each statement of {@link all} started (performance.now()). */
  readonly at: number[]
  /** Latency of every write, ms. */
  readonly writes: number[]
  readonly failures: string[]
}

interface Workload {
  /** Every client has run a statement. */
  readonly ready: Promise<void>
  stop(): Promise<Window>
}

const APP_NAME = 'tenantize-bench-app'

/** The steady app: {@link CLIENTS} clients as the app role, each with its tenant's context. */
function workload(url: string, role: string): Workload {
  let running = true
  const window: Window = { all: [], at: [], writes: [], failures: [] }
  let started = 0
  let markReady = (): void => undefined
  const ready = new Promise<void>((resolve) => { markReady = resolve })
  const clients = Array.from({ length: CLIENTS }, async (_, n) => {
    const client = new pg.Client({ connectionString: url, application_name: APP_NAME })
    await client.connect()
    const tenant = TENANTS[n % TENANTS.length]!
    await client.query(`SET ROLE ${quoteIdent(role)}`)
    await client.query(`SELECT pg_catalog.set_config('tenantize.tenant_id', $1, false)`, [tenant])
    // Meters 1…1000: even ones are the first tenant's, odd ones the second's.
    const meter = (i: number): number => 2 * (1 + ((i * 7 + n) % 500)) - (n % TENANTS.length)
    try {
      for (let i = 0; running; i++) {
        const due = performance.now() + PERIOD_MS
        const write = i % 2 === 0
        const start = performance.now()
        try {
          if (write) await client.query('INSERT INTO readings (meter_id, at, kwh) VALUES ($1, now(), $2)', [meter(i), i % 97])
          else await client.query('SELECT id, at, kwh FROM readings WHERE meter_id = $1 ORDER BY id DESC LIMIT 20', [meter(i)])
        } catch (error) {
          window.failures.push(`${write ? 'insert' : 'select'}: ${error instanceof Error ? error.message : String(error)}`)
        }
        const ms = performance.now() - start
        if (i === 0 && ++started === CLIENTS) markReady()
        window.all.push(ms)
        window.at.push(start)
        if (write) window.writes.push(ms)
        const wait = due - performance.now()
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      }
    } finally {
      await client.end()
    }
  })
  return {
    // A client that cannot connect ends the wait with its error.
    ready: Promise.race([ready, Promise.all(clients).then(() => { throw new Error('the workload ended before every client ran a statement') })]),
    async stop() {
      running = false
      await Promise.all(clients)
      return window
    },
  }
}

/**
 * Samples every 20 ms which of the app's statements wait for a lock (pg_stat_activity), and on what
 * (pg_locks): a slow statement that never waited for a lock was slow for CPU or I/O, not for apply's locks.
 */
function lockSampler(url: string): { stop(): Promise<{ samples: number; waiting: number; on: string[] }> } {
  let running = true
  const on = new Set<string>()
  let samples = 0
  let waiting = 0
  const done = (async () => {
    const client = new pg.Client(url)
    await client.connect()
    try {
      while (running) {
        const { rows } = await client.query<{ what: string }>(
          `SELECT l.locktype || coalesce(' on ' || l.relation::regclass::text, '') || ' ' || l.mode AS what
             FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
            WHERE a.application_name = $1 AND a.wait_event_type = 'Lock'`, [APP_NAME])
        samples++
        if (rows.length > 0) waiting++
        for (const r of rows) on.add(r.what)
        await pause(20)
      }
    } finally {
      await client.end()
    }
  })()
  return { async stop() { running = false; await done; return { samples, waiting, on: [...on] } } }
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

interface Run {
  readonly rows: number
  readonly idle: Window
  readonly naive: Window
  readonly naiveMs: number
  readonly during: Window
  /** The converted app alone, after apply. */
  readonly afterwards: Window
  /** The apply steps: name, start and end (performance.now()). */
  readonly steps: { name: string; from: number; to: number }[]
  /** The backfill batches' statements: start and end (performance.now()). */
  readonly batches: { from: number; to: number }[]
  readonly locks: { samples: number; waiting: number; on: string[] }
  readonly schemaMs: number
  readonly enforceMs: number
}

async function run(server: TestServer, rows: number): Promise<Run> {
  const db = await createScratchDatabase(server.url, 'bench_apply')
  const role = `${db.name}_app`
  const admin = new pg.Client(db.url)
  await admin.connect()
  try {
    await admin.query(`
      CREATE TABLE organizations (id uuid PRIMARY KEY, slug text NOT NULL UNIQUE, name text NOT NULL);
      INSERT INTO organizations VALUES ('${TENANTS[0]}', 'default', 'Default'), ('${TENANTS[1]}', 'other', 'Other');
      CREATE TABLE meters (id bigint PRIMARY KEY, org_id uuid NOT NULL REFERENCES organizations (id), serial text NOT NULL UNIQUE);
      CREATE TABLE readings (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, meter_id bigint NOT NULL REFERENCES meters, at timestamptz NOT NULL, kwh numeric NOT NULL);
      INSERT INTO meters SELECT g, CASE WHEN g % 2 = 0 THEN '${TENANTS[0]}'::uuid ELSE '${TENANTS[1]}'::uuid END, 'M-' || g FROM generate_series(1, 1000) g;
      INSERT INTO readings (meter_id, at, kwh) SELECT 1 + g % 1000, now() - g * interval '15 minutes', g % 97 FROM generate_series(1, ${rows}) g;
      CREATE INDEX readings_meter_id ON readings (meter_id);
      CREATE ROLE ${quoteIdent(role)} NOLOGIN NOSUPERUSER NOBYPASSRLS;
      GRANT USAGE ON SCHEMA public TO ${quoteIdent(role)};
      GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${quoteIdent(role)};
      GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ${quoteIdent(role)};`)
    await admin.query('VACUUM ANALYZE readings')

    let w = workload(db.url, role)
    await w.ready
    await pause(IDLE_MS)
    const idle = await w.stop()

    // The naive migration, in one transaction; rolled back, then the table rewritten as it was.
    w = workload(db.url, role)
    await w.ready
    await pause(500)
    const t0 = performance.now()
    await admin.query('BEGIN')
    await admin.query(`ALTER TABLE readings ADD COLUMN org_id uuid NOT NULL DEFAULT '${TENANTS[0]}'`)
    await admin.query('UPDATE readings AS r SET org_id = m.org_id FROM meters AS m WHERE m.id = r.meter_id')
    await admin.query('CREATE INDEX readings_org_id ON readings (org_id)')
    await admin.query('ROLLBACK')
    const naiveMs = performance.now() - t0
    await pause(500)
    const naive = await w.stop()
    await admin.query('VACUUM FULL readings')
    await admin.query('ANALYZE readings')

    const catalog = await introspect(admin)
    const config = parseConfig(proposeConfig(catalog, { defaultTenantId: TENANTS[0], appRole: role, tenantTable: { schema: 'public', name: 'organizations' } }).config)
    w = workload(db.url, role)
    await w.ready
    await pause(500)
    const sampler = lockSampler(db.url)
    const steps: { name: string; from: number; to: number }[] = []
    const onEvent = (e: MigrateEvent): void => {
      if (e.event === 'start') steps.push({ name: e.migration, from: performance.now(), to: Infinity })
      if ((e.event === 'finish' || e.event === 'fail') && steps.at(-1)?.name === e.migration) steps.at(-1)!.to = performance.now()
    }
    const batches: { from: number; to: number }[] = []
    const onBatch = (b: BatchTiming): void => { const now = performance.now(); batches.push({ from: now - b.ms, to: now }) }
    const pacing = { batchTargetMs: TARGET_MS, backfillShare: SHARE, ...(WORKERS === undefined ? {} : { parallelWorkers: WORKERS }), onEvent, onBatch }
    const t1 = performance.now()
    await apply({ databaseUrl: db.url, config, phase: 'schema', ...pacing })
    const schemaMs = performance.now() - t1
    await resetReadiness(db.url)
    const t2 = performance.now()
    await apply({ databaseUrl: db.url, config, phase: 'enforce', ...pacing })
    const enforceMs = performance.now() - t2
    await pause(500)
    const during = await w.stop()
    const locks = await sampler.stop()
    w = workload(db.url, role)
    await w.ready
    await pause(IDLE_MS)
    const afterwards = await w.stop()
    const forced = (await admin.query<{ ok: boolean }>(`SELECT relrowsecurity AND relforcerowsecurity AS ok FROM pg_class WHERE oid = 'public.readings'::regclass`)).rows[0]?.ok
    if (forced !== true) throw new Error('readings is not under row-level security after apply')
    return { rows, idle, naive, naiveMs, during, afterwards, steps, batches, locks, schemaMs, enforceMs }
  } finally {
    await admin.end()
    await db.drop()
    await withClient(server.url, (c) => c.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`)).catch(() => undefined)
  }
}

/** The kind of apply step a statement started under. */
function kindOf(name: string | undefined): string {
  if (name === undefined) return 'between steps'
  const id = name.replace(/^\d+_/, '')
  if (id.startsWith('backfill:')) return 'backfill'
  if (id.startsWith('tenant-index:') || id.startsWith('tenant-unique:')) return 'index builds'
  if (/^[a-z-]*validate:/.test(id)) return 'validations'
  return 'other steps'
}

/** p95 and count of window statements by the kind of step running when each started, and the share of time in each. */
function byStep(r: Run): string {
  const groups = new Map<string, number[]>()
  r.during.all.forEach((ms, i) => {
    const at = r.during.at[i]!
    let kind = kindOf(r.steps.find((s) => s.from <= at && at < s.to)?.name)
    // Within a backfill: did the statement start while a batch ran, or in the pause after one? Same seconds, same load.
    if (kind === 'backfill') kind = r.batches.some((b) => b.from <= at && at < b.to) ? 'backfill batch' : 'backfill pause'
    groups.set(kind, [...(groups.get(kind) ?? []), ms])
  })
  return [...groups].sort((a, b) => b[1].length - a[1].length).map(([kind, ms]) => `${kind} ${quantile(ms, 0.95).toFixed(1)} ms (${ms.length})`).join(', ')
}

export default async function applyLocks(options: BenchOptions): Promise<BenchMeasure[]> {
  const sizes = options.full ? [100_000, 1_000_000, 5_000_000] : [100_000, 1_000_000]
  const server = await resolveTestServer()
  try {
    const out: BenchMeasure[] = []
    const runs: Run[] = []
    for (const rows of sizes) {
      const r = await run(server, rows)
      runs.push(r)
      const n = rows.toLocaleString('en')
      const stall = Math.max(...r.during.writes)
      const naiveStall = Math.max(...r.naive.writes)
      const idleP95 = quantile(r.idle.all, 0.95)
      const p95 = quantile(r.during.all, 0.95)
      const afterP95 = quantile(r.afterwards.all, 0.95)
      console.error(`# apply-locks ${rows}: stall ${stall.toFixed(0)} ms (naive ${naiveStall.toFixed(0)} ms), p95 ${p95.toFixed(2)} vs idle ${idleP95.toFixed(2)} ms, after apply ${afterP95.toFixed(2)} ms, failed ${r.during.failures.length} (naive ${r.naive.failures.length}); p95 by step: ${byStep(r)}`)
      for (const f of new Set([...r.during.failures, ...r.naive.failures])) console.error(`#   ${f}`)
      out.push(
        { name: `apply --phase schema, then enforce, ${n} readings`, value: r.schemaMs + r.enforceMs, unit: 'ms', note: `schema ${r.schemaMs.toFixed(0)} ms (backfill included), enforce ${r.enforceMs.toFixed(0)} ms; ${server.kind}` },
        { name: `longest app write during apply, ${n} rows`, value: stall, unit: 'ms', limit: 1000, note: `${r.during.writes.length} writes by ${CLIENTS} clients as the app role; naive DDL: ${naiveStall.toFixed(0)} ms; a statement waited for a lock in ${r.locks.waiting} of ${r.locks.samples} samples${r.locks.on.length > 0 ? ` (${r.locks.on.join(', ')})` : ''}` },
        { name: `naive DDL in one transaction: longest app write, ${n} rows`, value: naiveStall, unit: 'ms', note: `ADD COLUMN NOT NULL DEFAULT + UPDATE + CREATE INDEX, ${r.naiveMs.toFixed(0)} ms; ${r.naive.failures.length} failed of ${r.naive.writes.length} writes` },
        { name: `app p95 during apply ÷ idle p95, ${n} rows`, value: p95 / idleP95, unit: '×', limit: 1.2, note: `${p95.toFixed(2)} vs ${idleP95.toFixed(2)} ms over ${r.during.all.length} vs ${r.idle.all.length} statements (${CLIENTS} clients, one every ${PERIOD_MS} ms each); by step running: ${byStep(r)}; converted app after apply ${afterP95.toFixed(2)} ms; backfill batches toward ${TARGET_MS} ms, share ${SHARE}; parallel workers ${WORKERS ?? 'apply\'s default'}` },
        { name: `failed app statements during apply, ${n} rows`, value: r.during.failures.length, unit: 'statements', limit: 0, note: r.during.failures[0] ?? '' },
      )
    }
    for (let i = 1; i < runs.length; i++) {
      const [a, b] = [runs[i - 1]!, runs[i]!]
      out.push({
        name: `longest write: ${b.rows.toLocaleString('en')} ÷ ${a.rows.toLocaleString('en')} rows`,
        value: Math.max(...b.during.writes) / Math.max(...a.during.writes),
        unit: '×',
        limit: 1.5,
        note: `${Math.max(...b.during.writes).toFixed(0)} vs ${Math.max(...a.during.writes).toFixed(0)} ms`,
      })
    }
    return out
  } finally {
    await server.stop()
  }
}
