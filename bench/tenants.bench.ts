/**
 * Tenant lifecycle while the application keeps working (issue #15): how fast does `tenant import --from`
 * copy a single-tenant database in as a new tenant, how fast does `tenant delete` remove it again, and how
 * long is the app ever stalled meanwhile?
 *
 * Per size: a single-tenant schema `meters` (1,000 rows) and `readings` (the size, child of meters, with an
 * index on meter_id as an app has). The target holds a small copy (1,000 meters, 10,000 readings), converted
 * by `apply` (tenant table created, `org_id` everywhere, row-level security enforced); the source is the same
 * schema with the size in readings, single-tenant, on the same server. Every key of the source collides
 * with one of the target's, so the import gives every row a new id. Then, through the library API
 * (src/tenants):
 * 1. `importTenant({ from })` — the source becomes tenant `imported`;
 * 2. `deleteTenant()` — the imported tenant is deleted again.
 * During both, the app: 4 clients as the app role (no superuser, no BYPASSRLS), each scoped to the default
 * tenant (`SET ROLE`, `tenantize.tenant_id`), one statement every 10 ms into the same tables — alternately
 * an insert into `readings` and an update of one of its meters. The stall is the longest of those writes;
 * a sampler records every 20 ms which app statement waits for a lock, and on what.
 *
 * Quick: 100,000 rows. `--full`: 1,000,000 rows too.
 */
import { createRequire } from 'node:module'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { Worker } from 'node:worker_threads'
import pg from 'pg'
import { apply } from '../src/apply/index.js'
import { introspect } from '../src/catalog/index.js'
import { withClient } from '../src/db/connect.js'
import { createScratchDatabase } from '../src/db/provision.js'
import { resolveTestServer, type TestServer } from '../src/db/test-server.js'
import { proposeConfig } from '../src/plan/classify.js'
import { parseConfig } from '../src/plan/config.js'
import { quoteIdent } from '../src/sql/quote.js'
import { deleteTenant, importTenant } from '../src/tenants/index.js'
import { quantile, type BenchMeasure, type BenchOptions } from './result.js'

const DEFAULT_TENANT = '00000000-0000-4000-8000-0000000000d1'
const METERS = 1000
const TARGET_READINGS = 10_000
const CLIENTS = 4
const PERIOD_MS = 10
const STALL_GOAL_MS = 200
const APP_NAME = 'tenantize-bench-tenants-app'

interface Window {
  /** Latency of every write, ms. */
  readonly writes: number[]
  readonly failures: string[]
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * The app, in a worker thread of its own (as an app is a process of its own: the lifecycle command's work on
 * this process's event loop must not count as the app's stall). Plain JavaScript, run with `eval`.
 */
const WORKLOAD = `
const { parentPort, workerData: d } = require('node:worker_threads')
const { performance } = require('node:perf_hooks')
const pg = require(d.pg)
let running = true
parentPort.on('message', (m) => { if (m === 'stop') running = false })
const window = { writes: [], failures: [] }
let started = 0
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const clients = Array.from({ length: d.clients }, async (_, n) => {
  const client = new pg.Client({ connectionString: d.url, application_name: d.appName })
  await client.connect()
  await client.query('SET ROLE ' + d.role)
  await client.query("SELECT pg_catalog.set_config('tenantize.tenant_id', $1, false)", [d.tenant])
  // The default tenant's meters keep ids 1…METERS (the imported ones get new ids).
  const meter = (i) => 1 + ((i * 7 + n * 251) % d.meters)
  try {
    for (let i = 0; running; i++) {
      const due = performance.now() + d.period
      const start = performance.now()
      try {
        if (i % 2 === 0) await client.query('INSERT INTO readings (meter_id, at, kwh) VALUES ($1, now(), $2)', [meter(i), i % 97])
        else await client.query('UPDATE meters SET name = $2 WHERE id = $1', [meter(i), 'meter ' + i])
      } catch (error) {
        window.failures.push(error instanceof Error ? error.message : String(error))
      }
      if (i === 0 && ++started === d.clients) parentPort.postMessage({ type: 'ready' })
      window.writes.push(performance.now() - start)
      const wait = due - performance.now()
      if (wait > 0) await pause(wait)
    }
  } finally {
    await client.end()
  }
})
Promise.all(clients).then(() => parentPort.postMessage({ type: 'done', window }), (e) => parentPort.postMessage({ type: 'failed', error: String((e && e.message) || e) }))
`

/** The app: {@link CLIENTS} clients as the app role, scoped to the default tenant, writing to the tables the lifecycle command fills or empties. */
function workload(url: string, role: string): { ready: Promise<void>; stop(): Promise<Window> } {
  const worker = new Worker(WORKLOAD, {
    eval: true,
    workerData: { url, role: quoteIdent(role), tenant: DEFAULT_TENANT, clients: CLIENTS, period: PERIOD_MS, meters: METERS, appName: APP_NAME, pg: createRequire(import.meta.url).resolve('pg') },
  })
  type Message = { type: 'ready' } | { type: 'done'; window: Window } | { type: 'failed'; error: string }
  const ended = new Promise<Window>((resolve, reject) => {
    worker.on('message', (m: Message) => {
      if (m.type === 'done') resolve(m.window)
      else if (m.type === 'failed') reject(new Error(`the app workload failed: ${m.error}`))
    })
    worker.on('error', reject)
    worker.on('exit', () => reject(new Error('the app workload exited')))
  })
  const ready = new Promise<void>((resolve, reject) => {
    worker.on('message', (m: Message) => { if (m.type === 'ready') resolve() })
    ended.then(() => reject(new Error('the workload ended before every client ran a statement')), reject)
  })
  return {
    ready,
    async stop() {
      worker.postMessage('stop')
      try {
        return await ended
      } finally {
        await worker.terminate()
      }
    },
  }
}

interface Locks {
  samples: number
  /** Samples in which an app statement waited for a heavyweight lock. */
  waiting: number
  on: string[]
  /** App statements running for more than 100 ms when sampled: what they waited for (wait event, or CPU), and what the lifecycle command ran. */
  slow: Map<string, number>
  /** WAL written (whole cluster, pg_stat_wal) between samples, by what the lifecycle command ran meanwhile: bytes and full-page images. */
  wal: Map<string, { bytes: number; fpi: number }>
}

/**
 * Every 20 ms: does an app statement wait for a lock (pg_stat_activity, pg_locks), and on what? An app
 * statement running for more than 100 ms is recorded with its wait event (none: on CPU) and the statement
 * the lifecycle command's session runs at that moment.
 */
function lockSampler(url: string): { stop(): Promise<Locks> } {
  let running = true
  const on = new Set<string>()
  const slow = new Map<string, number>()
  const wal = new Map<string, { bytes: number; fpi: number }>()
  let samples = 0
  let waiting = 0
  const done = (async () => {
    const client = new pg.Client(url)
    await client.connect()
    let before: { bytes: number; fpi: number } | undefined
    try {
      while (running) {
        const w = (await client.query<{ bytes: string; fpi: string; what: string }>(
          `SELECT s.wal_bytes::text AS bytes, s.wal_fpi::text AS fpi,
                  coalesce((SELECT regexp_replace(left(t.query, 40), '\\s+', ' ', 'g') FROM pg_stat_activity t WHERE t.application_name LIKE 'tenantize%' AND t.application_name <> $1 AND t.datname = pg_catalog.current_database() AND t.state = 'active' AND t.pid <> pg_backend_pid() LIMIT 1), 'nothing') AS what
             FROM pg_stat_wal s`, [APP_NAME])).rows[0]!
        const now = { bytes: Number(w.bytes), fpi: Number(w.fpi) }
        if (before !== undefined) {
          const acc = wal.get(w.what) ?? { bytes: 0, fpi: 0 }
          wal.set(w.what, { bytes: acc.bytes + now.bytes - before.bytes, fpi: acc.fpi + now.fpi - before.fpi })
        }
        before = now
        const { rows } = await client.query<{ what: string }>(
          `SELECT l.locktype || coalesce(' on ' || l.relation::regclass::text, '') || ' ' || l.mode AS what
             FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
            WHERE a.application_name = $1 AND a.wait_event_type = 'Lock'`, [APP_NAME])
        samples++
        if (rows.length > 0) waiting++
        for (const r of rows) on.add(r.what)
        const long = await client.query<{ what: string }>(
          `SELECT coalesce(a.wait_event_type || ':' || a.wait_event, 'CPU') || ' while tenantize ran ' ||
                  coalesce((SELECT regexp_replace(left(t.query, 40), '\\s+', ' ', 'g') FROM pg_stat_activity t WHERE t.application_name LIKE 'tenantize%' AND t.application_name <> $1 AND t.datname = pg_catalog.current_database() AND t.state = 'active' AND t.pid <> pg_backend_pid() LIMIT 1), 'nothing') AS what
             FROM pg_stat_activity a
            WHERE a.application_name = $1 AND a.state = 'active' AND a.query_start < clock_timestamp() - interval '100 ms'`, [APP_NAME])
        for (const r of long.rows) slow.set(r.what, (slow.get(r.what) ?? 0) + 1)
        await pause(20)
      }
    } finally {
      await client.end()
    }
  })()
  return { async stop() { running = false; await done; return { samples, waiting, on: [...on], slow, wal } } }
}

const SCHEMA = `
  CREATE TABLE meters (id bigserial PRIMARY KEY, serial text NOT NULL UNIQUE, name text NOT NULL);
  CREATE TABLE readings (id bigserial PRIMARY KEY, meter_id bigint NOT NULL REFERENCES meters, at timestamptz NOT NULL, kwh numeric NOT NULL);
  CREATE INDEX readings_meter_id ON readings (meter_id);`

async function fill(client: pg.Client, readings: number): Promise<void> {
  await client.query(SCHEMA)
  await client.query(`INSERT INTO meters (serial, name) SELECT 'M-' || g, 'meter ' || g FROM generate_series(1, ${METERS}) g`)
  await client.query(`INSERT INTO readings (meter_id, at, kwh) SELECT 1 + g % ${METERS}, timestamptz '2026-01-01' + g * interval '15 minutes', g % 97 FROM generate_series(1, $1::int) g`, [readings])
  await client.query('VACUUM ANALYZE')
}

interface Phase {
  ms: number
  app: Window
  locks: Locks
  /** The longest the lifecycle command kept this process's event loop busy, ms (an app calling the library in-process would stall that long). */
  loopMaxMs: number
}

async function during(url: string, role: string, fn: () => Promise<unknown>): Promise<Phase> {
  const w = workload(url, role)
  await w.ready
  await pause(300)
  const sampler = lockSampler(url)
  const loop = monitorEventLoopDelay({ resolution: 10 })
  loop.enable()
  const t0 = performance.now()
  try {
    await fn()
  } catch (error) {
    await Promise.allSettled([w.stop(), sampler.stop()])
    throw error
  } finally {
    loop.disable()
  }
  const ms = performance.now() - t0
  await pause(300)
  const app = await w.stop()
  return { ms, app, locks: await sampler.stop(), loopMaxMs: loop.max / 1e6 }
}

interface Run { rows: number; importRows: number; idle: Phase; import: Phase; delete: Phase; deleted: number; batchSize: number }

/**
 * The app alone for this long before the import: its longest write then is the baseline. The server is
 * shared (other work's WAL delays the app's commits too: they flush whatever was written before them).
 */
const IDLE_MS = 30_000

async function run(server: TestServer, readings: number): Promise<Run> {
  const target = await createScratchDatabase(server.url, 'bench_tenants')
  const source = await createScratchDatabase(server.url, 'bench_tenants_src')
  const role = `${target.name}_app`
  try {
    await withClient(source.url, (c) => fill(c, readings))
    const config = await withClient(target.url, async (c) => {
      await fill(c, TARGET_READINGS)
      await c.query(`CREATE ROLE ${quoteIdent(role)} NOLOGIN NOSUPERUSER NOBYPASSRLS`)
      const catalog = await introspect(c)
      return parseConfig(proposeConfig(catalog, { defaultTenantId: DEFAULT_TENANT, appRole: role }).config)
    })
    await apply({ databaseUrl: target.url, config, phase: 'all' })
    const base = { databaseUrl: target.url, config, batchPauseMs: 10 }
    const idle = await during(target.url, role, () => pause(IDLE_MS))
    let importRows = 0
    const imported = await during(target.url, role, async () => {
      const result = await importTenant({ ...base, from: source.url, slug: 'imported', name: 'Imported' })
      importRows = result.tables.reduce((a, t) => a + t.rows, 0)
      if (result.tenant?.status !== 'active') throw new Error('the import did not complete')
    })
    let deleted = 0
    const removed = await during(target.url, role, async () => {
      deleted = (await deleteTenant({ ...base, tenant: 'imported' })).deleted
    })
    const left = await withClient(target.url, (c) => c.query<{ n: string }>(`SELECT count(*)::text AS n FROM readings WHERE org_id <> $1`, [DEFAULT_TENANT]))
    if (left.rows[0]?.n !== '0') throw new Error(`the delete left ${left.rows[0]?.n} readings of the imported tenant`)
    return { rows: readings, importRows, idle, import: imported, delete: removed, deleted, batchSize: config.batchSize }
  } finally {
    await target.drop()
    await source.drop()
    await withClient(server.url, (c) => c.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`)).catch(() => undefined)
  }
}

const load = async (): Promise<string> => (await import('node:os')).loadavg().map((l) => l.toFixed(1)).join(' ')

/** WAL of the phase (whole cluster) and the statements of the lifecycle command that wrote most of it. */
function walNote(p: Phase): string {
  const all = [...p.locks.wal]
  const mb = (b: number): string => (b / 1048576).toFixed(0)
  const total = all.reduce((a, [, w]) => ({ bytes: a.bytes + w.bytes, fpi: a.fpi + w.fpi }), { bytes: 0, fpi: 0 })
  const top = all.sort((a, b) => b[1].bytes - a[1].bytes).slice(0, 3).map(([what, w]) => `${mb(w.bytes)} MB, ${w.fpi.toLocaleString('en')} FPI while ${what}`)
  return `WAL ${mb(total.bytes)} MB (${(total.bytes / 1048576 / (p.ms / 1000)).toFixed(1)} MB/s), ${total.fpi.toLocaleString('en')} full-page images (whole cluster; ${top.join('; ')})`
}

function stallNote(p: Phase): string {
  const sorted = [...p.app.writes].sort((a, b) => b - a)
  return `${p.app.writes.length} writes by ${CLIENTS} clients as the app role (default tenant), p95 ${quantile(p.app.writes, 0.95).toFixed(1)} ms, next longest ${sorted.slice(1, 3).map((x) => x.toFixed(0)).join(', ')} ms; ${p.app.failures.length} failed; a statement waited for a lock in ${p.locks.waiting} of ${p.locks.samples} samples${p.locks.on.length > 0 ? ` (${p.locks.on.join(', ')})` : ''}; the command kept its own process's event loop busy for up to ${p.loopMaxMs.toFixed(0)} ms; app statements seen running > 100 ms: ${p.locks.slow.size === 0 ? 'none' : [...p.locks.slow].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([w, k]) => `${k}× ${w}`).join('; ')}; ${walNote(p)}`
}

export default async function tenants(options: BenchOptions): Promise<BenchMeasure[]> {
  // TENANTS_BENCH_ROWS=1000000: one size only (investigation runs).
  const only = Number(process.env['TENANTS_BENCH_ROWS'] ?? 0)
  const sizes = only > 0 ? [only] : options.full ? [100_000, 1_000_000] : [100_000]
  const server = await resolveTestServer()
  try {
    const out: BenchMeasure[] = []
    for (const readings of sizes) {
      const before = await load()
      const r = await run(server, readings)
      const after = await load()
      const n = readings.toLocaleString('en')
      const loadNote = `load ${before} → ${after}`
      const importStall = Math.max(...r.import.app.writes)
      const deleteStall = Math.max(...r.delete.app.writes)
      const idleStall = Math.max(...r.idle.app.writes)
      console.error(`# tenants ${n}: idle stall ${idleStall.toFixed(0)} ms; import ${(r.importRows / (r.import.ms / 1000)).toFixed(0)} rows/s, stall ${importStall.toFixed(0)} ms; delete ${(r.deleted / (r.delete.ms / 1000)).toFixed(0)} rows/s, stall ${deleteStall.toFixed(0)} ms; ${loadNote}`)
      for (const f of new Set([...r.import.app.failures, ...r.delete.app.failures])) console.error(`#   ${f}`)
      console.error(`#   idle: ${stallNote(r.idle)}\n#   import: ${stallNote(r.import)}\n#   delete: ${stallNote(r.delete)}`)
      out.push(
        { name: `tenant import --from, ${n} readings (throughput)`, value: r.importRows / (r.import.ms / 1000), unit: 'rows/s', note: `${r.importRows.toLocaleString('en')} rows (every id remapped) in ${(r.import.ms / 1000).toFixed(1)} s, batches of ${r.batchSize.toLocaleString('en')}, 10 ms pauses; ${server.kind}; ${loadNote}` },
        { name: `longest app write with no lifecycle command (${IDLE_MS / 1000} s before the import), ${n} readings`, value: idleStall, unit: 'ms', note: stallNote(r.idle) },
        { name: `longest app write during tenant import, ${n} readings`, value: importStall, unit: 'ms', limit: STALL_GOAL_MS, note: stallNote(r.import) },
        { name: `tenant delete, ${n} readings (throughput)`, value: r.deleted / (r.delete.ms / 1000), unit: 'rows/s', note: `${r.deleted.toLocaleString('en')} rows in ${(r.delete.ms / 1000).toFixed(1)} s, batches of ${r.batchSize.toLocaleString('en')}, 10 ms pauses; ${loadNote}` },
        { name: `longest app write during tenant delete, ${n} readings`, value: deleteStall, unit: 'ms', limit: STALL_GOAL_MS, note: stallNote(r.delete) },
        { name: `failed app writes during import and delete, ${n} readings`, value: r.import.app.failures.length + r.delete.app.failures.length, unit: 'statements', limit: 0, note: [...r.import.app.failures, ...r.delete.app.failures][0] ?? '' },
      )
    }
    return out
  } finally {
    await server.stop()
  }
}
