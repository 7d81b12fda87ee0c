import { test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { TenantizeError } from '../src/errors.js'
import { LOCK_KEY, migrateUp, type MigrateEvent } from '../src/migrate/index.js'
import { testDatabase } from './helpers/db.js'
import { migrationsDir, runCli } from './helpers/migrations.js'

const db = await testDatabase(import.meta.url)

async function holdLock(url: string, sql: string): Promise<{ pid: number; release(): Promise<void> }> {
  const client = new pg.Client({ connectionString: url, application_name: 'lock-holder-test' })
  await client.connect()
  await client.query('BEGIN')
  await client.query(sql)
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
  return {
    pid,
    async release() {
      await client.query('COMMIT')
      await client.end()
    },
  }
}

// Generous: the runners are CLI processes started through tsx, which on a loaded machine take many seconds to start.
async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 120_000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

test('two runner processes at once: the second fails fast naming the first; with --lock-wait it waits and finds nothing left to do', async () => {
  const t = await db.another('two_runners')
  await t.sql('CREATE TABLE gate (id int)')
  const dir = await migrationsDir({ '0001_slow.up.sql': 'ALTER TABLE gate ADD COLUMN org_id uuid;' })
  // The test holds the gate table, so the first runner sits inside its migration holding the runner lock.
  const gate = await holdLock(t.url, 'LOCK TABLE gate IN SHARE MODE')
  let released = false
  try {
    const first = runCli(['migrate', 'up', '--db', t.url, '--dir', dir, '--force', '--lock-timeout', '120s'])
    // pg_locks shows every database's locks: other test files run their own runners at the same time.
    const advisory = `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = ${LOCK_KEY.classid} AND objid = ${LOCK_KEY.objid} AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`
    await waitFor(async () => (await t.sql(`${advisory} AND granted`)).length > 0, 'the first runner to take the lock')
    const holder = (await t.sql<{ pid: number }>(`${advisory} AND granted`))[0]!.pid
    const second = await runCli(['migrate', 'up', '--db', t.url, '--dir', dir])
    assert.equal(second.code, 2)
    assert.equal(second.stdout, '')
    assert.match(second.stderr, new RegExp(`^TZ_LOCKED tenantize migration lock: another migration runner is running: pid ${holder} \\(user \\w+, application "tenantize migrate"`))
    assert.match(second.stderr, /fix: wait for it to finish, or pass --lock-wait SECONDS/)
    assert.equal(second.stderr.trim().split('\n').length, 1, 'one line')

    const waiting = runCli(['migrate', 'up', '--db', t.url, '--dir', dir, '--lock-wait', '120s', '--json'])
    await waitFor(async () => (await t.sql(`${advisory} AND NOT granted`)).length > 0, 'the second runner to wait for the lock')
    await gate.release()
    released = true
    const done = await first
    assert.equal(done.code, 0, done.stderr)
    assert.match(done.stdout, /\[1\/1\] ↑ 0001_slow done in/)
    const waited = await waiting
    assert.equal(waited.code, 0, waited.stderr)
    const events = waited.stdout.trim().split('\n').map((l) => JSON.parse(l) as MigrateEvent)
    assert.deepEqual(events.find((e) => e.event === 'plan'), { event: 'plan', direction: 'up', migrations: [], dryRun: false })
    assert.deepEqual(await t.sql(`SELECT event FROM tenantize.migration_events ORDER BY id`), [{ event: 'start' }, { event: 'finish' }])
  } finally {
    if (!released) await gate.release()
  }
})

test('a table lock held until the runner has retried twice: it retries with back-off and succeeds, logging who blocked it', async () => {
  const t = await db.another('retry')
  await t.sql('CREATE TABLE busy (id int)')
  const dir = await migrationsDir({ '0001_alter.up.sql': 'ALTER TABLE busy ADD COLUMN org_id uuid;' })
  const holder = await holdLock(t.url, 'LOCK TABLE busy IN ACCESS SHARE MODE')
  const events: MigrateEvent[] = []
  // Released after the second retry, not after a fixed time: on a loaded machine the runner may take longer than any fixed time to reach the table.
  let released: Promise<void> | undefined
  const onEvent = (e: MigrateEvent): void => {
    events.push(e)
    if (e.event === 'retry' && events.filter((x) => x.event === 'retry').length === 2) released = holder.release()
  }
  try {
    const result = await migrateUp({ databaseUrl: t.url, dir, force: true, timeouts: { lockTimeoutMs: 200, retryDelayMs: 100, tries: 30 }, onEvent })
    assert.deepEqual(result.migrations, ['0001_alter'])
  } finally {
    await (released ?? holder.release()).catch(() => undefined)
  }
  const retries = events.filter((e): e is Extract<MigrateEvent, { event: 'retry' }> => e.event === 'retry')
  assert.ok(retries.length >= 2, `expected retries, saw ${retries.length}`)
  assert.ok(retries.some((r) => r.blockers.includes(holder.pid)), 'the blocker pid is named')
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'busy' AND column_name = 'org_id'`), [{ n: 1 }])
  const log = await t.sql<{ event: string; sqlstate: string | null }>(`SELECT event, sqlstate FROM tenantize.migration_events ORDER BY id`)
  assert.equal(log[0]!.event, 'start')
  assert.ok(log.slice(1, -1).every((l) => l.event === 'retry' && l.sqlstate === '55P03'))
  assert.equal(log.at(-1)!.event, 'finish')
})

test('a lock held forever: the runner gives up after its tries, naming the blocking session, and changes nothing', async () => {
  const t = await db.another('forever')
  await t.sql('CREATE TABLE busy (id int)')
  const dir = await migrationsDir({ '0001_alter.up.sql': 'CREATE TABLE other (id int);\nALTER TABLE busy ADD COLUMN org_id uuid;' })
  const holder = await holdLock(t.url, 'LOCK TABLE busy IN ROW EXCLUSIVE MODE')
  try {
    await migrateUp({ databaseUrl: t.url, dir, force: true, timeouts: { lockTimeoutMs: 150, retryDelayMs: 50, tries: 3 } })
    assert.fail('expected a lock timeout')
  } catch (error) {
    assert.ok(error instanceof TenantizeError)
    assert.equal(error.code, 'TZ_LOCK_TIMEOUT')
    assert.match(error.message, new RegExp(`could not get a lock within 150 ms in 3 tries; blocked by pid ${holder.pid} \\(user \\w+, application "lock-holder-test", state idle in transaction`))
    assert.match(error.fix ?? '', new RegExp(`SELECT pg_terminate_backend\\(${holder.pid}\\)`))
  } finally {
    await holder.release()
  }
  assert.deepEqual(await t.sql(`SELECT to_regclass('other') AS o, (SELECT count(*)::int FROM tenantize.migrations) AS n`), [{ o: null, n: 0 }])
  const log = await t.sql<{ event: string }>(`SELECT event FROM tenantize.migration_events ORDER BY id`)
  assert.deepEqual(log.map((l) => l.event), ['start', 'retry', 'retry', 'fail'])
})
