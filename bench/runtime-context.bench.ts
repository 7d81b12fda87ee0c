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
 * One connection each; calls alternate one by one; the value is the ratio of the medians.
 *
 * Beside each lookup, without a goal: the bare lookup through the adapter inside `withTenant` as the owner
 * (same SQL, no policy applies) — the runtime's share (context statement, adapter), apart from the policy's
 * (planning its subquery and inlining the helper, for a statement that is not prepared).
 */
import { randomUUID } from 'node:crypto'
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
const SLOW_CALLS = 200
const TENANT_ROWS = 50_000

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

/**
 * Calls of both alternate one by one, so both sides see the same load on a shared machine; the medians
 * of the single calls keep load spikes out.
 */
async function alternate(n: number, bare: (i: number) => Promise<unknown>, scoped: (i: number) => Promise<unknown>): Promise<{ bare: number; scoped: number }> {
  const bareMs: number[] = []
  const scopedMs: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint()
    await bare(i)
    const t1 = process.hrtime.bigint()
    await scoped(i)
    const t2 = process.hrtime.bigint()
    bareMs.push(Number(t1 - t0) / 1e6)
    scopedMs.push(Number(t2 - t1) / 1e6)
  }
  return { bare: median(bareMs), scoped: median(scopedMs) }
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
      const appPool = (): pg.Pool => new pg.Pool({ connectionString: db.url, max: 1, options: `-c role=${app}` })
      const ownerPool = (): pg.Pool => new pg.Pool({ connectionString: db.url, max: 1 })

      const pairs: (() => Pair)[] = [
        () => {
          const pool = appPool()
          const owner = ownerPool()
          const scoped = tenantPool(pool)
          const ownerScopedPool = ownerPool()
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
          const sql = postgres(db.url, { max: 1, onnotice: () => undefined, connection: { options: `-c role=${app}` } })
          const owner = postgres(db.url, { max: 1, onnotice: () => undefined })
          const scoped = tenantSql(sql)
          const ownerSql = postgres(db.url, { max: 1, onnotice: () => undefined })
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
          const bare = new Kysely<Items>({ dialect: new PostgresDialect({ pool: ownerPool() }) })
          const scoped = new Kysely<Items>({ dialect: tenantDialect(new PostgresDialect({ pool })) })
          const ownerScoped = new Kysely<Items>({ dialect: tenantDialect(new PostgresDialect({ pool: ownerPool() })) })
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
          const owner = ownerPool()
          const bare = drizzle({ client: owner })
          const scoped = drizzle({ client: tenantDrizzlePool(pool) })
          const ownerScopedPool = ownerPool()
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
          const owner = ownerPool()
          const bare = generated.client(new PrismaPg(owner))
          const scoped = tenantPrisma(generated.client(tenantPrismaAdapter(new PrismaPg(pool))))
          const ownerScopedPool = ownerPool()
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
          const lookup = await alternate(CALLS, bare, scoped)
          const runtime = await alternate(CALLS, bare, ownerScoped)
          const slow = await alternate(SLOW_CALLS, bareCount, scopedCount)
          console.error(`# runtime-context: ${pair.name}: lookup bare ${us(lookup.bare)}, withTenant ${us(lookup.scoped)}; runtime alone bare ${us(runtime.bare)}, withTenant ${us(runtime.scoped)}; count bare ${us(slow.bare)}, withTenant ${us(slow.scoped)}`)
          measures.push({
            name: `${pair.name}: withTenant / bare, primary-key lookup`,
            value: lookup.scoped / lookup.bare,
            unit: '×',
            limit: pair.limit,
            note: `${us(lookup.scoped)} vs ${us(lookup.bare)}, median of ${CALLS.toLocaleString('en')} each, same row, default settings; PostgreSQL ${version} (${server.kind})`,
          })
          measures.push({
            name: `${pair.name}: the runtime alone: withTenant / bare, same hand-filtered lookup as the owner`,
            value: runtime.scoped / runtime.bare,
            unit: '×',
            note: `${us(runtime.scoped)} vs ${us(runtime.bare)}, median of ${CALLS.toLocaleString('en')} each: the context and the adapter without the policy (the owner is not subject to it)`,
          })
          measures.push({
            name: `${pair.name}: withTenant / bare, count of ${TENANT_ROWS.toLocaleString('en')} rows`,
            value: slow.scoped / slow.bare,
            unit: '×',
            limit: 1.05,
            note: `${us(slow.scoped)} vs ${us(slow.bare)}, median of ${SLOW_CALLS} each, same rows`,
          })
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
