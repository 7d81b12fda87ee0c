import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import { introspect, type Catalog } from '../catalog/index.js'
import { proposeConfig, reverseEdges, type InitOptions, type InitResult, type ReverseReach } from '../plan/classify.js'
import { splitKey, type TenantizeConfig } from '../plan/config.js'
import { qualifiedName, quoteIdent } from '../sql/quote.js'

export interface InitConfigOptions extends Omit<InitOptions, 'defaultTenantId' | 'facts'> {
  /** The tenant that owns today's rows; default: the lowest id of an existing tenant table, else a new id. */
  readonly defaultTenantId?: string
  /** statement_timeout for each read of the data (default 5 min). */
  readonly statementTimeoutMs?: number
}

/**
 * Count, for each reverse edge (a table the tenant table or a tenant-scoped table points at), how many of
 * its rows are referenced by one tenant and how many by several. Read-only: one REPEATABLE READ READ ONLY
 * transaction, one scan per edge.
 */
export async function reverseReach(client: pg.ClientBase, catalog: Catalog, options: InitOptions, previous?: TenantizeConfig, statementTimeoutMs = 300_000): Promise<ReverseReach[]> {
  const edges = reverseEdges(catalog, options, previous)
  if (edges.length === 0) return []
  const out: ReverseReach[] = []
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
  try {
    await client.query(`SELECT pg_catalog.set_config('statement_timeout', $1, true)`, [String(statementTimeoutMs)])
    for (const e of edges) {
      const t = splitKey(e.table)
      const p = splitKey(e.parent)
      const match = e.columns.map((c, i) => `p.${quoteIdent(e.parentColumns[i]!)} = c.${quoteIdent(c)}`).join(' AND ')
      // A parent whose tenant is in another table: join along its NOT NULL foreign keys to that table.
      const joins = e.through.map((h, i) => {
        const from = i === 0 ? 'p' : `h${i - 1}`
        const to = splitKey(h.table)
        return ` JOIN ${qualifiedName(to.schema, to.name)} AS h${i} ON ${h.columns.map((c, k) => `h${i}.${quoteIdent(h.referenced[k]!)} = ${from}.${quoteIdent(c)}`).join(' AND ')}`
      }).join('')
      const tenantOf = e.through.length === 0 ? 'p' : `h${e.through.length - 1}`
      const { rows } = await client.query<{ total: string; single: string; multi: string }>(
        `SELECT count(*)::bigint AS total, count(*) FILTER (WHERE r.n = 1)::bigint AS single, count(*) FILTER (WHERE r.n > 1)::bigint AS multi
           FROM ${qualifiedName(t.schema, t.name)} AS c
           CROSS JOIN LATERAL (SELECT count(DISTINCT ${tenantOf}.${quoteIdent(e.parentTenant)}) AS n FROM ${qualifiedName(p.schema, p.name)} AS p${joins} WHERE ${match}) AS r`,
      )
      const r = rows[0]!
      out.push({ ...e, rows: Number(r.total), single: Number(r.single), multi: Number(r.multi) })
    }
  } finally {
    await client.query('ROLLBACK')
  }
  return out
}

/** A default tenant id of the right type for an existing tenant table: its lowest id, or when it is empty a new one. */
async function defaultTenantOf(client: pg.ClientBase, catalog: Catalog, table: { schema: string; name: string }, notes: string[]): Promise<string | undefined> {
  const root = catalog.table(table.schema, table.name)
  const pk = root?.constraints.find((c) => c.type === 'primary key')
  if (root === undefined || pk === undefined || pk.columns.length !== 1) return undefined
  const key = quoteIdent(pk.columns[0]!)
  const { rows } = await client.query<{ id: string | null }>(`SELECT ${key}::text AS id FROM ${qualifiedName(root.schema, root.name)} ORDER BY ${key} LIMIT 1`)
  if (rows[0]?.id != null) return rows[0].id
  const type = root.columns.find((c) => c.name === pk.columns[0])?.type ?? ''
  const id = type === 'uuid' ? randomUUID() : ['bigint', 'integer', 'smallint'].includes(type) ? '1' : 'default'
  notes.push(`${table.schema}.${table.name} is empty: insert the default tenant (id ${id}, see tenant.default in the config) before tenantize apply — existing rows of the other tables will belong to it`)
  return id
}

/**
 * `init` as a library call: introspect, read the facts the classification needs from the data (rows per
 * tenant along reverse paths, the default tenant), and propose a config. Reads only.
 */
export async function initConfig(client: pg.ClientBase, options: InitConfigOptions, previous?: TenantizeConfig): Promise<InitResult & { catalog: Catalog }> {
  const catalog = await introspect(client, options.schemas === undefined ? {} : { schemas: options.schemas })
  const notes: string[] = []
  let defaultTenantId = options.defaultTenantId ?? previous?.tenant.default.id
  const base: InitOptions = { ...options, defaultTenantId: defaultTenantId ?? randomUUID() }
  // The root as classify resolves it (also when the name differs only in case).
  const probe = proposeConfig(catalog, base, previous)
  if (defaultTenantId === undefined && !probe.config.tenant.create) defaultTenantId = await defaultTenantOf(client, catalog, splitKey(probe.config.tenant.table), notes)
  const withId: InitOptions = { ...base, defaultTenantId: defaultTenantId ?? base.defaultTenantId }
  const reverse = await reverseReach(client, catalog, withId, previous, options.statementTimeoutMs)
  const result = proposeConfig(catalog, { ...withId, facts: { reverse } }, previous)
  return { ...result, notes: [...notes, ...result.notes], catalog }
}
