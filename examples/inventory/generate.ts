/**
 * Deterministic data for the inventory example: users, items, locations, feature flags, a ledger of
 * stock movements (the trigger fills inventory_balances from it), cycle counts whose posting writes
 * 'count' movements, and the audit log.
 *
 *   npx tsx examples/inventory/generate.ts --db postgres://localhost/inventory --scale large
 *
 * `small` (tests): 80 items, each stocked at 3 of 10 locations, about 2,700 ledger rows — 3,200 rows in all.
 * `large` (benchmarks): 20,000 items at 200 locations, about 2,060,000 ledger rows.
 * A number: about that many ledger rows.
 */
import { assertEmpty, countRows, generatorCli, insertRows, isMain, random, type GenerateOptions, type SqlClient } from '../shared/generator.js'

const SEED = 0x1e06e
export const TABLES = ['users', 'items', 'locations', 'feature_flags', 'inventory_ledger', 'inventory_balances', 'count_sheets', 'count_lines', 'audit_logs'] as const

interface Size {
  readonly items: number
  readonly sites: number
  readonly binsPerSite: number
  readonly movements: number
  readonly sheets: number
}

function sizeOf(scale: GenerateOptions['scale']): Size {
  if (scale === 'small') return { items: 80, sites: 2, binsPerSite: 5, movements: 2400, sheets: 6 }
  if (scale === 'large') return { items: 20_000, sites: 5, binsPerSite: 40, movements: 2_000_000, sheets: 400 }
  return { items: Math.min(50_000, Math.max(20, Math.round(scale / 100))), sites: 3, binsPerSite: Math.min(100, Math.max(3, Math.round(scale / 20_000))), movements: scale, sheets: Math.min(1000, Math.max(2, Math.round(scale / 5000))) }
}

const SITES = ['DAL', 'ATL', 'RNO', 'CMH', 'PHX', 'SLC', 'ROC', 'BOI']
const CATEGORIES = [['Fasteners', 'BX', 'Hex bolt M8x40'], ['Electrical', 'EA', 'Cable tie 300mm'], ['Safety', 'PR', 'Nitrile gloves L'], ['Packaging', 'RL', 'Stretch film 500mm'], ['Plumbing', 'EA', 'Ball valve 3/4"'], ['Tools', 'EA', 'Torque wrench 1/2"']] as const
const FLAGS = [['cycle_counts', true, 'Cycle counting with count sheets'], ['barcode_scanning', true, 'Scan items and bins with the handheld app'], ['multi_site_transfers', false, 'Transfers between sites'], ['lot_tracking', false, 'Track lots and expiry dates'], ['negative_stock', false, 'Allow issues below zero'], ['mobile_app', true, 'The counter app for phones']] as const

/**
 * Load the example's data into a database where schema.sql was loaded (and nothing else yet).
 * The same rows on every run. Returns the row count of each table.
 */
export async function generate(client: SqlClient, options: GenerateOptions): Promise<Record<string, number>> {
  const size = sizeOf(options.scale)
  const rnd = random(SEED)
  await assertEmpty(client, TABLES)

  const people = [['maria.lopez', 'Maria Lopez', 'admin'], ['tom.becker', 'Tom Becker', 'manager'], ['aisha.khan', 'Aisha Khan', 'manager'], ['leo.martin', 'Leo Martin', 'counter'], ['yuki.sato', 'Yuki Sato', 'counter'], ['omar.haddad', 'Omar Haddad', 'counter'], ['nina.petrov', 'Nina Petrov', 'viewer'], ['sam.okoro', 'Sam Okoro', 'counter']] as const
  await insertRows(client, 'users', ['email', 'name', 'role', 'password_hash', 'is_active', 'created_at'], people.map(([login, name, role], i) => [`${login}@inventory.example`, name, role, `$2b$12$${rnd.hex(53)}`, i !== 7, `2023-0${1 + i}-01T08:00:00Z`]))

  await insertRows(client, 'items', ['item_number', 'description', 'category', 'unit_of_measure', 'unit_cost', 'reorder_point', 'is_active', 'created_at', 'updated_at'], Array.from({ length: size.items }, (_, i) => {
    const [category, unit, base] = CATEGORIES[i % CATEGORIES.length]!
    return [`SKU-${String(10_000 + i * 3).padStart(6, '0')}`, `${base} (${['std', 'pro', 'bulk', 'eco'][i % 4]})`, category, unit, (rnd.int(50, 250_000) / 100).toFixed(4), i % 3 === 0 ? null : String(rnd.int(5, 60)), i % 37 !== 36, `2023-${String(1 + (i % 12)).padStart(2, '0')}-15T10:00:00Z`, '2024-12-01T10:00:00Z']
  }))

  const locationRows: unknown[][] = []
  for (let s = 0; s < size.sites; s++) {
    const site = SITES[s] ?? `S${String(s + 1).padStart(2, '0')}`
    locationRows.push([site, 'MAIN', 'warehouse', '2023-01-01T00:00:00Z'])
    for (let b = 1; b < size.binsPerSite; b++) locationRows.push([site, `A-${String(Math.ceil(b / 4)).padStart(2, '0')}-${(b - 1) % 4 + 1}`, b % 9 === 0 ? 'truck' : 'bin', '2023-01-01T00:00:00Z'])
  }
  await insertRows(client, 'locations', ['site', 'name', 'kind', 'created_at'], locationRows)
  await insertRows(client, 'feature_flags', ['key', 'enabled', 'description', 'updated_at'], FLAGS.map((f) => [...f, '2024-06-01T00:00:00Z']))

  // Each item is stocked at three locations: an opening receipt there, then movements — receipts of a
  // case, issues, transfers and adjustments of a few units — spread over items and locations by a
  // multiplicative hash. The trigger keeps inventory_balances as they are inserted (in order).
  const locations = size.sites * size.binsPerSite
  await client.query(
    `INSERT INTO inventory_ledger (item_id, location_id, quantity_delta, reason, reference, created_by, occurred_at, created_at)
     SELECT i.id, l.id, 40 + (i.n * 13 + k * 7) % 160, 'receipt', 'OPENING', NULL, '2024-01-01T06:00:00Z', '2024-01-01T06:00:00Z'
       FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM items) AS i
      CROSS JOIN generate_series(0, 2) AS k
       JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM locations) AS l ON l.n = (i.n * 7 + k * 3) % $1
      ORDER BY i.n, k`,
    [locations],
  )
  await client.query(
    `INSERT INTO inventory_ledger (item_id, location_id, quantity_delta, reason, reference, created_by, occurred_at, created_at)
     SELECT i.id, l.id,
            CASE m.reason WHEN 'receipt' THEN 24 + (g * 13) % 120 WHEN 'transfer_in' THEN 1 + g % 6 WHEN 'adjustment' THEN CASE WHEN g % 2 = 0 THEN 1 ELSE -1 END ELSE -(1 + (g * 7) % 9) END,
            m.reason,
            CASE m.reason WHEN 'receipt' THEN 'PO-' || (4500 + g / 40) WHEN 'issue' THEN 'SO-' || (90000 + g / 3) WHEN 'adjustment' THEN NULL ELSE 'TR-' || (700 + g / 50) END,
            u.id, m.at, m.at + interval '2 seconds'
       FROM generate_series(1, $1::bigint) AS g
      CROSS JOIN LATERAL (SELECT g * 48271 % 2147483647 AS h) AS hash
      CROSS JOIN LATERAL (SELECT (g * 7919 + $4) % $2 AS item_n, hash.h / 100 % 3 AS k,
                                 '2024-01-01T06:00:00Z'::timestamptz + g * interval '3 minutes' AS at,
                                 CASE WHEN hash.h % 100 < 20 THEN 'receipt' WHEN hash.h % 100 < 24 THEN 'adjustment' WHEN hash.h % 100 < 29 THEN 'transfer_in' WHEN hash.h % 100 < 34 THEN 'transfer_out' ELSE 'issue' END AS reason) AS m
       JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM items) AS i ON i.n = m.item_n
       JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM locations) AS l ON l.n = (m.item_n * 7 + m.k * 3) % $3
       JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM users WHERE role IN ('manager', 'counter')) AS u ON u.n = g % 5
      ORDER BY g`,
    [size.movements, size.items, locations, SEED % 1000],
  )

  // Cycle counts: a sheet per location in turn, lines for the items stocked there; posted sheets
  // write the difference as 'count' movements.
  await client.query(
    `INSERT INTO count_sheets (count_number, location_id, status, scheduled_for, created_by, posted_at, created_at)
     SELECT 'CS-2025-' || lpad(s::text, 4, '0'), l.id,
            CASE WHEN s % 3 = 0 THEN 'counting' ELSE 'posted' END,
            DATE '2025-01-06' + s, (SELECT min(id) FROM users WHERE role = 'manager'),
            CASE WHEN s % 3 = 0 THEN NULL ELSE ((DATE '2025-01-06' + s)::timestamp + interval '16 hours') AT TIME ZONE 'UTC' END,
            ((DATE '2025-01-06' + s - 2)::timestamp + interval '9 hours') AT TIME ZONE 'UTC'
       FROM generate_series(1, $1::int) AS s
       JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM locations) AS l ON l.n = (s - 1) % $2
      ORDER BY s`,
    [size.sheets, locations],
  )
  await client.query(`
    INSERT INTO count_lines (count_sheet_id, item_id, expected_qty, counted_qty, counted_by, counted_at)
    SELECT cs.id, b.item_id, b.quantity, b.quantity + ((b.item_id + cs.id) % 7 - 3) / 2,
           (SELECT min(id) FROM users WHERE role = 'counter'),
           cs.scheduled_for + interval '10 hours' + b.item_id * interval '1 second'
      FROM count_sheets cs
      JOIN LATERAL (SELECT item_id, quantity FROM inventory_balances WHERE location_id = cs.location_id ORDER BY item_id LIMIT 25) AS b ON true
     ORDER BY cs.id, b.item_id`)
  await client.query(`
    INSERT INTO inventory_ledger (item_id, location_id, quantity_delta, reason, reference, count_sheet_id, created_by, occurred_at, created_at)
    SELECT cl.item_id, cs.location_id, cl.counted_qty - cl.expected_qty, 'count', cs.count_number, cs.id, cs.created_by, cs.posted_at, cs.posted_at
      FROM count_lines cl
      JOIN count_sheets cs ON cs.id = cl.count_sheet_id
     WHERE cs.status = 'posted' AND cl.counted_qty <> cl.expected_qty
     ORDER BY cs.id, cl.item_id`)

  await client.query(`
    INSERT INTO audit_logs (user_id, action, entity_type, entity_id, changes, created_at)
    SELECT cs.created_by, a.action, 'count_sheet', cs.count_number, jsonb_build_object('status', a.status), a.at
      FROM count_sheets cs
     CROSS JOIN LATERAL (VALUES ('count_sheet.created', 'open', cs.created_at), ('count_sheet.posted', 'posted', cs.posted_at)) AS a (action, status, at)
     WHERE a.at IS NOT NULL
     UNION ALL
    SELECT (SELECT min(id) FROM users WHERE role = 'admin'), 'item.updated', 'item', i.item_number,
           jsonb_build_object('reorder_point', jsonb_build_array(NULL, i.reorder_point)), i.updated_at + (i.id % 50) * interval '1 minute'
      FROM items i WHERE i.reorder_point IS NOT NULL AND i.id % 4 = 0
     ORDER BY 6, 4, 2`)

  return countRows(client, TABLES)
}

if (isMain(import.meta.url)) await generatorCli('inventory', generate)
