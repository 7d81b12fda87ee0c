/**
 * What the tenant context costs per statement, per adapter, with each adapter's default settings
 * (goal 2 of issue #14): ≤ 1.25× (Prisma ≤ 1.4×) for a sub-millisecond primary-key lookup, ≤ 1.05× for
 * a query of a few milliseconds. Reported here, never asserted in tests (round trips are counted in
 * test/runtime-round-trips.test.ts).
 *
 * On a scratch database of the test server: `items` with RLS as `tenantize apply` makes it (the inlined
 * helper), 10 tenants of 50,000 rows (alike, so that the
 * planner's estimate for a known tenant and for the policy's unknown one agree), an app role. Both sides read the same rows:
 * - scoped: through the tenantize adapter inside `withTenant`, as the app role: `WHERE id = $1`, and
 *   `count(*)` of the tenant's rows;
 * - bare: the same driver or ORM as the application has it, one autocommit statement as the table's
 *   owner (a superuser here: no row-level security), hand-filtered: `WHERE org_id = $A AND id = $1`,
 *   and `count(*) … WHERE org_id = $A`.
 * One connection each; calls alternate one by one (which side goes first alternates too); the value is
 * the ratio of the medians. Beside it, each side's CPU per call: its backend's (`/proc/<pid>/schedstat`,
 * the connection found by its application_name) and this process' (`process.cpuUsage`) — at a load of
 * 10–25 on two cores the wall-clock ratios swing by more than the goals' margins, the CPU ones do not.
 *
 * Beside each lookup, without a goal: the bare lookup through the adapter inside `withTenant` as the owner
 * (same SQL, no policy applies) — the runtime's share (context statement, adapter), apart from the policy's
 * (planning its subquery and inlining the helper, for a statement that is not prepared).
 */
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import pg from 'pg'
import postgres from 'postgres'
import { Kysely, PostgresDialect } from 'kysely'
import { drizzle } from 'drizzle-orm/node-postgres'
import { and, count, eq } from 'drizzle-orm'
import { pgTable, text, uuid } from 'drizzle-orm/pg-core'
import { PrismaPg } from '@prisma/adapter-pg'
import { tenantPool, withTenant } from '../src/runtime/index.js'
import { tenantSql } from '../src/runtime/postgres.js'
import { tenantDialect } from '../src/runtime/kysely.js'
import { tenantDrizzlePool } from '../src/runtime/drizzle.js'
import { tenantPrisma, tenantPrismaAdapter } from '../src/runtime/prisma.js'
import { withClient } from '../src/db/connect.js'
import { createScratchDatabase } from '../src/db/provision.js'
import { resolveTestServer } from '../src/db/test-server.js'
import { quoteIdent } from '../src/sql/index.js'
import { generatePrismaClient } from '../test/fixtures/prisma/client.js'
import { median, type BenchMeasure } from './result.js'

const CALLS = 3000
const WARM_UP = 200
const SLOW_CALLS = 400
const TENANT_ROWS = 50_000
const BARE = 'bench-bare'
const SCOPED = 'bench-scoped'
const OWNER_SCOPED = 'bench-owner-scoped'

interface Pair {
  readonly name: string
  /** Goal for the primary-key lookup. */
  readonly limit: number
  bare(id: string): Promise<unknown>
  scoped(id: string): Promise<unknown>
  /** The tenant's rows counted: a query of a few milliseconds. */
  bareCount(): Promise<unknown>
  scopedCount(): Promise<unknown>
  /** The bare side's hand-filtered lookup through the adapter, as the owner (no policy applies): what the runtime alone costs. */
  ownerScoped(id: string): Promise<unknown>
  close(): Promise<void>
}

async function warmUp(n: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < n; i++) await fn(i)
}

interface Items {
  items: { org_id: string; id: string; body: string }
}
const items = pgTable('items', { orgId: uuid('org_id').notNull(), id: text('id').primaryKey(), body: text('body').notNull() })

const us = (ms: number): string => `${(ms * 1000).toFixed(0)} µs`

/** CPU time a server backend has used so far, ns (`/proc/<pid>/schedstat`); `undefined` where it cannot be read (a remote server). */
function backendCpuNs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0])
  } catch {
    return undefined
  }
}

interface Side {
  /** Median wall time of one call, ms. */
  readonly wall: number
  /** This process' CPU per call (user + system), µs: the driver's and adapter's work. */
  readonly client: number
  /** The server backend's CPU per call, µs, or `undefined` when it cannot be read. */
  readonly backend: number | undefined
}

/**
 * Calls of both alternate one by one, so both sides see the same load on a shared machine; the medians
 * of the single calls keep load spikes out. Which side goes first alternates too (the first of a pair
 * may find its backend's CPU cache cold, or pay for a timer of the event loop). Beside the wall time,
 * each side's CPU per call — this process' (around each call) and its backend's (`/proc/<pid>/schedstat`
 * before and after) — which the machine's load does not inflate.
 */
async function alternate(n: number, bare: (i: number) => Promise<unknown>, scoped: (i: number) => Promise<unknown>, pids: { bare: number | undefined; scoped: number | undefined }): Promise<{ bare: Side; scoped: Side }> {
  const wall: [number[], number[]] = [[], []]
  const client = [0, 0]
  const sides = [bare, scoped] as const
  const backend0 = [backendCpuNs(pids.bare), backendCpuNs(pids.scoped)]
  for (let i = 0; i < n; i++) {
    for (const s of i % 2 === 0 ? [0, 1] : [1, 0]) {
      const c0 = process.cpuUsage()
      const t0 = process.hrtime.bigint()
      await sides[s]!(i)
      const t1 = process.hrtime.bigint()
      const c1 = process.cpuUsage(c0)
      wall[s]!.push(Number(t1 - t0) / 1e6)
      client[s] = (client[s] ?? 0) + c1.user + c1.system
    }
  }
  const backend1 = [backendCpuNs(pids.bare), backendCpuNs(pids.scoped)]
  const side = (s: 0 | 1): Side => {
    const [b0, b1] = [backend0[s], backend1[s]]
    return { wall: median(wall[s]), client: (client[s] ?? 0) / n, backend: b0 === undefined || b1 === undefined ? undefined : (b1 - b0) / 1000 / n }
  }
  return { bare: side(0), scoped: side(1) }
}

export default async function runtimeContextBench(): Promise<readonly BenchMeasure[]> {
  const server = await resolveTestServer()
  const generated = await generatePrismaClient()
  try {
    const db = await createScratchDatabase(server.url, 'bench_runtime')
    const app = `${db.name}_app`
    try {
      const tenant = randomUUID()
      const version = await withClient(db.url, async (c) => {
        await c.query(`
          CREATE ROLE ${quoteIdent(app)} NOLOGIN;
          CREATE SCHEMA tenantize;
          CREATE FUNCTION tenantize.current_tenant_id() RETURNS pg_catalog.uuid LANGUAGE sql STABLE PARALLEL SAFE
            RETURN CASE WHEN pg_catalog.current_setting('tenantize.tenant_id', true) OPERATOR(pg_catalog.<>) ''
              THEN pg_catalog.current_setting('tenantize.tenant_id', true)::pg_catalog.uuid END;
          GRANT USAGE ON SCHEMA tenantize TO ${quoteIdent(app)};
          CREATE TABLE items (org_id uuid NOT NULL, id text PRIMARY KEY, body text NOT NULL);
          CREATE INDEX items_org_id ON items (org_id);
          ALTER TABLE items ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
          CREATE POLICY items_tenant ON items TO ${quoteIdent(app)}
            USING (org_id OPERATOR(pg_catalog.=) (SELECT tenantize.current_tenant_id()))
            WITH CHECK (org_id OPERATOR(pg_catalog.=) (SELECT tenantize.current_tenant_id()));
          GRANT SELECT ON items TO ${quoteIdent(app)};`)
        await c.query(`INSERT INTO items SELECT CASE WHEN t = 0 THEN $1::uuid ELSE ('00000000-0000-4000-8000-00000000000' || t)::uuid END, 't' || t || '-' || r, 'body ' || r
          FROM generate_series(0, 9) t, generate_series(0, $2 - 1) r`, [tenant, TENANT_ROWS])
        await c.query('VACUUM ANALYZE items')
        return (await c.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0]?.v ?? '?'
      })
      const id = (i: number): string => `t0-${(i * 7919) % TENANT_ROWS}`
      // Each side's one connection is named, so that its backend is found (for its CPU time), and kept while
      // idle (node-postgres closes it after 10 s by default: a side idle through another phase then paid for a
      // new connection inside the measured calls).
      const appPool = (): pg.Pool => new pg.Pool({ connectionString: db.url, max: 1, idleTimeoutMillis: 0, options: `-c role=${app}`, application_name: SCOPED })
      const ownerPool = (name: typeof BARE | typeof OWNER_SCOPED): pg.Pool => new pg.Pool({ connectionString: db.url, max: 1, idleTimeoutMillis: 0, application_name: name })

      const pairs: (() => Pair)[] = [
        () => {
          const pool = appPool()
          const owner = ownerPool(BARE)
          const scoped = tenantPool(pool)
          const ownerScopedPool = ownerPool(OWNER_SCOPED)
          const ownerScoped = tenantPool(ownerScopedPool)
          return {
            name: 'pg',
            limit: 1.25,
            bare: (k) => owner.query('SELECT id, body FROM items WHERE org_id = $2 AND id = $1', [k, tenant]),
            scoped: (k) => scoped.query('SELECT id, body FROM items WHERE id = $1', [k]),
            bareCount: () => owner.query('SELECT count(*) FROM items WHERE org_id = $1', [tenant]),
            scopedCount: () => scoped.query('SELECT count(*) FROM items'),
            ownerScoped: (k) => ownerScoped.query('SELECT id, body FROM items WHERE org_id = $2 AND id = $1', [k, tenant]),
            close: async () => {
              await pool.end()
              await owner.end()
              await ownerScopedPool.end()
            },
          }
        },
        () => {
          const sql = postgres(db.url, { max: 1, onnotice: () => undefined, connection: { options: `-c role=${app}`, application_name: SCOPED } })
          const owner = postgres(db.url, { max: 1, onnotice: () => undefined, connection: { application_name: BARE } })
          const scoped = tenantSql(sql)
          const ownerSql = postgres(db.url, { max: 1, onnotice: () => undefined, connection: { application_name: OWNER_SCOPED } })
          const ownerScoped = tenantSql(ownerSql)
          return {
            name: 'postgres.js',
            limit: 1.25,
            bare: (k) => owner`SELECT id, body FROM items WHERE org_id = ${tenant} AND id = ${k}`,
            scoped: (k) => scoped`SELECT id, body FROM items WHERE id = ${k}`,
            bareCount: () => owner`SELECT count(*) FROM items WHERE org_id = ${tenant}`,
            scopedCount: () => scoped`SELECT count(*) FROM items`,
            ownerScoped: (k) => ownerScoped`SELECT id, body FROM items WHERE org_id = ${tenant} AND id = ${k}`,
            close: async () => {
              await sql.end()
              await owner.end()
              await ownerSql.end()
            },
          }
        },
        () => {
          const pool = appPool()
          const bare = new Kysely<Items>({ dialect: new PostgresDialect({ pool: ownerPool(BARE) }) })
          const scoped = new Kysely<Items>({ dialect: tenantDialect(new PostgresDialect({ pool })) })
          const ownerScoped = new Kysely<Items>({ dialect: tenantDialect(new PostgresDialect({ pool: ownerPool(OWNER_SCOPED) })) })
          return {
            name: 'kysely',
            limit: 1.25,
            bare: (k) => bare.selectFrom('items').select(['id', 'body']).where('org_id', '=', tenant).where('id', '=', k).execute(),
            scoped: (k) => scoped.selectFrom('items').select(['id', 'body']).where('id', '=', k).execute(),
            bareCount: () => bare.selectFrom('items').select((e) => e.fn.countAll().as('n')).where('org_id', '=', tenant).execute(),
            scopedCount: () => scoped.selectFrom('items').select((e) => e.fn.countAll().as('n')).execute(),
            ownerScoped: (k) => ownerScoped.selectFrom('items').select(['id', 'body']).where('org_id', '=', tenant).where('id', '=', k).execute(),
            close: async () => {
              await bare.destroy()
              await scoped.destroy()
              await ownerScoped.destroy()
            },
          }
        },
        () => {
          const pool = appPool()
          const owner = ownerPool(BARE)
          const bare = drizzle({ client: owner })
          const scoped = drizzle({ client: tenantDrizzlePool(pool) })
          const ownerScopedPool = ownerPool(OWNER_SCOPED)
          const ownerScoped = drizzle({ client: tenantDrizzlePool(ownerScopedPool) })
          return {
            name: 'drizzle',
            limit: 1.25,
            bare: async (k) => bare.select({ id: items.id, body: items.body }).from(items).where(and(eq(items.orgId, tenant), eq(items.id, k))),
            scoped: async (k) => scoped.select({ id: items.id, body: items.body }).from(items).where(eq(items.id, k)),
            bareCount: async () => bare.select({ n: count() }).from(items).where(eq(items.orgId, tenant)),
            scopedCount: async () => scoped.select({ n: count() }).from(items),
            ownerScoped: async (k) => ownerScoped.select({ id: items.id, body: items.body }).from(items).where(and(eq(items.orgId, tenant), eq(items.id, k))),
            close: async () => {
              await pool.end()
              await owner.end()
              await ownerScopedPool.end()
            },
          }
        },
        () => {
          const pool = appPool()
          const owner = ownerPool(BARE)
          const bare = generated.client(new PrismaPg(owner))
          const scoped = tenantPrisma(generated.client(tenantPrismaAdapter(new PrismaPg(pool))))
          const ownerScopedPool = ownerPool(OWNER_SCOPED)
          const ownerScoped = tenantPrisma(generated.client(tenantPrismaAdapter(new PrismaPg(ownerScopedPool))))
          return {
            name: 'prisma',
            limit: 1.4,
            bare: (k) => bare.item.findMany({ where: { orgId: tenant, id: k }, select: { id: true, body: true } }),
            scoped: (k) => scoped.item.findMany({ where: { id: k }, select: { id: true, body: true } }),
            bareCount: () => bare.item.count({ where: { orgId: tenant } }),
            scopedCount: () => scoped.item.count(),
            ownerScoped: (k) => ownerScoped.item.findMany({ where: { orgId: tenant, id: k }, select: { id: true, body: true } }),
            close: async () => {
              await bare.$disconnect()
              await scoped.$disconnect()
              await ownerScoped.$disconnect()
              await pool.end()
              await owner.end()
              await ownerScopedPool.end()
            },
          }
        },
      ]

      const measures: BenchMeasure[] = []
      for (const open of pairs) {
        const pair = open()
        try {
          const bare = (i: number): Promise<unknown> => pair.bare(id(i))
          const scoped = (i: number): Promise<unknown> => withTenant(tenant, () => pair.scoped(id(i)))
          const bareCount = (): Promise<unknown> => pair.bareCount()
          const scopedCount = (): Promise<unknown> => withTenant(tenant, () => pair.scopedCount())
          // The same rows on both sides, or the comparison means nothing.
          const rows = (r: unknown): number => (Array.isArray(r) ? r.length : (r as { rows?: unknown[] }).rows?.length ?? -1)
          if (rows(await bare(1)) !== 1 || rows(await scoped(1)) !== 1) throw new Error(`${pair.name}: bare and scoped lookups must each find the row`)
          const counted = (r: unknown): string => JSON.stringify(r).match(/\d{4,}/)?.[0] ?? JSON.stringify(r)
          const [bc, sc] = [counted(await bareCount()), counted(await scopedCount())]
          if (bc !== String(TENANT_ROWS) || sc !== bc) throw new Error(`${pair.name}: counts differ (bare ${bc}, scoped ${sc})`)
          await warmUp(WARM_UP, bare)
          await warmUp(WARM_UP, scoped)
          const ownerScoped = (i: number): Promise<unknown> => withTenant(tenant, () => pair.ownerScoped(id(i)))
          if (rows(await ownerScoped(1)) !== 1) throw new Error(`${pair.name}: the owner's scoped lookup must find the row`)
          await warmUp(WARM_UP, ownerScoped)
          const backends = (): Promise<{ bare: number | undefined; scoped: number | undefined; ownerScoped: number | undefined }> => withClient(db.url, async (c) => {
            const found = await c.query<{ name: string; pid: number }>(
              'SELECT application_name AS name, pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = ANY($1)',
              [[BARE, SCOPED, OWNER_SCOPED]],
            )
            // One connection per side, or its CPU time cannot be told.
            const pid = (name: string): number | undefined => (found.rows.filter((r) => r.name === name).length === 1 ? found.rows.find((r) => r.name === name)?.pid : undefined)
            return { bare: pid(BARE), scoped: pid(SCOPED), ownerScoped: pid(OWNER_SCOPED) }
          })
          // Looked up before each phase: a connection an ORM replaced would otherwise read as unknown.
          let pids = await backends()
          const lookup = await alternate(CALLS, bare, scoped, { bare: pids.bare, scoped: pids.scoped })
          pids = await backends()
          const runtime = await alternate(CALLS, bare, ownerScoped, { bare: pids.bare, scoped: pids.ownerScoped })
          pids = await backends()
          const slow = await alternate(SLOW_CALLS, bareCount, scopedCount, { bare: pids.bare, scoped: pids.scoped })
          const load = loadavg().map((l) => l.toFixed(1)).join(' ')
          const cpu = (r: { bare: Side; scoped: Side }): string =>
            `backend CPU per call ${r.scoped.backend === undefined ? '?' : r.scoped.backend.toFixed(0)} vs ${r.bare.backend === undefined ? '?' : r.bare.backend.toFixed(0)} µs, client CPU ${r.scoped.client.toFixed(0)} vs ${r.bare.client.toFixed(0)} µs`
          console.error(
            `# runtime-context: ${pair.name} (load ${load}): lookup bare ${us(lookup.bare.wall)}, withTenant ${us(lookup.scoped.wall)} (${cpu(lookup)}); runtime alone bare ${us(runtime.bare.wall)}, withTenant ${us(runtime.scoped.wall)} (${cpu(runtime)}); count bare ${us(slow.bare.wall)}, withTenant ${us(slow.scoped.wall)} (${cpu(slow)})`,
          )
          measures.push({
            name: `${pair.name}: withTenant / bare, primary-key lookup`,
            value: lookup.scoped.wall / lookup.bare.wall,
            unit: '×',
            limit: pair.limit,
            note: `${us(lookup.scoped.wall)} vs ${us(lookup.bare.wall)}, median of ${CALLS.toLocaleString('en')} each, same row, default settings; ${cpu(lookup)}; load ${load}; PostgreSQL ${version} (${server.kind})`,
          })
          measures.push({
            name: `${pair.name}: the runtime alone: withTenant / bare, same hand-filtered lookup as the owner`,
            value: runtime.scoped.wall / runtime.bare.wall,
            unit: '×',
            note: `${us(runtime.scoped.wall)} vs ${us(runtime.bare.wall)}, median of ${CALLS.toLocaleString('en')} each: the context and the adapter without the policy (the owner is not subject to it); ${cpu(runtime)}`,
          })
          const cpuRatio = (r: { bare: Side; scoped: Side }): number | undefined =>
            r.scoped.backend === undefined || r.bare.backend === undefined ? undefined : (r.scoped.backend + r.scoped.client) / (r.bare.backend + r.bare.client)
          const lookupCpu = cpuRatio(lookup)
          if (lookupCpu !== undefined) {
            measures.push({
              name: `${pair.name}: CPU per call (backend + client), withTenant / bare, primary-key lookup`,
              value: lookupCpu,
              unit: '×',
              note: 'the same calls as the wall-clock row; steadier than it at a high load',
            })
          }
          measures.push({
            name: `${pair.name}: withTenant / bare, count of ${TENANT_ROWS.toLocaleString('en')} rows`,
            value: slow.scoped.wall / slow.bare.wall,
            unit: '×',
            limit: 1.05,
            note: `${us(slow.scoped.wall)} vs ${us(slow.bare.wall)}, median of ${SLOW_CALLS} each, same rows; ${cpu(slow)}`,
          })
          const countCpu = cpuRatio(slow)
          if (countCpu !== undefined) {
            measures.push({
              name: `${pair.name}: CPU per call (backend + client), withTenant / bare, count of ${TENANT_ROWS.toLocaleString('en')} rows`,
              value: countCpu,
              unit: '×',
              note: 'the same calls as the wall-clock row',
            })
          }
        } finally {
          await pair.close()
        }
      }
      return measures
    } finally {
      await db.drop()
      await withClient(server.url, (c) => c.query(`DROP ROLE IF EXISTS ${quoteIdent(app)}`))
    }
  } finally {
    await generated.dispose()
    await server.stop()
  }
}
