import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { introspect } from '../src/catalog/index.js'
import { proposeConfig } from '../src/plan/classify.js'
import { parseConfig } from '../src/plan/config.js'
import { testDatabase, type TestDatabase } from './helpers/db.js'
import { runCli } from './helpers/migrations.js'

const db = await testDatabase(import.meta.url)
const dir = await mkdtemp(join(tmpdir(), 'tz-signals-'))
after(() => rm(dir, { recursive: true, force: true }))

const SCHEMA = `
  CREATE TABLE clients (id bigint PRIMARY KEY, name text NOT NULL);
  CREATE TABLE projects (id bigserial PRIMARY KEY, client_id bigint NOT NULL REFERENCES clients, name text);
  CREATE TABLE tasks (id bigserial PRIMARY KEY, project_id bigint NOT NULL REFERENCES projects, title text);
  INSERT INTO clients VALUES (1, 'one'), (2, 'two');
  INSERT INTO projects (client_id, name) SELECT 1 + g % 2, 'p' || g FROM generate_series(1, 20) g;
  INSERT INTO tasks (project_id, title) SELECT 1 + g % 20, 't' || g FROM generate_series(1, 2000) g;`

/** A database with the schema and a config file for it (derive mode: tasks are backfilled from projects). */
async function fixture(label: string): Promise<{ t: TestDatabase; config: string }> {
  const t = await db.another(label)
  await t.sql(SCHEMA)
  const client = new pg.Client(t.url)
  await client.connect()
  try {
    const config = parseConfig(proposeConfig(await introspect(client), { tenantTable: { schema: 'public', name: 'clients' }, tenantColumn: 'org_id', defaultTenantId: '1', appRole: t.role('app') }).config)
    const file = join(dir, `${label}.json`)
    await writeFile(file, JSON.stringify(config))
    return { t, config: file }
  } finally {
    await client.end()
  }
}

interface Running {
  /** Resolves with the first stdout (or stderr) line matching `pattern`. */
  waitFor(stream: 'stdout' | 'stderr', pattern: RegExp): Promise<string>
  signal(name: NodeJS.Signals): void
  readonly done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>
}

/** The real CLI in a child process, watched line by line. */
function start(args: readonly string[]): Running {
  const env = { ...process.env }
  delete env['DATABASE_URL']
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  const text = { stdout: '', stderr: '' }
  const waiters: { stream: 'stdout' | 'stderr'; pattern: RegExp; resolve: (l: string) => void; reject: (e: Error) => void }[] = []
  const check = (): void => {
    for (const w of [...waiters]) {
      const hit = text[w.stream].split('\n').find((l) => w.pattern.test(l))
      if (hit !== undefined) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(hit)
      }
    }
  }
  child.stdout.on('data', (d: Buffer) => { text.stdout += d.toString(); check() })
  child.stderr.on('data', (d: Buffer) => { text.stderr += d.toString(); check() })
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => {
      for (const w of waiters.splice(0)) w.reject(new Error(`the CLI ended (code ${code}) before printing ${w.pattern}:\n${text.stdout}\n${text.stderr}`))
      resolve({ code, signal, ...text })
    })
  })
  return {
    waitFor: (stream, pattern) => new Promise((resolve, reject) => { waiters.push({ stream, pattern, resolve, reject }); check() }),
    signal: (name) => child.kill(name),
    done,
  }
}

/** Poll `sql` (one row, column ok) until it is true. */
async function untilSql(t: { sql<R extends pg.QueryResultRow>(text: string): Promise<R[]> }, sql: string): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    const ok = await t.sql<{ ok: boolean }>(sql).then((r) => r[0]?.ok === true, () => false)
    if (ok) return
    await new Promise((r) => setTimeout(r, 50))
  }
  assert.fail(`gave up waiting for: ${sql}`)
}

test('Ctrl-C during a backfill stops after the current batch, records it, says how to resume, exits 130; apply again resumes', async () => {
  const { t, config } = await fixture('sigint_backfill')
  const run = start(['apply', '--db', t.url, '--config', config, '--yes', '--phase', 'schema', '--batch-size', '1'])
  // Step starts and progress are not printed without a terminal: watch the database instead.
  await untilSql(t, `SELECT EXISTS (SELECT FROM tenantize.backfill_progress WHERE rows_done > 0) AS ok`)
  run.signal('SIGINT')
  const r = await run.done
  assert.equal(r.code, 130, r.stderr)
  assert.match(r.stderr, /^SIGINT: stopping apply after the current statement or batch… \(Ctrl-C again to abort at once\)\n/)
  assert.match(r.stderr, /\nTZ_INTERRUPTED \d+_backfill:public\.tasks: stopped by SIGINT in \d+_backfill:public\.tasks before .*: \d+ of \d+ applied in this run, \d+ left — fix: run tenantize apply --phase schema again: it resumes where it stopped/)
  assert.match(r.stdout, /■ stopped by SIGINT at \d+_backfill:public\.tasks/)
  const events = await t.sql<{ event: string; migration: string }>(`SELECT event, migration FROM tenantize.migration_events WHERE event IN ('interrupt', 'fail') ORDER BY id`)
  assert.deepEqual(events.map((e) => [e.event, e.migration.replace(/^\d+_/, '')]), [['interrupt', 'backfill:public.tasks']])
  const saved = await t.sql<{ rows_done: string }>(`SELECT rows_done FROM tenantize.backfill_progress`)
  assert.equal(saved.length, 1)
  const done = Number(saved[0]!.rows_done)
  assert.ok(done > 0 && done < 2000, `some batches were kept (${done})`)
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM tenantize.migrations WHERE name LIKE '%backfill%'`), [{ n: 0 }])

  const again = await runCli(['apply', '--db', t.url, '--config', config, '--yes', '--phase', 'schema'])
  assert.equal(again.code, 0, again.stderr)
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.org_id IS DISTINCT FROM p.client_id`), [{ n: 0 }])
})

test('SIGTERM during rollback stops after the current step with exit 143; rollback again finishes', async () => {
  const { t, config } = await fixture('sigterm_rollback')
  const applied = await runCli(['apply', '--db', t.url, '--config', config, '--yes'])
  assert.equal(applied.code, 0, applied.stderr)
  const run = start(['rollback', '--db', t.url, '--config', config, '--yes'])
  await untilSql(t, `SELECT EXISTS (SELECT FROM tenantize.migration_events WHERE direction = 'down' AND event = 'start') AS ok`)
  run.signal('SIGTERM')
  const r = await run.done
  assert.equal(r.code, 143, r.stderr)
  assert.match(r.stderr, /\nTZ_INTERRUPTED .*stopped by SIGTERM .* — fix: run tenantize rollback again: it resumes where it stopped/)
  const log = await t.sql<{ event: string; direction: string }>(`SELECT event, direction FROM tenantize.migration_events WHERE direction = 'down' AND event IN ('finish', 'fail', 'interrupt') ORDER BY id`)
  assert.equal(log.at(-1)?.event, 'interrupt')
  assert.ok(!log.some((e) => e.event === 'fail'), 'the step under way finished or was rolled back whole; nothing failed')
  const left = await t.sql<{ n: number }>(`SELECT count(*)::int AS n FROM tenantize.migrations WHERE scope = 'apply'`)
  assert.ok(left[0]!.n > 0, 'steps are left to roll back')

  const again = await runCli(['rollback', '--db', t.url, '--config', config, '--yes'])
  assert.equal(again.code, 0, again.stderr)
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'tasks'::regclass AND attname = 'org_id'`), [{ n: 0 }])
})

test('a second Ctrl-C aborts at once, even while a statement waits for a lock; nothing of that statement is recorded', async () => {
  const { t, config } = await fixture('sigint_twice')
  const blocker = new pg.Client(t.url)
  await blocker.connect()
  try {
    await blocker.query('BEGIN')
    await blocker.query('LOCK TABLE tasks IN ACCESS SHARE MODE')
    const run = start(['apply', '--db', t.url, '--config', config, '--yes', '--phase', 'schema', '--force', '--lock-timeout', '10min'])
    // The runner's ALTER TABLE waits for the blocker's lock.
    for (;;) {
      // Not through the blocker: inside its transaction pg_stat_activity is a snapshot that never changes. This
      // database's runner only: other tests' runners wait for locks too, and a signal before its handler kills it.
      const rows = await t.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tenantize migrate' AND wait_event_type = 'Lock'`)
      if (rows[0]!.n > 0) break
      await new Promise((r) => setTimeout(r, 50))
    }
    run.signal('SIGINT')
    await run.waitFor('stderr', /^SIGINT: stopping apply/m)
    run.signal('SIGINT')
    const r = await run.done
    assert.equal(r.code, 130, r.stderr)
    assert.match(r.stderr, /\nSIGINT again: aborting apply at once; the statement running now is cancelled by the server and not recorded \(run the command again to resume\)\n$/)
  } finally {
    await blocker.query('ROLLBACK')
    await blocker.end()
  }
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM tenantize.migrations WHERE name LIKE '%add-column:public.tasks'`), [{ n: 0 }])
  // The aborted session may still be ending: wait for its runner lock rather than fail.
  const again = await runCli(['apply', '--db', t.url, '--config', config, '--yes', '--phase', 'schema', '--lock-wait', '60s'])
  assert.equal(again.code, 0, again.stderr)
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM tasks WHERE org_id IS NULL`), [{ n: 0 }])
})
