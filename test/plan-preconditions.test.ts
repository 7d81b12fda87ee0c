import { test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { introspect, type Catalog } from '../src/catalog/index.js'
import { parseConfig, type TenantizeConfigInput } from '../src/plan/config.js'
import { planConversion } from '../src/plan/plan.js'
import type { Plan, Precondition } from '../src/plan/steps.js'
import { testDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)

// Names with spaces, quotes (both kinds) and non-ASCII letters: every one must reach the SQL quoted.
await db.sql(`
  CREATE SCHEMA "Bü ro";
  CREATE TABLE "Bü ro"."Ten""ants" ("tenant id" bigint PRIMARY KEY);
  CREATE TABLE "Bü ro"."pro jects" (id bigint PRIMARY KEY, "ténant" bigint REFERENCES "Bü ro"."Ten""ants");
  CREATE TABLE "Bü ro"."tâsks" ("task id" bigint PRIMARY KEY, "pro ject" bigint REFERENCES "Bü ro"."pro jects", "other's" bigint REFERENCES "Bü ro"."pro jects");
  CREATE TABLE "Bü ro"."vérsions" ("task id" bigint NOT NULL REFERENCES "Bü ro"."tâsks", n int NOT NULL, PRIMARY KEY ("task id", n));
  CREATE TABLE "Bü ro"."nötes" (id int PRIMARY KEY, body text);
  CREATE TABLE "Bü ro"."lög" (line text, "ténant" bigint);
  CREATE TABLE "Bü ro"."cömments" (id int PRIMARY KEY, "vérsion task" bigint NOT NULL, "vérsion n" int NOT NULL, "about task" bigint REFERENCES "Bü ro"."tâsks",
    FOREIGN KEY ("vérsion task", "vérsion n") REFERENCES "Bü ro"."vérsions");
  CREATE TABLE "Bü ro"."földers" (id bigint PRIMARY KEY);
  CREATE TABLE "Bü ro"."fïles" (id bigint PRIMARY KEY, folder bigint NOT NULL REFERENCES "Bü ro"."földers");
  CREATE TABLE "Bü ro"."tägs" (id int PRIMARY KEY, "tënant" text);
  CREATE TABLE "Bü ro"."plâns" (id int PRIMARY KEY);
  ALTER TABLE "Bü ro"."Ten""ants" ADD COLUMN "plân" int REFERENCES "Bü ro"."plâns";`)

async function catalogOf(url: string): Promise<Catalog> {
  const client = new pg.Client(url)
  await client.connect()
  try {
    return await introspect(client)
  } finally {
    await client.end()
  }
}
const catalog = await catalogOf(db.url)

const tables: TenantizeConfigInput['tables'] = {
  'Bü ro.pro jects': { class: 'direct' },
  'Bü ro.tâsks': { class: 'child', path: { columns: ['pro ject'], parent: 'Bü ro.pro jects', parentColumns: ['id'] }, alternatives: [{ columns: ["other's"], parent: 'Bü ro.pro jects', parentColumns: ['id'] }] },
  'Bü ro.vérsions': { class: 'child', path: { columns: ['task id'], parent: 'Bü ro.tâsks', parentColumns: ['task id'] } },
  'Bü ro.nötes': { class: 'direct' },
  'Bü ro.lög': { class: 'direct' },
}

/** The existing tenant table, tenants derived from the data. */
const derived: TenantizeConfigInput = {
  version: 1,
  tenant: { table: 'Bü ro.Ten"ants', create: false, idType: 'bigint', column: 'ténant', default: { id: '1' } },
  roles: { app: 'tz_pre_app', system: null },
  tables: { 'Bü ro.Ten"ants': { class: 'root' }, ...tables },
}

function preconditions(plan: Plan): Map<string, { step: string; p: Precondition }> {
  const out = new Map<string, { step: string; p: Precondition }>()
  for (const s of plan.steps) {
    for (const p of s.preconditions ?? []) {
      assert.equal(out.has(p.id), false, `precondition ${p.id} is attached once`)
      out.set(p.id, { step: s.id, p })
    }
  }
  return out
}

const plan = planConversion(catalog, parseConfig(derived))
const found = preconditions(plan)
const get = (id: string): { step: string; p: Precondition } => {
  const x = found.get(id)
  assert.ok(x !== undefined, `${id} in ${[...found.keys()].join(', ')}`)
  return x
}

test('derived tenants: exactly these preconditions, each on the step that would fail', () => {
  assert.deepEqual([...found].map(([id, { step }]) => [id, step]), [
    ['foreign-tenant:Bü ro.lög', 'tenant-fk-validate:Bü ro.lög'],
    ['null-tenant:Bü ro.lög', 'not-null-validate:Bü ro.lög'],
    ['default-tenant:Bü ro.Ten"ants', 'add-column:Bü ro.nötes'],
    ['null-tenant:Bü ro.pro jects', 'not-null-validate:Bü ro.pro jects'],
    ['orphans:Bü ro.tâsks', 'backfill:Bü ro.tâsks'],
    ['orphans:Bü ro.vérsions', 'backfill:Bü ro.vérsions'],
    ["crossing:Bü ro.tâsks:tâsks_other's_fkey", "composite-fk:Bü ro.tâsks:tâsks_other's_fkey"],
  ].sort((a, b) => plan.steps.findIndex((s) => s.id === a[1]) - plan.steps.findIndex((s) => s.id === b[1])))
  assert.equal(plan.steps.find((s) => s.id === "composite-fk:Bü ro.tâsks:tâsks_pro ject_fkey")?.preconditions?.length, 0, 'the path itself cannot cross tenants')
})

test('orphans: a NULL or dangling path key, sampled by primary key (composite keys too)', () => {
  const { p } = get('orphans:Bü ro.tâsks')
  assert.equal(p.table, 'Bü ro.tâsks')
  assert.equal(p.title, 'every row of Bü ro.tâsks has a Bü ro.pro jects row (pro ject → id) to take its tenant from: the foreign key is neither NULL nor dangling')
  const where = `t0."pro ject" IS NULL OR NOT EXISTS (SELECT 1 FROM "Bü ro"."pro jects" AS t1 WHERE t1."id" = t0."pro ject")`
  assert.equal(p.countSql, `SELECT count(*)::bigint AS n FROM "Bü ro"."tâsks" AS t0 WHERE ${where}`)
  assert.equal(p.sampleSql, `SELECT concat(concat('task id=', t0."task id"), ': ', 'pro ject=', coalesce(t0."pro ject"::text, 'NULL')) AS sample FROM "Bü ro"."tâsks" AS t0 WHERE ${where} ORDER BY t0."task id" LIMIT 5`)
  assert.deepEqual(p.fixes, [
    `use another path: move the alternative other's → Bü ro.pro jects (id) from tables["Bü ro.tâsks"].alternatives into its path`,
    'classify Bü ro.tâsks as global in the config if its rows are shared by every tenant (read-only to the app), or as direct if they all belong to the default tenant',
    `give those rows a parent, or delete them: SELECT * FROM "Bü ro"."tâsks" AS t0 WHERE ${where}; DELETE FROM "Bü ro"."tâsks" AS t0 WHERE ${where}`,
  ])
  const versions = get('orphans:Bü ro.vérsions').p
  assert.equal(versions.sampleSql, `SELECT concat(concat('task id=', t0."task id", ', n=', t0."n"), ': ', 'task id=', coalesce(t0."task id"::text, 'NULL')) AS sample FROM "Bü ro"."vérsions" AS t0 WHERE t0."task id" IS NULL OR NOT EXISTS (SELECT 1 FROM "Bü ro"."tâsks" AS t1 WHERE t1."task id" = t0."task id") ORDER BY t0."task id", t0."n" LIMIT 5`)
})

test('crossing: the tenant each side has before the conversion, following the configured path back to the root', () => {
  const { p } = get("crossing:Bü ro.tâsks:tâsks_other's_fkey")
  const from = `"Bü ro"."tâsks" AS t0 JOIN "Bü ro"."pro jects" AS t1 ON t1."id" = t0."other's"`
  const where = `(SELECT t2."ténant" FROM "Bü ro"."pro jects" AS t2 WHERE t2."id" = t0."pro ject") <> t1."ténant"`
  assert.equal(p.title, "no row of Bü ro.tâsks references a Bü ro.pro jects row of another tenant through tâsks_other's_fkey (other's)")
  assert.equal(p.countSql, `SELECT count(*)::bigint AS n FROM ${from} WHERE ${where}`)
  assert.equal(p.sampleSql, `SELECT concat(concat('task id=', t0."task id"), ': ', 'other''s=', coalesce(t0."other's"::text, 'NULL')) AS sample FROM ${from} WHERE ${where} ORDER BY t0."task id" LIMIT 5`)
  assert.deepEqual(p.fixes, [
    `use another path: move the alternative other's → Bü ro.pro jects (id) from tables["Bü ro.tâsks"].alternatives into its path`,
    'classify Bü ro.pro jects as global in the config if its rows are shared by every tenant',
    `or, if rows may point at another tenant's row on purpose, declare it: add { "constraint": "tâsks_other's_fkey", "reason": "…" } to tables["Bü ro.tâsks"].sharedReferences`,
    `or point each row at a Bü ro.pro jects row of its own tenant (or clear other's): SELECT t0.* FROM ${from} WHERE ${where}`,
  ])
})

test('crossing three hops from the tenant: nested subqueries with their own aliases, composite keys joined column by column', () => {
  const withComments = parseConfig({ ...derived, tables: { ...derived.tables, 'Bü ro.cömments': { class: 'child', path: { columns: ['vérsion task', 'vérsion n'], parent: 'Bü ro.vérsions', parentColumns: ['task id', 'n'] } } } })
  const p = preconditions(planConversion(catalog, withComments)).get('crossing:Bü ro.cömments:cömments_about task_fkey')!.p
  const from = `"Bü ro"."cömments" AS t0 JOIN "Bü ro"."tâsks" AS t1 ON t1."task id" = t0."about task"`
  const mine = `(SELECT (SELECT (SELECT t4."ténant" FROM "Bü ro"."pro jects" AS t4 WHERE t4."id" = t3."pro ject") FROM "Bü ro"."tâsks" AS t3 WHERE t3."task id" = t2."task id") FROM "Bü ro"."vérsions" AS t2 WHERE t2."task id" = t0."vérsion task" AND t2."n" = t0."vérsion n")`
  const theirs = `(SELECT t5."ténant" FROM "Bü ro"."pro jects" AS t5 WHERE t5."id" = t1."pro ject")`
  assert.equal(p.countSql, `SELECT count(*)::bigint AS n FROM ${from} WHERE ${mine} <> ${theirs}`)
})

test('reached backwards: rows referenced by rows of several tenants, counted from the tenant of each referencing row', () => {
  const reverse = parseConfig({ ...derived, tables: { 'Bü ro.Ten"ants': { class: 'root' }, 'Bü ro.plâns': { class: 'child', path: { columns: ['id'], parent: 'Bü ro.Ten"ants', parentColumns: ['plân'], reverse: true } } } })
  const reversePlan = planConversion(catalog, reverse)
  const { step, p } = preconditions(reversePlan).get('shared:Bü ro.plâns')!
  assert.equal(step, 'backfill:Bü ro.plâns')
  const where = `(SELECT count(DISTINCT v.v) FROM (SELECT t1."tenant id" AS v FROM "Bü ro"."Ten""ants" AS t1 WHERE t1."plân" = t0."id") AS v) > 1`
  assert.equal(p.title, 'each row of Bü ro.plâns is referenced by Bü ro.Ten"ants rows (plân → id) of one tenant at most, whose tenant it takes')
  assert.equal(p.countSql, `SELECT count(*)::bigint AS n FROM "Bü ro"."plâns" AS t0 WHERE ${where}`)
  assert.equal(p.sampleSql, `SELECT concat('id=', t0."id") AS sample FROM "Bü ro"."plâns" AS t0 WHERE ${where} ORDER BY t0."id" LIMIT 5`)
  assert.deepEqual(p.fixes, [
    'classify Bü ro.plâns as global in the config: rows shared by several tenants are reference data (read-only to the app)',
    `or give each tenant its own copy of those rows and point its Bü ro.Ten"ants rows at it: SELECT * FROM "Bü ro"."plâns" AS t0 WHERE ${where}`,
  ])
  assert.equal(preconditions(reversePlan).get('default-tenant:Bü ro.Ten"ants')?.step, 'add-column:Bü ro.plâns', 'rows nobody references get the default tenant')
})

test('NULL and foreign values in an existing tenant column; a table without a primary key is sampled by ctid', () => {
  const nul = get('null-tenant:Bü ro.lög').p
  assert.equal(nul.title, 'ténant of Bü ro.lög is never NULL (it becomes NOT NULL)')
  assert.equal(nul.countSql, `SELECT count(*)::bigint AS n FROM "Bü ro"."lög" AS t0 WHERE t0."ténant" IS NULL`)
  assert.equal(nul.sampleSql, `SELECT concat('ctid=', t0.ctid) AS sample FROM "Bü ro"."lög" AS t0 WHERE t0."ténant" IS NULL ORDER BY t0.ctid LIMIT 5`)
  assert.deepEqual(nul.fixes, [
    `give those rows their tenant (here the default tenant): UPDATE "Bü ro"."lög" SET "ténant" = '1'::bigint WHERE "ténant" IS NULL`,
    `or delete them: DELETE FROM "Bü ro"."lög" WHERE "ténant" IS NULL`,
    'classify Bü ro.lög as global in the config if its rows are shared by every tenant (read-only to the app), or as direct if they all belong to the default tenant',
  ])
  const foreign = get('foreign-tenant:Bü ro.lög').p
  const where = `t0."ténant" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "Bü ro"."Ten""ants" AS t1 WHERE t1."tenant id" = t0."ténant")`
  assert.equal(foreign.title, 'every ténant of Bü ro.lög is a tenant: a row of Bü ro.Ten"ants')
  assert.equal(foreign.countSql, `SELECT count(*)::bigint AS n FROM "Bü ro"."lög" AS t0 WHERE ${where}`)
  assert.equal(foreign.sampleSql, `SELECT concat(concat('ctid=', t0.ctid), ': ', 'ténant=', coalesce(t0."ténant"::text, 'NULL')) AS sample FROM "Bü ro"."lög" AS t0 WHERE ${where} ORDER BY t0.ctid LIMIT 5`)
  assert.deepEqual(foreign.fixes, [
    `add the missing tenants to Bü ro.Ten"ants (with its other columns): SELECT DISTINCT t0."ténant" FROM "Bü ro"."lög" AS t0 WHERE ${where}`,
    `or move the rows to an existing tenant: UPDATE "Bü ro"."lög" AS t0 SET "ténant" = <a tenant id> WHERE ${where}`,
    `or delete them: DELETE FROM "Bü ro"."lög" AS t0 WHERE ${where}`,
  ])
})

test('the default tenant is a row of the existing tenant table, and an empty tenant table says so', () => {
  const { p } = get('default-tenant:Bü ro.Ten"ants')
  const where = `NOT EXISTS (SELECT 1 FROM "Bü ro"."Ten""ants" AS t0 WHERE t0."tenant id" = '1'::bigint)`
  assert.equal(p.table, 'Bü ro.Ten"ants')
  assert.equal(p.countSql, `SELECT count(*)::bigint AS n WHERE ${where}`)
  assert.equal(p.sampleSql, `SELECT CASE WHEN EXISTS (SELECT 1 FROM "Bü ro"."Ten""ants") THEN 'no row of Bü ro.Ten"ants has tenant id = tenant.default.id' ELSE 'Bü ro.Ten"ants is empty: there is no tenant yet' END AS sample WHERE ${where}`)
  assert.deepEqual(p.fixes, [
    `set tenant.default.id in the config to the tenant id of the Bü ro.Ten"ants row that owns today's rows`,
    `or add it: INSERT INTO "Bü ro"."Ten""ants" ("tenant id", …) VALUES ('1'::bigint, …)`,
  ])
})

test('a new tenant table: values other than the default tenant are foreign; no default-tenant check; tenants that are all the default never cross', () => {
  const created = parseConfig({
    ...derived,
    tenant: { table: 'public.organizations', create: true, idType: 'bigint', column: 'ténant', default: { id: '7' }, membership: null },
    tables: { 'Bü ro.lög': { class: 'direct' }, 'Bü ro.földers': { class: 'direct' }, 'Bü ro.fïles': { class: 'child', path: { columns: ['folder'], parent: 'Bü ro.földers', parentColumns: ['id'] } } },
  })
  const createdPlan = planConversion(catalog, created)
  const p = preconditions(createdPlan)
  assert.deepEqual([...p.keys()].sort(), ['foreign-tenant:Bü ro.lög', 'null-tenant:Bü ro.lög'])
  assert.deepEqual(createdPlan.steps.find((s) => s.id === 'composite-fk:Bü ro.fïles:fïles_folder_fkey')?.preconditions, [])
  const foreign = p.get('foreign-tenant:Bü ro.lög')!.p
  assert.equal(foreign.title, 'every ténant of Bü ro.lög is the default tenant (the new tenant table public.organizations holds only that one)')
  assert.equal(foreign.countSql, `SELECT count(*)::bigint AS n FROM "Bü ro"."lög" AS t0 WHERE t0."ténant" <> '7'::bigint`)
  assert.deepEqual(foreign.fixes, [
    'if ténant already holds tenant ids, set tenant.create to false and tenant.table to the table they come from',
    `or give the rows the default tenant: UPDATE "Bü ro"."lög" AS t0 SET "ténant" = '7'::bigint WHERE t0."ténant" <> '7'::bigint`,
    'or set tables["Bü ro.lög"].column to another name so the plan adds its own tenant column',
  ])
})

test('a tenant id with a quote and a backslash reaches the SQL only through quoteLiteral', () => {
  const text = parseConfig({ ...derived, tenant: { table: 'public.organizations', create: true, idType: 'text', column: 'tënant', default: { id: `o'brien\\x` }, membership: null }, tables: { 'Bü ro.tägs': { class: 'direct' } } })
  const p = preconditions(planConversion(catalog, text))
  assert.equal(p.get('foreign-tenant:Bü ro.tägs')!.p.countSql, `SELECT count(*)::bigint AS n FROM "Bü ro"."tägs" AS t0 WHERE t0."tënant" <> E'o''brien\\\\x'::text`)
  assert.equal(p.get('null-tenant:Bü ro.tägs')!.p.fixes[0], `give those rows their tenant (here the default tenant): UPDATE "Bü ro"."tägs" SET "tënant" = E'o''brien\\\\x'::text WHERE "tënant" IS NULL`)
})

test('every count and sample is valid read-only SQL on the database it was planned from', async () => {
  const client = new pg.Client(db.url)
  await client.connect()
  try {
    await client.query('BEGIN READ ONLY')
    for (const { p } of found.values()) {
      assert.deepEqual(Object.keys((await client.query(p.countSql)).rows[0]!), ['n'], p.id)
      assert.ok((await client.query(p.sampleSql)).rows.every((r: Record<string, unknown>) => Object.keys(r).join() === 'sample'), p.id)
    }
  } finally {
    await client.query('ROLLBACK').catch(() => undefined)
    await client.end()
  }
})
