import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { generate, TABLES } from '../examples/energy-billing/generate.js'
import * as entry from '../src/index.js'
import { apply } from '../src/apply/index.js'
import { main } from '../src/cli/main.js'
import { findPgDump } from '../src/migrate/backup.js'
import { quoteIdent, quoteLiteral } from '../src/sql/quote.js'
import { schemaFingerprint } from './helpers/conversion.js'
import { testDatabase, testDatabaseOn, testServer } from './helpers/db.js'
import { exampleConfig, fast, loadExample } from './helpers/examples.js'

/** The major version of the server at `url`, or undefined when it does not answer. */
async function majorOf(url: string): Promise<number | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 })
  try {
    await client.connect()
    return Math.floor(Number((await client.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`)).rows[0]!.v) / 10000)
  } catch {
    return undefined
  } finally {
    await client.end().catch(() => undefined)
  }
}

// Export runs pg_dump, which must be as new as the server. Embedded PostgreSQL 18 ships none: there the file
// runs on the machine's PostgreSQL when it answers and its pg_dump is installed, so the export is still tested.
const suite = await testServer()
const LOCAL = 'postgres://postgres@127.0.0.1:5432/postgres'
const hasDump = async (url: string): Promise<boolean> => {
  const major = await majorOf(url)
  return major !== undefined && (await findPgDump(major).then(() => true, () => false))
}
const db = !(await hasDump(suite.url)) && suite.url !== LOCAL && (await hasDump(LOCAL)) ? await testDatabaseOn(LOCAL, import.meta.url) : await testDatabase(import.meta.url)
const KEYS = TABLES.map((t) => `public.${t}`)

/** Columns of each table whose values an import may change: its id and each column referencing another table's id (from the catalog of the source). */
async function keyColumns(url: string): Promise<Map<string, Map<string, string>>> {
  const client = new pg.Client(url)
  await client.connect()
  try {
    const { rows } = await client.query<{ tbl: string; col: string; ref: string }>(
      `SELECT c.conrelid::regclass::text AS tbl, a.attname AS col, c.confrelid::regclass::text AS ref
         FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        WHERE c.contype = 'f' AND cardinality(c.conkey) = 1 AND c.connamespace = 'public'::regnamespace`,
    )
    const out = new Map(KEYS.map((k) => [k, new Map([['id', k]])]))
    for (const r of rows) out.get(`public.${r.tbl}`)?.set(r.col, `public.${r.ref}`)
    return out
  } finally {
    await client.end()
  }
}

/**
 * md5 per table of every row as jsonb text, key columns as text. With `idMap` (rows of tenantize.id_map:
 * table, old, new), each key is first mapped back from its new value to the source's.
 */
async function digest(url: string, keys: Map<string, Map<string, string>>, idMap?: readonly { table: string; old_id: string; new_id: string }[]): Promise<Record<string, string>> {
  const client = new pg.Client(url)
  await client.connect()
  try {
    if (idMap !== undefined) {
      await client.query('CREATE TEMP TABLE back (tbl text, old_id text, new_id text, PRIMARY KEY (tbl, new_id))')
      await client.query('INSERT INTO back SELECT * FROM unnest($1::text[], $2::text[], $3::text[])', [idMap.map((m) => m.table), idMap.map((m) => m.old_id), idMap.map((m) => m.new_id)])
    }
    const out: Record<string, string> = {}
    for (const key of KEYS) {
      const value = (c: string): string => (idMap === undefined ? `x.${quoteIdent(c)}::text` : `(SELECT b.old_id FROM back b WHERE b.tbl = ${quoteLiteral(keys.get(key)!.get(c)!)} AND b.new_id = x.${quoteIdent(c)}::text)`)
      const set = [...keys.get(key)!.keys()].reduce((acc, c) => `jsonb_set(${acc}, ${quoteLiteral(`{${c}}`)}, coalesce(to_jsonb(${value(c)}), 'null'))`, 'to_jsonb(x)')
      out[key] = (await client.query<{ md5: string }>(`SELECT md5(coalesce(string_agg(j, '|' ORDER BY j), '')) AS md5 FROM (SELECT (${set})::text AS j FROM ${key} AS x) AS s`)).rows[0]!.md5
    }
    return out
  } finally {
    await client.end()
  }
}

function capture(): { io: Parameters<typeof main>[1] & object; out: () => string; err: () => string } {
  let out = ''
  let err = ''
  return { io: { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, env: {} }, out: () => out, err: () => err }
}

test('export an imported tenant as a standalone database with the schema before the conversion, into a database and into a psql file', async (t) => {
  const source = await db.another('tz_export_src')
  await loadExample(source, 'energy-billing', generate)
  await loadExample(db, 'energy-billing', generate)
  const config = await exampleConfig(db, 'energy-billing')
  await apply({ databaseUrl: db.url, config, phase: 'all', timeouts: fast })
  const base = { databaseUrl: db.url, config }
  const imported = await entry.importTenant({ ...base, from: source.url, slug: 'helios', name: 'Helios', batchPauseMs: 0, timeouts: fast })
  const helios = imported.tenant!.id
  const idMap = await db.sql<{ table: string; old_id: string; new_id: string }>(`SELECT "table", old_id, new_id FROM tenantize.id_map WHERE tenant = $1`, [helios])
  assert.ok(idMap.some((m) => m.old_id !== m.new_id), 'the import gave the tenant new ids (they collide with the default tenant\'s)')
  const keys = await keyColumns(source.url)
  const sourceSchema = await schemaFingerprint(source.url)
  const sourceRows = await digest(source.url, keys)

  // The refusals come before anything needs pg_dump: they run on every server.
  await t.test('a table created after the conversion that references the tenant table the export removes: refused before anything is written, naming the table and the fix', async () => {
    await db.sql(`CREATE TABLE public.invoices_v2 (id bigserial PRIMARY KEY, org_id uuid NOT NULL REFERENCES public.organizations (id), number text NOT NULL, total numeric NOT NULL, UNIQUE (org_id, number))`)
    await db.sql(`INSERT INTO public.invoices_v2 (org_id, number, total) VALUES ($1, 'V2-1', 10), ($1, 'V2-2', 20)`, [helios])
    // Another one keyed by a tenant table's composite key (org_id, id): org_id is a column the conversion added.
    await db.sql(`CREATE TABLE public.invoice_notes (id bigserial PRIMARY KEY, org_id uuid NOT NULL, invoice_id bigint NOT NULL, body text, FOREIGN KEY (org_id, invoice_id) REFERENCES public.invoice (org_id, id))`)
    const dir = await mkdtemp(join(tmpdir(), 'tz-export-'))
    try {
      const out = await db.another('tz_export_v2')
      const refused = (e: unknown): boolean => {
        assert.ok(e instanceof entry.TenantizeError, String(e))
        assert.equal(e.code, 'TZ_TENANT')
        assert.deepEqual(e.problems.map((p) => p.object), ['public.invoice_notes invoice_notes_org_id_invoice_id_fkey', 'public.invoices_v2 invoices_v2_org_id_fkey'], e.message)
        assert.match(e.message, /nothing was exported/)
        assert.match(e.problems[0]!.message, /created after the conversion and references public\.invoice\.org_id, a column the conversion added/)
        assert.match(e.problems[1]!.message, /created after the conversion and references public\.organizations, a table the conversion created/)
        assert.equal(e.problems[1]!.fix, `copy the tenant's rows of this table yourself (psql -c "\\copy (SELECT * FROM "public"."invoices_v2" WHERE "org_id" = '${helios}') TO 'invoices_v2.csv' CSV HEADER"), then export from a copy of the database without the table`)
        return true
      }
      await assert.rejects(entry.exportTenant({ ...base, tenant: 'helios', to: out.url }), refused)
      assert.deepEqual(await out.sql(`SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace`), [], 'nothing was written to the target')
      const file = join(dir, 'helios.sql')
      await assert.rejects(entry.exportTenant({ ...base, tenant: 'helios', to: file }), refused)
      await assert.rejects(readFile(file), /ENOENT/, 'no file was written')
    } finally {
      await db.sql('DROP TABLE public.invoices_v2, public.invoice_notes')
      await rm(dir, { recursive: true, force: true })
    }
  })

  await t.test('a table created after the conversion with a tenant column but no foreign key, or with row-level security: export and delete refuse (export would carry every tenant\'s rows as a shared table\'s, delete would leave the tenant\'s behind)', async () => {
    await db.sql(`CREATE TABLE public.usage_v3 (id bigserial PRIMARY KEY, org_id uuid NOT NULL, units int NOT NULL)`)
    await db.sql(`INSERT INTO public.usage_v3 (org_id, units) SELECT id, 7 FROM public.organizations`)
    await db.sql(`CREATE TABLE public.secrets_v3 (id bigserial PRIMARY KEY, owner_key uuid NOT NULL, secret text NOT NULL)`)
    await db.sql(`ALTER TABLE public.secrets_v3 ENABLE ROW LEVEL SECURITY`)
    try {
      const out = await db.another('tz_export_v3')
      await assert.rejects(entry.exportTenant({ ...base, tenant: 'helios', to: out.url }), (e: unknown) => {
        assert.ok(e instanceof entry.TenantizeError, String(e))
        assert.equal(e.code, 'TZ_TENANT')
        assert.deepEqual(e.problems.map((p) => p.object), ['public.secrets_v3', 'public.usage_v3'], e.message)
        assert.match(e.problems[0]!.message, /has row-level security enabled, so export cannot tell which of its rows are this tenant's; as a shared table it would carry every tenant's rows/)
        assert.match(e.problems[1]!.message, /has a column org_id like the tenant tables but no foreign key to public\.organizations/)
        assert.equal(e.problems[1]!.fix, 'add its foreign key (ALTER TABLE "public"."usage_v3" ADD FOREIGN KEY ("org_id") REFERENCES "public"."organizations" ("id")), or add the table to the config, then export again')
        return true
      })
      assert.deepEqual(await out.sql(`SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace`), [], 'nothing was written to the target')
      // delete refuses too: the tenant's usage_v3 rows would stay behind.
      await assert.rejects(entry.deleteTenant({ ...base, tenant: 'helios' }), (e: unknown) => {
        assert.ok(e instanceof entry.TenantizeError, String(e))
        assert.match(e.message, /2 table\(s\) created after the conversion may hold this tenant's rows and delete cannot tell which; nothing was deleted/)
        assert.match(e.problems[1]!.message, /so delete cannot tell which of its rows are this tenant's; the tenant's rows in it would stay behind/)
        return true
      })
      assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM public.usage_v3 u JOIN public.organizations o ON o.id = u.org_id WHERE o.slug = 'helios'`), [{ n: 1 }], 'nothing deleted')
    } finally {
      await db.sql('DROP TABLE public.usage_v3, public.secrets_v3')
    }
  })

  const [{ v }] = await db.sql<{ v: string }>(`SELECT current_setting('server_version_num') AS v`) as [{ v: string }]
  const dumpable = await findPgDump(Math.floor(Number(v) / 10000)).then(() => true, () => false)
  if (!dumpable) {
    const out = await db.another('tz_export_nodump')
    await assert.rejects(entry.exportTenant({ ...base, tenant: 'helios', to: out.url }), (e: unknown) => e instanceof entry.TenantizeError && e.code === 'TZ_BACKUP' && /pg_dump/.test(e.message) && e.fix !== undefined)
    t.skip('no pg_dump as new as the server: export needs one (the refusal above is checked)')
    return
  }

  await t.test('into an empty database: the original tables and columns (no tenant column), the rows equal the source once the id map is reversed', async () => {
    const out = await db.another('tz_export_out')
    const events: string[] = []
    const result = await entry.exportTenant({ ...base, tenant: 'helios', to: out.url, batchSize: 500, onEvent: (e) => events.push(e.event) })
    assert.equal(result.target, 'database')
    assert.equal(result.rows, imported.tables.reduce((a, x) => a + x.rows, 0))
    assert.deepEqual(Object.fromEntries(result.tables.map((x) => [x.table, x.rows])), Object.fromEntries(imported.tables.map((x) => [x.table, x.rows])))
    assert.ok(events.filter((e) => e === 'progress').length > 1, 'progress per batch')
    assert.deepEqual(await out.sql(`SELECT table_name FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND column_name = 'org_id'`), [], 'no tenant column')
    assert.deepEqual(await out.sql(`SELECT nspname FROM pg_namespace WHERE nspname = 'tenantize'`), [], 'nothing of Tenantize')
    assert.deepEqual(await out.sql(`SELECT tablename FROM pg_policies`), [], 'no policies')
    assert.equal(await schemaFingerprint(out.url), sourceSchema, 'tables, columns, keys, indexes, triggers, views and functions as in the single-tenant source')
    assert.deepEqual(await digest(out.url, keys, idMap), sourceRows)
    const [seq] = await out.sql<{ ok: boolean }>(`SELECT (SELECT last_value FROM meter_reading_id_seq) >= (SELECT max(id) FROM meter_reading) AS ok`)
    assert.equal(seq!.ok, true, 'sequences continue after the exported ids')
    await assert.rejects(entry.exportTenant({ ...base, tenant: 'helios', to: out.url }), (e: unknown) => e instanceof entry.TenantizeError && e.code === 'TZ_TENANT' && /not empty/.test(e.message))
  })

  await t.test('into a file (tenantize tenant export --to FILE --json) that psql -f loads: the same schema and rows', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tz-export-'))
    try {
      const file = join(dir, 'helios.sql')
      const configFile = join(dir, 'tenantize.config.json')
      await writeFile(configFile, JSON.stringify(config))
      const cli = capture()
      assert.equal(await main(['tenant', 'export', 'helios', '--to', file, '--db', db.url, '--config', configFile, '--json'], cli.io), 0, cli.err())
      const lines = cli.out().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
      assert.ok(lines.some((l) => l['event'] === 'progress'))
      assert.equal(lines.at(-1)!['target'], 'file')
      const out = await db.another('tz_export_file')
      const psql = spawnSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', out.url, '-f', file], { encoding: 'utf8' })
      assert.equal(psql.status, 0, psql.stderr)
      assert.equal(await schemaFingerprint(out.url), sourceSchema)
      assert.deepEqual(await digest(out.url, keys, idMap), sourceRows)
      const again = capture()
      assert.equal(await main(['tenant', 'export', 'helios', '--to', file, '--db', db.url, '--config', configFile], again.io), 2, 'an existing file is not overwritten')
      assert.match(again.err(), /^TZ_EXISTS /)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  await t.test('shared tables are exported in full, but for rows that reference another tenant\'s rows', async () => {
    const [some] = await db.sql<{ id: string }>(`SELECT id::text FROM client WHERE org_id = $1 ORDER BY id LIMIT 1`, [helios])
    const [other] = await db.sql<{ id: string }>(`SELECT id::text FROM client WHERE org_id <> $1 ORDER BY id LIMIT 1`, [helios])
    await db.sql(`CREATE TABLE public.country (code text PRIMARY KEY, name text NOT NULL);
      INSERT INTO public.country VALUES ('DE', 'Germany'), ('FR', 'France'), ('NL', 'Netherlands');
      CREATE TABLE public.shared_note (id int PRIMARY KEY, client_id bigint REFERENCES public.client (id), body text)`)
    await db.sql(`INSERT INTO public.shared_note VALUES (1, $1, 'of helios'), (2, $2, 'of another tenant'), (3, NULL, 'of nobody')`, [some!.id, other!.id])
    try {
      const out = await db.another('tz_export_shared')
      const result = await entry.exportTenant({ ...base, tenant: 'helios', to: out.url })
      const byTable = Object.fromEntries(result.tables.map((x) => [x.table, x]))
      assert.deepEqual(byTable['public.country'], { table: 'public.country', scope: 'shared', rows: 3, leftOut: 0 })
      assert.deepEqual(byTable['public.shared_note'], { table: 'public.shared_note', scope: 'shared', rows: 2, leftOut: 1 })
      assert.equal(byTable['public.client']!.scope, 'tenant')
      assert.deepEqual(await out.sql(`SELECT code FROM country ORDER BY code`), [{ code: 'DE' }, { code: 'FR' }, { code: 'NL' }])
      assert.deepEqual(await out.sql(`SELECT id, body FROM shared_note ORDER BY id`), [{ id: 1, body: 'of helios' }, { id: 3, body: 'of nobody' }])
      assert.deepEqual(await out.sql(`SELECT conname FROM pg_constraint WHERE conrelid = 'shared_note'::regclass AND contype = 'f'`), [{ conname: 'shared_note_client_id_fkey' }], 'its foreign key holds in the export')
    } finally {
      await db.sql('DROP TABLE public.shared_note, public.country')
    }
  })

  await t.test('tenant refusals carry TZ_TENANT, and the CLI exits 2 with it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tz-export-'))
    try {
      const configFile = join(dir, 'tenantize.config.json')
      await writeFile(configFile, JSON.stringify(config))
      for (const args of [['tenant', 'show', 'nobody'], ['tenant', 'export', 'nobody', '--to', join(dir, 'x.sql')], ['tenant', 'delete', 'eis-power'], ['tenant', 'create', '--slug', 'helios', '--name', 'Again']]) {
        const cli = capture()
        assert.equal(await main([...args, '--db', db.url, '--config', configFile], cli.io), 2, args.join(' '))
        assert.match(cli.err(), /^TZ_TENANT /, args.join(' '))
      }
      await assert.rejects(entry.showTenant({ ...base, tenant: 'nobody' }), (e: unknown) => e instanceof entry.TenantizeError && e.code === entry.ErrorCodes.TENANT)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

test('the package entry (exports ".", built from src/index.ts) exports the tenant lifecycle', async () => {
  const pkg = JSON.parse(await readFile('package.json', 'utf8')) as { exports: Record<string, { types: string; default: string }> }
  assert.deepEqual(pkg.exports['.'], { types: './dist/src/index.d.ts', default: './dist/src/index.js' }, 'src/index.ts compiles to dist/src/index.js (tsconfig.build.json: rootDir ., outDir dist)')
  for (const name of ['createTenant', 'insertTenant', 'listTenants', 'showTenant', 'suspendTenant', 'resumeTenant', 'deleteTenant', 'importTenant', 'exportTenant', 'planImport', 'findTenant', 'tenantModel'] as const) {
    assert.equal(typeof entry[name], 'function', name)
  }
  assert.equal(entry.ErrorCodes.TENANT, 'TZ_TENANT')
  assert.deepEqual([...entry.LIFECYCLE_STATUSES], ['active', 'suspended', 'importing', 'deleting'])
})
