/**
 * Citus (issue #16): what a tenant's query costs through a 3-node Citus cluster against the same on one
 * PostgreSQL 15 server, how many shards a scoped query touches (goal 1), and the longest write stall a
 * concurrent app writer sees while a big tenant is isolated to shards of its own (`tenant isolate`,
 * src/citus/isolate.ts), while those shards move to the other worker, and while a table is distributed
 * (`create_distributed_table`, as apply's citus-distribute step runs it).
 *
 * The same schema and rows on both sides: a tenant table `orgs` (a reference table on Citus) and `items`
 * with the primary key `(org_id, id)` (distributed by org_id on Citus, 32 shards), row-level security with
 * the policy shape tenantize plans for Citus (the STABLE helper called directly), 20 tenants — one big.
 * Both sides are queried the same way, as the app role logged in (Citus: `citus.propagate_set_commands =
 * 'local'` on it), through Kysely with the runtime's `tenantDialect` (`strategy: 'set-local'`) and
 * `tenantRoutingPlugin`, which adds `items.org_id = <current tenant>` to each query: a primary-key lookup
 * and a list page (20 rows by id). Calls alternate one by one; the value is the ratio of the medians.
 *
 * Databases: one on the coordinator and both workers (Citus keeps its metadata per database), made the
 * way test/helpers/citus.ts makes them, and one on 127.0.0.1:5432; all dropped at the end. When Citus is
 * not installed, or the coordinator (127.0.0.1:9700, or TENANTIZE_BENCH_CITUS_URL) or 127.0.0.1:5432 does
 * not answer, the bench says why in its one row and measures nothing; it never starts or changes the cluster.
 */
import { existsSync } from 'node:fs'
import { loadavg } from 'node:os'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { CompiledQuery, Kysely, PostgresDialect, type Compilable } from 'kysely'
import { isolateTenant, type IsolateResult } from '../src/citus/isolate.js'
import { withClient } from '../src/db/connect.js'
import { createScratchDatabase, dropRolesOf } from '../src/db/provision.js'
import { LOCAL_URL } from '../src/db/test-server.js'
import { withDatabase } from '../src/db/url.js'
import { withTenant } from '../src/runtime/index.js'
import { tenantDialect, tenantRoutingPlugin } from '../src/runtime/kysely.js'
import { quoteIdent } from '../src/sql/index.js'
import { median, type BenchMeasure } from './result.js'

const CITUS_SO = '/usr/lib/postgresql/15/lib/citus.so'
const COORDINATOR = process.env['TENANTIZE_BENCH_CITUS_URL'] ?? 'postgres://postgres@127.0.0.1:9700/postgres'
const TENANTS = 20
const ROWS = 2_000
const CALLS = 1_000
const LIST_CALLS = 500
const WARM_UP = 100
const PAGE = 20

interface Items {
  items: { org_id: string; id: string; body: string }
  readings: { org_id: string; id: string; kwh: string }
}

const tenantOf = (t: number): string => `00000000-0000-4000-8000-${String(t).padStart(12, '0')}`
const SMALL = tenantOf(1)
const BIG = tenantOf(0)
const load = (): string => `load ${loadavg().map((l) => l.toFixed(1)).join(' ')}`
const ms = (v: number): string => `${v < 10 ? v.toFixed(2) : v.toFixed(0)} ms`

/** The schema of both sides; `citus` adds the distribution and the role setting Citus needs. */
function schema(app: string, citus: boolean): string[] {
  const role = quoteIdent(app)
  const policy = 'org_id OPERATOR(pg_catalog.=) tenantize.current_tenant_id()'
  return [
    `CREATE ROLE ${role} LOGIN`,
    ...(citus ? [`ALTER ROLE ${role} SET citus.propagate_set_commands = 'local'`] : []),
    'CREATE SCHEMA tenantize',
    `CREATE FUNCTION tenantize.current_tenant_id() RETURNS pg_catalog.uuid LANGUAGE sql STABLE PARALLEL SAFE
      RETURN CASE WHEN pg_catalog.current_setting('tenantize.tenant_id', true) OPERATOR(pg_catalog.<>) ''
        THEN pg_catalog.current_setting('tenantize.tenant_id', true)::pg_catalog.uuid END`,
    `GRANT USAGE ON SCHEMA tenantize TO ${role}`,
    'CREATE TABLE orgs (id uuid PRIMARY KEY, name text NOT NULL)',
    ...(citus ? ["SELECT create_reference_table('orgs')"] : []),
    'CREATE TABLE items (org_id uuid NOT NULL REFERENCES orgs (id), id bigint NOT NULL, body text NOT NULL, PRIMARY KEY (org_id, id))',
    ...(citus ? ["SELECT create_distributed_table('items', 'org_id')"] : []),
    'ALTER TABLE items ENABLE ROW LEVEL SECURITY',
    'ALTER TABLE items FORCE ROW LEVEL SECURITY',
    `CREATE POLICY items_tenant ON items TO ${role} USING (${policy}) WITH CHECK (${policy})`,
    `GRANT SELECT ON orgs TO ${role}`,
    `GRANT SELECT, INSERT ON items TO ${role}`,
  ]
}

/** Schema, then `ROWS` rows per tenant (the big one `bigRows`), then ANALYZE. One statement per call (Citus forwards some query strings whole). */
async function build(url: string, app: string, citus: boolean, bigRows: number): Promise<void> {
  await withClient(url, async (c) => {
    for (const statement of schema(app, citus)) await c.query(statement)
    await c.query(`INSERT INTO orgs SELECT ('00000000-0000-4000-8000-' || lpad(t::text, 12, '0'))::uuid, 'org ' || t FROM generate_series(0, $1 - 1) t`, [TENANTS])
    await c.query(`INSERT INTO items SELECT o.id, r, 'body ' || r FROM orgs o, generate_series(1, $1) r WHERE o.id <> $2`, [ROWS, BIG])
    await c.query(`INSERT INTO items SELECT $2, r, 'body ' || r FROM generate_series(1, $1) r`, [bigRows, BIG])
    await c.query('ANALYZE')
  })
}

/** A Kysely as the app role logged in at `url`: SET LOCAL context, the tenant predicate added to every query of items. */
function appDb(url: string, app: string, max = 1): Kysely<Items> {
  const login = new URL(url)
  login.username = app
  const pool = new pg.Pool({ connectionString: login.toString(), max })
  return new Kysely<Items>({ dialect: tenantDialect(new PostgresDialect({ pool }), { strategy: 'set-local' }), plugins: [tenantRoutingPlugin({ tables: ['items'] })] })
}

const lookup = (db: Kysely<Items>, i: number): Compilable & { execute(): Promise<unknown[]> } => db.selectFrom('items').select(['id', 'body']).where('id', '=', String(1 + ((i * 7919) % ROWS)))
const list = (db: Kysely<Items>): Compilable & { execute(): Promise<unknown[]> } => db.selectFrom('items').select(['id', 'body']).orderBy('id').limit(PAGE)

/** EXPLAIN of the query as the routing plugin compiles it for `tenant`: its plan text. */
async function explain(db: Kysely<Items>, tenant: string, query: Compilable): Promise<string> {
  return withTenant(tenant, async () => {
    const compiled = query.compile()
    const { rows } = await db.executeQuery<{ 'QUERY PLAN': string }>(CompiledQuery.raw(`EXPLAIN (COSTS OFF) ${compiled.sql}`, [...compiled.parameters]))
    return rows.map((r) => r['QUERY PLAN']).join('\n')
  })
}

const taskCount = (plan: string): number => Number(/Task Count: (\d+)/.exec(plan)?.[1] ?? NaN)

/** Calls of both alternate one by one, so both sides see the same load; the medians keep spikes out. */
async function alternate(n: number, citus: (i: number) => Promise<unknown>, plain: (i: number) => Promise<unknown>): Promise<{ citus: number; plain: number }> {
  const c: number[] = []
  const p: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await citus(i)
    const t1 = performance.now()
    await plain(i)
    p.push(performance.now() - t1)
    c.push(t1 - t0)
  }
  return { citus: median(c), plain: median(p) }
}

/** An app writer inserting the big tenant's rows into `table` one by one, each write's start and end kept. */
function writer(db: Kysely<Items>, table: 'items' | 'readings', firstId: number): { stop(): Promise<{ writes: { start: number; end: number }[]; errors: string[] }> } {
  let running = true
  const writes: { start: number; end: number }[] = []
  const errors: string[] = []
  const insert = (id: number): Promise<unknown> =>
    table === 'items'
      ? db.insertInto('items').values({ org_id: BIG, id: String(id), body: 'live' }).execute()
      : db.insertInto('readings').values({ org_id: BIG, id: String(id), kwh: '1' }).execute()
  const done = (async () => {
    for (let id = firstId; running; id++) {
      const start = performance.now()
      try {
        await withTenant(BIG, () => insert(id))
        writes.push({ start, end: performance.now() })
      } catch (error) {
        errors.push(error instanceof Error ? error.message : String(error))
        await new Promise((r) => setTimeout(r, 20))
      }
    }
  })()
  return {
    async stop() {
      running = false
      await done
      return { writes, errors }
    },
  }
}

/** The longest write that overlapped [from, to], and the count of writes in it. */
function stall(writes: readonly { start: number; end: number }[], from: number, to: number): { longest: number; count: number } {
  const during = writes.filter((w) => w.end >= from && w.start <= to)
  return { longest: Math.max(0, ...during.map((w) => w.end - w.start)), count: during.length }
}

async function coordinatorAnswers(url: string): Promise<string | undefined> {
  try {
    const v = await withClient(url, async (c) => (await c.query<{ v: string | null }>(`SELECT (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'citus') AS v`)).rows[0]?.v ?? null, { connectTimeoutMs: 3_000 })
    return v === null ? `${new URL(url).host} answers but has no citus extension in database postgres` : undefined
  } catch (error) {
    return `the Citus coordinator ${new URL(url).host} does not answer (${error instanceof Error ? error.message : String(error)}): start it with ../shared/citus/cluster.sh start`
  }
}

/** The plain PostgreSQL 15 side: 127.0.0.1:5432 must answer. */
async function plainAnswers(): Promise<string | undefined> {
  try {
    await withClient(LOCAL_URL, (c) => c.query('SELECT 1'), { connectTimeoutMs: 3_000 })
    return undefined
  } catch (error) {
    return `PostgreSQL on 127.0.0.1:5432, the side Citus is compared with, does not answer (${error instanceof Error ? error.message : String(error)})`
  }
}

interface CitusDb {
  readonly url: string
  readonly name: string
  readonly workers: readonly { host: string; port: number }[]
  drop(): Promise<void>
}

/** A database on every node, the citus extension in each, the coordinator and the workers registered (as test/helpers/citus.ts does). */
async function citusDatabase(adminUrl: string, name: string): Promise<CitusDb> {
  const workers = await withClient(adminUrl, async (c) => (await c.query<{ host: string; port: number }>(`SELECT nodename AS host, nodeport AS port FROM pg_catalog.pg_dist_node WHERE noderole = 'primary' AND groupid <> 0 ORDER BY nodeport`)).rows)
  if (workers.length === 0) throw new Error(`the coordinator ${new URL(adminUrl).host} has no workers (pg_dist_node)`)
  const coordinator = new URL(adminUrl)
  const admins = [adminUrl, ...workers.map((w) => `postgres://postgres@${w.host}:${w.port}/postgres`)]
  const made: string[] = []
  const drop = async (): Promise<void> => {
    for (const admin of made) await withClient(admin, (c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`)).catch(() => undefined)
    for (const admin of made) {
      await withClient(admin, async (c) => {
        const { rows } = await c.query<{ rolname: string }>('SELECT rolname FROM pg_catalog.pg_roles WHERE rolname LIKE $1', [`${name}_%`])
        for (const r of rows) await c.query(`DROP ROLE IF EXISTS ${quoteIdent(r.rolname)}`)
      }).catch(() => undefined)
    }
  }
  try {
    for (const admin of admins) {
      await withClient(admin, async (c) => {
        await c.query('SET citus.enable_create_database_propagation = off')
        await c.query(`CREATE DATABASE ${quoteIdent(name)}`)
      })
      made.push(admin)
      await withClient(withDatabase(admin, name), (c) => c.query('CREATE EXTENSION IF NOT EXISTS citus'))
    }
    const url = withDatabase(adminUrl, name)
    await withClient(url, async (c) => {
      await c.query('SELECT pg_catalog.citus_set_coordinator_host($1, $2)', [coordinator.hostname, Number(coordinator.port || 5432)])
      for (const w of workers) await c.query('SELECT pg_catalog.citus_add_node($1, $2)', [w.host, w.port])
    })
    return { url, name, workers, drop }
  } catch (error) {
    await drop()
    throw error
  }
}

export default async function citusBench(options: { full: boolean }): Promise<readonly BenchMeasure[]> {
  const why = !existsSync(CITUS_SO) && process.env['TENANTIZE_BENCH_CITUS_URL'] === undefined
    ? `Citus is not installed into PostgreSQL 15 (${CITUS_SO} is missing): run ../shared/citus/build.sh, then ../shared/citus/cluster.sh start`
    : (await coordinatorAnswers(COORDINATOR)) ?? (await plainAnswers())
  if (why !== undefined) {
    console.error(`# citus: not run: ${why}`)
    return [{ name: 'not run (no measure taken)', value: 0, unit: 'measures', note: why }]
  }
  const bigRows = options.full ? 1_000_000 : 100_000
  const distRows = options.full ? 2_000_000 : 200_000
  const token = randomBytes(4).toString('hex')
  const citus = await citusDatabase(COORDINATOR, `tzb_citus_${token}`)
  const plain = await createScratchDatabase(LOCAL_URL, 'bench_citus')
  const citusApp = `${citus.name}_app`
  const plainApp = `${plain.name}_app`
  const open: Kysely<Items>[] = []
  try {
    const t0 = performance.now()
    await build(citus.url, citusApp, true, bigRows)
    await build(plain.url, plainApp, false, bigRows)
    console.error(`# citus: both databases built (${TENANTS} tenants, ${ROWS} rows each, the big one ${bigRows}) in ${Math.round(performance.now() - t0)} ms`)
    const versions = await Promise.all([citus.url, plain.url].map((u) => withClient(u, async (c) => (await c.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0]!.v)))
    const citusVersion = await withClient(citus.url, async (c) => (await c.query<{ v: string }>(`SELECT extversion AS v FROM pg_extension WHERE extname = 'citus'`)).rows[0]!.v)
    const shards = await withClient(citus.url, async (c) => (await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_dist_shard WHERE logicalrelid = 'items'::regclass`)).rows[0]!.n)

    const onCitus = appDb(citus.url, citusApp)
    const onPlain = appDb(plain.url, plainApp)
    open.push(onCitus, onPlain)
    // The same rows on both sides, or the comparison means nothing.
    for (const db of [onCitus, onPlain]) {
      const found = await withTenant(SMALL, () => lookup(db, 1).execute())
      const page = await withTenant(SMALL, () => list(db).execute())
      if (found.length !== 1 || page.length !== PAGE) throw new Error(`the lookup must find 1 row and the list ${PAGE} (found ${found.length} and ${page.length})`)
    }
    const lookupPlan = await explain(onCitus, SMALL, lookup(onCitus, 1))
    const listPlan = await explain(onCitus, SMALL, list(onCitus))
    const plainPlan = await explain(onPlain, SMALL, lookup(onPlain, 1))
    const rlsOnly = await withTenant(SMALL, async () => (await onCitus.executeQuery<{ 'QUERY PLAN': string }>(CompiledQuery.raw('EXPLAIN (COSTS OFF) SELECT id, body FROM items WHERE id = $1', ['1']))).rows.map((r) => r['QUERY PLAN']).join('\n'))
    console.error(`# citus: EXPLAIN (COSTS OFF) of the routed primary-key lookup on Citus:\n${lookupPlan.split('\n').map((l) => `#   ${l}`).join('\n')}`)
    console.error(`# citus: the same lookup on PostgreSQL:\n${plainPlan.split('\n').map((l) => `#   ${l}`).join('\n')}`)

    for (let i = 0; i < WARM_UP; i++) {
      await withTenant(SMALL, () => lookup(onCitus, i).execute())
      await withTenant(SMALL, () => lookup(onPlain, i).execute())
    }
    const loadBefore = load()
    const lookups = await alternate(CALLS, (i) => withTenant(SMALL, () => lookup(onCitus, i).execute()), (i) => withTenant(SMALL, () => lookup(onPlain, i).execute()))
    const lists = await alternate(LIST_CALLS, () => withTenant(SMALL, () => list(onCitus).execute()), () => withTenant(SMALL, () => list(onPlain).execute()))
    const loadAfter = load()
    console.error(`# citus: lookup ${ms(lookups.citus)} on Citus vs ${ms(lookups.plain)}; list ${ms(lists.citus)} vs ${ms(lists.plain)} (${loadAfter})`)

    // Isolate the big tenant, then move its shards, while an app writer keeps inserting its rows.
    const writerDb = appDb(citus.url, citusApp)
    open.push(writerDb)
    const w = writer(writerDb, 'items', bigRows + 1)
    await new Promise((r) => setTimeout(r, 2_000))
    const idleEnd = performance.now()
    const isolateStart = performance.now()
    const isolated: IsolateResult = await isolateTenant({ databaseUrl: citus.url, tenant: BIG, table: 'public.items' })
    const isolateEnd = performance.now()
    const loadIsolate = load()
    await new Promise((r) => setTimeout(r, 1_000))
    const target = citus.workers.map((x) => `${x.host}:${x.port}`).find((n) => n !== isolated.node)!
    const moveStart = performance.now()
    const moved = await isolateTenant({ databaseUrl: citus.url, tenant: BIG, table: 'public.items', moveTo: target })
    const moveEnd = performance.now()
    const loadMove = load()
    await new Promise((r) => setTimeout(r, 1_000))
    const { writes, errors } = await w.stop()
    const idle = writes.filter((x) => x.end <= idleEnd).map((x) => x.end - x.start)
    const duringIsolate = stall(writes, isolateStart, isolateEnd)
    const duringMove = stall(writes, moveStart, moveEnd)
    const kept = await withClient(citus.url, async (c) => (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM items WHERE org_id = $1 AND id > $2', [BIG, bigRows])).rows[0]!.n)
    if (kept < writes.length) throw new Error(`the writer's rows: ${writes.length} written, ${kept} found after the move`)
    const idleNote = `idle writes: median ${ms(median(idle))}, longest ${ms(Math.max(...idle))} (${idle.length})`
    const errorNote = errors.length === 0 ? 'no write failed' : `${errors.length} writes failed: ${[...new Set(errors)].slice(0, 2).join('; ')}`
    console.error(`# citus: isolate ${Math.round(isolated.isolateMs)} ms, longest write ${ms(duringIsolate.longest)}; move ${Math.round(moved.moveMs ?? 0)} ms, longest write ${ms(duringMove.longest)}; ${idleNote}; ${errorNote}`)

    // Distribution: a local table on the coordinator, with row-level security, distributed while the writer inserts into it
    // (what apply's citus-distribute step runs: create_distributed_table, writes wait for the copy).
    const policy = 'org_id OPERATOR(pg_catalog.=) tenantize.current_tenant_id()'
    await withClient(citus.url, async (c) => {
      for (const statement of [
        'CREATE TABLE readings (org_id uuid NOT NULL, id bigint NOT NULL, kwh numeric NOT NULL, PRIMARY KEY (org_id, id))',
        'ALTER TABLE readings ENABLE ROW LEVEL SECURITY',
        'ALTER TABLE readings FORCE ROW LEVEL SECURITY',
        `CREATE POLICY readings_tenant ON readings TO ${quoteIdent(citusApp)} USING (${policy}) WITH CHECK (${policy})`,
        `GRANT SELECT, INSERT ON readings TO ${quoteIdent(citusApp)}`,
      ]) await c.query(statement)
      await c.query(`INSERT INTO readings SELECT o.id, r, 1 FROM orgs o, generate_series(1, $1) r`, [distRows / TENANTS])
      await c.query('ANALYZE readings')
    })
    const d = writer(writerDb, 'readings', distRows + 1)
    await new Promise((r) => setTimeout(r, 1_000))
    const distributeStart = performance.now()
    await withClient(citus.url, (c) => c.query(`SELECT create_distributed_table('readings', 'org_id', colocate_with => 'items')`))
    const distributeEnd = performance.now()
    const loadDistribute = load()
    await new Promise((r) => setTimeout(r, 1_000))
    const distributed = await d.stop()
    const duringDistribute = stall(distributed.writes, distributeStart, distributeEnd)
    const distributedKept = await withClient(citus.url, async (c) => (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM readings WHERE org_id = $1 AND id > $2', [BIG, distRows / TENANTS])).rows[0]!.n)
    if (distributedKept < distributed.writes.length) throw new Error(`the writer's readings: ${distributed.writes.length} written, ${distributedKept} found after the distribution`)
    console.error(`# citus: create_distributed_table of ${distRows} rows ${Math.round(distributeEnd - distributeStart)} ms, longest write ${ms(duringDistribute.longest)}`)

    const where = `Citus ${citusVersion} on PostgreSQL ${versions[0]} (coordinator + ${citus.workers.length} workers, ${shards} shards) vs PostgreSQL ${versions[1]} (127.0.0.1:5432)`
    return [
      {
        name: 'primary-key lookup: Citus ÷ PostgreSQL (scoped, routed)',
        value: lookups.citus / lookups.plain,
        unit: '×',
        note: `${ms(lookups.citus)} vs ${ms(lookups.plain)}, median of ${CALLS.toLocaleString('en')} each, alternating, one connection each, as the app role, Kysely + tenantRoutingPlugin, SET LOCAL context; ${where}; ${loadBefore} before, ${loadAfter} after`,
      },
      {
        name: `list of ${PAGE} rows: Citus ÷ PostgreSQL (scoped, routed)`,
        value: lists.citus / lists.plain,
        unit: '×',
        note: `${ms(lists.citus)} vs ${ms(lists.plain)}, median of ${LIST_CALLS} each (ORDER BY id LIMIT ${PAGE} of a tenant's ${ROWS.toLocaleString('en')} rows); ${loadAfter}`,
      },
      {
        name: 'shards touched by the scoped lookup (EXPLAIN Task Count)',
        value: taskCount(lookupPlan),
        unit: 'shards',
        limit: 1,
        note: `goal 1: the routing plugin's items.org_id = $n routes it to the tenant's shard; the same query filtered by row-level security alone: Task Count ${taskCount(rlsOnly)} of ${shards}`,
      },
      {
        name: 'shards touched by the scoped list (EXPLAIN Task Count)',
        value: taskCount(listPlan),
        unit: 'shards',
        limit: 1,
        note: 'goal 1',
      },
      {
        name: `longest app write during tenant isolate, big tenant of ${bigRows.toLocaleString('en')} rows`,
        value: duringIsolate.longest,
        unit: 'ms',
        note: `isolate_tenant_to_new_shard (CASCADE, ${isolated.transferMode}) took ${Math.round(isolated.isolateMs)} ms; ${duringIsolate.count} inserts of that tenant overlapped it (one writer, as the app role through the coordinator); ${idleNote}; ${errorNote}; ${loadIsolate}`,
      },
      {
        name: `longest app write during the shard move, big tenant of ${bigRows.toLocaleString('en')} rows`,
        value: duringMove.longest,
        unit: 'ms',
        note: `citus_move_shard_placement ${moved.movedFrom ?? '?'} → ${moved.node} (${moved.transferMode}) took ${Math.round(moved.moveMs ?? 0)} ms; ${duringMove.count} inserts overlapped it; every write of the writer found after the move (${writes.length}); ${loadMove}`,
      },
      {
        name: `longest app write during create_distributed_table, ${distRows.toLocaleString('en')} rows`,
        value: duringDistribute.longest,
        unit: 'ms',
        note: `a local table with row-level security (${TENANTS} tenants) distributed by org_id, colocated with items, as apply's citus-distribute step does (writes wait for the copy; create_distributed_table_concurrently needs wal_level = logical, which this cluster does not have), took ${Math.round(distributeEnd - distributeStart)} ms; ${duringDistribute.count} inserts of one tenant overlapped it; ${distributed.errors.length === 0 ? 'no write failed' : `${distributed.errors.length} writes failed: ${[...new Set(distributed.errors)].slice(0, 2).join('; ')}`}; ${loadDistribute}`,
      },
    ]
  } finally {
    for (const db of open) await db.destroy().catch(() => undefined)
    await citus.drop()
    await plain.drop()
    await dropRolesOf(LOCAL_URL, [plain.token])
  }
}
