import { createHash } from 'node:crypto'
import type pg from 'pg'
import { ErrorCodes, TenantizeError, type Problem } from '../errors.js'
import { runUnits, sleep, type MigrateEvent, type RunnerOptions, type UnitContext } from '../migrate/index.js'
import { identList, qualifiedName, quoteIdent } from '../sql/quote.js'
import { pacedBatch, pacer } from './pace.js'
import { tenantIdType, unknownTenancy, type TenantEdge, type TenantModel, type TenantTable } from './model.js'
import { transaction, withModel, type TenantOptions } from './session.js'
import { findTenant, forgetTenant, writeStatus, type TenantRow } from './store.js'

/** Ledger scope of tenant lifecycle runs (`delete:<id>`, `import:<id>`): who ran them and when. */
export const TENANTS_SCOPE = 'tenants'

export interface DeleteTenantOptions extends TenantOptions, Omit<RunnerOptions, 'databaseUrl' | 'dryRun' | 'backupFile'> {
  /** Id or slug. */
  readonly tenant: string
  /** Count the rows per table; delete nothing. */
  readonly dryRun?: boolean
  /**
   * Delete even though rows of shared tables (global, excluded, unclassified) reference the tenant's rows:
   * their foreign keys' own ON DELETE actions apply (CASCADE deletes, SET NULL clears them).
   */
  readonly allowShared?: boolean
  /** The largest batch in rows (default: the config's batchSize); each batch is sized to write about 1 MB of WAL. */
  readonly batchSize?: number
  /** Pause between batches, ms (default 10). */
  readonly batchPauseMs?: number
}

export interface TableCount {
  readonly table: string
  readonly rows: number
}

export interface DeleteTenantResult {
  readonly tenant: TenantRow
  /** Rows per tenant table, children first (the order they are deleted in); counted before deleting. */
  readonly tables: readonly TableCount[]
  /** Rows of shared tables that reference the tenant's rows. */
  readonly shared: readonly { readonly table: string; readonly foreignKey: string; readonly references: string; readonly rows: number; readonly onDelete: string }[]
  readonly dryRun: boolean
  readonly deleted: number
}

/** Foreign keys inside a cycle of the graph (a self-reference, or tables referencing each other). */
function cyclicEdges(model: TenantModel): TenantEdge[] {
  const next = new Map<string, string[]>()
  for (const e of model.edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to])
  const reaches = (from: string, target: string): boolean => {
    const seen = new Set<string>()
    const stack = [from]
    while (stack.length > 0) {
      const k = stack.pop()!
      if (k === target) return true
      if (seen.has(k)) continue
      seen.add(k)
      stack.push(...(next.get(k) ?? []))
    }
    return false
  }
  return model.edges.filter((e) => e.to !== model.root.key && reaches(e.to, e.from))
}

/**
 * How a batch finds its rows: the primary key, else the physical row address. It returns how many rows it
 * deleted and the WAL position after them (src/tenants/pace.ts sizes the next batch by the WAL it wrote).
 */
function batchDelete(t: TenantTable, idType: string): string {
  const col = quoteIdent(t.column)
  const pk = t.table.constraints.find((c) => c.type === 'primary key')
  const k = pk === undefined ? undefined : identList(pk.columns)
  const del = k !== undefined
    ? `DELETE FROM ${t.sql} WHERE (${k}) IN (SELECT ${k} FROM ${t.sql} WHERE ${col} = $1::${idType} LIMIT $2)`
    : t.table.kind === 'partitioned'
      ? `DELETE FROM ${t.sql} WHERE (tableoid, ctid) IN (SELECT tableoid, ctid FROM ${t.sql} WHERE ${col} = $1::${idType} LIMIT $2)`
      : `DELETE FROM ${t.sql} WHERE ctid = ANY (ARRAY(SELECT ctid FROM ${t.sql} WHERE ${col} = $1::${idType} LIMIT $2))`
  return `WITH d AS (${del} RETURNING 1) SELECT count(*)::int AS n, pg_catalog.pg_current_wal_insert_lsn()::text AS lsn FROM d`
}

export async function countRows(client: Pick<pg.Client, 'query'>, model: TenantModel, tenantId: string, order: readonly string[]): Promise<TableCount[]> {
  const out: TableCount[] = []
  for (const key of order) {
    const t = model.table(key)!
    const { rows } = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${t.sql} WHERE ${quoteIdent(t.column)} = $1::${tenantIdType(model.config)}`, [tenantId])
    out.push({ table: key, rows: Number(rows[0]?.n ?? 0) })
  }
  return out
}

async function sharedRows(client: pg.Client, model: TenantModel, tenantId: string): Promise<DeleteTenantResult['shared']> {
  const out: DeleteTenantResult['shared'][number][] = []
  for (const s of model.shared) {
    const to = model.table(s.to)!
    const match = s.fk.columns.map((c, i) => `p.${quoteIdent(s.fk.references.columns[i]!)} = f.${quoteIdent(c)}`).join(' AND ')
    const { rows } = await client.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM ${qualifiedName(s.from.schema, s.from.name)} AS f
        WHERE EXISTS (SELECT 1 FROM ${to.sql} AS p WHERE p.${quoteIdent(to.column)} = $1::${tenantIdType(model.config)} AND ${match})`,
      [tenantId],
    )
    const n = Number(rows[0]?.n ?? 0)
    if (n > 0) out.push({ table: `${s.from.schema}.${s.from.name}`, foreignKey: s.fk.name, references: s.to, rows: n, onDelete: s.fk.onDelete })
  }
  return out
}

/** The batched deletion the runner runs as one unit: status `deleting`, cycles cut, children first, the tenant row last. */
async function deleteUnit(ctx: UnitContext, model: TenantModel, tenant: TenantRow, counts: readonly TableCount[], options: DeleteTenantOptions, name: string): Promise<void> {
  const client = ctx.client
  const idType = tenantIdType(model.config)
  const size = options.batchSize ?? model.config.batchSize
  const pause = options.batchPauseMs ?? 10
  await transaction(client, () => writeStatus(client, model, tenant.id, 'deleting'))
  const total = counts.reduce((a, c) => a + c.rows, 0)
  let done = 0
  const started = performance.now()
  const progress = (): void => {
    const seconds = (performance.now() - started) / 1000
    const rate = seconds > 0 ? done / seconds : 0
    ctx.emit({ event: 'progress', migration: name, done, total, rowsPerSecond: rate, etaSeconds: rate > 0 ? Math.max(0, total - done) / rate : null })
  }
  // A foreign key inside a cycle (a self-reference, two tables referencing each other) would stop the
  // first batch: its nullable columns are cleared first, on the tenant's rows only.
  for (const e of cyclicEdges(model)) {
    const t = model.table(e.from)!
    if (!e.fk.columns.every((c) => t.table.columns.find((col) => col.name === c)?.nullable === true) || e.fk.columns.includes(t.column)) continue
    const set = e.fk.columns.map((c) => `${quoteIdent(c)} = NULL`).join(', ')
    const notNull = e.fk.columns.map((c) => `${quoteIdent(c)} IS NOT NULL`).join(' OR ')
    await ctx.retrying(`${t.key} ${e.fk.name}`, async () => {
      await transaction(client, async () => {
        await client.query(`UPDATE ${t.sql} SET ${set} WHERE ${quoteIdent(t.column)} = $1::${idType} AND (${notNull})`, [tenant.id])
      })
    })
  }
  for (const key of model.childrenFirst) {
    if (key === model.root.key) continue
    const t = model.table(key)!
    const sql = batchDelete(t, idType)
    const pace = pacer(size)
    for (;;) {
      const { rows: n, waitMs } = await pacedBatch(client, pace, pause, async () => {
        let batch = { rows: 0, lsn: '' }
        await ctx.retrying(`${t.key} delete`, async () => {
          await transaction(client, async () => {
            const row = (await client.query<{ n: number; lsn: string }>(sql, [tenant.id, pace.size])).rows[0]!
            batch = { rows: row.n, lsn: row.lsn }
          })
        })
        return batch
      })
      if (n === 0) break
      done += n
      progress()
      if (waitMs > 0) await sleep(waitMs)
    }
  }
  await ctx.retrying(`${model.root.key} delete`, async () => {
    await transaction(client, async () => {
      await client.query(`DELETE FROM ${model.root.sql} WHERE ${quoteIdent(model.root.column)} = $1::${idType}`, [tenant.id])
      await forgetTenant(client, tenant.id)
    })
  })
  done += 1
  progress()
}

/**
 * Delete a tenant and every row it owns: online (small batches, each its own transaction, lock_timeout
 * with retries), children before parents along the foreign keys, the tenant row last. Runs through the
 * migration runner (lock, ledger scope `tenants`: who and when), and resumes where it stopped when run
 * again after a crash. Refuses the default tenant, and a tenant whose rows shared tables reference
 * unless `allowShared`. Other tenants' rows are not touched: every statement is bounded by the tenant column.
 */
export async function deleteTenant(options: DeleteTenantOptions): Promise<DeleteTenantResult> {
  const prepared = await withModel(options, 'delete', async (client, model, catalog) => {
    const tenant = await findTenant(client, model, options.tenant)
    if (tenant.id === model.config.tenant.default.id) {
      throw new TenantizeError(ErrorCodes.TENANT, 'is the default tenant, which owns the rows the single-tenant app wrote', { object: `tenant ${tenant.slug ?? tenant.id}`, fix: 'delete another tenant; to undo the conversion, use tenantize rollback' })
    }
    const unknown = unknownTenancy(catalog, model, 'delete')
    if (unknown.length > 0) {
      throw new TenantizeError(ErrorCodes.TENANT, `${unknown.length} table(s) created after the conversion may hold this tenant's rows and delete cannot tell which; nothing was deleted`, { object: `tenant ${tenant.slug ?? tenant.id}`, problems: unknown })
    }
    const tables = await countRows(client, model, tenant.id, model.childrenFirst)
    const shared = await sharedRows(client, model, tenant.id)
    const blocking: Problem[] = shared
      .filter((s) => options.allowShared !== true || s.onDelete === 'no action' || s.onDelete === 'restrict')
      .map((s) => ({ object: `${s.table} ${s.foreignKey}`, message: `${s.rows} row(s) of this shared table reference the tenant's rows in ${s.references} (ON DELETE ${s.onDelete.toUpperCase()})`, fix: s.onDelete === 'no action' || s.onDelete === 'restrict' ? 'delete or re-point those rows first' : 'pass --allow-shared to let the foreign key\'s ON DELETE action apply to them' }))
    if (blocking.length > 0 && options.dryRun !== true) {
      throw new TenantizeError(ErrorCodes.TENANT, 'rows of shared tables reference this tenant\'s rows; nothing was deleted', { object: `tenant ${tenant.slug ?? tenant.id}`, problems: blocking })
    }
    return { model, tenant, tables, shared }
  })
  const { model, tenant, tables, shared } = prepared
  const withRoot = [...tables.filter((t) => t.table !== model.root.key), { table: model.root.key, rows: 1 }]
  if (options.dryRun === true) return { tenant, tables: withRoot, shared, dryRun: true, deleted: 0 }
  const name = `delete:${tenant.id}`
  await runUnits('up', { ...options, scope: TENANTS_SCOPE }, async (client) => {
    // Under the lock: the tenant may have been deleted meanwhile.
    await findTenant(client, model, tenant.id)
    return [
      {
        name,
        version: String(Date.now()),
        checksum: createHash('sha256').update(name).digest('hex'),
        source: `tenant delete ${tenant.slug ?? tenant.id}`,
        noTransaction: true,
        statements: [],
        custom: (ctx: UnitContext) => deleteUnit(ctx, model, tenant, withRoot, options, name),
      },
    ]
  })
  return { tenant, tables: withRoot, shared, dryRun: false, deleted: withRoot.reduce((a, t) => a + t.rows, 0) }
}

export type { MigrateEvent }
