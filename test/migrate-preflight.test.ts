import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { introspect } from '../src/catalog/index.js'
import { TenantizeError } from '../src/errors.js'
import { findPgDump } from '../src/migrate/backup.js'
import { migrateUp, type MigrateEvent } from '../src/migrate/index.js'
import { testDatabase, type TestDatabase } from './helpers/db.js'
import { migrationsDir } from './helpers/migrations.js'

const db = await testDatabase(import.meta.url)
const fast = { lockTimeoutMs: 200, retryDelayMs: 50, tries: 2 }

async function snapshot(t: TestDatabase): Promise<string> {
  const client = new pg.Client(t.url)
  await client.connect()
  try {
    return JSON.stringify(await introspect(client))
  } finally {
    await client.end()
  }
}

async function failure(promise: Promise<unknown>): Promise<TenantizeError> {
  try {
    await promise
  } catch (error) {
    assert.ok(error instanceof TenantizeError, String(error))
    return error
  }
  assert.fail('expected a failure')
}

async function openTransaction(url: string, sql: string): Promise<{ client: pg.Client; pid: number }> {
  const client = new pg.Client({ connectionString: url, application_name: 'preflight-test' })
  await client.connect()
  await client.query('BEGIN')
  await client.query(sql)
  return { client, pid: (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid }
}

test('--dry-run prints every statement that would run and changes nothing, not even the ledger', async () => {
  const t = await db.another('dry_run')
  await t.sql('CREATE TABLE items (id int)')
  const dir = await migrationsDir({
    '0001_a.up.sql': 'ALTER TABLE items ADD COLUMN org_id uuid;\nCREATE TABLE orgs (id uuid PRIMARY KEY);',
    '0002_b.up.sql': '-- tenantize:no-transaction\nCREATE INDEX CONCURRENTLY items_org ON items (org_id);',
  })
  const before = await snapshot(t)
  const events: MigrateEvent[] = []
  const result = await migrateUp({ databaseUrl: t.url, dir, dryRun: true, onEvent: (e) => events.push(e) })
  assert.deepEqual(result, { direction: 'up', migrations: ['0001_a', '0002_b'], dryRun: true })
  assert.deepEqual(events.filter((e) => e.event === 'would-run'), [
    { event: 'would-run', direction: 'up', migration: '0001_a', noTransaction: false, statements: [{ line: 1, sql: 'ALTER TABLE items ADD COLUMN org_id uuid' }, { line: 2, sql: 'CREATE TABLE orgs (id uuid PRIMARY KEY)' }] },
    { event: 'would-run', direction: 'up', migration: '0002_b', noTransaction: true, statements: [{ line: 2, sql: 'CREATE INDEX CONCURRENTLY items_org ON items (org_id)' }] },
  ])
  assert.equal(await snapshot(t), before, 'the catalog is identical after the dry run')
  assert.deepEqual(await t.sql(`SELECT to_regnamespace('tenantize') AS s`), [{ s: null }])
})

test('pre-flight: a long-running transaction blocks the run unless --force; the check names the session', async () => {
  const t = await db.another('long_tx')
  const dir = await migrationsDir({ '0001_a.up.sql': 'CREATE TABLE a (id int);' })
  const tx = await openTransaction(t.url, 'SELECT 1')
  try {
    await new Promise((r) => setTimeout(r, 1200))
    const error = await failure(migrateUp({ databaseUrl: t.url, dir, timeouts: fast, longTransactionSeconds: 1 }))
    assert.equal(error.code, 'TZ_PREFLIGHT')
    assert.match(error.toLines()[1]!, new RegExp(`^TZ_PREFLIGHT long-transactions: 1 transaction\\(s\\) open longer than 1 s: pid ${tx.pid} \\(\\w+, idle in transaction, .*— fix: .*--force`))
    assert.deepEqual(await t.sql(`SELECT to_regclass('a') AS a`), [{ a: null }])
    const events: MigrateEvent[] = []
    await migrateUp({ databaseUrl: t.url, dir, timeouts: fast, longTransactionSeconds: 1, force: true, onEvent: (e) => events.push(e) })
    assert.ok(events.some((e) => e.event === 'preflight' && e.check === 'long-transactions' && e.status === 'block'))
    assert.equal((await t.sql(`SELECT to_regclass('a')::text AS a`))[0]!['a'], 'a')
  } finally {
    await tx.client.query('ROLLBACK')
    await tx.client.end()
  }
})

test('pre-flight: a lock held on a table the migrations touch blocks the run; untouched tables do not', async () => {
  const t = await db.another('touched')
  await t.sql('CREATE TABLE touched (id int); CREATE TABLE untouched (id int)')
  const dir = await migrationsDir({ '0001_a.up.sql': 'ALTER TABLE public.touched ADD COLUMN org_id uuid;' })
  const other = await openTransaction(t.url, 'LOCK TABLE untouched IN ACCESS EXCLUSIVE MODE')
  const events: MigrateEvent[] = []
  try {
    await migrateUp({ databaseUrl: t.url, dir, timeouts: fast, dryRun: true, onEvent: (e) => events.push(e) })
    assert.deepEqual(events.find((e) => e.event === 'preflight' && e.check === 'table-locks'), {
      event: 'preflight', check: 'table-locks', status: 'ok', message: 'no other session holds a lock on the 1 table(s) the migrations touch',
    })
  } finally {
    await other.client.query('ROLLBACK')
    await other.client.end()
  }
  const tx = await openTransaction(t.url, 'SELECT * FROM touched')
  try {
    const error = await failure(migrateUp({ databaseUrl: t.url, dir, timeouts: fast }))
    assert.equal(error.code, 'TZ_PREFLIGHT')
    assert.match(error.toLines()[1]!, new RegExp(`table-locks: idle or long transactions \\(or strong locks\\) hold locks on tables the migrations touch: touched AccessShareLock by pid ${tx.pid}`))
  } finally {
    await tx.client.query('ROLLBACK')
    await tx.client.end()
  }
})

test('--backup: a failed backup aborts before any change', async () => {
  const t = await db.another('backup_fail')
  const dir = await migrationsDir({ '0001_a.up.sql': 'CREATE TABLE a (id int);' })
  const tmp = await mkdtemp(join(tmpdir(), 'tz-backup-'))
  const previous = process.env['TENANTIZE_PG_DUMP']
  process.env['TENANTIZE_PG_DUMP'] = '/nonexistent/pg_dump'
  try {
    const error = await failure(migrateUp({ databaseUrl: t.url, dir, backupFile: join(tmp, 'b.dump') }))
    assert.equal(error.code, 'TZ_BACKUP')
    assert.match(error.message, /no pg_dump for PostgreSQL \d+ or later found; nothing was changed/)
    assert.deepEqual(await t.sql(`SELECT to_regclass('a') AS a, to_regnamespace('tenantize') AS s`), [{ a: null, s: null }])
    await assert.rejects(stat(join(tmp, 'b.dump')))
  } finally {
    if (previous === undefined) delete process.env['TENANTIZE_PG_DUMP']
    else process.env['TENANTIZE_PG_DUMP'] = previous
    await rm(tmp, { recursive: true, force: true })
  }
})

test('--backup: pg_dump -Fc runs first when a pg_dump for the server exists, else the run stops with the reason', async () => {
  const t = await db.another('backup_ok')
  await t.sql("CREATE TABLE kept (id int); INSERT INTO kept VALUES (42)")
  const dir = await migrationsDir({ '0001_a.up.sql': 'DROP TABLE kept;' })
  const tmp = await mkdtemp(join(tmpdir(), 'tz-backup-'))
  const file = join(tmp, 'before.dump')
  const major = Number((await t.sql<{ v: string }>(`SELECT current_setting('server_version_num') AS v`))[0]!.v.slice(0, -4))
  const pgDump = await findPgDump(major).catch(() => undefined)
  try {
    if (pgDump === undefined) {
      // e.g. embedded PostgreSQL 18 on a machine whose client tools are 15: the run must stop untouched.
      const error = await failure(migrateUp({ databaseUrl: t.url, dir, backupFile: file }))
      assert.equal(error.code, 'TZ_BACKUP')
      assert.deepEqual(await t.sql(`SELECT to_regclass('kept')::text AS k`), [{ k: 'kept' }])
      return
    }
    const events: MigrateEvent[] = []
    await migrateUp({ databaseUrl: t.url, dir, backupFile: file, onEvent: (e) => events.push(e) })
    const backup = events.find((e) => e.event === 'backup')
    assert.ok(backup !== undefined && backup.event === 'backup' && backup.bytes > 0)
    assert.ok(events.indexOf(backup) < events.findIndex((e) => e.event === 'start'), 'backup before the first migration')
    const listing = execFileSync(pgDump.replace(/pg_dump$/, 'pg_restore'), ['--list', file], { encoding: 'utf8' })
    assert.match(listing, /TABLE DATA public kept/)
    const again = await failure(migrateUp({ databaseUrl: t.url, dir: await migrationsDir({ '0001_a.up.sql': 'DROP TABLE kept;', '0002_b.up.sql': 'SELECT 1;' }), backupFile: file }))
    assert.equal(again.code, 'TZ_BACKUP')
    assert.match(again.message, /already exists/)
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
})
