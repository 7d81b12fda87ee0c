/**
 * What the tenant context costs per query, per adapter: the target is ≤ 1.4× a bare autocommit query
 * for a sub-millisecond query (reported here, never asserted in tests).
 *
 * On a scratch database of the test server (local PostgreSQL, or embedded PostgreSQL 18 with
 * TENANTIZE_TEST_PG=embedded): `items` with RLS as `tenantize apply` makes it, 10 tenants × 100 rows, an
 * app role. For each adapter, over the same pool of one connection as the app role, the same primary-key
 * lookup runs
 * - bare: through the driver or ORM as the application has it, one autocommit statement (no tenant: the
 *   policy is evaluated and finds nothing);
 * - scoped: through the tenantize adapter inside `withTenant` — its transaction with the context set.
 * Calls of both alternate one by one; the value is the ratio of the medians of the single calls. With `(pipeline: true)` both run over a node-postgres pool created with
 * `pipeline: true`, and the adapter is told so.
 */
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import postgres from 'postgres'
import { Kysely, PostgresDialect } from 'kysely'
import { drizzle } from 'drizzle-orm/node-postgres'
import { eq } from 'drizzle-orm'
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

const TARGET = 1.4
const CALLS = 3000
const WARM_UP = 200

interface Pair {
  readonly name: string
  bare(id: string): Promise<unknown>
  scoped(id: string): Promise<unknown>
  close(): Promise<void>
}

async function warmUp(n: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < n; i++) await fn(i)
}

interface Items {
  items: { org_id: string; id: string; body: string }
}
const items = pgTable('items', { orgId: uuid('org_id').notNull(), id: text('id').primaryKey(), body: text('body').notNull() })

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
          CREATE FUNCTION tenantize.current_tenant_id() RETURNS uuid LANGUAGE sql STABLE SET search_path = pg_catalog
            AS $$ SELECT nullif(current_setting('tenantize.tenant_id', true), '')::uuid $$;
          GRANT USAGE ON SCHEMA tenantize TO ${quoteIdent(app)};
          CREATE TABLE items (org_id uuid NOT NULL, id text PRIMARY KEY, body text NOT NULL);
          ALTER TABLE items ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
          CREATE POLICY items_tenant ON items TO ${quoteIdent(app)}
            USING (org_id = (SELECT tenantize.current_tenant_id())) WITH CHECK (org_id = (SELECT tenantize.current_tenant_id()));
          GRANT SELECT ON items TO ${quoteIdent(app)};`)
        await c.query(`INSERT INTO items SELECT CASE WHEN t = 0 THEN $1::uuid ELSE gen_random_uuid() END, 't' || t || '-' || r, 'body'
          FROM generate_series(0, 9) t, generate_series(0, 99) r`, [tenant])
        await c.query('ANALYZE items')
        return (await c.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0]?.v ?? '?'
      })
      const id = (i: number): string => `t0-${i % 100}`
      // `pipeline` is a client option of node-postgres 8.23 its types do not list yet.
      const appPool = (pipeline = false): pg.Pool =>
        new pg.Pool({ connectionString: db.url, max: 1, options: `-c role=${app}`, ...(pipeline ? { pipeline } : {}) } as pg.PoolConfig)

      const pairs: (() => Pair)[] = [
        ...[false, true].map((pipeline) => (): Pair => {
          const pool = appPool(pipeline)
          const scoped = tenantPool(pool)
          const text = 'SELECT id, body FROM items WHERE id = $1'
          return { name: pipeline ? 'pg (pipeline: true)' : 'pg', bare: (k) => pool.query(text, [k]), scoped: (k) => scoped.query(text, [k]), close: () => pool.end() }
        }),
        () => {
          const sql = postgres(db.url, { max: 1, onnotice: () => undefined, connection: { options: `-c role=${app}` } })
          const scoped = tenantSql(sql)
          return {
            name: 'postgres.js',
            bare: (k) => sql`SELECT id, body FROM items WHERE id = ${k}`,
            scoped: (k) => scoped`SELECT id, body FROM items WHERE id = ${k}`,
            close: () => sql.end(),
          }
        },
        ...[false, true].map((pipeline) => (): Pair => {
          const pool = appPool(pipeline)
          const bare = new Kysely<Items>({ dialect: new PostgresDialect({ pool }) })
          const scoped = new Kysely<Items>({ dialect: tenantDialect(new PostgresDialect({ pool }), { pipeline }) })
          return {
            name: pipeline ? 'kysely (pipeline: true)' : 'kysely',
            bare: (k) => bare.selectFrom('items').select(['id', 'body']).where('id', '=', k).execute(),
            scoped: (k) => scoped.selectFrom('items').select(['id', 'body']).where('id', '=', k).execute(),
            close: () => pool.end(),
          }
        }),
        ...[false, true].map((pipeline) => (): Pair => {
          const pool = appPool(pipeline)
          const bare = drizzle({ client: pool })
          const scoped = drizzle({ client: tenantDrizzlePool(pool) })
          return {
            name: pipeline ? 'drizzle (pipeline: true)' : 'drizzle',
            bare: async (k) => bare.select({ id: items.id, body: items.body }).from(items).where(eq(items.id, k)),
            scoped: async (k) => scoped.select({ id: items.id, body: items.body }).from(items).where(eq(items.id, k)),
            close: () => pool.end(),
          }
        }),
        ...[false, true].map((pipeline) => (): Pair => {
          const pool = appPool(pipeline)
          const bare = generated.client(new PrismaPg(pool))
          const scoped = tenantPrisma(generated.client(tenantPrismaAdapter(new PrismaPg(pool), { pipeline })))
          return {
            name: pipeline ? 'prisma (pipeline: true)' : 'prisma',
            bare: (k) => bare.item.findMany({ where: { id: k }, select: { id: true, body: true } }),
            scoped: (k) => scoped.item.findMany({ where: { id: k }, select: { id: true, body: true } }),
            close: async () => {
              await bare.$disconnect()
              await scoped.$disconnect()
              await pool.end()
            },
          }
        }),
      ]

      const measures: BenchMeasure[] = []
      for (const open of pairs) {
        const pair = open()
        try {
          const bare = (i: number): Promise<unknown> => pair.bare(id(i))
          const scoped = (i: number): Promise<unknown> => withTenant(tenant, () => pair.scoped(id(i)))
          await warmUp(WARM_UP, bare)
          await warmUp(WARM_UP, scoped)
          // Calls alternate one by one, so both sides see the same load on a shared machine; the
          // medians of the single calls keep load spikes out.
          const bareMs: number[] = []
          const scopedMs: number[] = []
          for (let i = 0; i < CALLS; i++) {
            const t0 = process.hrtime.bigint()
            await bare(i)
            const t1 = process.hrtime.bigint()
            await scoped(i)
            const t2 = process.hrtime.bigint()
            bareMs.push(Number(t1 - t0) / 1e6)
            scopedMs.push(Number(t2 - t1) / 1e6)
          }
          const b = median(bareMs)
          const s = median(scopedMs)
          console.error(`# runtime-context: ${pair.name}: bare ${(b * 1000).toFixed(0)} µs, withTenant ${(s * 1000).toFixed(0)} µs`)
          measures.push({
            name: `${pair.name}: withTenant / bare autocommit query`,
            value: s / b,
            unit: '×',
            limit: TARGET,
            note: `${(s * 1000).toFixed(0)} µs vs ${(b * 1000).toFixed(0)} µs median of 3,000 primary-key lookups each, one connection; PostgreSQL ${version} (${server.kind})`,
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
