import assert from 'node:assert/strict'
import { test } from 'node:test'
import pg from 'pg'
import { introspect } from '../src/catalog/index.js'
import { CorpusData, fillSummary } from './helpers/corpus-data.js'
import { testDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)

await db.sql(`
  CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
  CREATE DOMAIN small_int AS integer CHECK (VALUE BETWEEN 10 AND 20);
  CREATE DOMAIN tag_list AS text[] CHECK (cardinality(VALUE) BETWEEN 1 AND 3);
  CREATE TABLE orgs (id uuid PRIMARY KEY DEFAULT gen_random_uuid());
  -- lago's roles: a predefined role (no organization) has no permissions, a custom one has some.
  CREATE TABLE roles (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid REFERENCES orgs,
    permissions character varying[] DEFAULT '{}'::character varying[] NOT NULL,
    CONSTRAINT custom_role_should_have_permissions CHECK (organization_id IS NULL OR cardinality(permissions) > 0),
    CONSTRAINT permissions_has_no_empty_parts CHECK (NOT (permissions::text ~ '([\\{,]:|::|:[,\\}])'::text) AND NOT (''::text = ANY (permissions::text[]))),
    CONSTRAINT predefined_role_cannot_have_permissions CHECK (organization_id IS NOT NULL OR cardinality(permissions) = 0)
  );
  -- lago's memberships and membership_roles: a composite foreign key that carries the tenant column.
  CREATE TABLE memberships (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), organization_id uuid NOT NULL REFERENCES orgs, UNIQUE (id, organization_id));
  CREATE TABLE membership_roles (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    membership_id uuid NOT NULL,
    organization_id uuid NOT NULL,
    CONSTRAINT membership_role_membership_fk FOREIGN KEY (membership_id, organization_id) REFERENCES memberships (id, organization_id)
  );
  -- A key to the table itself through the tenant column, NULL-able (chinook's employee.reports_to once converted) and not.
  CREATE TABLE employees (
    id serial PRIMARY KEY, organization_id uuid NOT NULL, manager_id integer, UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, manager_id) REFERENCES employees (organization_id, id)
  );
  CREATE TABLE folders (
    id serial PRIMARY KEY, organization_id uuid NOT NULL, parent_id integer NOT NULL, UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, parent_id) REFERENCES folders (organization_id, id)
  );
  -- formbricks' FeedbackSourceFormbricksMapping: two composite keys sharing workspaceId (each parent scoped by workspace).
  CREATE TABLE workspaces (id text PRIMARY KEY);
  CREATE TABLE sources (id text PRIMARY KEY, workspace_id text NOT NULL REFERENCES workspaces, UNIQUE (id, workspace_id));
  CREATE TABLE surveys (id text PRIMARY KEY, workspace_id text NOT NULL REFERENCES workspaces, UNIQUE (id, workspace_id));
  CREATE TABLE mappings (
    id text PRIMARY KEY, source_id text NOT NULL, workspace_id text NOT NULL, survey_id text NOT NULL,
    FOREIGN KEY (source_id, workspace_id) REFERENCES sources (id, workspace_id),
    FOREIGN KEY (survey_id, workspace_id) REFERENCES surveys (id, workspace_id)
  );
  CREATE TABLE arrays (
    id serial PRIMARY KEY,
    texts text[] NOT NULL CHECK (cardinality(texts) > 0),
    codes varchar(4)[] NOT NULL UNIQUE,
    numbers integer[] NOT NULL CHECK (numbers[1] >= 1),
    ids uuid[] NOT NULL UNIQUE,
    moods mood[] NOT NULL CHECK (cardinality(moods) > 0),
    smalls small_int[] NOT NULL CHECK (cardinality(smalls) = 1),
    tags tag_list NOT NULL,
    stamps timestamptz[] NOT NULL CHECK (stamps[1] IS NOT NULL),
    admin_only text[] NOT NULL CHECK ('admin' = ANY (admin_only))
  );
`)

async function fill(options: Parameters<typeof CorpusData.fill>[2]): Promise<ReturnType<typeof fillSummary>> {
  const client = new pg.Client(db.url)
  await client.connect()
  try {
    const catalog = await introspect(client)
    await client.query('BEGIN')
    const { result } = await CorpusData.fill(client, catalog, options)
    await client.query('COMMIT')
    return fillSummary(result)
  } finally {
    await client.end()
  }
}

test('the corpus generator fills array columns of any element type, one element made as the element type is, CHECKs on them respected', async () => {
  assert.equal(await fill({ tables: ['public.orgs', 'public.roles', 'public.arrays'], rows: 3 }), 'every table has rows')
  const rows = await db.sql<{ n: number; texts: number; codes: number; ids: number; moods: string; smalls: number; tags: number; admin: boolean }>(
    `SELECT count(*)::int AS n, min(cardinality(texts))::int AS texts, count(DISTINCT codes)::int AS codes, count(DISTINCT ids)::int AS ids,
            string_agg(DISTINCT moods[1]::text, ',') AS moods, min(smalls[1])::int AS smalls, min(cardinality(tags))::int AS tags, bool_and('admin' = ANY (admin_only)) AS admin
       FROM arrays`,
  )
  assert.deepEqual(rows[0], { n: 3, texts: 1, codes: 3, ids: 3, moods: rows[0]!.moods, smalls: 10, tags: 1, admin: true })
  assert.ok(rows[0]!.moods.split(',').every((m) => ['sad', 'ok', 'happy'].includes(m)), `enum array elements are labels: ${rows[0]!.moods}`)
})

test('a second tenant (a fixed tenant column) fills an array column whose CHECK then asks for elements, and composite foreign keys through the tenant column, to another table and to the table itself (lago roles, membership_roles; chinook employee)', async () => {
  const [org] = await db.sql<{ id: string }>(`INSERT INTO orgs DEFAULT VALUES RETURNING id::text`)
  const tables = ['public.roles', 'public.memberships', 'public.membership_roles', 'public.employees', 'public.folders']
  assert.equal(await fill({ tables, rows: 2, fixed: { organization_id: org!.id } }), 'every table has rows')
  const [counts] = await db.sql<{ roles: number; membership_roles: number; employees: number; folders: number }>(
    `SELECT (SELECT count(*)::int FROM roles WHERE organization_id = $1 AND cardinality(permissions) > 0) AS roles,
            (SELECT count(*)::int FROM membership_roles WHERE organization_id = $1) AS membership_roles,
            (SELECT count(*)::int FROM employees WHERE organization_id = $1) AS employees,
            (SELECT count(*)::int FROM folders WHERE organization_id = $1) AS folders`,
    [org!.id],
  )
  assert.deepEqual(counts, { roles: 2, membership_roles: 2, employees: 2, folders: 2 })
})

test('two composite foreign keys sharing a column: the second takes parent rows holding the value the first chose (formbricks FeedbackSourceFormbricksMapping: (feedback_source_id, workspaceId) and (surveyId, workspaceId))', async () => {
  assert.equal(await fill({ tables: ['public.workspaces', 'public.sources', 'public.surveys', 'public.mappings'], rows: 3 }), 'every table has rows')
  const [n] = await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM mappings m JOIN sources s ON s.id = m.source_id AND s.workspace_id = m.workspace_id JOIN surveys v ON v.id = m.survey_id AND v.workspace_id = m.workspace_id`)
  assert.equal(n!.n, 3)
})
