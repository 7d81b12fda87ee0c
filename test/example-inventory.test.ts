import { test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { generate, TABLES } from '../examples/inventory/generate.js'
import { reconcile } from '../examples/inventory/reconcile.js'
import { apply, resetReadiness, rollback } from '../src/apply/index.js'
import { withTenant } from '../src/runtime/index.js'
import { testDatabase, type TestDatabase } from './helpers/db.js'
import { dataChecksums, schemaFingerprint } from './helpers/conversion.js'
import { appDatabase, assertEnforced, exampleConfig, existingTables, fast, loadExample, oldAppWriter, planFor, tableSql } from './helpers/examples.js'

const db = await testDatabase(import.meta.url)
const OTHER = 'b0000000-0000-4000-8000-0000000000b4'

/** The reconciliation as the admin (every tenant). */
async function reconcileAll(t: TestDatabase, tenantColumn?: string): Promise<Awaited<ReturnType<typeof reconcile>>> {
  const client = new pg.Client(t.url)
  await client.connect()
  try {
    return await reconcile(client, tenantColumn === undefined ? {} : { tenantColumn })
  } finally {
    await client.end()
  }
}

test('generate: the same rows on every run, balances equal to the ledger', async () => {
  const [a, b] = [await db.another('inv_gen_a'), await db.another('inv_gen_b')]
  const counts = await loadExample(a, 'inventory', generate)
  await loadExample(b, 'inventory', generate)
  assert.equal(counts['inventory_balances'], 80 * 3, 'every item at three locations')
  const tables = TABLES.map((t) => `public.${t}`)
  assert.deepEqual(await dataChecksums(a.url, tables), await dataChecksums(b.url, tables))
  assert.deepEqual(await reconcileAll(a), { checked: 240, mismatches: [] })
})

test('inventory: org_id on every table, SKU unique per organization, the balance trigger and the reconciliation hold through apply and rollback', async (t) => {
  const counts = await loadExample(db, 'inventory', generate)
  const config = await exampleConfig(db, 'inventory')
  const DEFAULT = config.tenant.default.id
  const app = config.roles.app
  const tables = existingTables(config)
  const fingerprint = await schemaFingerprint(db.url)
  const startData = await dataChecksums(db.url, tables)
  const pairs = await db.sql<{ item_id: number; location_id: number }>('SELECT item_id, location_id FROM inventory_balances ORDER BY item_id, location_id')
  let statements = 0

  await t.test('plan: the five unique keys become per organization, balances get org_id and a composite key', async () => {
    const plan = await planFor(db.url, config)
    const ids = plan.steps.map((s) => s.id)
    for (const id of [
      'tenant-unique:public.items:items_item_number_key',
      'tenant-unique:public.locations:locations_site_name_key',
      'tenant-unique:public.count_sheets:count_sheets_count_number_key',
      'tenant-unique:public.feature_flags:feature_flags_key_key',
      'tenant-unique:public.users:users_email_key',
      'add-column:public.inventory_balances',
      'composite-fk:public.inventory_balances:inventory_balances_item_id_fkey',
      'composite-fk:public.inventory_ledger:inventory_ledger_location_id_fkey',
      'rls:public.inventory_balances',
      'view:public.stock_on_hand',
    ]) assert.ok(ids.includes(id), `the plan has ${id}`)
    assert.equal(ids.filter((id) => id.startsWith('add-column:')).length, 9, 'org_id on the eight tables of the seed and on inventory_balances')
    assert.deepEqual(plan.manual, [])
  })

  await t.test('schema phase while the unchanged app books stock movements (through the balance trigger)', async () => {
    // Each statement books +1 and -1 on an existing balance: the balances end as they started.
    const writer = oldAppWriter(db.url, (i) => {
      const p = pairs[i % pairs.length]!
      return { text: `INSERT INTO inventory_ledger (item_id, location_id, quantity_delta, reason, reference, occurred_at) VALUES ($1, $2, 1, 'adjustment', $3, '2000-01-01T00:00:00Z'), ($1, $2, -1, 'adjustment', $3, '2000-01-01T00:00:00Z')`, values: [p.item_id, p.location_id, `LIVE-${i}`] }
    })
    await apply({ databaseUrl: db.url, config, phase: 'schema', timeouts: fast })
    statements = await writer.stop()
    assert.ok(statements > 0, 'the app kept booking movements during the schema phase')
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM inventory_ledger WHERE reference LIKE 'LIVE-%' AND org_id = $1`, [DEFAULT]), [{ n: 2 * statements }])
    assert.deepEqual(await reconcileAll(db, 'org_id'), { checked: 240, mismatches: [] }, 'balances equal the ledger per organization, item and location')
  })

  await t.test('enforce phase: every tenant table NOT NULL, RLS enabled and forced, policy, tenant index', async () => {
    // The app that sets the tenant context is deployed: a new readiness window, no context-less writes since.
    await resetReadiness(db.url)
    await apply({ databaseUrl: db.url, config, phase: 'enforce', timeouts: fast })
    await assertEnforced(db.url, config)
  })

  const other = { item: 0, location: 0 }
  await t.test('an operator loads a second organization under its context: same SKU, site, count number, flag key; the trigger books its balances', async () => {
    const client = new pg.Client(db.url)
    await client.connect()
    try {
      await client.query(`INSERT INTO organizations (id, slug, name) VALUES ($1, 'acme-supply', 'Acme Supply')`, [OTHER])
      await client.query('BEGIN')
      await client.query(`SELECT set_config('tenantize.tenant_id', $1, true)`, [OTHER]) // new rows default to this organization
      const user = (await client.query<{ id: number }>(`INSERT INTO users (email, name, role, password_hash) VALUES ('maria.lopez@inventory.example', 'Maria (Acme)', 'admin', 'x') RETURNING id`)).rows[0]!.id
      other.item = (await client.query<{ id: number }>(`INSERT INTO items (item_number, description) SELECT item_number, 'Acme ' || description FROM items ORDER BY id LIMIT 1 RETURNING id`)).rows[0]!.id
      other.location = (await client.query<{ id: number }>(`INSERT INTO locations (site, name, kind) VALUES ('DAL', 'MAIN', 'warehouse') RETURNING id`)).rows[0]!.id
      await client.query(`INSERT INTO feature_flags (key, enabled) VALUES ('cycle_counts', false)`)
      await client.query(`INSERT INTO inventory_ledger (item_id, location_id, quantity_delta, reason, reference, created_by, occurred_at) VALUES ($1, $2, 100, 'receipt', 'OPENING', $3, '2025-02-01T08:00:00Z'), ($1, $2, -7, 'issue', 'SO-1', $3, '2025-02-02T08:00:00Z')`, [other.item, other.location, user])
      const sheet = (await client.query<{ id: number }>(`INSERT INTO count_sheets (count_number, location_id, scheduled_for, created_by) VALUES ('CS-2025-0001', $1, '2025-02-03', $2) RETURNING id`, [other.location, user])).rows[0]!.id
      await client.query(`INSERT INTO count_lines (count_sheet_id, item_id, expected_qty) VALUES ($1, $2, 93)`, [sheet, other.item])
      await client.query(`INSERT INTO audit_logs (user_id, action, entity_type) VALUES ($1, 'organization.created', 'organization')`, [user])
      await client.query('COMMIT')
    } finally {
      await client.end()
    }
    assert.deepEqual(await db.sql(`SELECT org_id, quantity::int AS quantity FROM inventory_balances WHERE item_id = $1`, [other.item]), [{ org_id: OTHER, quantity: 93 }])
    assert.deepEqual(await reconcileAll(db, 'org_id'), { checked: 241, mismatches: [] })
  })

  await t.test('through tenantPool as the app role: each organization sees only its stock; bookings across fail; reconciliation per organization', async () => {
    const { db: tenantDb, end } = appDatabase(db.url, app)
    try {
      const count = async (table: string): Promise<number> => Number((await tenantDb.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n)
      await withTenant(DEFAULT, async () => {
        assert.equal(await count('items'), counts['items'])
        assert.equal(await count('inventory_balances'), counts['inventory_balances'])
        assert.equal(await count('inventory_ledger'), counts['inventory_ledger']! + 2 * statements)
        assert.equal(await count('feature_flags'), counts['feature_flags'])
        assert.deepEqual(await reconcile(tenantDb, { tenantColumn: 'org_id' }), { checked: 240, mismatches: [] })
        assert.equal((await tenantDb.query(`UPDATE inventory_balances SET quantity = 0 WHERE item_id = $1`, [other.item])).rowCount, 0, 'another organization\'s stock cannot be changed')
        await assert.rejects(tenantDb.query(`INSERT INTO inventory_ledger (item_id, location_id, quantity_delta, reason, occurred_at) VALUES ($1, $2, 1, 'receipt', now())`, [other.item, other.location]), /new row violates row-level security policy (\(USING expression\) )?for table "inventory_balances"|violates foreign key constraint "inventory_ledger_org_id_item_id_tenant_fkey"/, 'no movement on another organization\'s item')
        await assert.rejects(tenantDb.query(`INSERT INTO items (org_id, item_number, description) VALUES ($1, 'SKU-X', 'x')`, [OTHER]), /new row violates row-level security policy/)
        await assert.rejects(tenantDb.query(`INSERT INTO items (item_number, description) SELECT item_number, 'twice' FROM items LIMIT 1`), /duplicate key value violates unique constraint "items_item_number_key"/, 'the SKU is still unique within the organization')
      })
      await withTenant(OTHER, async () => {
        assert.deepEqual((await tenantDb.query('SELECT id FROM items')).rows, [{ id: other.item }])
        assert.deepEqual((await tenantDb.query('SELECT key, enabled FROM feature_flags')).rows, [{ key: 'cycle_counts', enabled: false }])
        await tenantDb.query(`INSERT INTO inventory_ledger (item_id, location_id, quantity_delta, reason, reference, occurred_at) VALUES ($1, $2, 12, 'receipt', 'PO-ACME-2', '2025-02-04T08:00:00Z')`, [other.item, other.location])
        assert.deepEqual((await tenantDb.query('SELECT quantity::int AS quantity FROM inventory_balances')).rows, [{ quantity: 105 }], 'the trigger books the movement as the organization')
        assert.deepEqual(await reconcile(tenantDb, { tenantColumn: 'org_id' }), { checked: 1, mismatches: [] })
      })
    } finally {
      await end()
    }
    assert.deepEqual(await reconcileAll(db, 'org_id'), { checked: 241, mismatches: [] })
  })

  await t.test('the second organization is removed; rollback restores the schema, every row and the reconciliation', async () => {
    for (const table of ['count_lines', 'inventory_ledger', 'count_sheets', 'inventory_balances', 'audit_logs', 'feature_flags', 'items', 'locations', 'users']) await db.sql(`DELETE FROM ${table} WHERE org_id = $1`, [OTHER])
    await db.sql(`DELETE FROM organizations WHERE id = $1`, [OTHER])
    await rollback({ databaseUrl: db.url, config, phase: 'all', timeouts: fast })
    assert.equal(await schemaFingerprint(db.url), fingerprint, 'schema identical to the start')
    assert.deepEqual(await dataChecksums(db.url, tables, { [tableSql('public.inventory_ledger')]: `WHERE reference IS NULL OR reference NOT LIKE 'LIVE-%'` }), startData, 'every row as it was, balances included')
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM inventory_ledger WHERE reference LIKE 'LIVE-%'`), [{ n: 2 * statements }], 'and the app\'s movements are all still there')
    assert.deepEqual(await reconcileAll(db), { checked: 240, mismatches: [] })
  })
})
