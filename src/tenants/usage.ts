import type pg from 'pg'
import { ErrorCodes, TenantizeError } from '../errors.js'
import { quoteIdent } from '../sql/quote.js'
import type { TenantModel, TenantTable } from './model.js'
import { transaction, withModel, type TenantOptions } from './session.js'
import { findTenant, readTenants, writeStatus, type TenantRow } from './store.js'

/** A tenant's share of one table. */
export interface TableUsage {
  readonly table: string
  readonly rows: number
  /**
   * Estimated: the tenant's share (by rows) of the table's total size, indexes and TOAST included.
   * Exact: the size of the tenant's rows themselves (`pg_column_size`), without indexes.
   */
  readonly bytes: number
  /** false: from the planner's statistics (pg_stats, reltuples), instant; true: counted. */
  readonly exact: boolean
}

export interface TenantUsage extends TenantRow {
  readonly rows: number
  readonly bytes: number
  /** Every number is counted (no estimate). */
  readonly exact: boolean
  readonly tables: readonly TableUsage[]
}

interface Stats {
  readonly nullFrac: number
  readonly nDistinct: number
  readonly mcv: readonly string[]
  readonly mcf: readonly number[]
}

interface TableFacts {
  readonly reltuples: number | null
  readonly bytes: number
  readonly stats: Stats | undefined
}

/** Planner statistics of the tenant column and the table's size (all partitions). */
async function tableFacts(client: pg.Client, t: TenantTable): Promise<TableFacts> {
  const size = await client.query<{ reltuples: number | null; bytes: string }>(
    `SELECT CASE WHEN bool_or(c.reltuples < 0) THEN NULL ELSE sum(c.reltuples)::float8 END AS reltuples,
            coalesce(sum(pg_catalog.pg_total_relation_size(p.relid)), 0)::text AS bytes
       FROM (SELECT p.relid FROM pg_catalog.pg_partition_tree($1::regclass) p WHERE p.isleaf
             UNION ALL SELECT $1::regclass WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_partition_tree($1::regclass))) AS p
       JOIN pg_catalog.pg_class c ON c.oid = p.relid`,
    [t.sql],
  )
  const stats = await client.query<{ null_frac: number; n_distinct: number; mcv: string[] | null; mcf: number[] | null }>(
    `SELECT null_frac, n_distinct, most_common_vals::text::text[] AS mcv, most_common_freqs AS mcf
       FROM pg_catalog.pg_stats WHERE schemaname = $1 AND tablename = $2 AND attname = $3 AND inherited = $4`,
    [t.table.schema, t.table.name, t.column, t.table.kind === 'partitioned'],
  )
  const s = stats.rows[0]
  return {
    reltuples: size.rows[0]?.reltuples ?? null,
    bytes: Number(size.rows[0]?.bytes ?? 0),
    stats: s === undefined ? undefined : { nullFrac: s.null_frac, nDistinct: s.n_distinct, mcv: s.mcv ?? [], mcf: s.mcf ?? [] },
  }
}

/** Rows of `tenant` from the statistics: its most-common-value frequency, else an even share of the rest. */
function estimateRows(facts: TableFacts, tenant: string): number | undefined {
  const { reltuples, stats } = facts
  if (reltuples === null || stats === undefined) return undefined
  const i = stats.mcv.indexOf(tenant)
  if (i >= 0) return Math.round((stats.mcf[i] ?? 0) * reltuples)
  const distinct = stats.nDistinct >= 0 ? stats.nDistinct : -stats.nDistinct * reltuples
  const others = distinct - stats.mcv.length
  const rest = Math.max(0, 1 - stats.nullFrac - stats.mcf.reduce((a, b) => a + b, 0))
  return others > 0 ? Math.round((rest / others) * reltuples) : 0
}

/** Exact rows and row bytes per tenant of one table (only `tenants`, when given). */
async function countTable(client: pg.Client, t: TenantTable, tenants: readonly string[] | undefined): Promise<Map<string, { rows: number; bytes: number }>> {
  const col = quoteIdent(t.column)
  const { rows } = await client.query<{ tenant: string; n: string; bytes: string }>(
    `SELECT x.${col}::text AS tenant, count(*)::text AS n, coalesce(sum(pg_catalog.pg_column_size(x.*)), 0)::text AS bytes
       FROM ${t.sql} AS x ${tenants === undefined ? '' : `WHERE x.${col}::text = ANY($1::text[])`} GROUP BY 1`,
    tenants === undefined ? [] : [[...tenants]],
  )
  return new Map(rows.map((r) => [r.tenant, { rows: Number(r.n), bytes: Number(r.bytes) }]))
}

async function usageOf(client: pg.Client, model: TenantModel, tenants: readonly TenantRow[], exact: boolean): Promise<TenantUsage[]> {
  const perTenant = new Map<string, TableUsage[]>(tenants.map((t) => [t.id, []]))
  const ids = tenants.map((t) => t.id)
  for (const t of model.tables) {
    const facts = exact ? undefined : await tableFacts(client, t)
    const estimates = facts === undefined ? undefined : ids.map((id) => estimateRows(facts, id))
    const counted = estimates === undefined || estimates.some((e) => e === undefined) ? await countTable(client, t, ids) : undefined
    for (const [i, id] of ids.entries()) {
      let usage: TableUsage
      if (counted !== undefined) usage = { table: t.key, rows: counted.get(id)?.rows ?? 0, bytes: counted.get(id)?.bytes ?? 0, exact: true }
      else {
        const rows = estimates![i]!
        const share = facts!.reltuples! > 0 ? Math.min(1, rows / facts!.reltuples!) : 0
        usage = { table: t.key, rows, bytes: Math.round(share * facts!.bytes), exact: false }
      }
      perTenant.get(id)!.push(usage)
    }
  }
  return tenants.map((t) => {
    const tables = perTenant.get(t.id)!
    return { ...t, rows: tables.reduce((a, u) => a + u.rows, 0), bytes: tables.reduce((a, u) => a + u.bytes, 0), exact: tables.every((u) => u.exact), tables }
  })
}

export interface UsageOptions extends TenantOptions {
  /** Count rows and measure them instead of estimating from statistics (scans every tenant table). */
  readonly exact?: boolean
}

/** Every tenant with its status, created-at and rows and bytes across the tenant tables (estimated unless `exact`). */
export async function listTenants(options: UsageOptions): Promise<TenantUsage[]> {
  return withModel(options, 'list', async (client, model) => usageOf(client, model, await readTenants(client, model), options.exact === true))
}

/** One tenant (by id or slug) with rows and bytes per table. */
export async function showTenant(options: UsageOptions & { readonly tenant: string }): Promise<TenantUsage> {
  return withModel(options, 'show', async (client, model) => (await usageOf(client, model, [await findTenant(client, model, options.tenant)], options.exact === true))[0]!)
}

/** Suspend a tenant: the HTTP middleware answers its requests with 403 until it is resumed. */
export async function suspendTenant(options: TenantOptions & { readonly tenant: string }): Promise<TenantRow> {
  return changeStatus(options, 'suspend')
}

/** Resume a suspended tenant. */
export async function resumeTenant(options: TenantOptions & { readonly tenant: string }): Promise<TenantRow> {
  return changeStatus(options, 'resume')
}

async function changeStatus(options: TenantOptions & { readonly tenant: string }, what: 'suspend' | 'resume'): Promise<TenantRow> {
  return withModel(options, what, (client, model) =>
    transaction(client, async () => {
      const tenant = await findTenant(client, model, options.tenant)
      const from = what === 'suspend' ? 'active' : 'suspended'
      const to = what === 'suspend' ? 'suspended' : 'active'
      if (tenant.status === to) return tenant
      if (tenant.status !== from) {
        throw new TenantizeError(ErrorCodes.TENANT, `is ${tenant.status}, so it cannot be ${what === 'suspend' ? 'suspended' : 'resumed'}`, {
          object: `tenant ${tenant.slug ?? tenant.id}`,
          fix: tenant.status === 'importing' ? 'let the import finish: run tenantize tenant import again to resume it' : 'run tenantize tenant delete again to finish deleting it',
        })
      }
      await writeStatus(client, model, tenant.id, to)
      return findTenant(client, model, tenant.id)
    }),
  )
}
