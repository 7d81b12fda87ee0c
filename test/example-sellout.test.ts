import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generate, TABLES } from '../examples/sellout/generate.js'
import { apply, resetReadiness, rollback } from '../src/apply/index.js'
import { withTenant } from '../src/runtime/index.js'
import { testDatabase } from './helpers/db.js'
import { dataChecksums, schemaFingerprint } from './helpers/conversion.js'
import { appDatabase, assertEnforced, exampleConfig, existingTables, fast, loadExample, oldAppWriter, planFor, tableSql } from './helpers/examples.js'

const db = await testDatabase(import.meta.url)
const OTHER = 'b0000000-0000-4000-8000-0000000000b2'
const OTHER_USER = 'b0000000-0000-4000-8000-0000000000a1'
const OTHER_UPLOAD = 'b0000000-0000-4000-8000-0000000000a2'

test('generate: the same rows on every run', async () => {
  const [a, b] = [await db.another('so_gen_a'), await db.another('so_gen_b')]
  const counts = await loadExample(a, 'sellout', generate)
  await loadExample(b, 'sellout', generate)
  assert.equal(counts['sellout_entries2'], 11 * 250, 'eleven processed uploads of 250 rows (one failed)')
  const tables = TABLES.map((t) => `public.${t}`)
  assert.deepEqual(await dataChecksums(a.url, tables), await dataChecksums(b.url, tables))
})

test('sell-out: the default organization takes all existing data, schema phase under the live pipeline, then enforce; rolled back to what it was', async (t) => {
  const counts = await loadExample(db, 'sellout', generate)
  const config = await exampleConfig(db, 'sellout')
  const DEFAULT = config.tenant.default.id
  const app = config.roles.app
  assert.equal(config.tenant.column, 'client_id', 'the seed\'s name for the tenant column')
  const tables = existingTables(config)
  const fingerprint = await schemaFingerprint(db.url)
  const startData = await dataChecksums(db.url, tables)
  const uploads = await db.sql<{ id: string; retailer: string }>(`SELECT id, retailer FROM uploads WHERE status = 'processed' ORDER BY created_at`)
  let written = 0

  await t.test('plan: client_id on the seven tables, retailers global, EAN unique per organization', async () => {
    const plan = await planFor(db.url, config)
    const ids = plan.steps.map((s) => s.id)
    for (const table of ['users', 'uploads', 'sellout_entries2', 'products', 'processing_logs', 'transform_logs', 'email_logs']) {
      assert.ok(ids.includes(`add-column:public.${table}`), `client_id is added to ${table}`)
      assert.ok(ids.includes(`rls:public.${table}`), `${table} gets row-level security`)
    }
    assert.ok(!ids.some((id) => id.includes('public.retailers') && id !== 'grants'), 'retailers are left alone (global)')
    assert.ok(ids.includes('tenant-unique:public.products:products_ean_key'))
    assert.ok(ids.includes('composite-fk:public.sellout_entries2:sellout_entries2_upload_id_fkey'))
    assert.ok(ids.includes('view:public.monthly_sellout'))
    const add = plan.steps.find((s) => s.id === 'add-column:public.sellout_entries2')!
    assert.deepEqual(add.up, [`ALTER TABLE "public"."sellout_entries2" ADD COLUMN "client_id" uuid NOT NULL DEFAULT COALESCE(tenantize.current_tenant_id(), '${DEFAULT}'::uuid)`], 'existing rows belong to the default organization, without a rewrite; a writer with a context gets its own')
  })

  await t.test('phase schema while the unchanged pipeline loads sell-out rows', async () => {
    const writer = oldAppWriter(db.url, (i) => {
      const u = uploads[i % uploads.length]!
      return { text: `INSERT INTO sellout_entries2 (upload_id, ean, retailer, store_code, year, month, quantity, revenue) VALUES ($1, '4012345000009', $2, $3, 2025, 1, 1, 1.99)`, values: [u.id, u.retailer, `LIVE-${i}`] }
    })
    await apply({ databaseUrl: db.url, config, phase: 'schema', timeouts: fast })
    written = await writer.stop()
    assert.ok(written > 0, 'the pipeline kept loading during the schema phase')
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n, count(*) FILTER (WHERE client_id = $1)::int AS mine FROM sellout_entries2 WHERE store_code LIKE 'LIVE-%'`, [DEFAULT]), [{ n: written, mine: written }])
    assert.deepEqual(await db.sql(`SELECT slug, name FROM organizations`), [{ slug: 'default-org', name: 'Default Organization' }])
    for (const table of ['users', 'uploads', 'sellout_entries2', 'products', 'processing_logs', 'transform_logs', 'email_logs']) {
      assert.deepEqual(await db.sql(`SELECT count(*) FILTER (WHERE client_id IS DISTINCT FROM $1)::int AS n FROM ${table}`, [DEFAULT]), [{ n: 0 }], `every row of ${table} belongs to the default organization`)
    }
  })

  await t.test('phase enforce: every tenant table NOT NULL, RLS enabled and forced, policy, tenant index', async () => {
    // The app that sets the tenant context is deployed: a new readiness window, no context-less writes since.
    await resetReadiness(db.url)
    await apply({ databaseUrl: db.url, config, phase: 'enforce', timeouts: fast })
    await assertEnforced(db.url, config)
  })

  await t.test('a second organization with the same EAN and e-mail; each sees only its own rows; writes across fail', async () => {
    await db.sql(`INSERT INTO organizations (id, slug, name) VALUES ($1, 'nordic-brands', 'Nordic Brands')`, [OTHER])
    await db.sql(`INSERT INTO users (id, client_id, email, full_name, role) SELECT $2, $1, email, 'Anna (Nordic)', 'admin' FROM users ORDER BY created_at LIMIT 1`, [OTHER, OTHER_USER])
    await db.sql(`INSERT INTO products (client_id, ean, name) SELECT $1, ean, 'Nordic ' || name FROM products ORDER BY ean LIMIT 5`, [OTHER])
    await db.sql(`INSERT INTO uploads (id, client_id, user_id, retailer, filename, period_year, period_month, status, row_count) VALUES ($2, $1, $3, 'DM', 'dm_202501.csv', 2025, 1, 'processed', 5)`, [OTHER, OTHER_UPLOAD, OTHER_USER])
    await db.sql(`INSERT INTO sellout_entries2 (client_id, upload_id, product_id, ean, retailer, year, month, quantity, revenue) SELECT $1, $2, id, ean, 'DM', 2025, 1, 10, 19.9 FROM products WHERE client_id = $1`, [OTHER, OTHER_UPLOAD])
    await db.sql(`INSERT INTO processing_logs (client_id, upload_id, step, status) VALUES ($1, $2, 'load', 'succeeded')`, [OTHER, OTHER_UPLOAD])
    await db.sql(`INSERT INTO transform_logs (client_id, upload_id, rule, rows_in, rows_out) VALUES ($1, $2, 'normalize_ean', 5, 5)`, [OTHER, OTHER_UPLOAD])
    await db.sql(`INSERT INTO email_logs (client_id, user_id, upload_id, recipient, subject, template) VALUES ($1, $2, $3, 'anna@nordic.example', 'Upload processed', 'upload_processed')`, [OTHER, OTHER_USER, OTHER_UPLOAD])

    const { db: tenantDb, end } = appDatabase(db.url, app)
    try {
      const count = async (table: string): Promise<number> => Number((await tenantDb.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n)
      await withTenant(DEFAULT, async () => {
        assert.equal(await count('sellout_entries2'), counts['sellout_entries2']! + written)
        assert.equal(await count('products'), counts['products'])
        assert.equal(await count('users'), counts['users'])
        assert.equal(await count('retailers'), counts['retailers'], 'retailers are shared')
        assert.equal((await tenantDb.query(`UPDATE uploads SET status = 'failed' WHERE id = $1`, [OTHER_UPLOAD])).rowCount, 0, 'another organization\'s upload cannot be touched')
        assert.equal((await tenantDb.query(`DELETE FROM email_logs WHERE user_id = $1`, [OTHER_USER])).rowCount, 0)
        await assert.rejects(tenantDb.query(`INSERT INTO processing_logs (client_id, upload_id, step, status) VALUES ($1, $2, 'load', 'failed')`, [OTHER, OTHER_UPLOAD]), /new row violates row-level security policy/)
        await assert.rejects(tenantDb.query(`INSERT INTO processing_logs (upload_id, step, status) VALUES ($1, 'load', 'failed')`, [OTHER_UPLOAD]), /violates foreign key constraint/, 'a log row cannot point at another organization\'s upload')
        await assert.rejects(tenantDb.query(`INSERT INTO retailers VALUES ('LIDL', 'Lidl', 'DE', 'grocery')`), /permission denied for table retailers/, 'reference data is read-only to the app')
        const own = await tenantDb.query<{ client_id: string }>(`INSERT INTO products (ean, name) VALUES ('4099999999994', 'New product') RETURNING client_id`)
        assert.deepEqual(own.rows, [{ client_id: DEFAULT }], 'new rows take the organization of the context')
        await tenantDb.query(`DELETE FROM products WHERE ean = '4099999999994'`)
      })
      await withTenant(OTHER, async () => {
        assert.equal(await count('sellout_entries2'), 5)
        assert.equal(await count('products'), 5)
        assert.deepEqual((await tenantDb.query('SELECT id FROM uploads')).rows, [{ id: OTHER_UPLOAD }])
        assert.equal((await tenantDb.query(`UPDATE products SET name = 'x' WHERE client_id = $1`, [DEFAULT])).rowCount, 0)
      })
    } finally {
      await end()
    }
  })

  await t.test('the view reads with the caller\'s rights (security_invoker, granted by the plan)', async () => {
    const { db: tenantDb, end } = appDatabase(db.url, app)
    try {
      const months = await withTenant(OTHER, () => tenantDb.query('SELECT year, month, retailer, sum(quantity)::int AS quantity FROM monthly_sellout GROUP BY 1, 2, 3'))
      assert.deepEqual(months.rows, [{ year: 2025, month: 1, retailer: 'DM', quantity: 50 }])
    } finally {
      await end()
    }
  })

  await t.test('the second organization is removed; rollback restores the schema and every row', async () => {
    // Uploads and users first: the e-mail log keeps its row with ON DELETE SET NULL, composite keys or not.
    for (const table of ['transform_logs', 'processing_logs', 'sellout_entries2', 'uploads', 'users']) await db.sql(`DELETE FROM ${table} WHERE client_id = $1`, [OTHER])
    assert.deepEqual(await db.sql(`SELECT user_id, upload_id FROM email_logs WHERE client_id = $1`, [OTHER]), [{ user_id: null, upload_id: null }])
    for (const table of ['email_logs', 'products']) await db.sql(`DELETE FROM ${table} WHERE client_id = $1`, [OTHER])
    await db.sql(`DELETE FROM organizations WHERE id = $1`, [OTHER])
    await rollback({ databaseUrl: db.url, config, phase: 'all', timeouts: fast })
    assert.equal(await schemaFingerprint(db.url), fingerprint, 'schema identical to the start')
    assert.deepEqual(await dataChecksums(db.url, tables, { [tableSql('public.sellout_entries2')]: `WHERE store_code IS NULL OR store_code NOT LIKE 'LIVE-%'` }), startData, 'every row as it was')
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM sellout_entries2 WHERE store_code LIKE 'LIVE-%'`), [{ n: written }], 'and the pipeline\'s rows are all still there')
    assert.deepEqual(await db.sql(`SELECT to_regclass('public.organizations') AS o`), [{ o: null }])
  })
})
