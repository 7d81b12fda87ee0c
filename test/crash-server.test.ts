import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { testDatabase, type TestDatabase } from './helpers/db.js'
import {
  assertApplied, assertClean, assertRolledBack, finish, fixture, holder, reference, restartableServer, runnerSessions, startCli, until, type Child, type Fixture, type Reference,
} from './helpers/crash.js'

/**
 * kill -9 of the CLI while it waits inside a concurrent index build and inside a backfill batch (the test holds
 * the snapshot / row lock it waits for, so the place is certain), and the server itself crashing (immediate
 * shutdown) and restarting while apply and rollback run: the command run again finishes, and the schema and every
 * row equal a clean run's.
 */
const db = await testDatabase(import.meta.url)
const ref = await reference(db, 'srv_ref')

const cli = (f: Fixture, command: 'apply' | 'rollback'): Child =>
  startCli([command, '--db', f.t.url, '--config', f.configFile, '--yes', '--force', '--lock-timeout', '10min', ...(command === 'apply' ? ['--batch-size', '50'] : [])])

/**
 * Apply, stopped inside the backfill of tasks at the batch holding row `id`: a first session blocks the step
 * that adds the column (the runner waits), a second one queues a row lock on `id` behind it, then the first lets
 * go. The second gets its row lock the moment the step commits, long before the batches (with their pauses)
 * reach that row, and the batch that does waits for it. Returns the running CLI and the row lock.
 */
async function applyStoppedInBackfill(f: Fixture, id: number): Promise<{ run: Child; row: { release(): Promise<void> } }> {
  const table = await holder(f.t.url, ['BEGIN', 'LOCK TABLE tasks IN ACCESS SHARE MODE'])
  const run = cli(f, 'apply')
  await until('the runner to wait for tasks', () => runnerWaits(f.t))
  const row = new pg.Client(f.t.url)
  await row.connect()
  row.on('error', () => undefined)
  await row.query('BEGIN')
  const rowPid = (await row.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
  const locked = row.query('SELECT * FROM tasks WHERE id = $1 FOR UPDATE', [id])
  await until('the row lock to queue behind the runner', async () => (await f.t.sql<{ w: string | null }>(`SELECT wait_event_type AS w FROM pg_stat_activity WHERE pid = $1`, [rowPid]))[0]?.w === 'Lock')
  await table.release()
  await locked
  await until('the backfill to wait for the locked row', () => runnerWaits(f.t))
  return { run, row: { release: () => row.query('ROLLBACK').then(() => undefined, () => undefined).then(() => row.end().catch(() => undefined)) } }
}

/** Whether the runner's session of `t` waits for a heavyweight lock. */
const runnerWaits = async (t: TestDatabase): Promise<boolean> =>
  (await t.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tenantize migrate' AND wait_event_type = 'Lock'`))[0]!.n > 0

test('kill -9 while a concurrent index build waits for an old snapshot: an INVALID index is left; apply again repairs it and finishes', async () => {
  const f = await fixture(db, 'srv_cic')
  const snapshot = await holder(f.t.url, ['BEGIN ISOLATION LEVEL REPEATABLE READ', 'SELECT 1'])
  try {
    const run = cli(f, 'apply')
    await until('a concurrent build of the runner to wait for the old snapshot', async () =>
      (await f.t.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_progress_create_index p JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'tenantize migrate' AND p.phase = 'waiting for old snapshots' AND p.datid = (SELECT oid FROM pg_database WHERE datname = current_database())`))[0]!.n > 0)
    run.kill('SIGKILL')
    assert.equal((await run.done).signal, 'SIGKILL')
    // The server notices the dead client (client_connection_check_interval) and cancels the build.
    await until('the killed runner\'s sessions to end', async () => (await runnerSessions(f.t)) === 0)
  } finally {
    await snapshot.release()
  }
  assert.equal((await f.t.sql(`SELECT 1 FROM pg_index WHERE NOT indisvalid`)).length, 1, 'the build was cut short: one INVALID index')
  await finish(f, 'apply')
  await assertApplied(f, ref)
  const repairs = await f.t.sql<{ error: string }>(`SELECT error FROM tenantize.migration_events WHERE event = 'repair'`)
  assert.equal(repairs.length, 1, 'the re-run dropped the INVALID index and built it again')
})

test('kill -9 while a backfill batch waits for a row lock: the batches before it are kept, the one under way is not; apply again finishes', async () => {
  const f = await fixture(db, 'srv_batch')
  const { run, row } = await applyStoppedInBackfill(f, 333)
  try {
    run.kill('SIGKILL')
    assert.equal((await run.done).signal, 'SIGKILL')
    await until('the killed runner\'s sessions to end', async () => (await runnerSessions(f.t)) === 0)
  } finally {
    await row.release()
  }
  const saved = await f.t.sql<{ rows_done: string }>(`SELECT rows_done FROM tenantize.backfill_progress`)
  assert.equal(saved.length, 1)
  assert.ok(Number(saved[0]!.rows_done) > 0 && Number(saved[0]!.rows_done) < 333, `the batches before the locked row were kept (${saved[0]!.rows_done})`)
  assert.deepEqual(await f.t.sql(`SELECT count(*)::int AS n FROM tasks WHERE id >= 333 AND org_id IS NOT NULL`), [{ n: 0 }], 'the batch under way was rolled back')
  await finish(f, 'apply')
  await assertApplied(f, ref)
})

test('the server crashes (immediate shutdown) while apply waits in a backfill and while rollback waits for a lock; after a restart both finish', async () => {
  const server = await restartableServer()
  after(() => server.stop())
  // The server is another version than the suite's, maybe: compare with a clean run on it.
  const local: Reference = await reference(server.db, 'ref')
  const f = await fixture(server.db, 'crash')

  const { run, row } = await applyStoppedInBackfill(f, 222)
  await server.crash()
  const exit = await run.done
  await row.release()
  assert.equal(exit.code, 2, `apply ends with an error, not a crash of its own:\n${exit.stderr}`)
  assert.match(exit.stderr, /^TZ_CONNECTION database connection: the connection to the server was lost: .* — fix: check that the server is up again .*run tenantize apply again: it resumes/m, 'a clear error with its fix')
  assert.doesNotMatch(exit.stderr, /\n\s+at /, 'no stack trace')
  await server.start()
  await finish(f, 'apply')
  await assertApplied(f, local)

  const lock = await holder(f.t.url, ['BEGIN', 'LOCK TABLE notes IN ACCESS SHARE MODE'])
  const back = cli(f, 'rollback')
  await until('rollback to wait for the lock on notes', () => runnerWaits(f.t))
  await server.crash()
  const exit2 = await back.done
  await lock.release()
  assert.equal(exit2.code, 2, exit2.stderr)
  assert.match(exit2.stderr, /^TZ_CONNECTION database connection: the connection to the server was lost: .*run tenantize rollback again: it resumes/m)
  assert.doesNotMatch(exit2.stderr, /\n\s+at /, 'no stack trace')
  await server.start()
  await finish(f, 'rollback')
  await assertRolledBack(f, local)
  await assertClean(f.t)
})
