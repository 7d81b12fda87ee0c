import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { apply } from '../src/apply/index.js'
import { introspect } from '../src/catalog/index.js'
import type { MigrateEvent } from '../src/migrate/index.js'
import { proposeConfig } from '../src/plan/classify.js'
import { parseConfig } from '../src/plan/config.js'
import { LOCK_LEVELS, type LockLevel } from '../src/plan/steps.js'
import { testDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)

const MODES: Record<string, LockLevel> = {
  AccessShareLock: 'ACCESS SHARE',
  RowShareLock: 'ROW SHARE',
  RowExclusiveLock: 'ROW EXCLUSIVE',
  ShareUpdateExclusiveLock: 'SHARE UPDATE EXCLUSIVE',
  ShareLock: 'SHARE',
  ShareRowExclusiveLock: 'SHARE ROW EXCLUSIVE',
  ExclusiveLock: 'EXCLUSIVE',
  AccessExclusiveLock: 'ACCESS EXCLUSIVE',
}

test('pg_locks sampled during every step while an app writes: no step takes a stronger table lock than the plan declares', async () => {
  await db.sql(`
    CREATE TABLE clients (id bigint PRIMARY KEY, name text NOT NULL UNIQUE);
    CREATE TABLE projects (id bigserial PRIMARY KEY, client_id bigint NOT NULL REFERENCES clients, code text NOT NULL UNIQUE);
    CREATE TABLE tasks (id bigserial PRIMARY KEY, project_id bigint NOT NULL REFERENCES projects, title text);
    INSERT INTO clients VALUES (1, 'one'), (2, 'two');
    INSERT INTO projects (client_id, code) SELECT 1 + g % 2, 'P' || g FROM generate_series(1, 50) g;
    INSERT INTO tasks (project_id, title) SELECT 1 + g % 50, 't' || g FROM generate_series(1, 20000) g;
    ANALYZE;`)
  const admin = new pg.Client(db.url)
  await admin.connect()
  const role = `${db.name}_app`
  after(() => db.sql(`DROP ROLE IF EXISTS "${role}"`).catch(() => undefined))
  const catalog = await introspect(admin)
  await admin.end()
  const config = parseConfig({ ...proposeConfig(catalog, { tenantTable: { schema: 'public', name: 'clients' }, defaultTenantId: '1', appRole: role }).config, batchSize: 1000 })

  // Which step is running, from the runner's events; each sample is checked against the step(s) running
  // when it was taken and when its answer came back.
  const declared = new Map<string, LockLevel>()
  let current: string | null = null
  const onEvent = (e: MigrateEvent): void => {
    if (e.event === 'start') current = e.migration
    if (e.event === 'finish' || e.event === 'fail') current = null
  }
  const monitor = new pg.Client(db.url)
  await monitor.connect()
  const samples: { mode: string; table: string; steps: (string | null)[] }[] = []
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      const before = current
      const { rows } = await monitor.query<{ mode: string; relname: string }>(
        `SELECT l.mode, c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE l.locktype = 'relation' AND l.granted AND c.relkind IN ('r', 'p') AND n.nspname = 'public'
            AND l.pid IN (SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tenantize migrate')`,
      )
      for (const r of rows) samples.push({ mode: r.mode, table: r.relname, steps: [before, current] })
    }
  })()
  let writing = true
  let written = 0
  const writer = (async () => {
    const w = new pg.Client(db.url)
    await w.connect()
    while (writing) {
      await w.query(`INSERT INTO tasks (project_id, title) VALUES ($1, 'live')`, [1 + (written % 50)])
      written++
    }
    await w.end()
  })()

  try {
    const result = await apply({ databaseUrl: db.url, config, phase: 'schema', timeouts: { lockTimeoutMs: 1000, tries: 20, retryDelayMs: 50 }, batchPauseMs: 0, onEvent })
    result.plan.steps.forEach((s, i) => declared.set(`${String(i + 1).padStart(4, '0')}_${s.id}`, s.lock))
  } finally {
    sampling = false
    writing = false
    await sampler
    await writer
    await monitor.end()
  }

  assert.ok(samples.length > 0, 'the runner was seen holding table locks')
  const rank = (l: LockLevel): number => LOCK_LEVELS.indexOf(l)
  const stronger = samples.filter((s) => {
    const held = MODES[s.mode]
    assert.ok(held !== undefined, `known lock mode ${s.mode}`)
    const allowed = s.steps.filter((x): x is string => x !== null).map((x) => declared.get(x) ?? 'none')
    return allowed.length > 0 && allowed.every((a) => rank(held) > rank(a))
  })
  assert.deepEqual(stronger.map((s) => `${s.steps.join(' / ')}: ${s.mode} on ${s.table}`), [])
  const seen = new Set(samples.map((s) => s.mode))
  assert.ok(seen.has('ShareUpdateExclusiveLock'), `validations and concurrent index builds were sampled (${[...seen].join(', ')})`)
  assert.ok(written > 0)
  assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM tasks WHERE title = 'live'`), [{ n: written }], 'no write lost')
  assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM tasks WHERE org_id IS NULL`), [{ n: 0 }])
})
