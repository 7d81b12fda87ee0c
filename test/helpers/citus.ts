/**
 * A real Citus cluster for the tests that need one (`target: citus`): coordinator 127.0.0.1:9700,
 * workers :9701 and :9702, built from ../shared/citus (build.sh) and started by its cluster.sh.
 *
 * Order: `TENANTIZE_TEST_CITUS_URL` (a coordinator's admin URL) if set; else a coordinator already
 * answering on 127.0.0.1:9700; else start the cluster with cluster.sh when Citus is installed into the
 * machine's PostgreSQL 15. When none of these works the tests say why and skip — except when
 * `TENANTIZE_TEST_CITUS=required` (CI), where an unavailable cluster fails the file.
 * `TENANTIZE_TEST_CITUS=skip` skips them (CI's second pass, against embedded PostgreSQL 18: the
 * cluster is PostgreSQL 15 in both passes, so they run once).
 *
 * Each test file gets its own database on every node (Citus keeps its metadata per database): created on
 * the three nodes, `CREATE EXTENSION citus` in each, the coordinator registered and both workers added.
 * Dropped (WITH FORCE, coordinator first) when the file's tests end.
 */
import { after } from 'node:test'
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs'
import { basename, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { quoteIdent, quoteLiteral } from '../../src/sql/quote.js'

const PORT = 9700
const HOST = '127.0.0.1'
const CLUSTER_SH = resolve(fileURLToPath(new URL('../../..', import.meta.url)), 'shared/citus/cluster.sh')
const CITUS_SO = '/usr/lib/postgresql/15/lib/citus.so'
/** Where cluster.sh keeps the shared cluster's nodes (its CITUS_DIR default). */
const CLUSTER_DIR = '/tmp/tenantize-citus'

export interface CitusDatabase {
  /** URL of this file's database on the coordinator (user postgres). */
  readonly url: string
  readonly name: string
  /** Admin URL of the coordinator (database postgres). */
  readonly adminUrl: string
  /** URLs of this file's database on each worker. */
  readonly workerUrls: readonly string[]
  /** Run SQL on this file's database on the coordinator with a fresh connection. */
  sql<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]>
  /** Run SQL on this file's database on worker `i` (0 or 1). */
  workerSql<R extends pg.QueryResultRow = pg.QueryResultRow>(i: number, text: string, values?: unknown[]): Promise<R[]>
  /** A role name unique to this database; roles a test creates on the cluster must use it (dropped after). */
  role(label: string): string
}

/** Why the cluster is not available, when it is not. */
export interface CitusUnavailable {
  readonly unavailable: string
}

function urlOf(port: number, database: string): string {
  return `postgres://postgres@${HOST}:${port}/${encodeURIComponent(database)}`
}

/**
 * Errors a loaded machine gives that pass when tried again: a connection that timed out, a node at its
 * connection limit or still starting, CREATE DATABASE while another session uses template1 (several
 * test files create their databases at once), and the coordinator failing to reach a worker for a
 * distributed statement (`failure on connection marked as essential`, XX000: the statement is rolled back
 * on every node, so running it again is safe).
 */
function transient(error: unknown): boolean {
  const e = error as { code?: string; message?: string }
  return ['53300', '57P03', '55006'].includes(e.code ?? '') ||
    /timeout expired|Connection terminated due to connection timeout|failure on connection marked as essential|connection to the remote node .* failed/i.test(e.message ?? '')
}

/** Run `work` with a fresh client, tried again (up to 6 times over about 30 s) on transient errors. */
async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>, attempts = 6): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 15000 })
    client.on('error', () => undefined)
    try {
      await client.connect()
      return await work(client)
    } catch (error) {
      if (attempt >= attempts || !transient(error)) throw error
      await new Promise((r) => setTimeout(r, 500 * attempt * attempt))
    } finally {
      await client.end().catch(() => undefined)
    }
  }
}

async function runSql<R extends pg.QueryResultRow>(url: string, text: string, values?: unknown[]): Promise<R[]> {
  return withClient(url, async (client) => (await client.query<R>(text, values)).rows)
}

/** One try, short timeout: is anything answering? */
async function probeSql<R extends pg.QueryResultRow>(url: string, text: string): Promise<R[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
  await client.connect()
  try {
    return (await client.query<R>(text)).rows
  } finally {
    await client.end()
  }
}

/** Run statements one after the other on one connection (each its own implicit transaction). */
async function runStatements(url: string, statements: readonly string[]): Promise<void> {
  await withClient(url, async (client) => {
    for (const text of statements) await client.query(text)
  })
}

async function coordinatorAnswers(adminUrl: string): Promise<boolean> {
  try {
    const rows = await probeSql<{ v: string | null }>(adminUrl, "SELECT (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'citus') AS v")
    return rows[0]?.v !== null && rows[0]?.v !== undefined
  } catch {
    return false
  }
}

/**
 * Run `start` while holding a lock directory shared by the test processes (parallel files must not race
 * cluster.sh or pg_ctl), unless `ready` is true while waiting for the lock or once it is held.
 */
async function startOnce(ready: () => Promise<boolean>, start: () => Promise<string | undefined>): Promise<string | undefined> {
  const lock = '/tmp/tenantize-citus-start.lock'
  let locked = false
  for (let i = 0; i < 600 && !locked; i++) {
    try {
      mkdirSync(lock)
      locked = true
    } catch {
      if (await ready()) return undefined
      await new Promise((r) => setTimeout(r, 200))
    }
  }
  try {
    if (await ready()) return undefined
    return await start()
  } finally {
    try {
      if (locked) rmdirSync(lock)
    } catch {
      // removed by hand meanwhile
    }
  }
}

/** Start the cluster once per machine. */
async function startCluster(adminUrl: string): Promise<string | undefined> {
  if (!existsSync(CITUS_SO)) return `Citus is not installed into PostgreSQL 15 (${CITUS_SO} is missing): run ../shared/citus/build.sh (as root; several minutes once)`
  if (!existsSync(CLUSTER_SH)) return `${CLUSTER_SH} is missing: the tests expect ../shared/citus beside the project`
  return startOnce(() => coordinatorAnswers(adminUrl), async () => {
    const run = spawnSync('bash', [CLUSTER_SH, 'start'], { encoding: 'utf8' })
    if (run.status !== 0) return `cluster.sh start failed (exit ${run.status ?? 'signal'}): ${(run.stderr || run.stdout).trim().slice(0, 400)}`
    return (await coordinatorAnswers(adminUrl)) ? undefined : 'cluster.sh start ran but the coordinator does not answer on 127.0.0.1:9700'
  })
}

/** `pg_ctl start|restart` of a cluster.sh node (as the OS user postgres when root, as cluster.sh runs them), logging to `<dir>.log`. */
function pgCtl(dir: string, action: 'start' | 'restart'): SpawnSyncReturns<string> {
  const ctl = `/usr/lib/postgresql/15/bin/pg_ctl -D '${dir}' -l '${dir}.log' -w ${action} >/dev/null`
  return process.getuid?.() === 0 ? spawnSync('su', ['postgres', '-s', '/bin/bash', '-c', ctl], { encoding: 'utf8' }) : spawnSync('bash', ['-c', ctl], { encoding: 'utf8' })
}

/** Does a PostgreSQL server answer on `port` (database postgres)? */
async function nodeAnswers(port: number): Promise<boolean> {
  try {
    await probeSql(urlOf(port, 'postgres'), 'SELECT 1')
    return true
  } catch {
    return false
  }
}

/** The last lines of a cluster.sh node's server log (`<dir>/<node>.log`), or why there are none. */
function logTail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch (error) {
    return `(no log: ${(error as Error).message})`
  }
}

/**
 * Every worker in pg_dist_node must answer before a file creates its database on them. A worker of the
 * cluster.sh cluster (data in /tmp/tenantize-citus/w1, w2) that is down is started again, and the end of its
 * server log is printed so the reason it stopped is seen; a worker elsewhere, or one that does not come back,
 * makes the cluster unavailable with its port and log. Undefined when all answer.
 */
async function ensureWorkers(adminUrl: string, workers: readonly number[]): Promise<string | undefined> {
  const own = new URL(adminUrl).port === String(PORT) && process.env['TENANTIZE_TEST_CITUS_URL'] === undefined
  for (const port of workers) {
    if (await nodeAnswers(port)) continue
    const index = port - PORT
    const dir = own && (index === 1 || index === 2) ? `${CLUSTER_DIR}/w${index}` : undefined
    if (dir === undefined || !existsSync(dir)) return `the Citus worker 127.0.0.1:${port} in pg_dist_node does not answer: run ../shared/citus/cluster.sh stop, then cluster.sh start`
    console.log(`# the Citus worker 127.0.0.1:${port} does not answer; the end of its log (${dir}.log):\n${logTail(`${dir}.log`).replace(/^/gm, '#   ')}`)
    await startOnce(() => nodeAnswers(port), async () => {
      const run = pgCtl(dir, 'start')
      console.log(`# started the Citus worker on port ${port} again (pg_ctl exit ${run.status ?? 'on a signal'})`)
      return undefined
    })
    if (!(await nodeAnswers(port))) return `the Citus worker 127.0.0.1:${port} does not answer and did not start again; the end of ${dir}.log:\n${logTail(`${dir}.log`)}`
  }
  return undefined
}

let clusterPromise: Promise<{ adminUrl: string; workers: number[] } | CitusUnavailable> | undefined

/** The coordinator's admin URL and the worker ports, or why there is no cluster. Resolved once per process. */
export function citusCluster(): Promise<{ adminUrl: string; workers: number[] } | CitusUnavailable> {
  clusterPromise ??= (async () => {
    const adminUrl = process.env['TENANTIZE_TEST_CITUS_URL'] ?? urlOf(PORT, 'postgres')
    if (!(await coordinatorAnswers(adminUrl))) {
      if (process.env['TENANTIZE_TEST_CITUS_URL'] !== undefined) return { unavailable: `TENANTIZE_TEST_CITUS_URL=${adminUrl} does not answer as a Citus coordinator` }
      const why = await startCluster(adminUrl)
      if (why !== undefined) return { unavailable: why }
    }
    const nodes = await runSql<{ nodeport: number }>(adminUrl, "SELECT nodeport FROM pg_catalog.pg_dist_node WHERE noderole = 'primary' AND groupid <> 0 ORDER BY nodeport")
    if (nodes.length === 0) return { unavailable: `the coordinator at ${adminUrl} has no workers (pg_dist_node): run ../shared/citus/cluster.sh start` }
    const workers = nodes.map((n) => n.nodeport)
    const down = await ensureWorkers(adminUrl, workers)
    if (down !== undefined) return { unavailable: down }
    return { adminUrl, workers }
  })()
  return clusterPromise
}

/**
 * A fresh database for this test file on every node of the cluster, or why there is none. In CI
 * (`TENANTIZE_TEST_CITUS=required`) an unavailable cluster throws instead, so the file fails.
 * Use: `const citus = await citusDatabase(import.meta.url); test('…', { skip: 'unavailable' in citus && citus.unavailable }, …)`.
 */
export async function citusDatabase(fileUrl: string): Promise<CitusDatabase | CitusUnavailable> {
  // CI runs the suite twice (PostgreSQL 15, embedded 18); the cluster is PostgreSQL 15 either way, so the second pass skips.
  if (process.env['TENANTIZE_TEST_CITUS'] === 'skip') return { unavailable: 'TENANTIZE_TEST_CITUS=skip (the Citus tests run in the other pass)' }
  const cluster = await citusCluster()
  if ('unavailable' in cluster) {
    if (process.env['TENANTIZE_TEST_CITUS'] === 'required') throw new Error(`a Citus cluster is required (TENANTIZE_TEST_CITUS=required): ${cluster.unavailable}`)
    console.log(`# Citus tests skipped: ${cluster.unavailable}`)
    return cluster
  }
  return databaseOn(cluster, fileUrl)
}

/** A fresh database for the test file `fileUrl` on every node of `cluster` (dropped after the file). */
async function databaseOn(cluster: { adminUrl: string; workers: number[] }, fileUrl: string): Promise<CitusDatabase> {
  const label = basename(fileURLToPath(fileUrl)).replace(/\.test\.ts$/, '').replace(/[^a-z0-9]+/gi, '_').toLowerCase().slice(0, 30)
  const token = randomBytes(4).toString('hex')
  const name = `tzc_${label}_${token}`
  const coordinatorPort = Number(new URL(cluster.adminUrl).port || 5432)
  const ports = [coordinatorPort, ...cluster.workers]
  const admin = (port: number) => (port === coordinatorPort ? cluster.adminUrl : urlOf(port, 'postgres'))
  for (const port of ports) {
    // Citus would propagate CREATE DATABASE itself only with citus.enable_create_database_propagation; be explicit.
    // Two statements on one connection: in one query string they would form a transaction block, which CREATE DATABASE refuses.
    await runStatements(admin(port), ['SET citus.enable_create_database_propagation = off', `CREATE DATABASE ${quoteIdent(name)}`])
    await runSql(urlOf(port, name), 'CREATE EXTENSION IF NOT EXISTS citus')
  }
  const coordinator = new URL(cluster.adminUrl)
  coordinator.pathname = `/${encodeURIComponent(name)}`
  const url = coordinator.toString()
  await runSql(url, 'SELECT pg_catalog.citus_set_coordinator_host($1, $2)', [HOST, coordinatorPort])
  for (const port of cluster.workers) await runSql(url, 'SELECT pg_catalog.citus_add_node($1, $2)', [HOST, port])
  after(async () => {
    for (const port of ports) {
      await runSql(admin(port), `DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`).catch(() => undefined)
    }
    for (const port of ports) {
      const left = await runSql<{ rolname: string }>(admin(port), 'SELECT rolname FROM pg_catalog.pg_roles WHERE rolname LIKE $1', [`${name}_%`]).catch(() => [])
      for (const r of left) await runSql(admin(port), `DROP ROLE IF EXISTS ${quoteIdent(r.rolname)}`).catch(() => undefined)
    }
  })
  return {
    url,
    name,
    adminUrl: cluster.adminUrl,
    workerUrls: cluster.workers.map((p) => urlOf(p, name)),
    sql: (text, values) => runSql(url, text, values),
    workerSql: (i, text, values) => {
      const port = cluster.workers[i]
      if (port === undefined) throw new Error(`no worker ${i}: the cluster has ${cluster.workers.length}`)
      return runSql(urlOf(port, name), text, values)
    },
    role(label) {
      const role = `${name}_${label}`
      if (Buffer.byteLength(role) > 63) throw new Error(`role name ${role} is longer than 63 bytes: use a shorter label`)
      return role
    },
  }
}

/** A cluster of this test file's own, with wal_level switchable (the shared one runs with replica). */
export interface CitusLogicalCluster {
  /** A fresh database on it, as {@link citusDatabase} gives on the shared cluster. */
  readonly db: CitusDatabase
  /** Another fresh database on it. */
  database(): Promise<CitusDatabase>
  /** `ALTER SYSTEM SET wal_level = 'logical'` on every node (and citus in output_plugin_libraries where the server has that setting) and restart them (connections to them end). */
  enableLogical(): Promise<void>
}

const LOGICAL_PORT = 9710
const LOGICAL_DIR = '/tmp/tenantize-citus-logical'

function clusterSh(command: 'start' | 'stop'): { ok: boolean; output: string } {
  const run = spawnSync('bash', [CLUSTER_SH, command], { encoding: 'utf8', env: { ...process.env, CITUS_PORT: String(LOGICAL_PORT), CITUS_DIR: LOGICAL_DIR } })
  return { ok: run.status === 0, output: (run.stderr || run.stdout).trim().slice(0, 400) }
}

/**
 * A 3-node Citus cluster of its own for the file (coordinator 127.0.0.1:9710, workers :9711 and :9712, data in
 * /tmp/tenantize-citus-logical), started with cluster.sh as the shared one but never shared: it starts with
 * wal_level = replica, {@link CitusLogicalCluster.enableLogical} switches every node to logical (what
 * `create_distributed_table_concurrently` and logical shard moves need, refused on the shared cluster), and it is
 * stopped and removed when the file's tests end. Skips with the reason when Citus is not installed; fails the
 * file when `TENANTIZE_TEST_CITUS=required`.
 */
export async function citusLogicalCluster(fileUrl: string): Promise<CitusLogicalCluster | CitusUnavailable> {
  if (process.env['TENANTIZE_TEST_CITUS'] === 'skip') return { unavailable: 'TENANTIZE_TEST_CITUS=skip (the Citus tests run in the other pass)' }
  const unavailable = (why: string): CitusUnavailable => {
    if (process.env['TENANTIZE_TEST_CITUS'] === 'required') throw new Error(`a Citus cluster is required (TENANTIZE_TEST_CITUS=required): ${why}`)
    console.log(`# Citus tests skipped: ${why}`)
    return { unavailable: why }
  }
  if (!existsSync(CITUS_SO)) return unavailable(`Citus is not installed into PostgreSQL 15 (${CITUS_SO} is missing): run ../shared/citus/build.sh (as root; several minutes once)`)
  if (!existsSync(CLUSTER_SH)) return unavailable(`${CLUSTER_SH} is missing: the tests expect ../shared/citus beside the project`)
  // A cluster left by an interrupted run of this file: remove it first (it is this file's alone).
  clusterSh('stop')
  const started = clusterSh('start')
  after(() => {
    clusterSh('stop')
  })
  const adminUrl = urlOf(LOGICAL_PORT, 'postgres')
  if (!started.ok || !(await coordinatorAnswers(adminUrl))) return unavailable(`cluster.sh start on port ${LOGICAL_PORT} failed: ${started.output}`)
  const workers = [LOGICAL_PORT + 1, LOGICAL_PORT + 2]
  const db = await databaseOn({ adminUrl, workers }, fileUrl)
  return {
    db,
    database: () => databaseOn({ adminUrl, workers }, fileUrl),
    async enableLogical() {
      for (const [i, port] of [LOGICAL_PORT, ...workers].entries()) {
        await runSql(urlOf(port, 'postgres'), "ALTER SYSTEM SET wal_level = 'logical'")
        // Debian's PostgreSQL approves logical decoding plugins by name: Citus's own must be on the list for its shard copies.
        const plugins = await runSql<{ v: string | null }>(urlOf(port, 'postgres'), "SELECT current_setting('output_plugin_libraries', true) AS v")
        const v = plugins[0]?.v
        // A list setting: one literal per library ('a, b' in one literal would be one library named "a, b").
        if (v !== null && v !== undefined && !/\bcitus\b/.test(v)) await runSql(urlOf(port, 'postgres'), `ALTER SYSTEM SET output_plugin_libraries = ${[...v.split(',').map((l) => l.trim()).filter((l) => l !== ''), 'citus'].map((l) => quoteLiteral(l)).join(', ')}`)
        const dir = `${LOGICAL_DIR}/${['c', 'w1', 'w2'][i]!}`
        const run = pgCtl(dir, 'restart')
        if (run.status !== 0) throw new Error(`restarting the node on port ${port} failed: ${(run.stderr || run.stdout).trim().slice(0, 400)}`)
      }
    },
  }
}
