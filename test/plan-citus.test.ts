import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import pg from 'pg'
import { introspect, type Catalog } from '../src/catalog/index.js'
import { TenantizeError } from '../src/errors.js'
import { parseConfig, type TenantizeConfigInput } from '../src/plan/config.js'
import { planConversion } from '../src/plan/plan.js'
import { testDatabase } from './helpers/db.js'

// The planner is pure: the catalog comes from a plain PostgreSQL database, no Citus cluster is needed.
const db = await testDatabase(import.meta.url)
await db.sql(await readFile('test/fixtures/citus/schema.sql', 'utf8'))
const client = new pg.Client(db.url)
await client.connect()
const catalog: Catalog = await introspect(client)
await client.end()

const DEFAULT_ID = '5e0f0c1a-0000-4000-8000-000000000001'
const base = (target: 'postgres' | 'citus', tables: TenantizeConfigInput['tables'] = {}): TenantizeConfigInput => ({
  version: 1,
  target,
  tenant: { table: 'public.organizations', create: true, default: { id: DEFAULT_ID } },
  roles: { app: 'tz_citus_app', system: null },
  tables: {
    'public.currency': { class: 'global' },
    'public.account': { class: 'direct' },
    'public.project': { class: 'child', path: { columns: ['account_id'], parent: 'public.account', parentColumns: ['id'] } },
    'public.task item': { class: 'child', path: { columns: ['project_id'], parent: 'public.project', parentColumns: ['id'] } },
    ...tables,
  },
})

const plan = planConversion(catalog, parseConfig(base('citus')))
const byId = (id: string) => plan.steps.find((s) => s.id === id)

test('target citus: every policy calls the helper directly, without the sub-select Citus refuses', () => {
  const policies = plan.steps.flatMap((s) => s.up).filter((u) => u.startsWith('CREATE POLICY'))
  assert.equal(policies.length, 4)
  for (const p of policies) assert.doesNotMatch(p, /SELECT/)
  assert.equal(
    byId('rls:public.task item')!.up.find((u) => u.startsWith('CREATE POLICY')),
    'CREATE POLICY "tenant_isolation" ON "public"."task item" AS PERMISSIVE FOR ALL TO "tz_citus_app" USING ("org_id" OPERATOR(pg_catalog.=) tenantize.current_tenant_id()) WITH CHECK ("org_id" OPERATOR(pg_catalog.=) tenantize.current_tenant_id())',
  )
})

test('target postgres keeps the sub-select (an InitPlan, evaluated once per statement) and plans no Citus step', () => {
  const pgPlan = planConversion(catalog, parseConfig(base('postgres')))
  assert.equal(pgPlan.steps.some((s) => s.id.startsWith('citus-')), false)
  assert.match(pgPlan.steps.find((s) => s.id === 'rls:public.account')!.up.find((u) => u.startsWith('CREATE POLICY'))!, /\(SELECT CASE WHEN pg_catalog\.current_setting\('tenantize\.tenant_id', true\) OPERATOR\(pg_catalog\.<>\) '' THEN /)
})

test('target citus: the Citus steps come last in enforce, in this order, with exact SQL, locks and reversal', () => {
  const citus = plan.steps.filter((s) => s.id.startsWith('citus-'))
  assert.deepEqual(plan.steps.slice(-citus.length), citus, 'after every other step')
  assert.deepEqual(
    citus.map((s) => ({ id: s.id, phase: s.phase, lock: s.lock, lockHeld: s.lockHeld, transactional: s.transactional, up: s.up, down: s.down })),
    [
      {
        id: 'citus-context',
        phase: 'enforce',
        lock: 'none',
        lockHeld: 'brief',
        transactional: true,
        up: [`ALTER ROLE "tz_citus_app" SET "citus"."propagate_set_commands" = 'local'`, 'ALTER ROLE "tz_citus_app" LOGIN'],
        down: ['ALTER ROLE "tz_citus_app" NOLOGIN', `ALTER ROLE "tz_citus_app" RESET "citus"."propagate_set_commands"`],
      },
      ...['account', 'project', 'task item'].map((t) => ({
        id: `citus-primary-key:public.${t}`,
        phase: 'enforce',
        lock: 'ACCESS EXCLUSIVE',
        lockHeld: 'brief',
        transactional: false,
        up: [
          `CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "${t}_pkey_tenant" ON "public"."${t}" ("org_id", "id")`,
          `ALTER TABLE "public"."${t}" DROP CONSTRAINT "${t}_pkey", ADD CONSTRAINT "${t}_pkey" PRIMARY KEY USING INDEX "${t}_pkey_tenant"`,
        ],
        down: [
          `CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "${t}_pkey_global" ON "public"."${t}" ("id")`,
          `ALTER TABLE "public"."${t}" DROP CONSTRAINT "${t}_pkey", ADD CONSTRAINT "${t}_pkey" PRIMARY KEY USING INDEX "${t}_pkey_global"`,
        ],
      })),
      ...['currency', 'organizations'].map((t) => ({
        id: `citus-reference:public.${t}`,
        phase: 'enforce',
        lock: 'EXCLUSIVE',
        lockHeld: 'writes wait, reads go on',
        transactional: true,
        up: [`SELECT pg_catalog.create_reference_table('"public"."${t}"')`],
        down: [`SELECT pg_catalog.undistribute_table(logicalrelid, cascade_via_foreign_keys => true) FROM pg_catalog.pg_dist_partition WHERE logicalrelid = '"public"."${t}"'::pg_catalog.regclass`],
      })),
      {
        id: 'citus-foreign-keys-off',
        phase: 'enforce',
        lock: 'ACCESS EXCLUSIVE',
        lockHeld: 'brief',
        transactional: true,
        up: [`ALTER TABLE "public"."project" DROP CONSTRAINT IF EXISTS "project_org_id_account_id_tenant_fkey"`, `ALTER TABLE "public"."task item" DROP CONSTRAINT IF EXISTS "task item_org_id_project_id_tenant_fkey"`],
        down: [
          `ALTER TABLE "public"."project" ADD CONSTRAINT "project_org_id_account_id_tenant_fkey" FOREIGN KEY ("org_id", "account_id") REFERENCES "public"."account" ("org_id", "id") DEFERRABLE INITIALLY DEFERRED NOT VALID`,
          `ALTER TABLE "public"."project" VALIDATE CONSTRAINT "project_org_id_account_id_tenant_fkey"`,
          `ALTER TABLE "public"."task item" ADD CONSTRAINT "task item_org_id_project_id_tenant_fkey" FOREIGN KEY ("org_id", "project_id") REFERENCES "public"."project" ("org_id", "id") ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED NOT VALID`,
          `ALTER TABLE "public"."task item" VALIDATE CONSTRAINT "task item_org_id_project_id_tenant_fkey"`,
        ],
      },
      ...[
        ['account', `'none'`],
        ['project', `'"public"."account"'`],
        ['task item', `'"public"."account"'`],
      ].map(([t, colocate]) => ({
        id: `citus-distribute:public.${t}`,
        phase: 'enforce',
        lock: 'EXCLUSIVE',
        lockHeld: 'writes wait, reads go on',
        transactional: true,
        up: [`SELECT pg_catalog.create_distributed_table('"public"."${t}"', 'org_id', colocate_with => ${colocate})`],
        down: [`SELECT pg_catalog.undistribute_table(logicalrelid, cascade_via_foreign_keys => true) FROM pg_catalog.pg_dist_partition WHERE logicalrelid = '"public"."${t}"'::pg_catalog.regclass`],
      })),
      {
        id: 'citus-foreign-keys-on',
        phase: 'enforce',
        lock: 'SHARE ROW EXCLUSIVE',
        lockHeld: 'writes wait, reads go on',
        transactional: true,
        up: [
          `ALTER TABLE "public"."project" ADD CONSTRAINT "project_org_id_account_id_tenant_fkey" FOREIGN KEY ("org_id", "account_id") REFERENCES "public"."account" ("org_id", "id")`,
          `ALTER TABLE "public"."task item" ADD CONSTRAINT "task item_org_id_project_id_tenant_fkey" FOREIGN KEY ("org_id", "project_id") REFERENCES "public"."project" ("org_id", "id") ON DELETE CASCADE`,
        ],
        down: [`ALTER TABLE "public"."project" DROP CONSTRAINT IF EXISTS "project_org_id_account_id_tenant_fkey"`, "ALTER TABLE \"public\".\"task item\" DROP CONSTRAINT IF EXISTS \"task item_org_id_project_id_tenant_fkey\""],
      },
    ],
  )
})

test('target citus: single-column foreign keys between tenant tables are dropped before distribution; their composite twins keep the actions', () => {
  const dropAt = (id: string) => plan.steps.findIndex((s) => s.id === id)
  for (const [table, fk] of [['public.project', 'project_account_id_fkey'], ['public.task item', 'task item_project_id_fkey']] as const) {
    assert.ok(dropAt(`drop-single-fk:${table}:${fk}`) >= 0, fk)
    assert.ok(dropAt(`drop-single-fk:${table}:${fk}`) < dropAt(`citus-primary-key:${table}`))
  }
  assert.match(byId('composite-fk:public.task item:task item_project_id_fkey')!.up.join('\n'), /REFERENCES "public"\."project" \("org_id", "id"\) ON DELETE CASCADE/)
})

test('target citus: the tenant and global unique keys are tenant-scoped already, so Citus accepts them', () => {
  assert.deepEqual(byId('tenant-unique:public.account:account_code_key')!.up[0], 'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "account_code_key_tenant" ON "public"."account" USING btree ("org_id", "code")')
})

function problemsOf(tables: TenantizeConfigInput['tables']): string[] {
  try {
    planConversion(catalog, parseConfig(base('citus', tables)))
  } catch (error) {
    assert.ok(error instanceof TenantizeError)
    assert.equal(error.code, 'TZ_CONFIG')
    return error.problems.map((p) => `${p.object}: ${p.message} | ${p.fix}`)
  }
  assert.fail('planned')
}

test('target citus refuses, naming object and fix, what Citus cannot distribute: a tenant table referencing a local table, a global key kept, a shared reference', () => {
  assert.deepEqual(problemsOf({ 'public.currency': { class: 'excluded' } }), [
    'public.account account_currency_fkey: the tenant table public.account references the local table public.currency; Citus refuses that | classify public.currency global (a reference table) or as a tenant table, or drop account_currency_fkey',
  ])
  assert.deepEqual(problemsOf({ 'public.account': { class: 'direct', keepGlobalUnique: ['account_code_key'] } }), [
    'public.account account_code_key: unique without the tenant column org_id; Citus refuses unique keys without the distribution column | remove it from keepGlobalUnique, or recreate it as (org_id, …) first',
  ])
  assert.deepEqual(
    problemsOf({ 'public.project': { class: 'child', path: { columns: ['account_id'], parent: 'public.account', parentColumns: ['id'] }, sharedReferences: [{ constraint: 'project_account_id_fkey', reason: 'test' }] } }),
    ["public.project project_account_id_fkey: is a shared reference (may point at another tenant's row); Citus cannot keep a foreign key across shards | drop project_account_id_fkey, or classify public.account global"],
  )
})

test('target citus: a sub-tenant scope is AND-ed into the tenant policy (Citus copies RESTRICTIVE policies to the shards as PERMISSIVE); view grants come back after distribution', async () => {
  const other = await db.another('citus_scope')
  await other.sql(await readFile('test/fixtures/citus/schema.sql', 'utf8'))
  await other.sql(`CREATE VIEW open_projects AS SELECT p.id, p.title FROM project p; CREATE ROLE ${other.role('reader')}; GRANT SELECT ON open_projects TO ${other.role('reader')}`)
  const c = new pg.Client(other.url)
  await c.connect()
  const scoped = await introspect(c)
  await c.end()
  const config = { ...base('citus'), scopes: [{ name: 'account', setting: 'tenantize.account_id', idType: 'bigint' as const, tables: { 'public.account': 'id', 'public.project': 'account_id' } }] }
  const p = planConversion(scoped, parseConfig(config))
  const step = p.steps.find((s) => s.id === 'scope:account')!
  assert.ok(!p.steps.some((s) => s.up.some((u) => /AS RESTRICTIVE/.test(u))), 'no restrictive policy')
  assert.deepEqual(step.up.filter((u) => /POLICY/.test(u) && /"project"/.test(u)), [
    'DROP POLICY IF EXISTS "tenant_isolation" ON "public"."project"',
    `CREATE POLICY "tenant_isolation" ON "public"."project" AS PERMISSIVE FOR ALL TO "tz_citus_app" USING (("org_id" OPERATOR(pg_catalog.=) tenantize.current_tenant_id()) AND ("tenantize"."current_account_id"() IS NULL OR "account_id" OPERATOR(pg_catalog.=) "tenantize"."current_account_id"())) WITH CHECK (("org_id" OPERATOR(pg_catalog.=) tenantize.current_tenant_id()) AND ("tenantize"."current_account_id"() IS NULL OR "account_id" OPERATOR(pg_catalog.=) "tenantize"."current_account_id"()))`,
  ])
  assert.deepEqual(step.down.filter((u) => /"project"/.test(u)), [
    'DROP POLICY IF EXISTS "tenant_isolation" ON "public"."project"',
    'CREATE POLICY "tenant_isolation" ON "public"."project" AS PERMISSIVE FOR ALL TO "tz_citus_app" USING ("org_id" OPERATOR(pg_catalog.=) tenantize.current_tenant_id()) WITH CHECK ("org_id" OPERATOR(pg_catalog.=) tenantize.current_tenant_id())',
  ], 'rollback puts the tenant policy back without the scope')
  const grants = ['GRANT SELECT ON TABLE "public"."open_projects" TO "tz_citus_app"', `GRANT SELECT ON TABLE "public"."open_projects" TO "${other.role('reader')}"`]
  assert.deepEqual(p.steps.at(-1)!.id, 'citus-view-grants')
  assert.deepEqual(p.steps.at(-1)!.up, grants)
  assert.deepEqual(p.steps.find((s) => s.id === 'citus-reference:public.currency')!.down.slice(1), grants, 'rollback grants them again after the last table is local')

  await other.sql(`CREATE POLICY only_open ON project AS RESTRICTIVE USING (title <> 'closed')`)
  const c2 = new pg.Client(other.url)
  await c2.connect()
  const restricted = await introspect(c2)
  await c2.end()
  assert.throws(() => planConversion(restricted, parseConfig(config)), (error: unknown) => {
    assert.ok(error instanceof TenantizeError)
    assert.deepEqual(error.problems.map((x) => `${x.object}: ${x.message}`), ['public.project: has RESTRICTIVE policy only_open; Citus 13.2 copies policies to the shards without AS RESTRICTIVE, where each would widen access instead of narrowing it'])
    return true
  })
})
