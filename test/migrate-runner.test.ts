import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TenantizeError } from '../src/errors.js'
import { migrateDown, migrateStatus, migrateUp, type MigrateEvent } from '../src/migrate/index.js'
import { testDatabase } from './helpers/db.js'
import { migrationsDir } from './helpers/migrations.js'

const db = await testDatabase(import.meta.url)

async function failure(promise: Promise<unknown>): Promise<TenantizeError> {
  try {
    await promise
  } catch (error) {
    assert.ok(error instanceof TenantizeError, `expected a TenantizeError, got ${String((error as Error).stack ?? error)}`)
    return error
  }
  assert.fail('expected the run to fail')
}

const fast = { lockTimeoutMs: 200, retryDelayMs: 50, tries: 3, statementTimeoutMs: 0 }

test('up applies pending migrations in order, records the ledger and the event log, then is a no-op', async () => {
  const t = await db.another('up')
  const dir = await migrationsDir({
    '0001_users.up.sql': 'CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);',
    '0001_users.down.sql': 'DROP TABLE users;',
    '0002_seed.up.sql': "INSERT INTO users VALUES (1, 'a@example.com'), (2, 'b@example.com');",
    '0002_seed.down.sql': 'DELETE FROM users;',
  })
  const events: MigrateEvent[] = []
  const result = await migrateUp({ databaseUrl: t.url, dir, timeouts: fast, onEvent: (e) => events.push(e) })
  assert.deepEqual(result, { direction: 'up', migrations: ['0001_users', '0002_seed'], dryRun: false })
  assert.deepEqual(await t.sql('SELECT count(*)::int AS n FROM users'), [{ n: 2 }])
  const ledger = await t.sql<{ name: string; version: string; checksum: string; applied_by: string; ok: boolean }>(
    'SELECT name, version, checksum, applied_by, duration_ms >= 0 AND applied_at <= now() AS ok FROM tenantize.migrations ORDER BY name',
  )
  assert.deepEqual(ledger.map((r) => [r.name, r.version, r.checksum.length, r.applied_by, r.ok]), [
    ['0001_users', '0001', 64, 'postgres', true],
    ['0002_seed', '0002', 64, 'postgres', true],
  ])
  const log = await t.sql<{ migration: string; direction: string; event: string }>('SELECT migration, direction, event FROM tenantize.migration_events ORDER BY id')
  assert.deepEqual(log.map((r) => `${r.event} ${r.direction} ${r.migration}`), ['start up 0001_users', 'finish up 0001_users', 'start up 0002_seed', 'finish up 0002_seed'])
  assert.deepEqual(events.filter((e) => e.event === 'start' || e.event === 'finish').map((e) => `${e.event} ${'migration' in e ? e.migration : ''}`), [
    'start 0001_users', 'finish 0001_users', 'start 0002_seed', 'finish 0002_seed',
  ])
  assert.ok(events.some((e) => e.event === 'preflight' && e.check === 'server-version' && e.status === 'ok'))

  const again = await migrateUp({ databaseUrl: t.url, dir, timeouts: fast })
  assert.deepEqual(again.migrations, [])
  const status = await migrateStatus({ databaseUrl: t.url, dir })
  assert.deepEqual(status.map((s) => [s.name, s.state]), [['0001_users', 'applied'], ['0002_seed', 'applied']])
})

test('a migration that fails halfway leaves no partial change, records a fail event with SQLSTATE, and points at the line', async () => {
  const t = await db.another('halfway')
  const dir = await migrationsDir({
    '0001_ok.up.sql': 'CREATE TABLE ok (id int);',
    '0002_bad.up.sql': 'CREATE TABLE half (id int);\nINSERT INTO half VALUES (1);\n\nINSERT INTO half\n  SELECT nope FROM half;\nCREATE TABLE never (id int);',
    '0003_later.up.sql': 'CREATE TABLE later (id int);',
  })
  const error = await failure(migrateUp({ databaseUrl: t.url, dir, timeouts: fast }))
  assert.equal(error.code, 'TZ_MIGRATION_FAILED')
  assert.match(error.object ?? '', /0002_bad\.up\.sql:5:10$/)
  assert.match(error.message, /column "nope" does not exist \(SQLSTATE 42703\)\n {2}SELECT nope FROM half\n {9}\^$/)
  assert.match(error.fix ?? '', /rolled back/)
  const tables = await t.sql<{ t: string }>(`SELECT relname AS t FROM pg_class WHERE relname IN ('ok', 'half', 'never', 'later') ORDER BY 1`)
  assert.deepEqual(tables, [{ t: 'ok' }])
  assert.deepEqual(await t.sql('SELECT name FROM tenantize.migrations'), [{ name: '0001_ok' }])
  const fail = await t.sql<{ event: string; sqlstate: string; error: string }>(`SELECT event, sqlstate, error FROM tenantize.migration_events WHERE migration = '0002_bad' ORDER BY id`)
  assert.deepEqual(fail.map((f) => [f.event, f.sqlstate]), [['start', null], ['fail', '42703']])
  assert.match(fail[1]!.error, /column "nope" does not exist/)
})

test('a syntax error in a later file stops the run before anything changes', async () => {
  const t = await db.another('syntax')
  const dir = await migrationsDir({
    '0001_a.up.sql': 'CREATE TABLE a (id int);',
    '0002_b.up.sql': 'CREATE TABLE b (id int);\nCREAT TABLE c ();',
  })
  const error = await failure(migrateUp({ databaseUrl: t.url, dir, timeouts: fast }))
  assert.equal(error.code, 'TZ_MIGRATION_SYNTAX')
  assert.match(error.object ?? '', /0002_b\.up\.sql:2:1$/)
  assert.deepEqual(await t.sql(`SELECT to_regclass('a') AS a, to_regclass('tenantize.migrations') AS l`), [{ a: null, l: null }])
})

test('an applied file that changed is refused, naming it; --allow-changed runs the rest', async () => {
  const t = await db.another('changed')
  const dir = await migrationsDir({ '0001_a.up.sql': 'CREATE TABLE a (id int);' })
  await migrateUp({ databaseUrl: t.url, dir, timeouts: fast })
  await writeFile(join(dir, '0001_a.up.sql'), 'CREATE TABLE a (id bigint);')
  await writeFile(join(dir, '0002_b.up.sql'), 'CREATE TABLE b (id int);')
  const error = await failure(migrateUp({ databaseUrl: t.url, dir, timeouts: fast }))
  assert.equal(error.code, 'TZ_MIGRATION_CHANGED')
  assert.match(error.toLines()[1]!, /0001_a\.up\.sql: changed since it was applied/)
  assert.deepEqual(await t.sql(`SELECT to_regclass('b') AS b`), [{ b: null }])
  const status = await migrateStatus({ databaseUrl: t.url, dir })
  assert.deepEqual(status.map((s) => s.state), ['changed', 'pending'])
  const ok = await migrateUp({ databaseUrl: t.url, dir, timeouts: fast, allowChanged: true })
  assert.deepEqual(ok.migrations, ['0002_b'])
})

test('no-transaction files run statement by statement: CREATE INDEX CONCURRENTLY works', async () => {
  const t = await db.another('concurrently')
  const dir = await migrationsDir({
    '0001_t.up.sql': 'CREATE TABLE t (id int, email text); INSERT INTO t SELECT g, g::text FROM generate_series(1, 1000) g;',
    '0002_idx.up.sql': '-- tenantize:no-transaction\nCREATE INDEX CONCURRENTLY t_email ON t (email);\nCREATE UNIQUE INDEX CONCURRENTLY t_id ON t (id);',
    '0002_idx.down.sql': '-- tenantize:no-transaction\nDROP INDEX CONCURRENTLY t_id;\nDROP INDEX CONCURRENTLY t_email;',
  })
  await migrateUp({ databaseUrl: t.url, dir, timeouts: fast })
  const idx = await t.sql<{ i: string; valid: boolean }>(`SELECT c.relname AS i, x.indisvalid AS valid FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid WHERE x.indrelid = 't'::regclass ORDER BY 1`)
  assert.deepEqual(idx, [{ i: 't_email', valid: true }, { i: 't_id', valid: true }])
  await migrateDown({ databaseUrl: t.url, dir, timeouts: fast })
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM pg_index WHERE indrelid = 't'::regclass`), [{ n: 0 }])
})

test('a failed CREATE INDEX CONCURRENTLY: the invalid index left behind is reported with the fix', async () => {
  const t = await db.another('invalid_index')
  const dir = await migrationsDir({
    '0001_t.up.sql': "CREATE TABLE t (id int, email text); INSERT INTO t VALUES (1, 'dup'), (2, 'dup');",
    '0002_idx.up.sql': '-- tenantize:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_id ON t (id);\nCREATE UNIQUE INDEX CONCURRENTLY t_email_key ON t (email);',
  })
  const error = await failure(migrateUp({ databaseUrl: t.url, dir, timeouts: fast }))
  assert.equal(error.code, 'TZ_MIGRATION_FAILED')
  assert.match(error.object ?? '', /0002_idx\.up\.sql:3(:\d+)?$/)
  assert.match(error.message, /could not create unique index "t_email_key".*23505.*the 1 statement\(s\) before line 3 stayed applied/s)
  const lines = error.toLines()
  assert.equal(lines[1], 'TZ_MIGRATION_FAILED t_email_key: index is INVALID (left by a failed CREATE INDEX CONCURRENTLY) — fix: correct the cause and run again: a concurrent build of the same name drops it first (or DROP INDEX CONCURRENTLY t_email_key)')
  assert.deepEqual(await t.sql(`SELECT name FROM tenantize.migrations ORDER BY 1`), [{ name: '0001_t' }])

  // Fixed data, same file: the INVALID index is dropped and built again (no "already exists").
  await t.sql(`UPDATE t SET email = 'other' WHERE id = 2`)
  const events: MigrateEvent[] = []
  await migrateUp({ databaseUrl: t.url, dir, timeouts: fast, onEvent: (e) => events.push(e) })
  assert.deepEqual(events.filter((e) => e.event === 'repair').map((e) => 'index' in e && [e.index, e.action]), [['t_email_key', 'drop']])
  assert.deepEqual(await t.sql(`SELECT c.relname AS i, x.indisvalid AS valid FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid WHERE x.indrelid = 't'::regclass ORDER BY 1`), [{ i: 't_email_key', valid: true }, { i: 't_id', valid: true }])
})

test('a no-transaction file is recorded only when every index it builds is valid on its table', async () => {
  const t = await db.another('index_elsewhere')
  const dir = await migrationsDir({
    '0001_t.up.sql': 'CREATE TABLE a (id int); CREATE TABLE b (id int); CREATE INDEX shared_name ON a (id);',
    '0002_idx.up.sql': '-- tenantize:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS shared_name ON b (id);',
  })
  const error = await failure(migrateUp({ databaseUrl: t.url, dir, timeouts: fast }))
  assert.equal(error.code, 'TZ_INVALID_INDEX')
  assert.deepEqual(error.toLines(), [
    `TZ_INVALID_INDEX ${join(dir, '0002_idx.up.sql')}: 1 index(es) built by ${join(dir, '0002_idx.up.sql')} are not valid; it is not recorded as done`,
    'TZ_INVALID_INDEX shared_name: exists on another table, not on "b"; the build was skipped (IF NOT EXISTS) — fix: rename one of the two indexes, then run again',
  ])
  assert.deepEqual(await t.sql(`SELECT name FROM tenantize.migrations ORDER BY 1`), [{ name: '0001_t' }])
})

test('statement_timeout applies to each statement', async () => {
  const t = await db.another('stmt_timeout')
  const dir = await migrationsDir({ '0001_slow.up.sql': 'SELECT pg_sleep(0.05);\nSELECT pg_sleep(2);' })
  const error = await failure(migrateUp({ databaseUrl: t.url, dir, timeouts: { ...fast, statementTimeoutMs: 300 } }))
  assert.equal(error.code, 'TZ_MIGRATION_FAILED')
  assert.match(error.message, /statement timeout \(SQLSTATE 57014\)/)
  assert.match(error.object ?? '', /0001_slow\.up\.sql:2/)
})

test('down reverses newest first, --to keeps the target, and a missing down file refuses before running any', async () => {
  const t = await db.another('down')
  const dir = await migrationsDir({
    '0001_a.up.sql': 'CREATE TABLE a (id int);', '0001_a.down.sql': 'DROP TABLE a;',
    '0002_b.up.sql': 'CREATE TABLE b (id int);',
    '0003_c.up.sql': 'CREATE TABLE c (id int);', '0003_c.down.sql': 'DROP TABLE c;',
    '0004_d.up.sql': 'CREATE TABLE d (id int);', '0004_d.down.sql': 'DROP TABLE d;',
  })
  await migrateUp({ databaseUrl: t.url, dir, timeouts: fast })
  const all = await failure(migrateDown({ databaseUrl: t.url, dir, timeouts: fast, all: true }))
  assert.equal(all.code, 'TZ_MIGRATION_NO_DOWN')
  assert.match(all.toLines()[1]!, /0002_b\.down\.sql: does not exist/)
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM tenantize.migrations`), [{ n: 4 }], 'nothing was reversed')
  const one = await migrateDown({ databaseUrl: t.url, dir, timeouts: fast })
  assert.deepEqual(one.migrations, ['0004_d'])
  await migrateUp({ databaseUrl: t.url, dir, timeouts: fast })
  const to = await migrateDown({ databaseUrl: t.url, dir, timeouts: fast, to: '0002_b' })
  assert.deepEqual(to.migrations, ['0004_d', '0003_c'])
  assert.deepEqual(await t.sql(`SELECT name FROM tenantize.migrations ORDER BY 1`), [{ name: '0001_a' }, { name: '0002_b' }])
  assert.deepEqual(await t.sql(`SELECT to_regclass('c') AS c, to_regclass('d') AS d, to_regclass('b')::text AS b`), [{ c: null, d: null, b: 'b' }])
  const log = await t.sql<{ e: string }>(`SELECT event || ' ' || direction || ' ' || migration AS e FROM tenantize.migration_events WHERE direction = 'down' ORDER BY id`)
  assert.deepEqual(log.map((r) => r.e), ['start down 0004_d', 'finish down 0004_d', 'start down 0004_d', 'finish down 0004_d', 'start down 0003_c', 'finish down 0003_c'])
})

test('a failing down migration rolls back and keeps the ledger row', async () => {
  const t = await db.another('down_fail')
  const dir = await migrationsDir({ '0001_a.up.sql': 'CREATE TABLE a (id int);', '0001_a.down.sql': 'DROP TABLE a;\nDROP TABLE not_there;' })
  await migrateUp({ databaseUrl: t.url, dir, timeouts: fast })
  const error = await failure(migrateDown({ databaseUrl: t.url, dir, timeouts: fast }))
  assert.equal(error.code, 'TZ_MIGRATION_FAILED')
  assert.match(error.message, /42P01/)
  assert.deepEqual(await t.sql(`SELECT to_regclass('a')::text AS a, (SELECT count(*)::int FROM tenantize.migrations) AS n`), [{ a: 'a', n: 1 }])
})
