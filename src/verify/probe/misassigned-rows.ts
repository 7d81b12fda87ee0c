import type { ForeignKeyConstraint } from '../../catalog/types.js'
import { quoteIdent } from '../../sql/quote.js'
import { tableSql } from '../lints/rule.js'
import type { ModelTable, TenantModel } from '../lints/model.js'
import type { ProbeCheck } from '../types.js'
import type { ProbeSession } from './session.js'

/**
 * Mis-assigned rows in the existing data (read-only, as the session's admin role): a row filed under one
 * tenant but referenced by a row of another — e.g. `orgs.settings_id → settings(id)` where settings 20 has
 * `org_id = 1` but org 2 points at it, so tenant 1 reads tenant 2's settings. Checked for every foreign key
 * from the tenant table (whose tenant is its own key) or a table with a tenant column to another such
 * table. Keys between two tables with tenant columns are data-cross-tenant-reference's.
 */

/** A foreign key from `from` to `to`, both with a column that names the row's tenant. */
export interface TenantLink {
  readonly fk: ForeignKeyConstraint
  readonly from: ModelTable
  readonly to: ModelTable
}

const display = (t: { schema: string; name: string }): string => `${t.schema}.${t.name}`

/** The column naming a row's tenant: the tenant column, or the key of the tenant table. */
function tenantOf(m: ModelTable): string | null {
  return m.class === 'root' || m.class === 'direct' ? m.tenantColumn : null
}

/** The foreign keys into `to` whose two ends can disagree about the tenant. */
export function tenantLinks(model: TenantModel, to: ModelTable): TenantLink[] {
  const toTenant = tenantOf(to)
  if (toTenant === null || to.table.foreign) return []
  const out: TenantLink[] = []
  for (const from of model.tenantTables()) {
    const fromTenant = tenantOf(from)
    if (fromTenant === null || from.table.foreign) continue
    if (from.class === 'direct' && to.class === 'direct') continue // data-cross-tenant-reference
    if (from.class === 'root' && to.class === 'root') continue // a tenant hierarchy (parent_org_id): another tenant by design
    for (const c of from.table.constraints) {
      if (c.type !== 'foreign key' || c.parentOid !== null || c.references.table.oid !== to.table.oid) continue
      // Through the tenant columns themselves (org_id → organizations.id): the key holds them equal.
      if (c.columns.some((x, i) => x === fromTenant && c.references.columns[i] === toTenant)) continue
      out.push({ fk: c, from, to })
    }
  }
  return out
}

/** The `data-misassigned-rows` check of one table; none when no such foreign key references it. */
export async function misassignedRows(session: ProbeSession, model: TenantModel, to: ModelTable): Promise<ProbeCheck[]> {
  const links = tenantLinks(model, to)
  return links.length === 0 ? [] : [await check(session, to, links)]
}

async function check(session: ProbeSession, to: ModelTable, links: readonly TenantLink[]): Promise<ProbeCheck> {
  const result = (status: ProbeCheck['status'], detail: string, sqlstate: string | null = null): ProbeCheck => ({ table: display(to.table), check: 'data-misassigned-rows', status, detail, sqlstate })
  const tt = tenantOf(to)!
  const type = (m: ModelTable, column: string): string | undefined => m.table.columns.find((c) => c.name === column)?.type
  // Sample keys: the primary key without the tenant column; none for the tenant table (its keys are tenant ids).
  const pk = to.class === 'root' ? [] : (to.table.constraints.find((c) => c.type === 'primary key')?.columns ?? []).filter((c) => c !== tt)
  const found: string[] = []
  for (const { fk, from } of links) {
    const ft = tenantOf(from)!
    // Compare as text when the two columns' types differ (int vs bigint compare fine, uuid vs text do not).
    const cast = type(from, ft) === type(to, tt) ? '' : '::text'
    const on = fk.columns.map((c, i) => `x.${quoteIdent(c)} = t.${quoteIdent(fk.references.columns[i]!)}`).join(' AND ')
    const key = pk.length === 0 ? 'NULL::json' : `json_build_array(${pk.map((c) => `t.${quoteIdent(c)}::text`).join(', ')})`
    const r = await session.step(
      `WITH bad AS (SELECT ${key} AS k FROM ${tableSql(to.table)} t
                     WHERE EXISTS (SELECT 1 FROM ${tableSql(from.table)} x WHERE ${on} AND x.${quoteIdent(ft)} IS NOT NULL AND x.${quoteIdent(ft)}${cast} IS DISTINCT FROM t.${quoteIdent(tt)}${cast}))
       SELECT (SELECT count(*) FROM bad) AS n, (SELECT json_agg(s.k) FROM (SELECT k FROM bad LIMIT 3) s) AS sample`,
    )
    if (!r.ok) return result('error', `checking ${fk.name} failed (${r.code}: ${r.message})`, r.code)
    const rows = Number(r.rows[0]?.['n'])
    if (rows === 0) continue
    const sample = (r.rows[0]?.['sample'] as (string | null)[][] | null) ?? []
    const keys = pk.length === 0 || sample.length === 0 ? '' : `, e.g. ${sample.map((k) => pk.map((c, i) => `${c}=${k[i] ?? 'NULL'}`).join(' ')).join('; ')}`
    const referrer = from.class === 'root' ? `${display(from.table)} row (a tenant)` : `${display(from.table)} row`
    found.push(`${rows} row(s) referenced by a ${referrer} of another tenant through ${fk.name} (${from.table.name}(${fk.columns.join(', ')}) → ${to.table.name}(${fk.references.columns.join(', ')}))${keys}`)
  }
  if (found.length > 0) return result('fail', `${display(to.table)} has rows filed under another tenant than the rows that reference them: ${found.join('; ')}`)
  return result('pass', `every row referenced through ${links.map((l) => l.fk.name).join(', ')} belongs to the referencing row's tenant`)
}
