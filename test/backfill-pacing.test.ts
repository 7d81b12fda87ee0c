import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { apply, rollback, type BatchTiming } from '../src/apply/index.js'
import { batchPacing, paceBatch, type BatchPacing } from '../src/apply/apply.js'
import { introspect } from '../src/catalog/index.js'
import type { MigrateEvent } from '../src/migrate/index.js'
import { proposeConfig } from '../src/plan/classify.js'
import { parseConfig, type TenantizeConfig } from '../src/plan/config.js'
import { testDatabase, type TestDatabase } from './helpers/db.js'

// Backfill batches sized by time (issue #14 goal 4: each batch ≤ 200 ms) and paced so the app keeps a share of
// the CPU (goal 6). The durations here are given, never measured: no assertion depends on the machine's speed.

const pacing: BatchPacing = { maxSize: 5000, targetMs: 100, share: 1, minPauseMs: 10 }

/** The sizes a run of batches with these durations (ms) gets, starting from the largest. */
function sizes(p: BatchPacing, durations: (size: number, i: number) => number, n: number): number[] {
  const out: number[] = []
  let size = p.maxSize
  for (let i = 0; i < n; i++) {
    out.push(size)
    size = paceBatch(p, size, durations(size, i)).size
  }
  return out
}

test('a batch over the target shrinks the next one to what would have taken the target; fast ones grow it back by half, up to batchSize', () => {
  // 944 ms for 5,000 rows (the longest batch measured at load 15–19): the next 529 rows take ~100 ms at that rate.
  assert.deepEqual(paceBatch(pacing, 5000, 944), { size: 529, pauseMs: 10 })
  // Under half the target: ×1.5, rounded up; between half and all of it: unchanged.
  assert.equal(paceBatch(pacing, 529, 20).size, 794)
  assert.equal(paceBatch(pacing, 529, 49.9).size, 794)
  assert.equal(paceBatch(pacing, 529, 50).size, 529)
  assert.equal(paceBatch(pacing, 529, 100).size, 529)
  assert.equal(paceBatch(pacing, 4000, 10).size, 5000, 'never above batchSize')
  // One slow batch, then fast ones: down at once, back up in steps.
  assert.deepEqual(sizes(pacing, (_, i) => (i === 1 ? 400 : 10), 8), [5000, 5000, 1250, 1875, 2813, 4220, 5000, 5000])
})

test('a steady rate settles at the target: a batch of n rows taking 5 ms + n / 10 µs settles where it takes 50–100 ms', () => {
  const cost = (size: number): number => 5 + size / 10
  const run = sizes(pacing, cost, 30)
  const settled = run.slice(-10)
  for (const size of settled) assert.ok(cost(size) >= 50 && cost(size) <= 100, `${size} rows take ${cost(size)} ms`)
  assert.ok(run.every((s) => s >= 1 && s <= 5000))
})

test('never below 1 % of batchSize nor 1 row; target 0 keeps every batch at batchSize', () => {
  assert.equal(paceBatch(pacing, 5000, 1e9).size, 50)
  assert.equal(paceBatch({ ...pacing, maxSize: 7 }, 7, 1e9).size, 1)
  assert.equal(paceBatch({ ...pacing, maxSize: 1 }, 1, 1e9).size, 1)
  assert.equal(paceBatch({ ...pacing, maxSize: 1 }, 1, 0).size, 1)
  assert.deepEqual(sizes({ ...pacing, targetMs: 0 }, (_, i) => (i % 2 === 0 ? 5000 : 1), 5), [5000, 5000, 5000, 5000, 5000])
})

test('the pause is the batch time × (1 − share) / share, at least batchPauseMs', () => {
  assert.equal(paceBatch({ ...pacing, share: 0.5 }, 5000, 80).pauseMs, 80)
  assert.equal(paceBatch({ ...pacing, share: 0.25 }, 5000, 80).pauseMs, 240)
  assert.equal(paceBatch({ ...pacing, share: 0.25 }, 5000, 2).pauseMs, 10)
  assert.equal(paceBatch({ ...pacing, share: 1 }, 5000, 900).pauseMs, 10)
  assert.equal(paceBatch({ ...pacing, share: 1, minPauseMs: 0 }, 5000, 900).pauseMs, 0)
})

test('pacing options are checked: a TypeError names the option', () => {
  const config = { batchSize: 5000 } as TenantizeConfig
  assert.deepEqual(batchPacing({ config }), { maxSize: 5000, targetMs: 100, share: 1, minPauseMs: 10 })
  assert.deepEqual(batchPacing({ config, batchSize: 50, batchTargetMs: 0, backfillShare: 0.5, batchPauseMs: 0 }), { maxSize: 50, targetMs: 0, share: 0.5, minPauseMs: 0 })
  assert.throws(() => batchPacing({ config, batchSize: 0 }), /batchSize/)
  assert.throws(() => batchPacing({ config, batchTargetMs: -1 }), /batchTargetMs/)
  assert.throws(() => batchPacing({ config, backfillShare: 0 }), /backfillShare/)
  assert.throws(() => batchPacing({ config, backfillShare: 1.5 }), /backfillShare/)
  assert.throws(() => batchPacing({ config, batchPauseMs: Number.NaN }), /batchPauseMs/)
})

const db = await testDatabase(import.meta.url)
const fast = { lockTimeoutMs: 500, retryDelayMs: 50, tries: 20 }

async function fixture(label: string): Promise<{ t: TestDatabase; config: TenantizeConfig }> {
  const t = await db.another(label)
  await t.sql(`
    CREATE TABLE clients (id bigint PRIMARY KEY, name text NOT NULL);
    CREATE TABLE projects (id bigint PRIMARY KEY, client_id bigint NOT NULL REFERENCES clients, name text);
    CREATE TABLE tasks (id bigint PRIMARY KEY, project_id bigint NOT NULL REFERENCES projects, title text);
    INSERT INTO clients VALUES (1, 'one'), (2, 'two');
    INSERT INTO projects SELECT g, 1 + g % 2, 'p' || g FROM generate_series(1, 10) g;
    INSERT INTO tasks SELECT g, 1 + g % 10, 't' || g FROM generate_series(1, 1000) g;`)
  const client = new pg.Client(t.url)
  await client.connect()
  try {
    const role = `${t.name}_app`
    after(() => db.sql(`DROP ROLE IF EXISTS "${role}"`).catch(() => undefined))
    const proposed = proposeConfig(await introspect(client), { tenantTable: { schema: 'public', name: 'clients' }, defaultTenantId: '1', appRole: role, tenantColumn: 'org_id' }).config
    return { t, config: parseConfig({ ...proposed, batchSize: 200 }) }
  } finally {
    await client.end()
  }
}

/** The backfill of tasks: the batches as onBatch saw them and the rows done after each (progress events). */
async function backfillTasks(t: TestDatabase, config: TenantizeConfig, options: { batchTargetMs: number }): Promise<{ batches: BatchTiming[]; done: number[] }> {
  const batches: BatchTiming[] = []
  const done: number[] = []
  await apply({ databaseUrl: t.url, config, phase: 'schema', timeouts: fast, batchPauseMs: 0, ...options,
    onBatch: (b) => { if (b.step.includes('public.tasks')) batches.push(b) },
    onEvent: (e: MigrateEvent) => { if (e.event === 'progress' && e.migration.includes('public.tasks')) done.push(e.done) } })
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.org_id IS DISTINCT FROM p.client_id`), [{ n: 0 }], 'every row filled from its parent')
  assert.deepEqual(await t.sql(`SELECT step FROM tenantize.backfill_progress`), [], 'no progress left')
  return { batches, done }
}

test('apply sizes each batch from the one before: a target no batch can meet (1 ns) takes the next batches down to 1 % of batchSize, every row still filled once', async () => {
  const { t, config } = await fixture('pacing_shrink')
  const { batches, done } = await backfillTasks(t, config, { batchTargetMs: 1e-6 })
  assert.deepEqual(batches.slice(0, 3).map((b) => [b.size, b.rows, b.nextSize]), [[200, 200, 2], [2, 2, 2], [2, 2, 2]])
  assert.equal(batches.length, 1 + 800 / 2)
  assert.deepEqual(done, batches.map((_, i) => Math.min(1000, 200 + 2 * i)), 'each progress event counts its batch')
  for (const b of batches) assert.ok(b.ms >= 0 && b.pauseMs === 0, `${b.ms} ms, paused ${b.pauseMs} ms`)
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
})

test('batchTargetMs 0: every batch has batchSize rows whatever it took', async () => {
  const { t, config } = await fixture('pacing_fixed')
  const { batches, done } = await backfillTasks(t, config, { batchTargetMs: 0 })
  assert.deepEqual(batches.map((b) => [b.size, b.rows, b.nextSize]), [[200, 200, 200], [200, 200, 200], [200, 200, 200], [200, 200, 200], [200, 200, 200]])
  assert.deepEqual(done, [200, 400, 600, 800, 1000])
})
