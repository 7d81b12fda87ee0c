import { test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { apply, resetReadiness } from '../src/apply/index.js'
import { TenantizeError } from '../src/errors.js'
import { testDatabase } from './helpers/db.js'
import { asRole } from './helpers/conversion.js'
import { assertApplied, assertClean, fast, fixture, holder, reference, startCli, until } from './helpers/crash.js'

/** Two runners at once, and apply while the app writes with and without a tenant context (issue #12). */
const db = await testDatabase(import.meta.url)
const ref = await reference(db, 'cc_ref')

const failure = async (promise: Promise<unknown>): Promise<TenantizeError> => {
  const error = await promise.then(() => undefined, (e: unknown) => e)
  assert.ok(error instanceof TenantizeError, `expected a TenantizeError, got ${String((error as Error | undefined)?.stack ?? error)}`)
  return error
}

test('two applies at once: the second fails with TZ_LOCKED naming the first, or with --lock-wait waits and finds nothing left; every step runs once', async () => {
  const f = await fixture(db, 'cc_two')
  // The first runner is held at a step by a lock the test owns, so the second surely meets it.
  const lock = await holder(f.t.url, ['BEGIN', 'LOCK TABLE notes IN ACCESS SHARE MODE'])
  const first = startCli(['apply', '--db', f.t.url, '--config', f.configFile, '--yes', '--force', '--lock-timeout', '10min', '--batch-size', '50'])
  // Step starts are not printed without a terminal: watch the database instead.
  await until('the first runner to wait for notes', async () => (await f.t.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tenantize migrate' AND wait_event_type = 'Lock'`))[0]!.n > 0)
  const firstPid = (await f.t.sql<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tenantize migrate'`))[0]!.pid

  const locked = await failure(apply({ databaseUrl: f.t.url, config: f.config, phase: 'all', timeouts: fast }))
  assert.equal(locked.code, 'TZ_LOCKED')
  assert.equal(locked.details?.['holderPid'], firstPid, 'the error names the runner that holds the lock')
  assert.match(locked.fix ?? '', /--lock-wait/)
  const cli = startCli(['apply', '--db', f.t.url, '--config', f.configFile, '--yes'])
  const cliExit = await cli.done
  assert.equal(cliExit.code, 2)
  assert.match(cliExit.stderr, /^TZ_LOCKED tenantize migration lock: another migration runner is running: pid \d+/m)

  const waiting = apply({ databaseUrl: f.t.url, config: f.config, phase: 'all', timeouts: fast, lockWaitMs: 120_000 })
  await until('the second runner to wait for the runner lock', async () =>
    (await f.t.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`))[0]!.n > 0)
  await lock.release()
  const done = await first.done
  assert.equal(done.code, 0, done.stderr)
  const second = await waiting
  assert.deepEqual(second.migrations, [], 'the waiting runner found every step applied')
  assert.deepEqual(await f.t.sql(`SELECT migration, count(*)::int AS n FROM tenantize.migration_events WHERE event = 'start' AND direction = 'up' GROUP BY 1 HAVING count(*) > 1`), [], 'no step started twice')
  await assertApplied(f, ref)
})

test('two applies started together: exactly one runs, the other is TZ_LOCKED', async () => {
  const f = await fixture(db, 'cc_race')
  const results = await Promise.allSettled([0, 1].map(() => apply({ databaseUrl: f.t.url, config: f.config, phase: 'all', timeouts: fast, batchSize: 50 })))
  const ok = results.filter((r) => r.status === 'fulfilled' && r.value.migrations.length > 0)
  const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []))
  // The loser may also come late enough to find nothing left to do.
  assert.equal(ok.length, 1, 'exactly one runner applied the steps')
  for (const e of refused) assert.ok(e instanceof TenantizeError && e.code === 'TZ_LOCKED', String(e))
  await assertApplied(f, ref)
})

test('apply while the app writes, old code without a tenant context and new code with one: no failed write in the schema phase or at enforce (readiness refuses while the old app writes), no row without a tenant or in another tenant', async () => {
  const f = await fixture(db, 'cc_writers')
  const projects = await f.t.sql<{ id: string; client_id: string }>(`SELECT id::text, client_id::text FROM projects ORDER BY id`)
  const ofClient2 = projects.filter((p) => p.client_id === '2')
  const failures: string[] = []
  const running = { old: true, ctx: true }
  const writer = async (label: string, key: keyof typeof running, write: (c: pg.Client, i: number) => Promise<void>): Promise<number> => {
    const c = new pg.Client(f.t.url)
    await c.connect()
    let i = 0
    try {
      while (running[key]) {
        try {
          await write(c, i)
        } catch (error) {
          failures.push(`${label} #${i}: ${(error as Error).message}`)
          await c.query('ROLLBACK').catch(() => undefined)
        }
        i++
      }
    } finally {
      await c.end()
    }
    return i
  }
  // The unchanged app: no tenant column, no context.
  const old = writer('old app', 'old', async (c, i) => {
    await c.query(`INSERT INTO tasks (project_id, title) VALUES ($1, $2)`, [projects[i % projects.length]!.id, `old-${i}`])
    await c.query(`INSERT INTO notes (code, body) VALUES ($1, 'old')`, [`old-${i}`])
  })
  // The new app for client 2: its tenant in the context of each transaction (as tenantPool does).
  const tenantAware = writer('app with context', 'ctx', async (c, i) => {
    await c.query('BEGIN')
    await c.query(`SELECT set_config('tenantize.tenant_id', '2', true)`)
    await c.query(`INSERT INTO tasks (project_id, title) VALUES ($1, $2)`, [ofClient2[i % ofClient2.length]!.id, `ctx-${i}`])
    await c.query('COMMIT')
  })
  let ctxWrites: number
  try {
    // force: the pre-flight would stop at a writer caught between two statements of its transaction (idle in
    // transaction, holding a lock on tasks); the statements still wait at most lock_timeout and retry.
    await apply({ databaseUrl: f.t.url, config: f.config, phase: 'schema', timeouts: fast, batchSize: 50, force: true })
    const schemaFailures = failures.length

    // Enforce while the old app still writes: readiness refuses before anything changes, so none of its writes fail.
    const refused = await failure(apply({ databaseUrl: f.t.url, config: f.config, phase: 'enforce', timeouts: fast, force: true }))
    assert.equal(refused.code, 'TZ_PREFLIGHT')
    assert.deepEqual(refused.problems.map((p) => p.object).sort(), ['public.notes', 'public.tasks'], 'the tables the old app writes to are named')
    assert.deepEqual(await f.t.sql(`SELECT count(*)::int AS n FROM pg_class WHERE relname IN ('tasks', 'notes') AND relrowsecurity`), [{ n: 0 }], 'nothing was enforced')

    // The app that sets the tenant context is deployed (the old one stops), a new readiness window starts, and
    // enforce runs while the new app keeps writing.
    running.old = false
    const oldWrites = await old
    await resetReadiness(f.t.url)
    await apply({ databaseUrl: f.t.url, config: f.config, phase: 'enforce', timeouts: fast, force: true })
    running.ctx = false
    ctxWrites = await tenantAware
    console.log(`# writes: ${oldWrites} without context (schema phase and the refused enforce), ${ctxWrites} with context (both phases); failed: ${schemaFailures} in the schema phase, ${failures.length - schemaFailures} at enforce`)
    assert.deepEqual(failures, [], 'no write failed during the schema phase, the refused enforce or the enforce')
    assert.ok(oldWrites > 0 && ctxWrites > 0, 'both apps wrote while apply ran')
    assert.deepEqual(await f.t.sql(`SELECT count(*)::int AS n FROM tasks WHERE title LIKE 'old-%' OR title LIKE 'ctx-%'`), [{ n: oldWrites + ctxWrites }], 'every write is there')
  } finally {
    running.old = false
    running.ctx = false
    await Promise.allSettled([old, tenantAware])
  }
  assert.deepEqual(await f.t.sql(`SELECT (SELECT count(*) FROM tasks WHERE org_id IS NULL)::int + (SELECT count(*) FROM notes WHERE org_id IS NULL)::int AS n`), [{ n: 0 }], 'no row without a tenant')
  assert.deepEqual(await f.t.sql(`SELECT count(*)::int AS n FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.org_id IS DISTINCT FROM p.client_id`), [{ n: 0 }], 'every task in its project\'s tenant')
  assert.deepEqual(await f.t.sql(`SELECT count(*)::int AS n FROM tasks WHERE title LIKE 'ctx-%' AND org_id <> 2`), [{ n: 0 }], 'the app with context wrote only into its tenant')
  assert.deepEqual(await f.t.sql(`SELECT count(*)::int AS n FROM notes WHERE body = 'old' AND org_id <> 1`), [{ n: 0 }], 'the old app\'s rows belong to the default tenant')
  await assertClean(f.t)
  const seen = (tenant: string): Promise<number> => asRole(f.t.url, f.config.roles.app, tenant, async (c) => Number((await c.query<{ n: string }>(`SELECT count(*) AS n FROM tasks WHERE title LIKE 'ctx-%'`)).rows[0]!.n))
  assert.equal(await seen('2'), ctxWrites, 'tenant 2 sees all its rows')
  assert.equal(await seen('1'), 0, 'tenant 1 sees none of them')
})
