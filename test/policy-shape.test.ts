/**
 * The tenant policy's shape (issue #14): `org_id OPERATOR(pg_catalog.=) (SELECT CASE WHEN
 * pg_catalog.current_setting(…) OPERATOR(pg_catalog.<>) '' THEN …::pg_catalog.uuid END)` — the helper's
 * body written out, every name qualified, so the planner has no function to inline — and the helper
 * itself (the column default) with a SQL-standard body; as safe as the pinned-search_path helper they
 * replace, and accepted by verify's lints.
 *
 * The hijack attempts: a schema `evil`, earlier in the search_path than pg_catalog both when the plan
 * is applied and when the app queries, defines `current_setting(text, boolean)` (another tenant's id),
 * `nullif`, a type `uuid`, and operators `=` / `<>` on text and uuid that say "equal" to everything.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import { introspect, type Catalog } from '../src/catalog/index.js'
import { proposeConfig } from '../src/plan/classify.js'
import { parseConfig } from '../src/plan/config.js'
import { planConversion } from '../src/plan/plan.js'
import type { Step } from '../src/plan/steps.js'
import { lintCatalog } from '../src/verify/lints/index.js'
import { withClient } from '../src/db/connect.js'
import { quoteIdent } from '../src/sql/index.js'
import { testDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)
const APP = `${db.name}_app`
const DEFAULT_TENANT = '5e0f0c1a-0000-4000-8000-000000000001'
const OTHER = randomUUID()
const HOSTILE = 'evil, pg_catalog'

after(async () => {
  await db.drop()
  await withClient(db.adminUrl, (c) => c.query(`DROP ROLE IF EXISTS ${quoteIdent(APP)}`))
})

async function catalogOf(): Promise<Catalog> {
  return withClient(db.url, (c) => introspect(c))
}

/** Objects that would change what the policy means if any name in it were looked up in the search_path. */
const EVIL = `
  CREATE SCHEMA evil;
  GRANT USAGE ON SCHEMA evil TO PUBLIC;
  CREATE FUNCTION evil.current_setting(text, boolean) RETURNS text LANGUAGE sql STABLE AS $$ SELECT '${OTHER}' $$;
  CREATE FUNCTION evil.current_setting(text) RETURNS text LANGUAGE sql STABLE AS $$ SELECT '${OTHER}' $$;
  CREATE FUNCTION evil.nullif(text, text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT '${OTHER}' $$;
  CREATE DOMAIN evil.uuid AS text;
  CREATE DOMAIN evil.text AS pg_catalog.text;
  CREATE FUNCTION evil.uuid_always(pg_catalog.uuid, pg_catalog.uuid) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT true $$;
  CREATE FUNCTION evil.text_always(pg_catalog.text, pg_catalog.text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT true $$;
  CREATE FUNCTION evil.text_never(pg_catalog.text, pg_catalog.text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT false $$;
  CREATE OPERATOR evil.= (LEFTARG = pg_catalog.uuid, RIGHTARG = pg_catalog.uuid, FUNCTION = evil.uuid_always);
  CREATE OPERATOR evil.= (LEFTARG = pg_catalog.text, RIGHTARG = pg_catalog.text, FUNCTION = evil.text_never);
  CREATE OPERATOR evil.<> (LEFTARG = pg_catalog.text, RIGHTARG = pg_catalog.text, FUNCTION = evil.text_always);`

/** Run steps as `tenantize apply` would, in a session whose search_path is `searchPath`. */
async function applySteps(steps: readonly Step[], searchPath: string): Promise<void> {
  await withClient(db.url, async (c) => {
    await c.query(`SET search_path = ${searchPath}`)
    for (const s of steps) {
      assert.equal(s.backfill, undefined, `${s.id}: no backfill in this schema`)
      if (s.transactional) await c.query('BEGIN')
      for (const sql of s.up) await c.query(sql)
      if (s.transactional) await c.query('COMMIT')
    }
  })
}

/** Run `fn` as the app role with the hostile search_path, inside a transaction that is rolled back. */
async function asApp<T>(tenant: string | null, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  return withClient(db.url, async (c) => {
    await c.query('BEGIN')
    try {
      await c.query(`SET LOCAL ROLE ${quoteIdent(APP)}`)
      await c.query(`SET LOCAL search_path = ${HOSTILE}`)
      if (tenant !== null) await c.query('SELECT pg_catalog.set_config($1, $2, true)', ['tenantize.tenant_id', tenant])
      return await fn(c)
    } finally {
      await c.query('ROLLBACK')
    }
  })
}

let steps: readonly Step[] = []

before(async () => {
  await db.sql(`
    CREATE TABLE public.projects (id bigint PRIMARY KEY, name text NOT NULL);
    INSERT INTO public.projects SELECT g, 'project ' || g FROM generate_series(1, 2000) g;
    ${EVIL}`)
  const catalog = await catalogOf()
  const config = parseConfig(proposeConfig(catalog, { defaultTenantId: DEFAULT_TENANT, appRole: APP }).config)
  steps = planConversion(catalog, config).steps
  const policySteps = (s: Step): boolean => s.id === 'helpers' || s.id.startsWith('rls:')
  // Everything else under the server's default search_path; the helper and the policies under the hostile one.
  for (const s of steps) await applySteps([s], policySteps(s) ? HOSTILE : '"$user", public')
  await db.sql(`
    INSERT INTO public.organizations (id, slug, name) VALUES ('${OTHER}', 'other', 'Other');
    UPDATE public.projects SET org_id = '${OTHER}' WHERE id > 1500;
    ANALYZE public.projects;`)
})

test('the helper has a SQL-standard body, no SET clause, and its plan step names nothing unqualified; the policy writes the same expression out', async () => {
  const helpers = steps.find((s) => s.id === 'helpers')!
  const create = helpers.up.find((sql) => sql.startsWith('CREATE FUNCTION'))!
  assert.match(create, / RETURNS pg_catalog\.uuid LANGUAGE sql STABLE PARALLEL SAFE RETURN /)
  assert.doesNotMatch(create, /NULLIF|SET search_path|::uuid\b| = /i)
  const rls = steps.find((s) => s.id.startsWith('rls:public.projects'))!
  const written = `(SELECT CASE WHEN pg_catalog.current_setting('tenantize.tenant_id', true) OPERATOR(pg_catalog.<>) '' THEN pg_catalog.current_setting('tenantize.tenant_id', true)::pg_catalog.uuid END)`
  assert.ok(rls.up.some((sql) => sql.includes(`USING ("org_id" OPERATOR(pg_catalog.=) ${written})`) && sql.includes(`WITH CHECK ("org_id" OPERATOR(pg_catalog.=) ${written})`)), rls.up.join('\n'))
  assert.ok(rls.up.filter((sql) => sql.startsWith('CREATE POLICY')).every((sql) => !/current_tenant_id|NULLIF|::uuid\b| = /i.test(sql)), rls.up.join('\n'))
  const [fn] = await db.sql<{ config: string[] | null; standard: boolean; volatility: string }>(
    `SELECT proconfig AS config, prosqlbody IS NOT NULL AS standard, provolatile AS volatility FROM pg_catalog.pg_proc WHERE oid = 'tenantize.current_tenant_id()'::pg_catalog.regprocedure`,
  )
  assert.deepEqual(fn, { config: null, standard: true, volatility: 's' })
})

test('applied under a hostile search_path, neither the helper nor the policy depends on anything in it', async () => {
  const rows = await db.sql<{ what: string; ref: string }>(`
    SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS what,
           pg_catalog.pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) AS ref
    FROM pg_catalog.pg_depend d
    WHERE (d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = 'tenantize.current_tenant_id()'::pg_catalog.regprocedure)
       OR (d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objid IN (SELECT oid FROM pg_catalog.pg_policy))
    ORDER BY 1, 2`)
  // Built-in objects are pinned (no pg_depend rows): what the policies call shows in the plan (the InitPlan test below).
  assert.ok(rows.some((r) => r.what.startsWith('policy ')), 'the policies depend on their tables')
  assert.deepEqual(rows.filter((r) => r.ref.includes('evil')), [])
  assert.deepEqual(rows.filter((r) => r.what.startsWith('policy ') && r.ref.includes('current_tenant_id')), [], 'no policy calls the helper')
})

test('the hijack harness bites: the former shape (NULLIF, unqualified type) created the same way binds to schema evil', async () => {
  await db.sql(`SET search_path = ${HOSTILE};
    CREATE FUNCTION public.former_shape() RETURNS uuid LANGUAGE sql STABLE RETURN NULLIF(pg_catalog.current_setting('tenantize.tenant_id', true), '')::uuid;
    RESET search_path`).catch((error: unknown) => {
    // evil.uuid is a domain over text, so the body may not even type-check: also a hijack.
    assert.match(String(error), /uuid|operator|type/)
  })
  const refs = await db.sql<{ ref: string }>(`
    SELECT pg_catalog.pg_describe_object(refclassid, refobjid, refobjsubid) AS ref FROM pg_catalog.pg_depend
    WHERE classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND objid = (SELECT oid FROM pg_catalog.pg_proc WHERE proname = 'former_shape')`)
  assert.ok(refs.some((r) => r.ref.includes('evil')), JSON.stringify(refs))
})

test('as the app role with the hostile search_path: its own rows only, none without or with an empty context, no writes for another tenant', async () => {
  const count = (c: pg.Client): Promise<number> => c.query<{ n: number }>('SELECT count(*)::int AS n FROM public.projects').then((r) => r.rows[0]!.n)
  assert.equal(await asApp(DEFAULT_TENANT, count), 1500)
  assert.equal(await asApp(OTHER, count), 500)
  assert.equal(await asApp(null, count), 0)
  assert.equal(await asApp('', count), 0)
  await assert.rejects(asApp('not-a-uuid', count), /invalid input syntax for type uuid/)
  await assert.rejects(
    asApp(DEFAULT_TENANT, (c) => c.query(`INSERT INTO public.projects (id, name, org_id) VALUES (9001, 'x', '${OTHER}')`)),
    /row-level security/,
  )
  // The column default is the helper too: a row inserted without org_id gets the context's tenant.
  const inserted = await asApp(OTHER, (c) => c.query<{ org_id: string }>(`INSERT INTO public.projects (id, name) VALUES (9002, 'y') RETURNING org_id`))
  assert.deepEqual(inserted.rows, [{ org_id: OTHER }])
})

test('no function to inline: the InitPlan reads the setting itself, and the tenant column is an index condition', async () => {
  const plan = await asApp(OTHER, async (c) => {
    await c.query('SET LOCAL enable_seqscan = off')
    const { rows } = await c.query<{ 'QUERY PLAN': string }>('EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM public.projects WHERE id = 1600')
    return rows.map((r) => r['QUERY PLAN']).join('\n')
  })
  assert.match(plan, /InitPlan 1/)
  // Deparsed under the hostile search_path, so every name shows its schema: pg_catalog's, not evil's.
  assert.ok(plan.includes("Output: CASE WHEN (pg_catalog.current_setting('tenantize.tenant_id'::pg_catalog.text, true) OPERATOR(pg_catalog.<>) ''::pg_catalog.text) THEN (pg_catalog.current_setting('tenantize.tenant_id'::pg_catalog.text, true))::pg_catalog.uuid ELSE NULL::pg_catalog.uuid END"), plan)
  assert.doesNotMatch(plan, /current_tenant_id/)
  const byTenant = await asApp(OTHER, async (c) => {
    await c.query('SET LOCAL enable_seqscan = off')
    const { rows } = await c.query<{ 'QUERY PLAN': string }>('EXPLAIN (COSTS OFF) SELECT count(*) FROM public.projects')
    return rows.map((r) => r['QUERY PLAN']).join('\n')
  })
  assert.match(byTenant, /Index (Only )?Scan (using|on) projects_org_id_idx[\s\S]*Index Cond: \(org_id OPERATOR\(pg_catalog\.=\) (\$0|\(InitPlan 1\)\.col1)\)/)
})

test("verify's lints accept the shape: no search_path, volatility, wrapping or tenant-filter finding on the converted table", async () => {
  const { findings } = await lintCatalog(await catalogOf(), { appRole: APP })
  const policyFindings = findings.filter((f) => f.rule.startsWith('policy-') && (f.table ?? '').includes('projects'))
  assert.deepEqual(policyFindings.map((f) => `${f.rule}: ${f.message}`), [])
  assert.deepEqual(findings.filter((f) => f.rule === 'policy-function-search-path'), [])
})

test('a string-bodied helper without a pinned search_path is still reported (the lint was not switched off)', async () => {
  await db.sql(`CREATE FUNCTION tenantize.loose_tenant() RETURNS uuid LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('tenantize.tenant_id', true), '')::uuid $$;
    CREATE TABLE public.notes (org_id uuid NOT NULL REFERENCES public.organizations (id), id bigint PRIMARY KEY);
    ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
    CREATE POLICY notes_tenant ON public.notes TO ${quoteIdent(APP)} USING (org_id = (SELECT tenantize.loose_tenant())) WITH CHECK (org_id = (SELECT tenantize.loose_tenant()));`)
  try {
    const { findings } = await lintCatalog(await catalogOf(), { appRole: APP })
    assert.deepEqual(findings.filter((f) => f.rule === 'policy-function-search-path').map((f) => f.message), [
      '"notes_tenant" on public.notes calls tenantize.loose_tenant(), which has no pinned search_path',
    ])
  } finally {
    await db.sql('DROP TABLE public.notes; DROP FUNCTION tenantize.loose_tenant()')
  }
})
