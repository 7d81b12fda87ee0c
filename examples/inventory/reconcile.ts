/**
 * The reconciliation check of seed 004: inventory_balances must equal the sum of inventory_ledger per
 * item and location — and, once the database is multi-tenant, per tenant too (a balance under the
 * wrong tenant is a mismatch twice: missing under one, extra under the other).
 *
 *   npx tsx examples/inventory/reconcile.ts --db URL [--tenant-column org_id]     # exit 1 on mismatches
 */
import { quoteIdent } from '../../src/sql/quote.js'
import { isMain, rows, type SqlClient } from '../shared/generator.js'

export interface Mismatch {
  /** The tenant (text), or null without a tenant column. */
  readonly tenant: string | null
  readonly itemId: number
  readonly locationId: number
  /** The balance row's quantity, or null when there is no balance row. */
  readonly balance: string | null
  /** The ledger sum, or null when the ledger has no rows for it. */
  readonly ledger: string | null
}

export interface Reconciliation {
  /** Item/location (and tenant) combinations compared. */
  readonly checked: number
  readonly mismatches: readonly Mismatch[]
}

/**
 * Compare balances with ledger sums. With `tenantColumn` (e.g. `org_id`) the comparison is per tenant
 * as well. Run it as a role that sees every tenant, or inside one tenant's context to check that one.
 */
export async function reconcile(client: SqlClient, options: { tenantColumn?: string } = {}): Promise<Reconciliation> {
  const t = options.tenantColumn === undefined ? undefined : quoteIdent(options.tenantColumn)
  const keys = [...(t === undefined ? [] : [t]), 'item_id', 'location_id']
  const compared = `WITH ledger AS (
       SELECT ${keys.join(', ')}, sum(quantity_delta) AS quantity FROM inventory_ledger GROUP BY ${keys.join(', ')}
     )
     SELECT ${t === undefined ? 'NULL::text' : `coalesce(b.${t}, l.${t})::text`} AS tenant,
            coalesce(b.item_id, l.item_id) AS item_id, coalesce(b.location_id, l.location_id) AS location_id,
            b.quantity::text AS balance, l.quantity::text AS ledger, b.quantity IS DISTINCT FROM l.quantity AS differs
       FROM inventory_balances AS b
       FULL JOIN ledger AS l ON ${keys.map((k) => `l.${k} = b.${k}`).join(' AND ')}`
  const [count] = await rows<{ n: string }>(client, `SELECT count(*) AS n FROM (${compared}) AS c`)
  const found = await rows<{ tenant: string | null; item_id: number; location_id: number; balance: string | null; ledger: string | null }>(client, `SELECT tenant, item_id, location_id, balance, ledger FROM (${compared}) AS c WHERE differs ORDER BY tenant, item_id, location_id`)
  const checked = Number(count?.n ?? 0)
  const mismatches = found.map((r) => ({ tenant: r.tenant, itemId: r.item_id, locationId: r.location_id, balance: r.balance, ledger: r.ledger }))
  return { checked, mismatches }
}

if (isMain(import.meta.url)) {
  const argv = process.argv.slice(2)
  const flag = (f: string): string | undefined => (argv.includes(f) ? argv[argv.indexOf(f) + 1] : undefined)
  const url = flag('--db') ?? process.env['DATABASE_URL']
  if (url === undefined) throw new Error('give --db URL or set DATABASE_URL')
  const tenantColumn = flag('--tenant-column')
  const { default: pg } = await import('pg')
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const result = await reconcile(client, tenantColumn === undefined ? {} : { tenantColumn })
    for (const m of result.mismatches) console.log(`mismatch ${m.tenant ?? ''} item ${m.itemId} location ${m.locationId}: balance ${m.balance ?? 'none'}, ledger ${m.ledger ?? 'none'}`)
    console.log(`${result.checked} balance(s) checked, ${result.mismatches.length} mismatch(es)`)
    process.exitCode = result.mismatches.length > 0 ? 1 : 0
  } finally {
    await client.end()
  }
}
