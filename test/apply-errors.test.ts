import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { apply } from '../src/apply/index.js'
import { introspect } from '../src/catalog/index.js'
import { TenantizeError } from '../src/errors.js'
import { LOCK_KEY, migrateUp, runUnits, type MigrateEvent } from '../src/migrate/index.js'
import { proposeConfig } from '../src/plan/classify.js'
import { parseConfig, type TenantizeConfig } from '../src/plan/config.js'
import { testDatabase, type TestDatabase } from './helpers/db.js'
import { migrationsDir, runCli } from './helpers/migrations.js'

const db = await testDatabase(import.meta.url)
const dir = await mkdtemp(join(tmpdir(), 'tz-apply-errors-'))
after(() => rm(dir, { recursive: true, force: true }))
const fast = { lockTimeoutMs: 200, retryDelayMs: 10, tries: 3 }

const SCHEMA = `
  CREATE TABLE clients (id bigint PRIMARY KEY, name text NOT NULL);
  CREATE TABLE projects (id bigserial PRIMARY KEY, client_id bigint NOT NULL REFERENCES clients, name text);
  CREATE TABLE tasks (id bigserial PRIMARY KEY, project_id bigint NOT NULL REFERENCES projects, title text);
  INSERT INTO clients VALUES (1, 'one'), (2, 'two');
  INSERT INTO projects (client_id, name) SELECT 1 + g % 2, 'p' || g FROM generate_series(1, 20) g;
  INSERT INTO tasks (project_id, title) SELECT 1 + g % 20, 't' || g FROM generate_series(1, 300) g;`

async function configFor(t: TestDatabase): Promise<TenantizeConfig> {
  const client = new pg.Client(t.url)
  await client.connect()
  try {
    return parseConfig(proposeConfig(await introspect(client), { tenantTable: { schema: 'public', name: 'clients' }, defaultTenantId: '1', appRole: t.role('app') }).config)
  } finally {
    await client.end()
  }
}

async function failure(promise: Promise<unknown>): Promise<TenantizeError> {
  const error = await promise.then(() => undefined, (e: unknown) => e)
  assert.ok(error instanceof TenantizeError, `expected a TenantizeError, got ${String((error as Error | undefined)?.stack ?? error)}`)
  return error
}

test('a path column the database does not have is a TZ_CONFIG before step 1, with --dry-run too, never TZ_INTERNAL', async () => {
  const t = await db.another('config_columns')
  await t.sql(SCHEMA)
  const good = await configFor(t)
  const path = good.tables['public.tasks']!.path!
  const config = parseConfig({ ...good, tables: { ...good.tables, 'public.tasks': { ...good.tables['public.tasks']!, path: { ...path, columns: ['project'], parentColumns: ['ident'] } } } })
  for (const dryRun of [true, false]) {
    const error = await failure(apply({ databaseUrl: t.url, config, phase: 'schema', dryRun, timeouts: fast }))
    assert.equal(error.code, 'TZ_CONFIG')
    assert.deepEqual(error.toLines().slice(1), [
      'TZ_CONFIG tables.public.tasks.path.columns: names column project of public.tasks, which does not exist — fix: correct the column name (the columns of the foreign key), or move one of tables.public.tasks.alternatives into path',
      'TZ_CONFIG tables.public.tasks.path.parentColumns: names column ident of public.projects, which does not exist — fix: correct the column name (the columns of the foreign key), or move one of tables.public.tasks.alternatives into path',
    ])
  }
  assert.deepEqual(await t.sql(`SELECT to_regnamespace('tenantize') AS s`), [{ s: null }], 'nothing was changed')
  const file = join(dir, 'columns.json')
  await writeFile(file, JSON.stringify(config))
  const cli = await runCli(['apply', '--db', t.url, '--config', file, '--yes'])
  assert.equal(cli.code, 2)
  assert.match(cli.stderr, /^TZ_CONFIG tenantize\.config\.json: 2 problem\(s\)/)
  assert.doesNotMatch(cli.stderr, /TZ_INTERNAL/)
})

test('serialization failures and deadlocks are retried with back-off like lock timeouts; when every try fails: TZ_TRANSIENT', async () => {
  const t = await db.another('transient')
  await t.sql('CREATE SEQUENCE tries')
  // Fails with 40001 on its first try only (a sequence is not rolled back with the transaction).
  const dirOk = await migrationsDir({ '0001_conflict.up.sql': `DO $$ BEGIN IF nextval('tries') < 2 THEN RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001'; END IF; END $$;\nCREATE TABLE done (id int);` })
  const events: MigrateEvent[] = []
  await migrateUp({ databaseUrl: t.url, dir: dirOk, timeouts: fast, onEvent: (e) => events.push(e) })
  assert.deepEqual(events.filter((e) => e.event === 'retry').map((e) => e.event === 'retry' && e.attempt), [2])
  assert.deepEqual(await t.sql(`SELECT event, sqlstate FROM tenantize.migration_events WHERE event = 'retry'`), [{ event: 'retry', sqlstate: '40001' }])
  assert.deepEqual(await t.sql(`SELECT to_regclass('done')::text AS t`), [{ t: 'done' }])

  const dirBad = await migrationsDir({ '0002_deadlock.up.sql': `DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END $$;` })
  const error = await failure(migrateUp({ databaseUrl: t.url, dir: dirBad, timeouts: fast }))
  assert.equal(error.code, 'TZ_TRANSIENT')
  assert.match(error.message, /deadlock detected \(SQLSTATE 40P01\)/)
  assert.match(error.fix ?? '', /^a concurrent transaction conflicted/)
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM tenantize.migration_events WHERE migration = '0002_deadlock' AND event = 'retry'`), [{ n: 2 }])
})

test('a PostgreSQL error from a custom unit (a backfill) gets the code of its SQLSTATE class, the unit as object and a fix', async () => {
  const t = await db.another('sqlstate_classes')
  const run = (sql: string): Promise<unknown> =>
    runUnits('up', { databaseUrl: t.url, scope: 'test', timeouts: fast }, async () => [
      { name: '0001_custom', version: '1', checksum: '0'.repeat(64), source: 'plan step custom', noTransaction: false, statements: [], custom: async (ctx) => { await ctx.client.query(sql) } },
    ])
  const cases: [string, string, RegExp][] = [
    ['SELECT 1 / 0', 'TZ_DATA', /division by zero \(SQLSTATE 22012\)/],
    ['SELECT * FROM not_there', 'TZ_MIGRATION_FAILED', /relation "not_there" does not exist \(SQLSTATE 42P01\)/],
    [`DO $$ BEGIN RAISE EXCEPTION 'no' USING ERRCODE = '42501'; END $$`, 'TZ_PRIVILEGE', /no \(SQLSTATE 42501\)/],
    [`DO $$ BEGIN RAISE EXCEPTION 'disk' USING ERRCODE = '53100'; END $$`, 'TZ_RESOURCES', /disk \(SQLSTATE 53100\)/],
    [`DO $$ BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = 'XX000'; END $$`, 'TZ_SERVER', /boom \(SQLSTATE XX000\)/],
  ]
  for (const [sql, code, message] of cases) {
    const error = await failure(run(sql))
    assert.equal(error.code, code, sql)
    assert.match(error.message, message)
    assert.equal(error.object, 'plan step custom')
    assert.ok((error.fix ?? '').length > 0)
  }
})

/** Run the CLI in the background; `exited` turns true when it has ended. */
function spawnCli(args: readonly string[]): { done: Promise<{ code: number | null; stdout: string; stderr: string }>; exited(): boolean } {
  const env = { ...process.env }
  delete env['DATABASE_URL']
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  let ended = false
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code) => {
      ended = true
      resolve({ code, stdout, stderr })
    })
  })
  return { done, exited: () => ended }
}

test('apply and rollback take --lock-wait: TZ_LOCKED advises it, and with it the run waits for the other runner', async () => {
  const t = await db.another('lock_wait')
  await t.sql(SCHEMA)
  const file = join(dir, 'lock-wait.json')
  await writeFile(file, JSON.stringify(await configFor(t)))
  const holder = new pg.Client(t.url)
  await holder.connect()
  try {
    await holder.query('SELECT pg_advisory_lock($1, $2)', [LOCK_KEY.classid, LOCK_KEY.objid])
    const refused = await runCli(['apply', '--db', t.url, '--config', file, '--yes', '--phase', 'schema'])
    assert.equal(refused.code, 2)
    assert.match(refused.stderr, /^TZ_LOCKED tenantize migration lock: another migration runner is running: pid \d+.* — fix: wait for it to finish, or pass --lock-wait SECONDS to wait for it\n/)
    const short = await runCli(['rollback', '--db', t.url, '--config', file, '--yes', '--lock-wait', '200ms'])
    assert.equal(short.code, 2)
    assert.match(short.stderr, /^TZ_LOCKED .*fix: wait longer \(--lock-wait\), or stop the other runner/)

    const waiting = spawnCli(['apply', '--db', t.url, '--config', file, '--yes', '--phase', 'schema', '--lock-wait', '60s'])
    // Release the lock once the runner is seen waiting for it.
    for (;;) {
      const { rows } = await holder.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = 'tenantize migrate'`)
      if (rows[0]!.n > 0 || waiting.exited()) break
      await new Promise((r) => setTimeout(r, 50))
    }
    await holder.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_KEY.classid, LOCK_KEY.objid])
    const result = await waiting.done
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /Done: \d+ step\(s\) up/)
  } finally {
    await holder.end()
  }
})

test('a role without CREATE on the schema is refused before anything runs, --dry-run too, with the GRANT that fixes it', async () => {
  const t = await db.another('privileges')
  await t.sql(SCHEMA)
  const config = await configFor(t)
  const file = join(dir, 'privileges.json')
  await writeFile(file, JSON.stringify(config))
  const runner = t.role('runner')
  // A password: the embedded server asks for one over TCP (the machine's server trusts local connections).
  await t.sql(`CREATE ROLE "${runner}" LOGIN PASSWORD 'tz-runner-pw'; GRANT CREATE ON DATABASE "${t.name}" TO "${runner}"; REVOKE CREATE ON SCHEMA public FROM PUBLIC;
    ALTER TABLE clients OWNER TO "${runner}"; ALTER TABLE projects OWNER TO "${runner}"; ALTER TABLE tasks OWNER TO "${runner}"`)
  const url = new URL(t.url)
  url.username = runner
  url.password = 'tz-runner-pw'
  for (const extra of [['--dry-run'], []]) {
    const r = await runCli(['apply', '--db', url.toString(), '--config', file, '--yes', '--phase', 'schema', ...extra])
    assert.notEqual(r.code, 0)
    assert.doesNotMatch(r.stderr, /TZ_INTERNAL/)
    assert.match(r.stderr, /^TZ_PREFLIGHT /)
    assert.match(r.stderr, new RegExp(`CREATE on schema public.*GRANT CREATE ON SCHEMA "?public"? TO "${runner}"`))
  }
  assert.deepEqual(await t.sql(`SELECT to_regclass('tenantize.migrations') AS l, (SELECT count(*)::int FROM pg_attribute WHERE attrelid = 'tasks'::regclass AND attname = 'org_id') AS n`), [{ l: null, n: 0 }], 'nothing was changed')
})
