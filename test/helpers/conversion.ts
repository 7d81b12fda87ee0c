import pg from 'pg'
import { introspect, type Catalog } from '../../src/catalog/index.js'
import { quoteIdent } from '../../src/sql/quote.js'

/** The catalog without oids, sizes, roles and Tenantize's own schema: equal before apply and after rollback. */
export async function schemaFingerprint(url: string): Promise<string> {
  const client = new pg.Client(url)
  await client.connect()
  let catalog: Catalog
  try {
    catalog = await introspect(client)
  } finally {
    await client.end()
  }
  const mine = (o: { schema: string }): boolean => o.schema !== 'tenantize'
  const volatile = new Set(['oid', 'parentOid', 'estimatedRows', 'totalBytes'])
  return JSON.stringify(
    { tables: catalog.tables.filter(mine), views: catalog.views.filter(mine), routines: catalog.routines.filter(mine), sequences: catalog.sequences.filter(mine), schemas: catalog.schemas.filter((s) => s.name !== 'tenantize') },
    (key, value: unknown) => (volatile.has(key) ? undefined : value),
    1,
  )
}

/** md5 of every row of each table, in a stable order. */
export async function dataChecksums(url: string, tables: readonly string[], where: Record<string, string> = {}): Promise<Record<string, string>> {
  const client = new pg.Client(url)
  await client.connect()
  try {
    const out: Record<string, string> = {}
    for (const t of tables) {
      const { rows } = await client.query<{ md5: string }>(`SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS md5 FROM ${t} AS x ${where[t] ?? ''}`)
      out[t] = rows[0]!.md5
    }
    return out
  } finally {
    await client.end()
  }
}

/** Run `fn` in a transaction as `role` (SET LOCAL ROLE), optionally with a tenant context; always rolled back. */
export async function asRole<T>(url: string, role: string, tenant: string | null, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(url)
  await client.connect()
  try {
    await client.query('BEGIN')
    await client.query(`SET LOCAL ROLE ${quoteIdent(role)}`)
    if (tenant !== null) await client.query(`SELECT set_config('tenantize.tenant_id', $1, true)`, [tenant])
    return await fn(client)
  } finally {
    await client.query('ROLLBACK').catch(() => undefined)
    await client.end()
  }
}
