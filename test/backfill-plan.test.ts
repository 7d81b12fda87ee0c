import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { apply } from '../src/apply/index.js'
import { introspect } from '../src/catalog/index.js'
import { ensureLedger } from '../src/migrate/ledger.js'
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
// A batch keeps its own progress row in the ledger's table.
await ensureLedger(client)
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
  const params = [...Object.values(offset), 2000, ...upper, 'test', s.id, JSON.stringify(upper), 0]
  const plan = (await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (COSTS OFF) ${spec.batchSql}`, params)).rows.map((r) => r['QUERY PLAN']).join('\n')
  await client.query('BEGIN')
  const row = (await client.query<{ updated: number }>(spec.batchSql, params)).rows[0]!
  const saved = (await client.query<{ last_key: { last: string[]; upper: string[]; text: boolean }; rows_done: string }>(`SELECT last_key, rows_done FROM tenantize.backfill_progress WHERE scope = 'test' AND step = $1`, [s.id])).rows
  await client.query('ROLLBACK')
  // The same statement saved the batch's progress: its last key as the batch returned it, the upper key, its rows.
  assert.deepEqual(saved, [{ last_key: { last: spec.keyColumns.map((_, i) => (row as unknown as Record<string, string>)[`k${i + 1}`]), upper, text: true }, rows_done: String(row.updated) }])
  // Then fill the whole table, as plan --format sql does, so that the steps after it can run.
  await client.query(spec.loopSql)
  assert.deepEqual((await client.query(spec.remainingSql)).rows, [{ remaining: '0' }])
  return { plan, updated: row.updated }
}

test('a batch of a keyless child pages by row address with TID range scans that stop after the batch: no sort of the rest of the table', async () => {
  const s = await upTo('public.logs')
  assert.equal(s.backfill!.batchSql, `WITH batch AS (
  SELECT "ctid" FROM "public"."logs" WHERE ($1::tid IS NULL OR ("ctid") > ($1::tid)) AND ("ctid") <= ($3::tid) LIMIT $2
), last AS (
  SELECT max("ctid") AS "ctid" FROM batch HAVING count(*) > 0
), filled AS (
  UPDATE "public"."logs" AS c SET "org_id" = p."org_id"
  FROM "public"."projects" AS p
  WHERE ($1::tid IS NULL OR (c."ctid") > ($1::tid)) AND (c."ctid") <= (SELECT "ctid" FROM last)
    AND c."org_id" IS NULL AND p."id" = c."project_id"
  RETURNING 1
), saved AS (
  INSERT INTO tenantize.backfill_progress (scope, step, last_key, rows_done)
  SELECT $4::text, $5::text,
         pg_catalog.jsonb_build_object('last', pg_catalog.jsonb_build_array(last."ctid"::text), 'upper', $6::jsonb, 'text', true),
         $7::bigint + (SELECT count(*) FROM filled)
  FROM last
  ON CONFLICT (scope, step) DO UPDATE SET last_key = EXCLUDED.last_key, rows_done = EXCLUDED.rows_done, updated_at = pg_catalog.clock_timestamp()
)
SELECT (SELECT count(*) FROM filled)::int AS updated, last."ctid"::text AS k1
FROM last`)
  const { plan, updated } = await middleBatch(s)
  // The batch's rows: a TID range scan under a Limit, no Sort; the UPDATE: a TID range scan of the same range.
  assert.match(plan, /Limit\n\s+-> {2}Tid Range Scan on logs\n\s+TID Cond: \(\(ctid > '\(\d+,\d+\)'::tid\) AND \(ctid <= '\(\d+,\d+\)'::tid\)\)/, plan)
  assert.match(plan, /Tid Range Scan on logs c\n\s+TID Cond: \(\(ctid > '\(\d+,\d+\)'::tid\) AND \(ctid <= /, plan)
  assert.doesNotMatch(plan, /Sort|Seq Scan on logs/, plan)
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

test('the fill trigger fires only for rows without a tenant (WHEN), so the backfill\'s own UPDATE does not call it', () => {
  const add = steps.find((s) => s.id === 'add-column:public.logs')!
  assert.equal(add.up[2], 'CREATE TRIGGER "tenantize_fill_tenant" BEFORE INSERT OR UPDATE ON "public"."logs" FOR EACH ROW WHEN (NEW."org_id" IS NULL) EXECUTE FUNCTION "tenantize"."fill_public_logs"()')
})

test('apply fills a keyless child in batches, each row once; a batch cut short leaves nothing of itself, and apply again resumes after the last whole batch', async () => {
  const t = await db.another('keyless')
  // `fills` counts each row's fills; a line in `fault` makes the batch that reaches it fail half-way.
  await t.sql(`
    CREATE TABLE organizations (id uuid PRIMARY KEY, slug text NOT NULL UNIQUE, name text NOT NULL);
    INSERT INTO organizations VALUES ('${DEFAULT_TENANT}', 'default', 'Default'), ('00000000-0000-4000-8000-0000000000d2', 'other', 'Other');
    CREATE TABLE projects (id bigint PRIMARY KEY, org_id uuid NOT NULL REFERENCES organizations (id));
    INSERT INTO projects SELECT g, CASE WHEN g % 2 = 0 THEN '${DEFAULT_TENANT}'::uuid ELSE '00000000-0000-4000-8000-0000000000d2' END FROM generate_series(1, 100) g;
    CREATE TABLE events (project_id bigint NOT NULL REFERENCES projects (id), line text NOT NULL);
    INSERT INTO events SELECT 1 + g % 100, 'e' || g FROM generate_series(1, 3000) g;
    CREATE TABLE fills (line text NOT NULL);
    CREATE TABLE fault (line text NOT NULL);
    INSERT INTO fault VALUES ('e1700');
    CREATE FUNCTION count_fill() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF EXISTS (SELECT FROM fault WHERE line = NEW.line) THEN RAISE EXCEPTION 'batch cut short at %', NEW.line; END IF;
      INSERT INTO fills VALUES (NEW.line);
      RETURN NULL;
    END $$;
    CREATE TRIGGER count_fill AFTER UPDATE ON events FOR EACH ROW EXECUTE FUNCTION count_fill();`)
  const c = new pg.Client(t.url)
  await c.connect()
  const proposed = proposeConfig(await introspect(c), { defaultTenantId: DEFAULT_TENANT, appRole: t.role('app'), tenantTable: { schema: 'public', name: 'organizations' } }).config
  await c.end()
  const config = parseConfig({ ...proposed, batchSize: 250, tables: { ...proposed.tables, 'public.fills': { class: 'excluded' }, 'public.fault': { class: 'excluded' } } })
  assert.equal(config.tables['public.events']!.class, 'child')
  const timeouts = { lockTimeoutMs: 500, retryDelayMs: 50, tries: 3 }

  // Fixed batches (batchTargetMs 0): the assertions below count whole batches of 250, whatever the load.
  const cut = await apply({ databaseUrl: t.url, config, phase: 'schema', timeouts, batchPauseMs: 0, batchTargetMs: 0 }).then(() => undefined, (e: unknown) => e)
  assert.match(String(cut), /batch cut short at e1700/)
  const saved = await t.sql<{ rows_done: string }>(`SELECT rows_done FROM tenantize.backfill_progress`)
  assert.equal(saved.length, 1)
  const kept = Number(saved[0]!.rows_done)
  assert.ok(kept >= 1000 && kept < 1700 && kept % 250 === 0, `whole batches before the one cut short were kept (${kept})`)
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS rows, count(*) FILTER (WHERE org_id IS NULL)::int AS empty FROM events`), [{ rows: 3000, empty: 3000 - kept }], 'the batch cut short left nothing')
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM fills`), [{ n: kept }])

  await t.sql(`DELETE FROM fault`)
  const progress: number[] = []
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM pg_stats WHERE schemaname = 'public' AND tablename = 'events' AND attname = 'org_id'`), [{ n: 0 }], 'no statistics for the new column yet')
  await apply({ databaseUrl: t.url, config, phase: 'schema', timeouts, batchPauseMs: 0, batchTargetMs: 0, onEvent: (e) => { if (e.event === 'progress' && e.migration.includes('backfill:public.events')) progress.push(e.done) } })
  assert.equal(progress[0], kept + 250, 'resumed after the last whole batch')
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM events e JOIN projects p ON p.id = e.project_id WHERE e.org_id IS DISTINCT FROM p.org_id`), [{ n: 0 }])
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS fills, count(DISTINCT line)::int AS rows FROM fills`), [{ fills: 3000, rows: 3000 }], 'every row filled exactly once')
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM tenantize.backfill_progress`), [{ n: 0 }])
  // The step ends with VACUUM (ANALYZE): the new column has statistics (pg_statistic is written by ANALYZE, at once).
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM pg_stats WHERE schemaname = 'public' AND tablename = 'events' AND attname = 'org_id'`), [{ n: 1 }], 'the new column was analyzed after the backfill')
})

test('a plan frozen by an earlier version, whose batch statement saves no progress, resumes: apply saves the progress row in the batch\'s transaction', async () => {
  const t = await db.another('frozen')
  await t.sql(`
    CREATE TABLE organizations (id uuid PRIMARY KEY, slug text NOT NULL UNIQUE, name text NOT NULL);
    INSERT INTO organizations VALUES ('${DEFAULT_TENANT}', 'default', 'Default'), ('00000000-0000-4000-8000-0000000000d2', 'other', 'Other');
    CREATE TABLE projects (id bigint PRIMARY KEY, org_id uuid NOT NULL REFERENCES organizations (id));
    INSERT INTO projects SELECT g, CASE WHEN g % 2 = 0 THEN '${DEFAULT_TENANT}'::uuid ELSE '00000000-0000-4000-8000-0000000000d2' END FROM generate_series(1, 100) g;
    CREATE TABLE tasks (id bigint PRIMARY KEY, project_id bigint NOT NULL REFERENCES projects (id));
    INSERT INTO tasks SELECT g, 1 + g % 100 FROM generate_series(1, 2000) g;`)
  const c = new pg.Client(t.url)
  await c.connect()
  const config = parseConfig({ ...proposeConfig(await introspect(c), { defaultTenantId: DEFAULT_TENANT, appRole: t.role('app'), tenantTable: { schema: 'public', name: 'organizations' } }).config, batchSize: 200 })
  const timeouts = { lockTimeoutMs: 500, retryDelayMs: 50, tries: 3 }
  let seen = 0
  const stopped = await apply({ databaseUrl: t.url, config, phase: 'schema', timeouts, batchPauseMs: 0, batchTargetMs: 0, onEvent: (e) => {
    if (e.event === 'progress' && ++seen === 3) throw new Error('stopped after 3 batches')
  } }).then(() => undefined, (e: unknown) => e)
  assert.match(String(stopped), /stopped after 3 batches/)
  // The frozen plan as an earlier version wrote it: no `saved` CTE, no savesProgress.
  const frozen = (await c.query<{ id: string; plan: { steps: Step[] } }>('SELECT id, plan FROM tenantize.plans')).rows[0]!
  const steps = frozen.plan.steps.map((s) => {
    if (s.backfill === undefined) return s
    const { savesProgress: _, ...old } = s.backfill
    return { ...s, backfill: { ...old, batchSql: old.batchSql.replace(/\), saved AS \([\s\S]*?\n\)\n/, ')\n') } }
  })
  assert.equal(steps.filter((s) => s.backfill !== undefined && !s.backfill.batchSql.includes('backfill_progress')).length, 1)
  await c.query('UPDATE tenantize.plans SET plan = $1 WHERE id = $2', [JSON.stringify({ ...frozen.plan, steps }), frozen.id])
  await c.end()

  const progress: number[] = []
  await apply({ databaseUrl: t.url, config, phase: 'schema', timeouts, batchPauseMs: 0, batchTargetMs: 0, onEvent: (e) => { if (e.event === 'progress') progress.push(e.done) } })
  assert.deepEqual(progress, [800, 1000, 1200, 1400, 1600, 1800, 2000], 'resumed after the 3 saved batches, then batch by batch')
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.org_id IS DISTINCT FROM p.org_id`), [{ n: 0 }])
})
