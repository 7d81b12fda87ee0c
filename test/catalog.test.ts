import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import pg from 'pg'
import { introspect, type Catalog, type Queryable, type RelationGrant, type Table, type View } from '../src/catalog/index.js'
import { quoteIdent } from '../src/sql/index.js'
import { connect } from '../src/db/connect.js'
import { testDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)

// Roles are cluster-wide: unique per run (the database name ends in random hex), dropped after the file.
const suffix = db.name.slice(db.name.lastIndexOf('_') + 1)
const ROLE_KEYS = ['owner', 'app', 'bypass', 'staff', 'everyone'] as const
type RoleKey = (typeof ROLE_KEYS)[number]
const role = Object.fromEntries(ROLE_KEYS.map((k) => [k, `tz_cat_${k}_${suffix}`])) as Record<RoleKey, string>

after(async () => {
  const names = ROLE_KEYS.map((k) => quoteIdent(role[k])).join(', ')
  // The database may already be gone (then so are the objects and grants that name these roles).
  await db.sql(`DROP OWNED BY ${names}`).catch(() => undefined)
  const admin = new pg.Client(db.adminUrl)
  await admin.connect()
  try {
    for (const k of ROLE_KEYS) await admin.query(`DROP ROLE IF EXISTS ${quoteIdent(role[k])}`)
  } finally {
    await admin.end()
  }
})

/** The fixture with its psql-style `:"name"` role variables replaced by quoted per-run names. */
async function fixtureSql(): Promise<string> {
  const text = await readFile(new URL('./fixtures/catalog-fixture.sql', import.meta.url), 'utf8')
  return text.replace(/:"([a-z_]+)"/g, (_, key: string) => {
    if (!(ROLE_KEYS as readonly string[]).includes(key)) throw new Error(`unknown fixture variable ${key}`)
    return quoteIdent(role[key as RoleKey])
  })
}

await db.sql(await fixtureSql())
// An invalid index, as a failed CREATE UNIQUE INDEX CONCURRENTLY leaves it (two tasks share a due date).
await assert.rejects(db.sql('CREATE UNIQUE INDEX CONCURRENTLY task_due_uniq ON app.task (due)'), { code: '23505' })

// connect() ignores the connection being killed when the harness drops the database before this ends it.
const client = await connect(db.url)
after(() => client.end())

/** Counts the statements introspect sends. */
class CountingClient implements Queryable {
  readonly texts: string[] = []
  constructor(private readonly inner: pg.Client) {}
  async query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }> {
    this.texts.push(text)
    return this.inner.query(text, values)
  }
}

const counting = new CountingClient(client)
const catalog = await introspect(counting)
const queriesForFixture = counting.texts.length
const [{ me, version_num: versionNum }] = (await client.query<{ me: string; version_num: number }>(
  `SELECT current_user AS me, current_setting('server_version_num')::int AS version_num`,
)).rows as [{ me: string; version_num: number }]

/** Deep copy without `oid` keys: oids differ per run; they are checked separately. */
function withoutOids(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutOids)
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).filter(([k]) => k !== 'oid').map(([k, v]) => [k, withoutOids(v)]))
  }
  return value
}

function mustTable(schema: string, name: string): Table {
  const t = catalog.table(schema, name)
  assert.ok(t, `table ${schema}.${name} is in the catalog`)
  return t
}

function mustView(schema: string, name: string): View {
  const v = catalog.view(schema, name)
  assert.ok(v, `view ${schema}.${name} is in the catalog`)
  return v
}

const ref = (schema: string, name: string): { schema: string; name: string } => ({ schema, name })
const OWNER_PRIVILEGES = ['DELETE', 'INSERT', ...(versionNum >= 170000 ? ['MAINTAIN'] : []), 'REFERENCES', 'SELECT', 'TRIGGER', 'TRUNCATE', 'UPDATE']
const ownerGrants = (owner: string): RelationGrant[] =>
  OWNER_PRIVILEGES.map((privilege) => ({ grantee: owner, grantor: owner, privilege, grantable: false }) as RelationGrant)

test('server: version, database, user and the settings as the session sees them', async () => {
  const { rows } = await client.query<Record<string, string>>(
    `SELECT current_setting('server_version') AS version, current_setting('max_connections') AS max_connections,
            current_setting('server_encoding') AS server_encoding`,
  )
  const row = rows[0]!
  assert.equal(catalog.server.version, row['version'])
  assert.equal(catalog.server.versionNum, versionNum)
  assert.equal(catalog.server.major, Math.floor(versionNum / 10000))
  assert.ok(catalog.server.major >= 15)
  assert.equal(catalog.server.database, db.name)
  assert.equal(catalog.server.currentUser, me)
  assert.equal(catalog.server.currentUserIsSuperuser, true)

  // Distinct session values show that each setting is read from the right place.
  await client.query(`SET search_path = tenantize, "Odd ""Schema"" ü"; SET lock_timeout = '1500ms'; SET statement_timeout = '42s';
                      SET row_security = off; SET default_transaction_isolation = 'serializable'`)
  try {
    const snapshot = await introspect(client)
    assert.deepEqual(snapshot.server.settings, {
      row_security: 'off',
      search_path: 'tenantize, "Odd ""Schema"" ü"',
      default_transaction_isolation: 'serializable',
      lock_timeout: '1500ms',
      statement_timeout: '42s',
      max_connections: row['max_connections'],
      server_encoding: row['server_encoding'],
      standard_conforming_strings: 'on',
      is_superuser: 'on',
    })
    // The search_path pinned while reading was transaction-local: the session's is unchanged.
    const after = await client.query<{ path: string }>(`SELECT current_setting('search_path') AS path`)
    assert.deepEqual(after.rows, [{ path: 'tenantize, "Odd ""Schema"" ü"' }])
  } finally {
    await client.query('RESET ALL')
  }
})

test('schemas: user schemas only, tenantize included, awkward names intact', () => {
  assert.deepEqual(withoutOids(catalog.schemas), [
    { name: 'Odd "Schema" ü', owner: me, usage: [me] },
    { name: 'app', owner: me, usage: [me] },
    { name: 'public', owner: 'pg_database_owner', usage: ['PUBLIC', 'pg_database_owner'] },
    { name: 'tenantize', owner: me, usage: [me] },
  ])
})

test('tables: every kind, in schema/name order', () => {
  assert.deepEqual(catalog.tables.map((t) => [t.schema, t.name, t.kind]), [
    ['Odd "Schema" ü', 'Tab,le "1"', 'ordinary'],
    ['app', 'booking', 'ordinary'],
    ['app', 'cache', 'ordinary'],
    ['app', 'event', 'partitioned'],
    ['app', 'event_2024', 'partition'],
    ['app', 'event_default', 'partition'],
    ['app', 'invoice', 'ordinary'],
    ['app', 'note', 'ordinary'],
    ['app', 'org', 'ordinary'],
    ['app', 'pinned_note', 'inheritance child'],
    ['app', 'project', 'ordinary'],
    ['app', 'remote_invoice', 'foreign'],
    ['app', 'task', 'ordinary'],
    ['tenantize', 'ledger', 'ordinary'],
  ])
})

test('tables: oids, owner, persistence, row estimates, sizes and RLS flags', async () => {
  const { rows } = await client.query<{ relname: string; oid: number; size: string }>(
    `SELECT c.relname, c.oid, pg_total_relation_size(c.oid)::text AS size FROM pg_class c
      WHERE c.relnamespace = 'app'::regnamespace AND c.relkind IN ('r', 'p', 'f')`,
  )
  assert.equal(rows.length, 12)
  for (const row of rows) {
    const t = mustTable('app', row.relname)
    assert.equal(t.oid, row.oid, `oid of ${row.relname}`)
    assert.equal(t.totalBytes, Number(row.size), `size of ${row.relname}`)
    assert.equal(catalog.tableByOid(row.oid), t)
  }
  assert.ok((mustTable('app', 'org').totalBytes ?? 0) > 0)
  assert.equal(mustTable('app', 'event').totalBytes, 0)

  const facts = (t: Table): unknown => [t.owner, t.persistence, t.estimatedRows, t.rowSecurity, t.forceRowSecurity]
  assert.deepEqual(facts(mustTable('app', 'org')), [me, 'permanent', 3, false, false]) // analyzed
  assert.deepEqual(facts(mustTable('app', 'project')), [me, 'permanent', null, true, true]) // never analyzed
  assert.deepEqual(facts(mustTable('app', 'cache')), [me, 'unlogged', null, false, false])
  assert.deepEqual(facts(mustTable('app', 'note')), [role.owner, 'permanent', null, false, false])
  assert.deepEqual(facts(mustTable('app', 'event')), [me, 'permanent', null, true, false])
  assert.deepEqual(facts(mustTable('app', 'event_2024')), [me, 'permanent', null, true, false])
  assert.deepEqual(facts(mustTable('app', 'event_default')), [me, 'permanent', null, false, false])
})

test('tables: partitions, inheritance and foreign tables', () => {
  const pick = (t: Table): unknown => withoutOids({
    kind: t.kind, partitioned: t.partitioned, foreign: t.foreign, foreignServer: t.foreignServer, partitionKey: t.partitionKey,
    partitionOf: t.partitionOf, partitions: t.partitions, inheritsFrom: t.inheritsFrom, inheritedBy: t.inheritedBy,
  })
  const none = { partitionKey: null, partitionOf: null, partitions: [], inheritsFrom: [], inheritedBy: [] }
  assert.deepEqual(pick(mustTable('app', 'event')), {
    ...none, kind: 'partitioned', partitioned: true, foreign: false, foreignServer: null, partitionKey: 'RANGE (day)',
    partitions: [ref('app', 'event_2024'), ref('app', 'event_default')],
  })
  assert.deepEqual(pick(mustTable('app', 'event_2024')), {
    ...none, kind: 'partition', partitioned: false, foreign: false, foreignServer: null,
    partitionOf: { parent: ref('app', 'event'), bound: "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')" },
  })
  assert.deepEqual(pick(mustTable('app', 'event_default')), {
    ...none, kind: 'partition', partitioned: false, foreign: false, foreignServer: null,
    partitionOf: { parent: ref('app', 'event'), bound: 'DEFAULT' },
  })
  assert.deepEqual(pick(mustTable('app', 'note')), {
    ...none, kind: 'ordinary', partitioned: false, foreign: false, foreignServer: null, inheritedBy: [ref('app', 'pinned_note')],
  })
  assert.deepEqual(pick(mustTable('app', 'pinned_note')), {
    ...none, kind: 'inheritance child', partitioned: false, foreign: false, foreignServer: null, inheritsFrom: [ref('app', 'note')],
  })
  assert.deepEqual(pick(mustTable('app', 'remote_invoice')), {
    ...none, kind: 'foreign', partitioned: false, foreign: true, foreignServer: 'dummy_server',
  })
  assert.equal(mustTable('app', 'event_2024').partitionOf?.parent.oid, mustTable('app', 'event').oid)
})

test('columns: types, nullability, defaults, identity and generated columns', () => {
  const col = { default: null, identity: null, generated: null }
  const notNull = { nullable: false, notNullValidated: true }
  const nullable = { nullable: true, notNullValidated: null }
  assert.deepEqual(mustTable('app', 'org').columns, [
    { ...col, name: 'id', position: 1, type: 'bigint', ...notNull, identity: 'always' },
    { ...col, name: 'slug', position: 2, type: 'text', ...notNull },
    { ...col, name: 'name', position: 3, type: 'character varying(200)', ...notNull, default: "'unnamed'::character varying" },
    { ...col, name: 'name_lower', position: 4, type: 'text', ...nullable, generated: { kind: 'stored', expression: 'lower((name)::text)' } },
    { ...col, name: 'created_at', position: 5, type: 'timestamp with time zone', ...notNull, default: 'now()' },
  ])
  assert.deepEqual(mustTable('app', 'project').columns.map((c) => [c.name, c.type, c.identity]), [
    ['org_id', 'bigint', null], ['id', 'bigint', 'by default'], ['title', 'text', null], ['budget', 'numeric(12,2)', null],
  ])
  // The default names its sequence schema-qualified whatever the caller's search_path.
  assert.equal(mustTable('app', 'invoice').columns[0]?.default, "nextval('app.invoice_no'::regclass)")
  assert.deepEqual(mustTable('Odd "Schema" ü', 'Tab,le "1"').columns.map((c) => c.name), ['Col ü'])
})

test('constraints: keys in conkey order, paired foreign key columns, actions, deferrability, NOT VALID', () => {
  const base = { deferrable: false, initiallyDeferred: false, validated: true, enforced: true, parentOid: null }
  const task = mustTable('app', 'task')
  assert.deepEqual(withoutOids(task.constraints), [
    { ...base, name: 'task_due_recent', table: ref('app', 'task'), type: 'check', columns: ['due'], index: null, validated: false,
      definition: "CHECK ((due > '2000-01-01'::date)) NOT VALID" },
    { ...base, name: 'task_pkey', table: ref('app', 'task'), type: 'primary key', columns: ['id'], index: 'task_pkey', definition: 'PRIMARY KEY (id)' },
    { ...base, name: 'task_project_fk', table: ref('app', 'task'), type: 'foreign key', columns: ['project_id', 'org_id'],
      deferrable: true, initiallyDeferred: true,
      references: { table: ref('app', 'project'), columns: ['id', 'org_id'] },
      onDelete: 'cascade', onUpdate: 'restrict', match: 'simple',
      definition: 'FOREIGN KEY (project_id, org_id) REFERENCES app.project(id, org_id) ON UPDATE RESTRICT ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED' },
  ])
  const fk = task.constraints[2]
  assert.ok(fk !== undefined && fk.type === 'foreign key')
  assert.equal(fk.references.table.oid, mustTable('app', 'project').oid)

  // PostgreSQL 18 keeps NOT NULL constraints in pg_constraint too: they are not listed (see Column.nullable).
  assert.deepEqual(mustTable('app', 'org').constraints.map((c) => [c.name, c.type, c.columns]), [
    ['org_pkey', 'primary key', ['id']], ['org_slug_key', 'unique', ['slug']],
  ])
  assert.deepEqual(mustTable('app', 'project').constraints.map((c) => [c.name, c.type, c.columns]), [
    ['project_budget_check', 'check', ['budget']], ['project_org_id_fkey', 'foreign key', ['org_id']], ['project_pkey', 'primary key', ['org_id', 'id']],
  ])
  assert.deepEqual(withoutOids(mustTable('app', 'booking').constraints), [
    { ...base, name: 'booking_no_overlap', table: ref('app', 'booking'), type: 'exclusion', columns: ['during'], index: 'booking_no_overlap',
      definition: 'EXCLUDE USING gist (during WITH &&)' },
  ])
})

test('indexes: partial, expression, INCLUDE, NULLS NOT DISTINCT, invalid, constraint-backed, partitioned', () => {
  const ix = {
    includeColumns: [], unique: false, primary: false, nullsNotDistinct: false, predicate: null, hasExpressions: false,
    valid: true, ready: true, method: 'btree', constraint: null, partitioned: false,
  }
  const org = ref('app', 'org')
  assert.deepEqual(withoutOids(mustTable('app', 'org').indexes), [
    { ...ix, schema: 'app', name: 'org_lower_slug_idx', table: org, columns: [null, 'id'], includeColumns: ['name'], hasExpressions: true,
      definition: 'CREATE INDEX org_lower_slug_idx ON app.org USING btree (lower(slug), id) INCLUDE (name)' },
    { ...ix, schema: 'app', name: 'org_name_key', table: org, columns: ['name'], unique: true, nullsNotDistinct: true,
      definition: 'CREATE UNIQUE INDEX org_name_key ON app.org USING btree (name) NULLS NOT DISTINCT' },
    { ...ix, schema: 'app', name: 'org_pkey', table: org, columns: ['id'], unique: true, primary: true, constraint: 'org_pkey',
      definition: 'CREATE UNIQUE INDEX org_pkey ON app.org USING btree (id)' },
    { ...ix, schema: 'app', name: 'org_slug_key', table: org, columns: ['slug'], unique: true, constraint: 'org_slug_key',
      definition: 'CREATE UNIQUE INDEX org_slug_key ON app.org USING btree (slug)' },
  ])
  const task = ref('app', 'task')
  assert.deepEqual(withoutOids(mustTable('app', 'task').indexes), [
    // A failed CREATE INDEX CONCURRENTLY leaves the index neither valid nor ready.
    { ...ix, schema: 'app', name: 'task_due_uniq', table: task, columns: ['due'], unique: true, valid: false, ready: false,
      definition: 'CREATE UNIQUE INDEX task_due_uniq ON app.task USING btree (due)' },
    { ...ix, schema: 'app', name: 'task_open_idx', table: task, columns: ['org_id', 'due'], predicate: '(NOT done)',
      definition: 'CREATE INDEX task_open_idx ON app.task USING btree (org_id, due) WHERE (NOT done)' },
    { ...ix, schema: 'app', name: 'task_pkey', table: task, columns: ['id'], unique: true, primary: true, constraint: 'task_pkey',
      definition: 'CREATE UNIQUE INDEX task_pkey ON app.task USING btree (id)' },
  ])
  assert.deepEqual(mustTable('app', 'booking').indexes.map((i) => [i.name, i.method, i.constraint]), [['booking_no_overlap', 'gist', 'booking_no_overlap']])
  assert.deepEqual(mustTable('app', 'event').indexes.map((i) => [i.name, i.partitioned, i.definition]), [
    ['event_org_idx', true, 'CREATE INDEX event_org_idx ON ONLY app.event USING btree (org_id)'],
  ])
  assert.deepEqual(mustTable('app', 'event_2024').indexes.map((i) => [i.name, i.partitioned]), [['event_2024_org_id_idx', false]])
  assert.deepEqual(mustView('app', 'task_count').indexes.map((i) => [i.name, i.unique, i.columns]), [['task_count_org', true, ['org_id']]])
})

test('policies: commands, permissive and restrictive, PUBLIC and named roles, USING and WITH CHECK', () => {
  const project = ref('app', 'project')
  const tenant = "(org_id = (current_setting('tenantize.tenant_id'::text))::bigint)"
  assert.deepEqual(withoutOids(mustTable('app', 'project').policies), [
    { name: 'project_budget', table: project, command: 'update', mode: 'restrictive', roles: [role.staff, role.app], using: '(budget IS NOT NULL)', withCheck: null },
    { name: 'project_delete', table: project, command: 'delete', mode: 'permissive', roles: [role.app], using: '(budget IS NULL)', withCheck: null },
    { name: 'project_insert', table: project, command: 'insert', mode: 'permissive', roles: ['public'], using: null, withCheck: "(title <> ''::text)" },
    { name: 'project_read', table: project, command: 'select', mode: 'permissive', roles: ['public'], using: 'true', withCheck: null },
    { name: 'project_tenant', table: project, command: 'all', mode: 'permissive', roles: [role.app], using: tenant, withCheck: tenant },
  ])
  assert.deepEqual(withoutOids(mustTable('Odd "Schema" ü', 'Tab,le "1"').policies), [
    { name: 'odd "policy"', table: ref('Odd "Schema" ü', 'Tab,le "1"'), command: 'all', mode: 'permissive', roles: ['public'], using: '("Col ü" > 0)', withCheck: null },
  ])
  assert.deepEqual(mustTable('app', 'task').policies, [])
})

test('views and materialized views: options, definition, dependencies, populated flag', () => {
  const view = { kind: 'view', owner: me, securityInvoker: false, securityBarrier: false, checkOption: null, populated: true, extension: null, indexes: [], triggers: [] }
  const summary = mustView('app', 'project_summary')
  assert.deepEqual(withoutOids({ ...summary, columns: undefined, grants: undefined, definition: undefined }), {
    ...view, schema: 'app', name: 'project_summary', securityInvoker: true,
    dependsOn: [{ ...ref('app', 'project'), kind: 'table' }, { ...ref('app', 'task'), kind: 'table' }],
    columns: undefined, grants: undefined, definition: undefined,
  })
  assert.equal(summary.definition, ' SELECT p.org_id,\n    count(*) AS tasks\n   FROM (app.project p\n     JOIN app.task t ON ((t.project_id = p.id)))\n  GROUP BY p.org_id;')
  assert.deepEqual(summary.columns.map((c) => [c.name, c.type]), [['org_id', 'bigint'], ['tasks', 'bigint']])

  const open = mustView('app', 'open_task')
  assert.deepEqual([open.securityInvoker, open.securityBarrier, open.checkOption, withoutOids(open.dependsOn)], [
    false, true, 'local', [{ ...ref('app', 'task'), kind: 'table' }],
  ])
  // PostgreSQL 16 stopped qualifying columns of a single-table view with the table name.
  assert.ok([
    ' SELECT task.id,\n    task.org_id\n   FROM app.task\n  WHERE (NOT task.done);',
    ' SELECT id,\n    org_id\n   FROM app.task\n  WHERE (NOT done);',
  ].includes(open.definition), open.definition)

  const overview = mustView('app', 'org_overview')
  assert.deepEqual([overview.securityInvoker, withoutOids(overview.dependsOn)], [
    false, [{ ...ref('app', 'org'), kind: 'table' }, { ...ref('app', 'project_summary'), kind: 'view' }],
  ])
  assert.deepEqual(withoutOids(overview.triggers.map((t) => [t.name, t.timing, t.events, t.level])), [['overview_insert', 'instead of', ['insert'], 'row']])

  assert.deepEqual(catalog.views.map((v) => [v.name, v.kind, v.populated]), [
    ['not_yet', 'materialized view', false],
    ['open_task', 'view', true],
    ['org_overview', 'view', true],
    ['project_summary', 'view', true],
    ['task_count', 'materialized view', true],
  ])
  assert.deepEqual(withoutOids(mustView('app', 'task_count').dependsOn), [{ ...ref('app', 'task'), kind: 'table' }])
  assert.deepEqual(mustView('app', 'not_yet').dependsOn, [])
})

test('routines: arguments, result, language, volatility, SECURITY DEFINER, LEAKPROOF, settings, body', () => {
  const fn = { kind: 'function', securityDefiner: false, leakproof: false, config: {}, searchPath: null, owner: me, extension: null }
  assert.deepEqual(withoutOids(catalog.routines), [
    { ...fn, schema: 'app', name: 'forget', kind: 'procedure', identityArguments: 'IN org bigint', returnType: null, language: 'sql',
      volatility: 'volatile', config: { work_mem: '8MB', lock_timeout: '1s' },
      body: 'BEGIN ATOMIC\n DELETE FROM app.task\n   WHERE (task.org_id = forget.org);\nEND' },
    { ...fn, schema: 'app', name: 'projects_of', identityArguments: 'p_org bigint', returnType: 'SETOF app.project', language: 'plpgsql',
      volatility: 'volatile', securityDefiner: true,
      body: ' BEGIN RETURN QUERY SELECT * FROM app.project WHERE org_id = p_org; END ' },
    { ...fn, schema: 'app', name: 'same', identityArguments: 'a bigint, b bigint', returnType: 'boolean', language: 'sql',
      volatility: 'immutable', leakproof: true, body: 'SELECT a = b' },
    { ...fn, schema: 'app', name: 'same', identityArguments: 'a text, b text', returnType: 'boolean', language: 'sql',
      volatility: 'immutable', body: 'RETURN (a = b)' },
    { ...fn, schema: 'app', name: 'touch', identityArguments: '', returnType: 'trigger', language: 'plpgsql', volatility: 'volatile',
      body: ' BEGIN NEW.due := coalesce(NEW.due, current_date); RETURN NEW; END ' },
    { ...fn, schema: 'tenantize', name: 'current_tenant_id', identityArguments: '', returnType: 'bigint', language: 'sql',
      volatility: 'stable', securityDefiner: true, config: { search_path: 'pg_catalog, pg_temp' }, searchPath: 'pg_catalog, pg_temp',
      body: " SELECT nullif(current_setting('tenantize.tenant_id', true), '')::bigint " },
  ])
})

test('triggers: timing, events, level, enabled state, function and definition', () => {
  const trg = { constraintTrigger: false, parentOid: null }
  assert.deepEqual(withoutOids(mustTable('app', 'task').triggers), [
    { ...trg, name: 'task_touch', table: ref('app', 'task'), function: ref('app', 'touch'), timing: 'before', events: ['insert', 'update'],
      level: 'row', enabled: 'origin',
      definition: 'CREATE TRIGGER task_touch BEFORE INSERT OR UPDATE OF due ON app.task FOR EACH ROW EXECUTE FUNCTION app.touch()' },
  ])
  assert.deepEqual(withoutOids(mustTable('app', 'org').triggers), [
    { ...trg, name: 'org_truncated', table: ref('app', 'org'), function: ref('app', 'touch'), timing: 'after', events: ['truncate'],
      level: 'statement', enabled: 'disabled',
      definition: 'CREATE TRIGGER org_truncated AFTER TRUNCATE ON app.org FOR EACH STATEMENT EXECUTE FUNCTION app.touch()' },
  ])
  const touch = catalog.routinesNamed('app', 'touch')[0]
  assert.equal(mustTable('app', 'task').triggers[0]?.function.oid, touch?.oid)
  // The internal triggers behind foreign keys are not listed.
  assert.deepEqual(mustTable('app', 'project').triggers, [])
})

test('sequences: data type and the column that owns them (OWNED BY, serial, identity)', () => {
  assert.deepEqual(withoutOids(catalog.sequences.map((s) => ({ ...s, grants: undefined }))), [
    { schema: 'app', name: 'invoice_no', owner: me, dataType: 'integer', extension: null, grants: undefined,
      ownedBy: { table: ref('app', 'invoice'), column: 'no', identity: false } },
    { schema: 'app', name: 'org_id_seq', owner: me, dataType: 'bigint', extension: null, grants: undefined,
      ownedBy: { table: ref('app', 'org'), column: 'id', identity: true } },
    { schema: 'app', name: 'project_id_seq', owner: me, dataType: 'bigint', extension: null, grants: undefined,
      ownedBy: { table: ref('app', 'project'), column: 'id', identity: true } },
    { schema: 'app', name: 'task_id_seq', owner: me, dataType: 'bigint', extension: null, grants: undefined,
      ownedBy: { table: ref('app', 'task'), column: 'id', identity: false } },
  ])
  assert.deepEqual(catalog.sequence('app', 'invoice_no')?.grants, [
    { grantee: me, grantor: me, privilege: 'SELECT', grantable: false },
    { grantee: me, grantor: me, privilege: 'UPDATE', grantable: false },
    { grantee: me, grantor: me, privilege: 'USAGE', grantable: false },
    { grantee: role.app, grantor: me, privilege: 'USAGE', grantable: false },
  ].sort((a, b) => (a.grantee === b.grantee ? 0 : a.grantee < b.grantee ? -1 : 1)))
})

test('grants: per grantee and privilege, PUBLIC, WITH GRANT OPTION, and the owner default for a null ACL', () => {
  const grant = (grantee: string, privilege: string, grantable = false): RelationGrant => ({ grantee, grantor: me, privilege, grantable }) as RelationGrant
  const byGrantee = (list: readonly RelationGrant[]): RelationGrant[] =>
    [...list].sort((a, b) => (a.grantee < b.grantee ? -1 : a.grantee > b.grantee ? 1 : a.privilege < b.privilege ? -1 : a.privilege > b.privilege ? 1 : 0))
  assert.deepEqual(mustTable('app', 'task').grants, byGrantee([
    ...ownerGrants(me), grant(role.app, 'TRUNCATE'), grant(role.staff, 'SELECT', true),
  ]))
  assert.deepEqual(mustTable('app', 'project').grants, byGrantee([
    ...ownerGrants(me), ...['DELETE', 'INSERT', 'SELECT', 'UPDATE'].map((p) => grant(role.app, p)),
  ]))
  assert.deepEqual(mustTable('app', 'org').grants, byGrantee([...ownerGrants(me), grant('public', 'SELECT')]))
  // app.note was never granted (relacl is null): its owner holds every privilege, nobody else any.
  assert.deepEqual(mustTable('app', 'note').grants, ownerGrants(role.owner))
  assert.deepEqual(mustView('app', 'project_summary').grants, byGrantee([...ownerGrants(me), grant(role.app, 'SELECT')]))
})

test('roles: attributes, direct memberships and transitive ones; built-in roles left out by default', async () => {
  const attrs = { superuser: false, bypassRls: false, login: false, inherit: true, createRole: false, createDb: false }
  const ours = catalog.roles.filter((r) => r.name.endsWith(`_${suffix}`))
  assert.deepEqual(withoutOids(ours), [
    { ...attrs, name: role.app, login: true,
      memberOf: [{ role: role.staff, admin: true, inherit: true, set: true }], memberOfTransitive: [role.everyone, role.staff] },
    { ...attrs, name: role.bypass, bypassRls: true, inherit: false, memberOf: [], memberOfTransitive: [] },
    { ...attrs, name: role.everyone, createRole: true, memberOf: [], memberOfTransitive: [] },
    { ...attrs, name: role.owner, memberOf: [], memberOfTransitive: [] },
    { ...attrs, name: role.staff, createDb: true,
      memberOf: [{ role: role.everyone, admin: false, inherit: true, set: true }], memberOfTransitive: [role.everyone] },
  ])
  assert.equal(catalog.roles.some((r) => r.name.startsWith('pg_')), false)
  assert.equal(catalog.role(me)?.superuser, true)
  const { rows } = await client.query<{ oid: number }>('SELECT oid FROM pg_roles WHERE rolname = $1', [role.app])
  assert.equal(catalog.role(role.app)?.oid, rows[0]?.oid)

  const withBuiltins = await introspect(client, { includeBuiltinRoles: true })
  const monitor = withBuiltins.role('pg_monitor')
  assert.ok(monitor !== undefined)
  assert.deepEqual(monitor.memberOfTransitive, ['pg_read_all_settings', 'pg_read_all_stats', 'pg_stat_scan_tables'])
})

test('PostgreSQL 18 additions: virtual generated columns, NOT ENFORCED and NOT NULL … NOT VALID constraints', async () => {
  const statements = [
    'ALTER TABLE app.invoice ADD COLUMN no_twice bigint GENERATED ALWAYS AS (no * 2) VIRTUAL',
    'ALTER TABLE app.invoice ADD CONSTRAINT invoice_org_fk FOREIGN KEY (org_id) REFERENCES app.org (id) NOT ENFORCED',
    'ALTER TABLE app.invoice ADD CONSTRAINT invoice_org_nn NOT NULL org_id NOT VALID',
  ]
  await client.query('BEGIN')
  try {
    if (versionNum < 180000) {
      // Before 18 none of these can exist, which is why the catalog reports them as it does there.
      for (const statement of statements) {
        await client.query('SAVEPOINT s')
        await assert.rejects(client.query(statement), { code: '42601' }, statement)
        await client.query('ROLLBACK TO SAVEPOINT s')
      }
      return
    }
    await client.query(`INSERT INTO app.invoice (org_id) VALUES (NULL)`)
    for (const statement of statements) await client.query(statement)
    const snapshot = await introspect(client, { inTransaction: true, schemas: ['app'] })
    const invoice = snapshot.table('app', 'invoice')
    assert.ok(invoice !== undefined)
    assert.deepEqual(invoice.columns.map((c) => [c.name, c.nullable, c.notNullValidated, c.generated]), [
      ['no', false, true, null],
      ['org_id', false, false, null],
      ['no_twice', true, null, { kind: 'virtual', expression: '(no * 2)' }],
    ])
    assert.deepEqual(invoice.constraints.map((c) => [c.name, c.type, c.enforced, c.validated]), [['invoice_org_fk', 'foreign key', false, false]])
  } finally {
    await client.query('ROLLBACK')
  }
})

test('lookups: by name and oid, undefined when absent, names are exact', () => {
  const org = mustTable('app', 'org')
  assert.equal(catalog.tables.find((t) => t.name === 'org'), org)
  assert.equal(catalog.tableByOid(org.oid), org)
  assert.equal(catalog.table('app', 'nope'), undefined)
  assert.equal(catalog.table('APP', 'org'), undefined)
  assert.equal(catalog.table('app', 'open_task'), undefined) // a view, not a table
  assert.equal(catalog.tableByOid(0), undefined)
  const view = mustView('app', 'open_task')
  assert.equal(catalog.viewByOid(view.oid), view)
  assert.equal(catalog.view('app', 'org'), undefined)
  assert.deepEqual(catalog.routinesNamed('app', 'same').map((r) => r.identityArguments), ['a bigint, b bigint', 'a text, b text'])
  assert.deepEqual(catalog.routinesNamed('app', 'nope'), [])
  const same = catalog.routinesNamed('app', 'same')[0]
  assert.ok(same !== undefined)
  assert.equal(catalog.routineByOid(same.oid), same)
  assert.equal(catalog.sequence('app', 'invoice_no')?.dataType, 'integer')
  assert.equal(catalog.sequence('app', 'org'), undefined)
  assert.equal(catalog.role('no_such_role'), undefined)
  assert.equal(mustTable('Odd "Schema" ü', 'Tab,le "1"').schema, 'Odd "Schema" ü')
})

test('the snapshot is deeply frozen and serializes to JSON as it is', () => {
  let objects = 0
  const seen = new Set<object>()
  const walk = (value: unknown, path: string): void => {
    if (value === null || typeof value !== 'object' || seen.has(value)) return
    seen.add(value)
    objects++
    assert.ok(Object.isFrozen(value), `${path} is frozen`)
    for (const [k, v] of Object.entries(value)) walk(v, `${path}.${k}`)
  }
  walk(catalog, 'catalog')
  assert.ok(objects > 500, `walked ${objects} objects`)
  const org = mustTable('app', 'org')
  assert.throws(() => { (org as { name: string }).name = 'x' }, TypeError)
  assert.throws(() => { (org.columns as Table['columns'][number][]).push(org.columns[0]!) }, TypeError)
  assert.throws(() => { (catalog.routinesNamed('app', 'same') as unknown[]).pop() }, TypeError)
  assert.throws(() => { (org.grants[0] as { grantee: string }).grantee = 'evil' }, TypeError)
  const json = JSON.parse(JSON.stringify(catalog)) as Catalog
  assert.deepEqual(json.tables, JSON.parse(JSON.stringify(catalog.tables)))
  assert.equal(json.tables.length, catalog.tables.length)
})

test('temporary objects and system schemas are never in the catalog', async () => {
  await client.query('CREATE TEMP TABLE scratch_temp (a int)')
  try {
    const again = await introspect(client)
    assert.equal(again.tables.some((t) => t.name === 'scratch_temp'), false)
    assert.equal(again.schemas.some((s) => /^pg_|^information_schema$/.test(s.name)), false)
    assert.equal(again.routines.some((r) => r.schema === 'pg_catalog'), false)
  } finally {
    await client.query('DROP TABLE scratch_temp')
  }
})

test('the schemas option limits the snapshot to those schemas', async () => {
  const only = await introspect(client, { schemas: ['tenantize', 'Odd "Schema" ü'] })
  assert.deepEqual(only.schemas.map((s) => s.name), ['Odd "Schema" ü', 'tenantize'])
  assert.deepEqual(only.tables.map((t) => t.name), ['Tab,le "1"', 'ledger'])
  assert.deepEqual(only.routines.map((r) => r.name), ['current_tenant_id'])
  assert.deepEqual([only.views, only.sequences], [[], []])
  assert.equal(only.tables[1]?.columns.length, 1)
  assert.ok(only.roles.length >= 5, 'roles are cluster-wide and not filtered')
})

test('inside the caller’s transaction: sees uncommitted DDL, does not commit, restores search_path', async () => {
  await client.query('BEGIN')
  try {
    await client.query('SET LOCAL search_path = app, public')
    await client.query('CREATE TABLE app.uncommitted (id int REFERENCES app.org (id))')
    const inside = await introspect(client, { inTransaction: true })
    const t = inside.table('app', 'uncommitted')
    assert.ok(t !== undefined)
    // Deparsed text is schema-qualified even though the caller's path contains app.
    assert.equal(t.constraints[0]?.definition, 'FOREIGN KEY (id) REFERENCES app.org(id)')
    assert.equal(inside.server.settings.search_path, 'app, public')
    const { rows } = await client.query<{ path: string; txid: string | null }>(`SELECT current_setting('search_path') AS path, txid_current_if_assigned()::text AS txid`)
    assert.equal(rows[0]?.path, 'app, public')
    assert.notEqual(rows[0]?.txid, null, 'still in the same transaction')
  } finally {
    await client.query('ROLLBACK')
  }
  assert.equal((await introspect(client)).table('app', 'uncommitted'), undefined)
})

test('a pool is refused: it cannot give one snapshot', async () => {
  const pool = new pg.Pool({ connectionString: db.url, max: 1 })
  try {
    await assert.rejects(introspect(pool), { name: 'TypeError', message: /one connection, not a pool/ })
    const pooled = await pool.connect()
    try {
      assert.equal((await introspect(pooled)).table('app', 'org')?.name, 'org')
    } finally {
      pooled.release()
    }
  } finally {
    await pool.end()
  }
})

test('a failing query rolls the snapshot transaction back and leaves the client usable', async () => {
  const failing: Queryable = {
    query: (text, values) => (text.includes('pg_policy') ? Promise.reject(new Error('boom')) : client.query(text, values)),
  }
  await assert.rejects(introspect(failing), /boom/)
  const { rows } = await client.query<{ status: string }>(`SELECT 'idle' AS status`)
  assert.deepEqual(rows, [{ status: 'idle' }])
  await client.query('BEGIN')
  await client.query('ROLLBACK')
})

test('a handful of queries, in one read-only repeatable-read transaction, whatever the number of tables', async () => {
  assert.ok(queriesForFixture <= 15, `${queriesForFixture} queries`)
  assert.equal(counting.texts[0], 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
  assert.equal(counting.texts.at(-1), 'COMMIT')
  const perTable = Array.from({ length: 40 }, (_, i) =>
    `CREATE TABLE bulk.t${i} (id int PRIMARY KEY, org_id bigint REFERENCES app.org (id), v text);
     CREATE INDEX ON bulk.t${i} (org_id); ALTER TABLE bulk.t${i} ENABLE ROW LEVEL SECURITY;
     CREATE POLICY p ON bulk.t${i} USING (org_id = 1); CREATE TRIGGER tt BEFORE INSERT ON bulk.t${i} FOR EACH ROW EXECUTE FUNCTION app.touch();`,
  ).join('\n')
  await db.sql(`CREATE SCHEMA bulk; ${perTable}`)
  const bigger = new CountingClient(client)
  const snapshot = await introspect(bigger)
  assert.equal(snapshot.tables.filter((t) => t.schema === 'bulk').length, 40)
  assert.equal(snapshot.tables.filter((t) => t.schema === 'bulk' && t.policies.length === 1 && t.triggers.length === 1).length, 40)
  assert.equal(bigger.texts.length, queriesForFixture)
})
