/**
 * Citus routing (issue #16, runtime) on a real 3-node cluster (test/helpers/citus.ts): with the set-local
 * strategy each adapter's context reaches the workers (the app role has citus.propagate_set_commands =
 * 'local'), and a scoped query that carries the explicit tenant predicate — the Kysely plugin, the Drizzle
 * filter, the Prisma extension, a parameter for raw pg and postgres.js — is routed to ONE shard (EXPLAIN:
 * "Task Count: 1"), where the same query filtered only by row-level security fans out to every shard.
 * Without context the adapters refuse before touching the database, and the app role sees no rows.
 *
 * Schema: a reference tenant table `orgs`, `items` distributed by org_id (colocated with nothing else),
 * RLS with the policy calling the helper directly (Citus refuses sub-selects in policies).
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import postgres from 'postgres'
import { CompiledQuery, Kysely, PostgresDialect } from 'kysely'
import { drizzle } from 'drizzle-orm/node-postgres'
import { and, eq } from 'drizzle-orm'
import { PrismaPg } from '@prisma/adapter-pg'
import { TenantContextMissingError, requireTenant, tenantPool, withTenant } from '../src/runtime/index.js'
import { tenantSql } from '../src/runtime/postgres.js'
import { tenantDialect, tenantRoutingPlugin } from '../src/runtime/kysely.js'
import { tenantDrizzlePool, tenantFilter } from '../src/runtime/drizzle.js'
import { tenantPrisma, tenantPrismaAdapter, tenantRouting } from '../src/runtime/prisma.js'
import { quoteIdent } from '../src/sql/quote.js'
import { citusDatabase, type CitusDatabase } from './helpers/citus.js'
import { drizzleItems, type KyselyDB } from './helpers/runtime-adapters.js'
import { generatePrismaClient, type GeneratedPrisma } from './fixtures/prisma/client.js'

const citus = await citusDatabase(import.meta.url)
const skip = 'unavailable' in citus ? citus.unavailable : false
const A = randomUUID()
const B = randomUUID()
const ROWS = 5
const STRATEGY = { strategy: 'set-local' } as const
let app = ''
let appUrl = ''
let generated: GeneratedPrisma | undefined
/** EXPLAIN output per adapter, printed at the end for the closing note. */
const plans = new Map<string, string>()

before(async () => {
  if (skip !== false) return
  const db = citus as CitusDatabase
  app = db.role('app')
  const url = new URL(db.url)
  url.username = app
  appUrl = url.toString()
  // The coordinator connects to the workers as the current user: the app role logs in (trust on the test cluster).
  // One statement per call: Citus forwards the query string of some propagated commands to the workers.
  for (const statement of [
    `CREATE ROLE ${quoteIdent(app)} LOGIN`,
    `ALTER ROLE ${quoteIdent(app)} SET citus.propagate_set_commands = 'local'`,
    'CREATE SCHEMA tenantize',
    `CREATE FUNCTION tenantize.current_tenant_id() RETURNS pg_catalog.uuid LANGUAGE sql STABLE PARALLEL SAFE
      RETURN CASE WHEN pg_catalog.current_setting('tenantize.tenant_id', true) OPERATOR(pg_catalog.<>) ''
        THEN pg_catalog.current_setting('tenantize.tenant_id', true)::pg_catalog.uuid END`,
    `GRANT USAGE ON SCHEMA tenantize TO ${quoteIdent(app)}`,
    'CREATE TABLE orgs (id uuid PRIMARY KEY, name text NOT NULL)',
    "SELECT create_reference_table('orgs')",
    'CREATE TABLE items (org_id uuid NOT NULL REFERENCES orgs (id), id text NOT NULL, body text NOT NULL, PRIMARY KEY (org_id, id))',
    "SELECT create_distributed_table('items', 'org_id')",
    'ALTER TABLE items ENABLE ROW LEVEL SECURITY',
    'ALTER TABLE items FORCE ROW LEVEL SECURITY',
    `CREATE POLICY items_tenant ON items TO ${quoteIdent(app)}
      USING (org_id OPERATOR(pg_catalog.=) tenantize.current_tenant_id())
      WITH CHECK (org_id OPERATOR(pg_catalog.=) tenantize.current_tenant_id())`,
    `GRANT SELECT ON orgs TO ${quoteIdent(app)}`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON items TO ${quoteIdent(app)}`,
  ]) {
    await db.sql(statement)
  }
  await db.sql('INSERT INTO orgs VALUES ($1, $3), ($2, $4)', [A, B, 'a', 'b'])
  await db.sql(`INSERT INTO items SELECT o, 'r' || i, 'body ' || i FROM unnest($1::uuid[]) o, generate_series(1, ${ROWS}) i`, [[A, B]])
  generated = await generatePrismaClient()
})

after(async () => {
  await generated?.dispose()
  if (plans.size > 0) {
    for (const [adapter, plan] of plans) console.log(`# EXPLAIN (COSTS OFF) via ${adapter}:\n${plan.split('\n').map((l) => `#   ${l}`).join('\n')}`)
  }
})

const ids = (rows: readonly { id: string }[]): string[] => rows.map((r) => r.id).sort()
const MINE = Array.from({ length: ROWS }, (_, i) => `r${i + 1}`).sort()

/** The plan text of EXPLAIN rows (pg: `QUERY PLAN` column). */
const planText = (rows: readonly Record<string, unknown>[]): string => rows.map((r) => String(r['QUERY PLAN'])).join('\n')

/** One task (routed to the tenant's shard), and the shard count Citus would fan out to without the predicate. */
function assertRouted(adapter: string, plan: string): void {
  plans.set(adapter, plan)
  assert.match(plan, /Task Count: 1\b/, `${adapter}: routed to one shard\n${plan}`)
}

const appPool = (): pg.Pool => new pg.Pool({ connectionString: appUrl, max: 2 })

test('without the predicate RLS alone fans out to every shard; without context the app role sees no rows (fails closed)', { skip }, async () => {
  const pool = appPool()
  const db = tenantPool(pool, STRATEGY)
  try {
    const fanned = await withTenant(A, () => db.query('EXPLAIN (COSTS OFF) SELECT id FROM items'))
    const shards = Number(/Task Count: (\d+)/.exec(planText(fanned.rows))?.[1])
    assert.ok(shards > 1, `RLS alone: ${shards} tasks`)
    const all = await withTenant(A, () => db.query<{ id: string }>('SELECT id FROM items'))
    assert.deepEqual(ids(all.rows), MINE, 'the context reaches the workers (SET LOCAL propagated)')
    // No context: the adapter refuses before touching the database; the role itself sees nothing.
    await assert.rejects(db.query('SELECT id FROM items'), TenantContextMissingError)
    const bare = await pool.query('SELECT count(*)::int AS n FROM items')
    assert.deepEqual(bare.rows, [{ n: 0 }])
  } finally {
    await pool.end()
  }
})

test('pg: a parameter with the current tenant routes the query to one shard', { skip }, async () => {
  const pool = appPool()
  const db = tenantPool(pool, STRATEGY)
  try {
    const text = 'SELECT id FROM items WHERE org_id = $1 AND id = $2'
    const plan = await withTenant(A, () => db.query(`EXPLAIN (COSTS OFF) ${text}`, [requireTenant(), 'r1']))
    assertRouted('pg', planText(plan.rows))
    const rows = await withTenant(A, () => db.query<{ id: string }>(text, [requireTenant(), 'r1']))
    assert.deepEqual(ids(rows.rows), ['r1'])
    // Another tenant's id in the predicate: routed, and RLS still hides the rows.
    const other = await withTenant(A, () => db.query<{ id: string }>(text, [B, 'r1']))
    assert.deepEqual(other.rows, [])
  } finally {
    await pool.end()
  }
})

test('postgres.js: a parameter with the current tenant routes the query to one shard', { skip }, async () => {
  const sql = postgres(appUrl, { max: 2, onnotice: () => undefined })
  const tsql = tenantSql(sql, STRATEGY)
  try {
    const plan = await withTenant(A, () => tsql<{ 'QUERY PLAN': string }[]>`EXPLAIN (COSTS OFF) SELECT id FROM items WHERE org_id = ${requireTenant()} AND id = ${'r2'}`)
    assertRouted('postgres.js', planText(plan))
    const rows = await withTenant(A, () => tsql<{ id: string }[]>`SELECT id FROM items WHERE org_id = ${requireTenant()}`)
    assert.deepEqual(ids(rows), MINE)
    // set-local: unsafe text without parameters goes the pipelined way (Citus sends a SET LOCAL's whole query string to the workers).
    const unsafe = await withTenant(B, () => tsql.unsafe<{ id: string }[]>(`SELECT id FROM items WHERE org_id = '${B}'`))
    assert.deepEqual(ids(unsafe), MINE)
    await assert.rejects(tsql`SELECT 1`, TenantContextMissingError)
  } finally {
    await sql.end()
  }
})

test('Kysely: tenantRoutingPlugin adds the tenant predicate; the query is routed to one shard; a LEFT JOIN keeps its rows', { skip }, async () => {
  const pool = appPool()
  const db = new Kysely<KyselyDB & { orgs: { id: string; name: string } }>({
    dialect: tenantDialect(new PostgresDialect({ pool }), STRATEGY),
    plugins: [tenantRoutingPlugin({ tables: ['items'] })],
  })
  try {
    const query = db.selectFrom('items').select('id').where('id', '=', 'r3')
    const compiled = withTenant(A, () => query.compile())
    assert.equal(compiled.sql, 'select "id" from "items" where "id" = $1 and "items"."org_id" = $2')
    assert.deepEqual(compiled.parameters, ['r3', A])
    const plan = await withTenant(A, () => query.explain<{ 'QUERY PLAN': string }>())
    assertRouted('kysely', planText(plan))
    assert.deepEqual(ids(await withTenant(A, () => query.execute())), ['r3'])
    assert.deepEqual(ids(await withTenant(B, () => db.selectFrom('items').select('id').execute())), MINE)
    // Aliases, joins (ON, not WHERE), updates and deletes.
    const joined = withTenant(A, () => db.selectFrom('orgs').leftJoin('items as i', 'i.org_id', 'orgs.id').select(['orgs.name', 'i.id']).compile())
    assert.equal(joined.sql, 'select "orgs"."name", "i"."id" from "orgs" left join "items" as "i" on "i"."org_id" = "orgs"."id" and "i"."org_id" = $1')
    const rows = await withTenant(A, () => db.selectFrom('orgs').leftJoin('items as i', 'i.org_id', 'orgs.id').select(['orgs.name', 'i.id']).execute())
    assert.deepEqual(rows.filter((r) => r.name === 'b'), [{ name: 'b', id: null }], 'the other org is kept, null-extended')
    const update = await withTenant(A, () => db.updateTable('items').set({ body: 'changed' }).where('id', '=', 'r4').executeTakeFirst())
    assert.equal(update.numUpdatedRows, 1n)
    // Kysely's explain() on an update returns update results: EXPLAIN the compiled statement instead.
    const updatePlan = await withTenant(A, () => {
      const compiledUpdate = db.updateTable('items').set({ body: 'x' }).where('id', '=', 'r4').compile()
      assert.match(compiledUpdate.sql, /"items"\."org_id" = \$3$/)
      return db.executeQuery<{ 'QUERY PLAN': string }>(CompiledQuery.raw(`EXPLAIN (COSTS OFF) ${compiledUpdate.sql}`, [...compiledUpdate.parameters]))
    })
    assert.match(planText(updatePlan.rows), /Task Count: 1\b/)
    const deleted = withTenant(A, () => db.deleteFrom('items').where('id', '=', 'none').compile())
    assert.equal(deleted.sql, 'delete from "items" where "id" = $1 and "items"."org_id" = $2')
    assert.throws(() => tenantRoutingPlugin({ tables: [] }), TypeError)
  } finally {
    await db.destroy()
  }
})

test('Drizzle: tenantFilter(column) routes the query to one shard', { skip }, async () => {
  const pool = appPool()
  const scopedPool = tenantDrizzlePool(pool, STRATEGY)
  const db = drizzle({ client: scopedPool })
  try {
    const query = () => db.select({ id: drizzleItems.id }).from(drizzleItems).where(and(tenantFilter(drizzleItems.orgId), eq(drizzleItems.id, 'r5')))
    const { sql, params } = withTenant(A, () => query().toSQL())
    assert.equal(sql, 'select "id" from "items" where ("items"."org_id" = $1 and "items"."id" = $2)')
    const plan = await withTenant(A, () => scopedPool.query(`EXPLAIN (COSTS OFF) ${sql}`, params))
    assertRouted('drizzle', planText(plan.rows))
    assert.deepEqual(ids(await withTenant(A, () => query())), ['r5'])
    assert.throws(() => tenantFilter(drizzleItems.orgId), TenantContextMissingError)
  } finally {
    await pool.end()
  }
})

test('Prisma: the tenantRouting extension adds the tenant condition; the query is routed to one shard', { skip }, async () => {
  // What the adapter sends, recorded by the pool's clients, to EXPLAIN the same statement.
  const sent: { text: string; values: unknown[] }[] = []
  class RecordingClient extends pg.Client {
    override query(...args: unknown[]): never {
      const [config, values] = args as [{ text?: unknown; values?: unknown[] } | string, unknown[] | undefined]
      const text = typeof config === 'string' ? config : config.text
      if (typeof text === 'string' && text.includes('"items"')) sent.push({ text, values: (typeof config === 'string' ? undefined : config.values) ?? values ?? [] })
      return (super.query as (...a: unknown[]) => never)(...args)
    }
  }
  const pool = new pg.Pool({ connectionString: appUrl, max: 2, Client: RecordingClient })
  const recording = pool
  const base = tenantPrisma(generated!.client(tenantPrismaAdapter(new PrismaPg(recording), STRATEGY)), STRATEGY) as unknown as { $extends(extension: unknown): unknown }
  const prisma = base.$extends(tenantRouting({ models: { Item: 'orgId' } })) as ReturnType<GeneratedPrisma['client']>
  try {
    const rows = await withTenant(A, () => prisma.item.findMany({ where: { id: 'r1' }, select: { id: true } }))
    assert.deepEqual(rows, [{ id: 'r1' }])
    const statement = sent.at(-1)
    assert.ok(statement !== undefined)
    assert.match(statement.text, /"org_id" = \$\d/)
    const plan = await withTenant(A, () => prisma.$queryRawUnsafe<{ 'QUERY PLAN': string }[]>(`EXPLAIN (COSTS OFF) ${statement.text}`, ...statement.values))
    assertRouted('prisma', planText(plan))
    assert.deepEqual(ids(await withTenant(B, () => prisma.item.findMany())), MINE)
    assert.equal(await withTenant(B, () => prisma.item.count()), ROWS)
    assert.throws(() => tenantRouting({ models: {} }), TypeError)
  } finally {
    await prisma.$disconnect()
    await pool.end()
  }
})
