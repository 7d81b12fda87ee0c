import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { addBlock, type BlockOptions } from '../src/blocks/index.js'
import { migrateDown, migrateUp } from '../src/migrate/index.js'
import { tenantPool, withTenant, type TenantPool } from '../src/runtime/index.js'
import { quoteIdent, roleName } from '../src/sql/index.js'
import { withClient } from '../src/db/connect.js'
import { introspect } from '../src/catalog/index.js'
import { proposeConfig } from '../src/plan/classify.js'
import { parseConfig } from '../src/plan/config.js'
import { planConversion } from '../src/plan/plan.js'
import { testDatabase, type TestDatabase } from './helpers/db.js'

// The generated migrations, applied by the real runner, then exercised as the app role with two tenants.

const db = await testDatabase(import.meta.url)
const APP = `${db.name}_app`
const ODD_APP = `${db.name} app's "odd" Ü`
const roles = [APP, ODD_APP]
const pools: pg.Pool[] = []
after(async () => {
  await Promise.all(pools.map((p) => p.end()))
  await db.drop()
  await withClient(db.adminUrl, async (c) => {
    for (const role of roles) await c.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`)
  })
})
await withClient(db.adminUrl, async (c) => {
  for (const role of roles) await c.query(`CREATE ROLE ${quoteIdent(role)} NOLOGIN`)
})

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tz-blocks-'))
  after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Write all three blocks into a fresh directory and apply them with the real runner. */
async function applyBlocks(target: TestDatabase, options: BlockOptions): Promise<string> {
  const dir = await tempDir()
  for (const block of ['rbac', 'api-keys', 'audit'] as const) await addBlock({ block, dir, ...options })
  const result = await migrateUp({ databaseUrl: target.url, dir })
  assert.deepEqual(result.migrations, ['0001_rbac', '0002_api_keys', '0003_audit_log'])
  return dir
}

/** A tenant pool connected as `role` (the admin user with `role` set at connection start). */
function appDb(target: TestDatabase, role: string): TenantPool {
  const pool = new pg.Pool({ connectionString: target.url, max: 2, options: `-c role=${role.replaceAll('\\', '\\\\').replaceAll(' ', '\\ ')}` })
  pool.on('error', () => undefined)
  pools.push(pool)
  return tenantPool(pool)
}

async function sqlState(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (error) {
    return String((error as { code?: unknown }).code)
  }
  assert.fail('expected the statement to fail')
}

const [A, B] = [randomUUID(), randomUUID()]
await db.sql(`CREATE TABLE organizations (id uuid PRIMARY KEY, slug text NOT NULL UNIQUE)`)
await db.sql(`INSERT INTO organizations VALUES ($1, 'a'), ($2, 'b')`, [A, B])
const dir = await applyBlocks(db, { appRole: APP })
const app = appDb(db, APP)

test('the three blocks are written as the next-numbered migrations', async () => {
  assert.deepEqual((await readdir(dir)).sort(), [
    '0001_rbac.down.sql',
    '0001_rbac.up.sql',
    '0002_api_keys.down.sql',
    '0002_api_keys.up.sql',
    '0003_audit_log.down.sql',
    '0003_audit_log.up.sql',
  ])
})

test('every block table has the tenant column, ENABLE + FORCE RLS and one policy for the app role', async () => {
  const rows = await db.sql<{ table: string; rls: boolean; forced: boolean; policies: string[]; roles: string[]; qual: string; check: string }>(`
    SELECT c.relname AS table, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced,
           array_agg(p.polname::text) AS policies, array_agg(r.rolname::text) AS roles,
           max(pg_get_expr(p.polqual, p.polrelid)) AS qual, max(pg_get_expr(p.polwithcheck, p.polrelid)) AS check
    FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid JOIN pg_roles r ON r.oid = ANY (p.polroles)
    WHERE c.relname IN ('memberships', 'api_keys', 'audit_log') GROUP BY c.relname, c.relrowsecurity, c.relforcerowsecurity ORDER BY c.relname`)
  assert.deepEqual(
    rows.map((r) => [r.table, r.rls, r.forced, r.policies, r.roles]),
    [
      ['api_keys', true, true, ['api_keys_tenant_isolation'], [APP]],
      ['audit_log', true, true, ['audit_log_tenant_isolation'], [APP]],
      ['memberships', true, true, ['memberships_tenant_isolation'], [APP]],
    ],
  )
  for (const r of rows) {
    assert.equal(r.qual, '(org_id = ( SELECT tenantize.current_tenant_id() AS current_tenant_id))')
    assert.equal(r.check, r.qual)
  }
})

test('as the app role each tenant sees and writes only its own rows in every block table', async () => {
  for (const [org, user] of [[A, 'alice'], [B, 'bob']] as const) {
    await withTenant(org, async () => {
      await app.query(`INSERT INTO memberships (user_id, role) VALUES ($1, 'admin')`, [user])
      await app.query(`INSERT INTO api_keys (name, prefix, secret_hash) VALUES ($1, $2, $3)`, [`key of ${user}`, randomUUID().replaceAll('-', '').slice(0, 16), Buffer.alloc(32)])
      await app.query(`INSERT INTO audit_log (action, actor) VALUES ('login', $1)`, [user])
    })
  }
  for (const [org, user] of [[A, 'alice'], [B, 'bob']] as const) {
    await withTenant(org, async () => {
      assert.deepEqual((await app.query('SELECT org_id, user_id FROM memberships')).rows, [{ org_id: org, user_id: user }])
      assert.deepEqual((await app.query('SELECT org_id, name FROM api_keys')).rows, [{ org_id: org, name: `key of ${user}` }])
      assert.deepEqual((await app.query('SELECT org_id, actor FROM audit_log')).rows, [{ org_id: org, actor: user }])
    })
  }
  // writing another tenant's rows: WITH CHECK refuses, updates and deletes find nothing
  await withTenant(A, async () => {
    assert.equal(await sqlState(app.query(`INSERT INTO memberships (org_id, user_id, role) VALUES ($1, 'mallory', 'admin')`, [B])), '42501')
    assert.equal(await sqlState(app.query(`INSERT INTO audit_log (org_id, action) VALUES ($1, 'forged')`, [B])), '42501')
    assert.equal((await app.query(`UPDATE memberships SET role = 'viewer' WHERE user_id = 'bob'`)).rowCount, 0)
    assert.equal((await app.query(`DELETE FROM api_keys WHERE name = 'key of bob'`)).rowCount, 0)
  })
  assert.deepEqual(await db.sql(`SELECT role FROM memberships WHERE user_id = 'bob'`), [{ role: 'admin' }])
  assert.equal((await db.sql('SELECT count(*)::int AS n FROM api_keys'))[0]?.['n'], 2)
})

test('without a tenant the app role sees nothing and cannot insert', async () => {
  const pool = new pg.Pool({ connectionString: db.url, max: 1, options: `-c role=${APP}` })
  pool.on('error', () => undefined)
  pools.push(pool)
  assert.deepEqual((await pool.query('SELECT * FROM memberships')).rows, [])
  // the column default is NULL without a tenant, and the policy's WITH CHECK refuses the row
  assert.equal(await sqlState(pool.query(`INSERT INTO memberships (user_id, role) VALUES ('eve', 'admin')`)), '42501')
  assert.equal(await sqlState(pool.query(`INSERT INTO memberships (org_id, user_id, role) VALUES ($1, 'eve', 'admin')`, [A])), '42501')
})

test('the app role cannot read key hashes, rewrite usage counters, or change and delete audit rows', async () => {
  await withTenant(A, async () => {
    assert.equal(await sqlState(app.query('SELECT secret_hash FROM api_keys')), '42501')
    assert.equal(await sqlState(app.query('UPDATE api_keys SET usage_count = 0')), '42501')
    assert.equal(await sqlState(app.query(`UPDATE audit_log SET action = 'nothing'`)), '42501')
    assert.equal(await sqlState(app.query('DELETE FROM audit_log')), '42501')
    assert.equal((await app.query(`UPDATE api_keys SET revoked_at = now() WHERE revoked_at IS NULL`)).rowCount, 1)
  })
})

test('an existing tenantize.current_tenant_id() is kept, and down files leave it in place', async () => {
  const other = await db.another('blocks-helper')
  await other.sql(`CREATE TABLE organizations (id uuid PRIMARY KEY)`)
  await other.sql(`CREATE SCHEMA tenantize; CREATE FUNCTION tenantize.current_tenant_id() RETURNS uuid LANGUAGE sql STABLE SET search_path = pg_catalog AS $$ SELECT NULL::uuid $$`)
  const otherDir = await applyBlocks(other, { appRole: APP })
  const body = async (): Promise<unknown> => (await other.sql(`SELECT prosrc FROM pg_proc WHERE oid = 'tenantize.current_tenant_id()'::regprocedure`))[0]?.['prosrc']
  assert.equal(await body(), ' SELECT NULL::uuid ')
  const down = await migrateDown({ databaseUrl: other.url, dir: otherDir, all: true })
  assert.deepEqual(down.migrations, ['0003_audit_log', '0002_api_keys', '0001_rbac'])
  assert.deepEqual(await other.sql(`SELECT to_regclass('memberships') AS m, to_regclass('api_keys') AS k, to_regclass('audit_log') AS a, to_regprocedure('audit_log_prune(interval,integer)') AS p`), [{ m: null, k: null, a: null, p: null }])
  assert.equal(await body(), ' SELECT NULL::uuid ')
})

test("the helper the blocks create is the planner's: the same definition, no SET clause, inlined into the policies", async () => {
  const blocks = await db.another('blocks-fast-helper')
  await blocks.sql(`CREATE TABLE organizations (id uuid PRIMARY KEY)`)
  await applyBlocks(blocks, { appRole: APP })
  const planned = await db.another('planner-helper')
  await planned.sql(`CREATE TABLE items (id bigint PRIMARY KEY)`)
  const catalog = await withClient(planned.url, (c) => introspect(c))
  const config = parseConfig(proposeConfig(catalog, { defaultTenantId: randomUUID(), appRole: APP }).config)
  for (const sql of planConversion(catalog, config).steps.find((s) => s.id === 'helpers')!.up) await planned.sql(sql)
  const definition = `SELECT pg_catalog.pg_get_functiondef(oid) AS def, proconfig AS config, prosqlbody IS NOT NULL AS standard FROM pg_catalog.pg_proc WHERE oid = 'tenantize.current_tenant_id()'::pg_catalog.regprocedure`
  const [fromBlocks] = await blocks.sql<{ def: string; config: string[] | null; standard: boolean }>(definition)
  assert.deepEqual(fromBlocks, (await planned.sql(definition))[0])
  assert.equal(fromBlocks!.config, null)
  assert.equal(fromBlocks!.standard, true)
  const plan = await withClient(blocks.url, async (c) => {
    await c.query('BEGIN')
    await c.query(`SET LOCAL ROLE ${quoteIdent(APP)}`)
    await c.query(`SELECT pg_catalog.set_config('tenantize.tenant_id', $1, true)`, [randomUUID()])
    const { rows } = await c.query<{ 'QUERY PLAN': string }>('EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM memberships')
    await c.query('ROLLBACK')
    return rows.map((r) => r['QUERY PLAN']).join('\n')
  })
  assert.match(plan, /InitPlan[\s\S]*current_setting\('tenantize\.tenant_id'/)
  assert.doesNotMatch(plan, /current_tenant_id/)
})

test('up, down and up again leave the same schema (the helper created by the first up stays)', async () => {
  const other = await db.another('blocks-roundtrip')
  await other.sql(`CREATE TABLE organizations (id uuid PRIMARY KEY)`)
  const otherDir = await applyBlocks(other, { appRole: APP })
  const shape = (): Promise<unknown[]> =>
    other.sql(`SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
               WHERE c.relname IN ('memberships', 'api_keys', 'audit_log') AND a.attnum > 0 ORDER BY 1, a.attnum`)
  const before = await shape()
  await migrateDown({ databaseUrl: other.url, dir: otherDir, all: true })
  assert.deepEqual(await other.sql(`SELECT to_regprocedure('tenantize.current_tenant_id()') IS NOT NULL AS kept`), [{ kept: true }])
  await migrateUp({ databaseUrl: other.url, dir: otherDir })
  assert.deepEqual(await shape(), before)
})

test('names with quotes, spaces and unicode apply, and isolate tenants as that role', async () => {
  const other = await db.another('blocks-odd')
  await other.sql(`CREATE SCHEMA "Kunden Ü"; CREATE TABLE "Kunden Ü"."Org ""HQ""" ("id" uuid PRIMARY KEY);
                   GRANT USAGE ON SCHEMA "Kunden Ü" TO ${roleName(ODD_APP)}`)
  await other.sql(`INSERT INTO "Kunden Ü"."Org ""HQ""" VALUES ($1), ($2)`, [A, B])
  await applyBlocks(other, { tenantTable: '"Kunden Ü"."Org ""HQ"""', tenantColumn: `tenant's "id"`, appRole: ODD_APP })
  const odd = appDb(other, ODD_APP)
  await withTenant(A, () => odd.query(`INSERT INTO "Kunden Ü".memberships (user_id, role) VALUES ('alice', 'viewer')`))
  await withTenant(A, () => odd.query(`INSERT INTO "Kunden Ü".audit_log (action) VALUES ('login')`))
  await withTenant(B, async () => {
    assert.deepEqual((await odd.query(`SELECT * FROM "Kunden Ü".memberships`)).rows, [])
    assert.deepEqual((await odd.query(`SELECT * FROM "Kunden Ü".audit_log`)).rows, [])
  })
  await withTenant(A, async () => {
    assert.deepEqual((await odd.query(`SELECT "tenant's ""id""" AS org FROM "Kunden Ü".memberships`)).rows, [{ org: A }])
  })
})
