import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { introspect } from '../src/catalog/index.js'
import { proposeConfig } from '../src/plan/classify.js'
import { parseConfig } from '../src/plan/config.js'
import { planConversion } from '../src/plan/plan.js'
import type { Step } from '../src/plan/steps.js'
import { testDatabase } from './helpers/db.js'

// A backfill batch must find its rows through the key (an index or TID range scan), never by scanning the
// whole table: the new tenant column has no statistics, and joined to the batch's keys the planner chose a
// hash join over a sequential scan of the table in every batch. Plan shapes only, no timings. The plan
// backfills the children in key order: logs (no key), notes (composite), tasks (bigint).

const db = await testDatabase(import.meta.url)
const DEFAULT_TENANT = '00000000-0000-4000-8000-0000000000d1'
const ROWS = 50_000

await db.sql(`
  CREATE TABLE organizations (id uuid PRIMARY KEY, slug text NOT NULL UNIQUE, name text NOT NULL);
  INSERT INTO organizations VALUES ('${DEFAULT_TENANT}', 'default', 'Default'), ('00000000-0000-4000-8000-0000000000d2', 'other', 'Other');
  CREATE TABLE projects (id bigint PRIMARY KEY, org_id uuid NOT NULL REFERENCES organizations (id), name text NOT NULL);
  INSERT INTO projects SELECT g, CASE WHEN g % 2 = 0 THEN '${DEFAULT_TENANT}'::uuid ELSE '00000000-0000-4000-8000-0000000000d2' END, 'p' || g FROM generate_series(1, 1000) g;
  CREATE TABLE tasks (id bigint PRIMARY KEY, project_id bigint NOT NULL REFERENCES projects (id), body text NOT NULL);
  INSERT INTO tasks SELECT g, 1 + g % 1000, md5(g::text) FROM generate_series(1, ${ROWS}) g;
  CREATE TABLE notes (author text, seq int, project_id bigint NOT NULL REFERENCES projects (id), PRIMARY KEY (author, seq));
  INSERT INTO notes SELECT 'a' || (g % 500), g, 1 + g % 1000 FROM generate_series(1, ${ROWS}) g;
  CREATE TABLE logs (project_id bigint NOT NULL REFERENCES projects (id), line text);
  INSERT INTO logs SELECT 1 + g % 1000, md5(g::text) FROM generate_series(1, ${ROWS}) g;`)
for (const t of ['projects', 'tasks', 'notes', 'logs']) await db.sql(`VACUUM ANALYZE ${t}`)

const client = new pg.Client(db.url)
await client.connect()
// The file's database is dropped by its own after hook, which may run first and end this connection.
client.on('error', () => undefined)
after(() => client.end().catch(() => undefined))
const catalog = await introspect(client)
const config = parseConfig(proposeConfig(catalog, { defaultTenantId: DEFAULT_TENANT, appRole: `${db.name}_app`, tenantTable: { schema: 'public', name: 'organizations' } }).config)
const steps = planConversion(catalog, config).steps

/** Run the plan's steps up to (not including) the backfill of `table`; those already run are skipped. */
let next = 0
async function upTo(table: string): Promise<Step> {
  for (; next < steps.length; next++) {
    const s = steps[next]!
    if (s.backfill !== undefined && s.table === table) return steps[next++]!
    if (s.backfill !== undefined) throw new Error(`unexpected backfill of ${s.table} before ${table}`)
    if (s.transactional) await client.query('BEGIN')
    for (const sql of s.up) await client.query(sql)
    if (s.transactional) await client.query('COMMIT')
  }
  throw new Error(`no backfill of ${table}`)
}

/** EXPLAIN of a batch in the middle of the table and the rows it fills (rolled back); then the loop fills the table. */
async function middleBatch(s: Step): Promise<{ plan: string; updated: number }> {
  const spec = s.backfill!
  const upper = Object.values((await client.query<Record<string, string>>(spec.upperKeySql)).rows[0]!)
  // The key after a quarter of the rows, as the batches pass it: text, cast back in SQL.
  const offset = (await client.query<Record<string, string>>(`${spec.upperKeySql.replace(/ DESC/g, '').replace(/LIMIT 1$/, `LIMIT 1 OFFSET ${ROWS / 4}`)}`)).rows[0]!
  const params = [...Object.values(offset), 2000, ...upper]
  const plan = (await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (COSTS OFF) ${spec.batchSql}`, params)).rows.map((r) => r['QUERY PLAN']).join('\n')
  await client.query('BEGIN')
  const row = (await client.query<{ updated: number }>(spec.batchSql, params)).rows[0]!
  await client.query('ROLLBACK')
  // Then fill the whole table, as plan --format sql does, so that the steps after it can run.
  await client.query(spec.loopSql)
  assert.deepEqual((await client.query(spec.remainingSql)).rows, [{ remaining: '0' }])
  return { plan, updated: row.updated }
}

test('a batch of a keyless child pages by row address with a TID range scan', async () => {
  const s = await upTo('public.logs')
  assert.match(s.backfill!.batchSql, /WHERE \(c\."ctid"\) >= \(SELECT "ctid" FROM first\) AND \(c\."ctid"\) <= \(SELECT "ctid" FROM last\)/)
  const { plan, updated } = await middleBatch(s)
  assert.match(plan, /Tid Range Scan on logs c\n\s+TID Cond: \(\(ctid >= /, plan)
  assert.equal(updated, 2000)
})

test('a batch of a child with a composite text key uses a row comparison on its primary key', async () => {
  const s = await upTo('public.notes')
  assert.match(s.backfill!.batchSql, /WHERE \(c\."author", c\."seq"\) >= \(SELECT "author", "seq" FROM first\) AND \(c\."author", c\."seq"\) <= \(SELECT "author", "seq" FROM last\)/)
  const { plan, updated } = await middleBatch(s)
  assert.match(plan, /(Index Scan using notes_pkey on notes c|Bitmap Index Scan on notes_pkey)\n\s+Index Cond: \(\(ROW\(author, seq\) >= ROW\(/, plan)
  assert.doesNotMatch(plan, /Seq Scan on notes/, plan)
  assert.equal(updated, 2000)
})

test('a batch of a bigint-keyed child finds its rows by a primary-key range', async () => {
  const s = await upTo('public.tasks')
  assert.match(s.backfill!.batchSql, /WHERE \(c\."id"\) >= \(SELECT "id" FROM first\) AND \(c\."id"\) <= \(SELECT "id" FROM last\)\n {4}AND c\."org_id" IS NULL AND p\."id" = c\."project_id"/)
  const { plan, updated } = await middleBatch(s)
  assert.match(plan, /Index Scan using tasks_pkey on tasks c\n\s+Index Cond: \(\(id >= \$\d+\) AND \(id <= \$\d+\)\)|Index Scan using tasks_pkey on tasks c\n\s+Index Cond: \(\(id >= \(InitPlan \d+\)\.col1\) AND \(id <= \(InitPlan \d+\)\.col1\)\)/, plan)
  assert.doesNotMatch(plan, /Seq Scan on tasks/, plan)
  assert.equal(updated, 2000)
})
