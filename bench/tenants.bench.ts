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

/** The app: {@link CLIENTS} clients as the app role, scoped to the default tenant, writing to the tables the lifecycle command fills or empties. */
function workload(url: string, role: string): { ready: Promise<void>; stop(): Promise<Window> } {
  let running = true
  const window: Window = { writes: [], failures: [] }
  let started = 0
  let markReady = (): void => undefined
  const ready = new Promise<void>((resolve) => { markReady = resolve })
  const clients = Array.from({ length: CLIENTS }, async (_, n) => {
    const client = new pg.Client({ connectionString: url, application_name: APP_NAME })
    await client.connect()
    await client.query(`SET ROLE ${quoteIdent(role)}`)
    await client.query(`SELECT pg_catalog.set_config('tenantize.tenant_id', $1, false)`, [DEFAULT_TENANT])
    // The default tenant's meters keep ids 1…1000 (the imported ones get new ids).
    const meter = (i: number): number => 1 + ((i * 7 + n * 251) % METERS)
    try {
      for (let i = 0; running; i++) {
        const due = performance.now() + PERIOD_MS
        const start = performance.now()
        try {
          if (i % 2 === 0) await client.query('INSERT INTO readings (meter_id, at, kwh) VALUES ($1, now(), $2)', [meter(i), i % 97])
          else await client.query('UPDATE meters SET name = $2 WHERE id = $1', [meter(i), `meter ${i}`])
        } catch (error) {
          window.failures.push(error instanceof Error ? error.message : String(error))
        }
        if (i === 0 && ++started === CLIENTS) markReady()
        window.writes.push(performance.now() - start)
        const wait = due - performance.now()
        if (wait > 0) await pause(wait)
      }
    } finally {
      await client.end()
    }
  })
  return {
    ready: Promise.race([ready, Promise.all(clients).then(() => { throw new Error('the workload ended before every client ran a statement') })]),
    async stop() {
      running = false
      await Promise.all(clients)
      return window
    },
  }
}

interface Locks { samples: number; waiting: number; on: string[] }

/** Every 20 ms: does an app statement wait for a lock (pg_stat_activity), and on what (pg_locks)? */
function lockSampler(url: string): { stop(): Promise<Locks> } {
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

interface Phase { ms: number; app: Window; locks: Locks }

async function during(url: string, role: string, fn: () => Promise<unknown>): Promise<Phase> {
  const w = workload(url, role)
  await w.ready
  await pause(300)
  const sampler = lockSampler(url)
  const t0 = performance.now()
  try {
    await fn()
  } catch (error) {
    await Promise.allSettled([w.stop(), sampler.stop()])
    throw error
  }
  const ms = performance.now() - t0
  await pause(300)
  const app = await w.stop()
  return { ms, app, locks: await sampler.stop() }
}

interface Run { rows: number; importRows: number; import: Phase; delete: Phase; deleted: number; batchSize: number }

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
    return { rows: readings, importRows, import: imported, delete: removed, deleted, batchSize: config.batchSize }
  } finally {
    await target.drop()
    await source.drop()
    await withClient(server.url, (c) => c.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`)).catch(() => undefined)
  }
}

const load = async (): Promise<string> => (await import('node:os')).loadavg().map((l) => l.toFixed(1)).join(' ')

function stallNote(p: Phase): string {
  const sorted = [...p.app.writes].sort((a, b) => b - a)
  return `${p.app.writes.length} writes by ${CLIENTS} clients as the app role (default tenant), p95 ${quantile(p.app.writes, 0.95).toFixed(1)} ms, next longest ${sorted.slice(1, 3).map((x) => x.toFixed(0)).join(', ')} ms; ${p.app.failures.length} failed; a statement waited for a lock in ${p.locks.waiting} of ${p.locks.samples} samples${p.locks.on.length > 0 ? ` (${p.locks.on.join(', ')})` : ''}`
}

export default async function tenants(options: BenchOptions): Promise<BenchMeasure[]> {
  const sizes = options.full ? [100_000, 1_000_000] : [100_000]
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
      console.error(`# tenants ${n}: import ${(r.importRows / (r.import.ms / 1000)).toFixed(0)} rows/s, stall ${importStall.toFixed(0)} ms; delete ${(r.deleted / (r.delete.ms / 1000)).toFixed(0)} rows/s, stall ${deleteStall.toFixed(0)} ms; ${loadNote}`)
      for (const f of new Set([...r.import.app.failures, ...r.delete.app.failures])) console.error(`#   ${f}`)
      out.push(
        { name: `tenant import --from, ${n} readings (throughput)`, value: r.importRows / (r.import.ms / 1000), unit: 'rows/s', note: `${r.importRows.toLocaleString('en')} rows (every id remapped) in ${(r.import.ms / 1000).toFixed(1)} s, batches of ${r.batchSize.toLocaleString('en')}, 10 ms pauses; ${server.kind}; ${loadNote}` },
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
