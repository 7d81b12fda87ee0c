import { test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { generate, TABLES } from '../examples/energy-billing/generate.js'
import { apply } from '../src/apply/index.js'
import { introspect } from '../src/catalog/index.js'
import { TenantizeError } from '../src/errors.js'
import { createTenantHttp, HttpProblemError, sqlTenantStatus, type HttpRequestLike } from '../src/runtime/http/index.js'
import { withTenant } from '../src/runtime/index.js'
import { quoteIdent, quoteLiteral } from '../src/sql/quote.js'
import { deleteTenant, importTenant, tenantModel, type TenantModel } from '../src/tenants/index.js'
import { dataChecksums } from './helpers/conversion.js'
import { testDatabase, type TestDatabase } from './helpers/db.js'
import { appDatabase, exampleConfig, fast, loadExample, proposedConfig } from './helpers/examples.js'

const db = await testDatabase(import.meta.url)
const TENANT_TABLES = [...TABLES.map((t) => `public.${t}`), 'public.organizations']

function rowsOf(t: TestDatabase, org: string): Promise<Record<string, string>> {
  const where = Object.fromEntries(TENANT_TABLES.map((k) => [`"public"."${k.slice(7)}"`, k === 'public.organizations' ? `WHERE id = '${org}'` : `WHERE org_id = '${org}'`]))
  return dataChecksums(t.url, Object.keys(where), where)
}

async function modelOf(url: string, config: Parameters<typeof tenantModel>[1]): Promise<TenantModel> {
  const client = new pg.Client(url)
  await client.connect()
  try {
    return tenantModel(await introspect(client), config)
  } finally {
    await client.end()
  }
}

/** Key columns of a table whose values the import may change: its id and every column referencing a tenant table's id. */
function keyColumns(model: TenantModel, key: string): string[] {
  const refs = model.edges.filter((e) => e.from === key && e.to !== 'public.organizations').map((e) => [e.fk.columns.find((c) => c !== 'org_id')!, e.to] as const)
  return ['id', ...refs.map(([c]) => c)]
}

/**
 * md5 per table of every row as jsonb text with the key columns as text — in the source as they are, in the
 * target with the tenant column dropped and every key mapped back through tenantize.id_map (new → old).
 */
async function sourceDigest(url: string, model: TenantModel): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  const client = new pg.Client(url)
  await client.connect()
  try {
    for (const key of TABLES.map((t) => `public.${t}`)) {
      const set = keyColumns(model, key).reduce((acc, c) => `jsonb_set(${acc}, ${quoteLiteral(`{${c}}`)}, coalesce(to_jsonb(x.${quoteIdent(c)}::text), 'null'))`, 'to_jsonb(x)')
      out[key] = (await client.query<{ md5: string }>(`SELECT md5(coalesce(string_agg(j, '|' ORDER BY j), '')) AS md5 FROM (SELECT (${set})::text AS j FROM ${key} AS x) AS s`)).rows[0]!.md5
    }
  } finally {
    await client.end()
  }
  return out
}

async function importedDigest(url: string, model: TenantModel, tenant: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  const client = new pg.Client(url)
  await client.connect()
  try {
    for (const key of TABLES.map((t) => `public.${t}`)) {
      const refs = new Map(model.edges.filter((e) => e.from === key && e.to !== 'public.organizations').map((e) => [e.fk.columns.find((c) => c !== 'org_id')!, e.to]))
      const back = (c: string): string => `(SELECT m.old_id FROM tenantize.id_map m WHERE m.tenant = $1::text AND m."table" = ${quoteLiteral(refs.get(c) ?? key)} AND m.new_id = x.${quoteIdent(c)}::text)`
      const set = keyColumns(model, key).reduce((acc, c) => `jsonb_set(${acc}, ${quoteLiteral(`{${c}}`)}, coalesce(to_jsonb(${back(c)}), 'null'))`, `(to_jsonb(x) - 'org_id')`)
      out[key] = (await client.query<{ md5: string }>(`SELECT md5(coalesce(string_agg(j, '|' ORDER BY j), '')) AS md5 FROM (SELECT (${set})::text AS j FROM ${key} AS x WHERE x.org_id = $1::uuid) AS s`, [tenant])).rows[0]!.md5
    }
  } finally {
    await client.end()
  }
  return out
}

test('import a second copy of the energy-billing database as a new tenant: drift first, ids remapped, resumable, isolated, equal to the source, then deleted', async (t) => {
  const source = await db.another('tz_import_src')
  const counts = await loadExample(source, 'energy-billing', generate)
  await loadExample(db, 'energy-billing', generate)
  const config = await exampleConfig(db, 'energy-billing')
  const DEFAULT = config.tenant.default.id
  await apply({ databaseUrl: db.url, config, phase: 'all', timeouts: fast })
  const base = { databaseUrl: db.url, config }
  const before = await rowsOf(db, DEFAULT)
  const model = await modelOf(db.url, config)
  let helios = ''

  await t.test('drift is reported before any row moves; a NOT NULL column the source lacks refuses the import', async () => {
    const drifted = await db.another('tz_import_drift')
    await loadExample(drifted, 'energy-billing', generate)
    await drifted.sql(`ALTER TABLE client ADD COLUMN legacy_code text; ALTER TABLE customer DROP COLUMN email; ALTER TABLE tariff_rate ALTER COLUMN name TYPE varchar(200); ALTER TABLE customer DROP COLUMN city`)
    const dry = await importTenant({ ...base, from: drifted.url, slug: 'drifted', name: 'Drifted', dryRun: true })
    assert.deepEqual(dry.drift.map((d) => `${d.kind} ${d.table}.${d.column ?? ''} ${d.blocking ? 'blocking' : ''}`.trim()).sort(), [
      'extra-column public.client.legacy_code',
      'missing-column public.customer.city blocking',
      'missing-column public.customer.email',
      'type public.tariff_rate.name',
    ])
    assert.match(dry.drift.find((d) => d.column === 'email')!.effect, /NULL/)
    assert.match(dry.drift.find((d) => d.column === 'name')!.effect, /cast to text/)
    await assert.rejects(importTenant({ ...base, from: drifted.url, slug: 'drifted', name: 'Drifted' }), (e: unknown) => e instanceof TenantizeError && e.code === 'TZ_TENANT' && e.problems.some((p) => p.object === 'public.customer.city'))
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM organizations WHERE slug = 'drifted'`), [{ n: 0 }], 'nothing was created')
  })

  await t.test('a dry run of the identical copy: no drift, the rows per table', async () => {
    const dry = await importTenant({ ...base, from: source.url, slug: 'helios', name: 'Helios', dryRun: true })
    assert.deepEqual(dry.drift, [])
    assert.deepEqual(Object.fromEntries(dry.tables.map((x) => [x.table.slice(7), x.rows])), counts)
    assert.equal(dry.tenant, undefined)
  })

  await t.test('a crash half way, the staged rows lost with it: the tenant stays importing (404 at the middleware); running again stages them again, resumes and completes it', async () => {
    const started = performance.now()
    // Past the staging, into the inserts (progress counts every row twice: staged, then inserted).
    await assert.rejects(importTenant({ ...base, from: source.url, slug: 'helios', name: 'Helios', batchSize: 500, batchPauseMs: 0, timeouts: fast, onEvent: (e) => { if (e.event === 'progress' && e.done > e.total * 0.7) throw new Error('crash') } }), /crash/)
    const [row] = await db.sql<{ id: string; status: string }>(`SELECT id::text, status FROM organizations WHERE slug = 'helios'`)
    assert.equal(row!.status, 'importing')
    let inserted = 0
    for (const table of TABLES) inserted += (await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE org_id = $1`, [row!.id]))[0]!.n
    assert.ok(inserted > 0, 'the crash came after some rows were inserted')
    // The staged rows are UNLOGGED: crash recovery empties them, as this TRUNCATE does.
    const persistence = (): Promise<unknown> => db.sql(`SELECT relpersistence FROM pg_class WHERE oid = 'tenantize.import_rows'::regclass`)
    assert.deepEqual(await persistence(), [{ relpersistence: 'u' }])
    await db.sql('TRUNCATE tenantize.import_rows')
    // As an earlier version created it: the run below makes it UNLOGGED again.
    await db.sql('ALTER TABLE tenantize.import_rows SET LOGGED')
    helios = row!.id
    const pool = new pg.Pool({ connectionString: db.url, max: 1 })
    try {
      const http = createTenantHttp({ tenantHeader: true, tenantStatus: sqlTenantStatus({ pool }) })
      const request: HttpRequestLike = { method: 'GET', hostname: 'localhost', header: (name) => (name === 'x-tenant-id' ? helios : undefined) }
      await assert.rejects(http.resolve(request), (e: unknown) => e instanceof HttpProblemError && e.status === 404)
      const result = await importTenant({ ...base, from: source.url, slug: 'helios', name: 'Helios', batchSize: 500, batchPauseMs: 0, timeouts: fast })
      const seconds = (performance.now() - started) / 1000
      assert.equal(result.tenant?.id, helios)
      assert.equal(result.tenant?.status, 'active')
      assert.equal((await http.resolve(request)).tenantId, helios, 'served once the import completed')
      const remapped = result.tables.reduce((a, x) => a + x.remapped, 0)
      const rows = result.tables.reduce((a, x) => a + x.rows, 0)
      t.diagnostic(`imported ${rows} rows, ${remapped} ids remapped, in ${seconds.toFixed(1)} s (with the crash and the resume)`)
      for (const x of result.tables) assert.equal(x.remapped, x.rows, `${x.table}: every serial id collides with the default tenant's copy, so every one is new`)
      assert.deepEqual(await persistence(), [{ relpersistence: 'u' }], 'a logged import_rows of an earlier version is made UNLOGGED')
    } finally {
      await pool.end()
    }
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM tenantize.import_rows`), [{ n: 0 }], 'the staged rows are gone')
    assert.deepEqual(await db.sql(`SELECT event FROM tenantize.migration_events WHERE scope = 'tenants' ORDER BY id`).then((r) => r.map((x) => x['event'])), ['start', 'fail', 'start', 'finish'])
  })

  await t.test('the imported tenant equals the source once its ids are mapped back; the default tenant is untouched; sequences move on', async () => {
    for (const table of TABLES) assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM ${table} WHERE org_id = $1`, [helios]), [{ n: counts[table] }], table)
    assert.deepEqual(await importedDigest(db.url, model, helios), await sourceDigest(source.url, model))
    assert.deepEqual(await rowsOf(db, DEFAULT), before, 'every row of the default tenant is byte-identical')
    const maps = await db.sql<{ table: string; n: number }>(`SELECT "table", count(*)::int AS n FROM tenantize.id_map WHERE tenant = $1 GROUP BY 1 ORDER BY 1`, [helios])
    assert.deepEqual(Object.fromEntries(maps.map((m) => [m.table.slice(7), m.n])), counts, 'tenantize.id_map holds every key of every table')
    await db.sql(`INSERT INTO client (org_id, code, name) VALUES ($1, 'NEW', 'After the import')`, [DEFAULT])
  })

  await t.test('isolation as the app role: each tenant sees its own copy, never the other', async () => {
    const { db: app, end } = appDatabase(db.url, config.roles.app)
    try {
      const count = async (table: string): Promise<number> => Number((await app.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n)
      await withTenant(helios, async () => {
        for (const table of TABLES) assert.equal(await count(table), counts[table], table)
        const ids = (await app.query<{ id: number }>('SELECT min(id) AS id FROM customer')).rows[0]!.id
        assert.equal((await app.query(`UPDATE customer SET name = 'x' WHERE id < $1`, [ids])).rowCount, 0, 'the default tenant\'s customers cannot be touched')
      })
      await withTenant(DEFAULT, async () => assert.equal(await count('meter_reading'), counts['meter_reading']))
    } finally {
      await end()
    }
  })

  await t.test('deleting the imported tenant leaves the default tenant byte-identical', async () => {
    await db.sql(`DELETE FROM client WHERE code = 'NEW'`)
    await deleteTenant({ ...base, tenant: 'helios', batchPauseMs: 0, timeouts: fast })
    for (const table of TABLES) assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM ${table} WHERE org_id <> $1`, [DEFAULT]), [{ n: 0 }], table)
    assert.deepEqual(await rowsOf(db, DEFAULT), before)
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM tenantize.id_map`), [{ n: 0 }])
  })
})

/** The config init proposes for a small schema (tenant table created, the app role named after the database: dropped with it). */
test('import gives sequence keys new values: an id the target\'s sequence already handed out may belong to an insert not committed yet', async () => {
  const target = await db.another('tz_import_seq')
  const source = await db.another('tz_import_seq_src')
  const schema = 'CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL); CREATE TABLE notes (id bigserial PRIMARY KEY, item_id bigint NOT NULL REFERENCES items, body text NOT NULL)'
  await source.sql(`${schema}; INSERT INTO items (name) SELECT 'source ' || g FROM generate_series(1, 6) g; INSERT INTO notes (item_id, body) SELECT g, 'note ' || g FROM generate_series(1, 6) g`)
  await target.sql(`${schema}; INSERT INTO items (name) VALUES ('a'), ('b'), ('c'); INSERT INTO notes (item_id, body) VALUES (1, 'a'); DELETE FROM items WHERE id = 2`)
  const config = await proposedConfig(target)
  await apply({ databaseUrl: target.url, config, phase: 'all', timeouts: fast })
  // An app session drew the next id (4) for an insert it has not committed yet; 2 is a hole left by a delete.
  const [{ drawn }] = await target.sql<{ drawn: string }>(`SELECT nextval('items_id_seq')::text AS drawn`) as [{ drawn: string }]
  // Batches of 4: the keys of a table are mapped in two batches, each its own transaction.
  const result = await importTenant({ databaseUrl: target.url, config, from: source.url, slug: 'seq', name: 'Seq', batchSize: 4, batchPauseMs: 0, timeouts: fast })
  const tenant = result.tenant!.id
  assert.deepEqual(result.tables.map((x) => [x.table, x.rows, x.remapped]), [['public.items', 6, 6], ['public.notes', 6, 6]], 'every key drawn from a sequence is new')
  const kept = await target.sql(`SELECT old_id FROM tenantize.id_map WHERE tenant = $1 AND "table" = 'public.items' AND new_id::bigint <= $2::bigint`, [tenant, drawn])
  assert.deepEqual(kept, [], 'no imported row took an id the sequence had handed out')
  const order = await target.sql<{ old_id: string }>(`SELECT old_id FROM tenantize.id_map WHERE tenant = $1 AND "table" = 'public.items' ORDER BY new_id::bigint`, [tenant])
  assert.deepEqual(order.map((m) => m.old_id), ['1', '2', '3', '4', '5', '6'], 'new ids in the order of the old ones, across batches')
  await target.sql(`INSERT INTO items (id, name, org_id) VALUES ($1, 'the app commits', $2)`, [drawn, config.tenant.default.id])
  assert.deepEqual(
    await target.sql(`SELECT i.name, n.body FROM notes n JOIN items i ON i.id = n.item_id AND i.org_id = n.org_id WHERE n.org_id = $1 ORDER BY n.body`, [tenant]),
    Array.from({ length: 6 }, (_, g) => ({ name: `source ${g + 1}`, body: `note ${g + 1}` })),
    'the notes still point at their items',
  )
})
