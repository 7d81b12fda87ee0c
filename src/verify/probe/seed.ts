import type { Column, ForeignKeyConstraint, Table } from '../../catalog/types.js'
import { identList, qualifiedName, quoteIdent } from '../../sql/quote.js'
import type { ModelTable, TenantModel } from '../lints/model.js'
import { columnHints, type ColumnHint } from './constraint-values.js'
import { descendants, leafKeyValues, leaves } from './partitions.js'
import type { ProbeSession } from './session.js'
import { COLUMN_TYPES_QUERY, columnType, tenantValueFor, valueFor, type ColumnType, type ColumnTypeRow } from './values.js'

/**
 * Rows for two throw-away tenants in every tenant table, respecting foreign keys, NOT NULL columns,
 * partition bounds and unique constraints. Everything happens inside the probe's transaction.
 */

export type TenantKey = 'A' | 'B'

export interface SeededRow {
  readonly tenant: TenantKey
  /** The table the row physically lives in (a leaf partition for partitioned tables). */
  readonly tableOid: number
  readonly ctid: string
  /** Every column's value as text (null for NULL), as RETURNING gave it. */
  readonly values: Readonly<Record<string, string | null>>
}

/** Values to insert: column → text. */
export type RowValues = Map<string, string>

export const tableSql = (t: { schema: string; name: string }): string => qualifiedName({ schema: t.schema, name: t.name })
const display = (t: { schema: string; name: string }): string => `${t.schema}.${t.name}`

/** Tables in an order where every referenced tenant table comes before the tables that reference it. */
function topological(model: TenantModel, tables: readonly ModelTable[]): ModelTable[] {
  const byOid = new Map(tables.map((m) => [m.table.oid, m]))
  const out: ModelTable[] = []
  const state = new Map<number, 'visiting' | 'done'>()
  const visit = (m: ModelTable): void => {
    if (state.get(m.table.oid) !== undefined) return
    state.set(m.table.oid, 'visiting')
    const parents: ModelTable[] = []
    for (const c of m.table.constraints) {
      if (c.type !== 'foreign key' || c.references.table.oid === m.table.oid) continue
      const p = byOid.get(c.references.table.oid)
      if (p !== undefined) parents.push(p)
      // a foreign key to a partitioned table: its leaves hold the rows
      const ref = model.catalog.tableByOid(c.references.table.oid)
      if (ref?.partitioned === true) for (const leaf of leaves(model.catalog, ref)) { const l = byOid.get(leaf.oid); if (l !== undefined) parents.push(l) }
    }
    const parent = m.table.partitionOf?.parent ?? m.table.inheritsFrom[0]
    const pm = parent === undefined ? undefined : byOid.get(parent.oid)
    if (pm !== undefined) parents.push(pm)
    for (const p of parents) if (state.get(p.table.oid) !== 'visiting') visit(p)
    state.set(m.table.oid, 'done')
    out.push(m)
  }
  for (const m of tables) visit(m)
  return out
}

export class Seeder {
  readonly rows: SeededRow[] = []
  /** Per table oid: why it could not be seeded. */
  readonly failures = new Map<number, string>()
  tenants: Record<TenantKey, string> = { A: '', B: '' }
  private types = new Map<string, ColumnType>()
  private globalRows = new Map<number, Record<string, string | null> | null>()

  constructor(
    private readonly session: ProbeSession,
    private readonly model: TenantModel,
  ) {}

  private hintCache = new Map<number, Map<string, ColumnHint>>()

  /** What the table's CHECK constraints ask of its columns (cached per table). */
  private hints(t: Table): Map<string, ColumnHint> {
    let h = this.hintCache.get(t.oid)
    if (h === undefined) {
      h = columnHints(t)
      this.hintCache.set(t.oid, h)
    }
    return h
  }

  type(t: Table, column: string): ColumnType | undefined {
    return this.types.get(`${t.oid}:${column}`)
  }

  /** Rows of tenant `k` visible through `t` (its own, its partitions', its inheritance children's). */
  rowsOf(t: Table, k: TenantKey): SeededRow[] {
    const oids = descendants(this.model.catalog, t)
    return this.rows.filter((r) => r.tenant === k && oids.has(r.tableOid))
  }

  /** The tables the probe seeds: tenant tables that hold rows (leaves; not partitioned parents, not foreign tables). */
  seedable(): ModelTable[] {
    return this.model.tenantTables().filter((m) => !m.table.foreign && !m.table.partitioned)
  }

  async loadTypes(): Promise<void> {
    const oids = this.model.catalog.tables.map((t) => t.oid)
    const rows = (await this.session.exec(COLUMN_TYPES_QUERY, [oids])).rows as ColumnTypeRow[]
    for (const r of rows) {
      const t = columnType(r)
      this.types.set(`${t.relid}:${t.name}`, t)
    }
  }

  /** Create the two tenants and their rows. */
  async seed(): Promise<void> {
    await this.loadTypes()
    const model = this.model
    if (model.root !== null && model.rootKey !== null) {
      for (const k of ['A', 'B'] as const) {
        const row = await this.insert(model.root, k, true)
        if (typeof row === 'string') {
          this.failures.set(model.root.oid, row)
          break
        }
        this.tenants[k] = row.values[model.rootKey] ?? ''
      }
    }
    if (this.tenants.A === '' || this.tenants.B === '') {
      const sample = model.tables.find((m) => m.class === 'direct')
      const type = sample === undefined || sample.tenantColumn === null ? undefined : this.type(sample.table, sample.tenantColumn)
      this.tenants = { A: tenantValueFor(type), B: tenantValueFor(type) }
    }
    for (const m of topological(model, this.seedable())) {
      if (m.class === 'root') continue
      for (const k of ['A', 'B'] as const) {
        const row = await this.insert(m.table, k, true)
        if (typeof row === 'string') {
          this.failures.set(m.table.oid, row)
          break
        }
      }
    }
  }

  /**
   * Second pass for the tables the first could not fill, now with each tenant's context set: a default
   * of `current_tenant_id()` or a trigger writing another tenant table needs it. Run after the
   * no-context checks (setting the context defines the setting for the rest of the session).
   * Returns the tables it filled.
   */
  async seedWithContext(): Promise<string[]> {
    const filled: string[] = []
    const retry = topological(this.model, this.seedable()).filter((m) => m.class !== 'root' && this.failures.has(m.table.oid))
    for (const m of retry) {
      // A half-seeded table (A only) is finished for B; an empty one gets both.
      const missing = (['A', 'B'] as const).filter((k) => this.rows.every((r) => r.tenant !== k || r.tableOid !== m.table.oid))
      let failed: string | null = null
      for (const k of missing) {
        await this.session.exec('SELECT pg_catalog.set_config($1, $2, true)', [this.model.setting, this.tenants[k]])
        const row = await this.insert(m.table, k, true)
        if (typeof row === 'string') {
          failed = row
          break
        }
      }
      if (failed === null) {
        this.failures.delete(m.table.oid)
        filled.push(`${m.table.schema}.${m.table.name}`)
      } else this.failures.set(m.table.oid, failed)
    }
    await this.session.exec('SELECT pg_catalog.set_config($1, \'\', true)', [this.model.setting])
    return filled
  }

  /**
   * Values for a new row of tenant `k` in `t`, fresh for every column the probe fills; `new` (for the
   * root) gives a key that is neither A's nor B's. `freshParents`: reference new parent rows where the
   * parent does not decide the tenant. `fillDefaults`: fresh values instead of column defaults too (a
   * constant default under a unique key collides). Returns why, when the probe cannot build a row.
   */
  async values(t: Table, k: TenantKey | 'new', options: { freshParents?: boolean; fillDefaults?: boolean } = {}): Promise<RowValues | string> {
    const model = this.model
    const m = model.modelTable(t.oid)
    const out: RowValues = new Map()
    // Foreign keys first: the parent row of the same tenant.
    for (const fk of t.constraints.filter((c): c is ForeignKeyConstraint => c.type === 'foreign key')) {
      if (fk.references.table.oid === t.oid) continue
      const ref = model.catalog.tableByOid(fk.references.table.oid)
      if (ref === undefined) continue
      let parent: Readonly<Record<string, string | null>> | null = null
      if (model.isTenantTable(ref.oid)) {
        if (k === 'new') continue
        // A parent that does not decide the tenant (not the tenant table, no tenant column in the key) may be
        // a new row of its own, so that unique keys over several foreign keys do not collide.
        const decidesTenant = ref.oid === model.root?.oid || (m?.tenantColumn !== null && m?.tenantColumn !== undefined && fk.columns.includes(m.tenantColumn))
        if (options.freshParents === true && !decidesTenant && !ref.partitioned) {
          const fresh = await this.insert(ref, k, false)
          parent = typeof fresh === 'string' ? (this.rowsOf(ref, k)[0]?.values ?? null) : fresh.values
        } else parent = this.rowsOf(ref, k)[0]?.values ?? null
      } else {
        parent = await this.globalRow(ref)
      }
      const nullable = fk.columns.every((c) => t.columns.find((x) => x.name === c)?.nullable ?? false)
      if (parent === null) {
        if (nullable) continue
        return `no row of ${display(ref)} to reference (foreign key ${fk.name})`
      }
      fk.columns.forEach((c, i) => {
        const v = parent[fk.references.columns[i] ?? '']
        if (v !== null && v !== undefined && !out.has(c)) out.set(c, v)
      })
    }
    // The tenant column (the key, for the root).
    if (m !== undefined && m.tenantColumn !== null) {
      if (m.class === 'root') {
        const key = t.columns.find((c) => c.name === m.tenantColumn)
        if (k === 'new' || key === undefined || (key.default === null && key.identity === null)) {
          const fresh = valueFor(this.type(t, m.tenantColumn) ?? fallbackType(t, m.tenantColumn))
          if (fresh === null) return `cannot make a value for ${display(t)}.${m.tenantColumn}`
          out.set(m.tenantColumn, fresh)
        }
      } else if (k !== 'new') out.set(m.tenantColumn, this.tenants[k])
    }
    // Partition bounds: the leaf's own, or (inserting through a partitioned table) its first leaf's.
    const leaf = t.partitioned ? leaves(model.catalog, t)[0] : t
    if (leaf?.partitionOf != null) for (const [c, v] of leafKeyValues(model.catalog, leaf).values) if (!out.has(c)) out.set(c, v)
    // Everything else that must have a value.
    for (const c of t.columns) {
      if (out.has(c.name) || c.generated !== null || c.identity === 'always') continue
      // Defaults are used, unless a constant default collided with a unique key (`fillDefaults`).
      if (c.identity !== null || (c.default !== null && options.fillDefaults !== true) || (c.nullable && c.default === null)) continue
      const v = valueFor(this.type(t, c.name) ?? fallbackType(t, c.name), this.hints(t).get(c.name))
      if (v === null) return `cannot make a value for NOT NULL column ${display(t)}.${c.name} of type ${c.type}`
      out.set(c.name, v)
    }
    return out
  }

  /**
   * Find the seeded rows again after seeding: a trigger fired by a later insert (a balance kept by a
   * ledger, a counter) may have updated one, which moves it to a new ctid. Rows are found by primary key;
   * a row that is gone (or cannot be found) is dropped from the probe's rows.
   */
  async relocate(): Promise<void> {
    const kept: SeededRow[] = []
    for (const row of this.rows) {
      const t = this.model.catalog.tableByOid(row.tableOid)
      const here = await this.session.exec(`SELECT 1 FROM ${t === undefined ? 'pg_catalog.pg_class' : tableSql(t)} WHERE tableoid = $1::oid AND ctid = $2::tid`, [row.tableOid, row.ctid])
      if (here.rows.length > 0 || t === undefined) {
        kept.push(row)
        continue
      }
      const pk = t.constraints.find((c) => c.type === 'primary key')?.columns ?? []
      if (pk.length === 0 || pk.some((c) => row.values[c] === null || row.values[c] === undefined)) continue
      const where = pk.map((c, i) => `${quoteIdent(c)} = $${i + 1}`).join(' AND ')
      const found = await this.session.exec(`SELECT tableoid::int8 AS tz_tableoid, ctid::text AS tz_ctid, ${returnValues(t)} AS tz_values FROM ${tableSql(t)} WHERE ${where}`, pk.map((c) => row.values[c]))
      const r = found.rows[0] as Record<string, unknown> | undefined
      if (r !== undefined) kept.push({ tenant: row.tenant, tableOid: Number(r['tz_tableoid']), ctid: String(r['tz_ctid']), values: toRecord(t.columns, r['tz_values'] as (string | null)[]) })
    }
    this.rows.splice(0, this.rows.length, ...kept)
  }

  /** A row of a shared (global) table to reference: an existing one, else one the probe inserts. */
  private async globalRow(t: Table): Promise<Record<string, string | null> | null> {
    if (this.globalRows.has(t.oid)) return this.globalRows.get(t.oid) ?? null
    this.globalRows.set(t.oid, null)
    const cols = t.columns.map((c) => `${quoteIdent(c.name)}::text`).join(', ')
    const found = await this.session.step(`SELECT ARRAY[${cols}] AS v FROM ${tableSql(t)} LIMIT 1`)
    let row: Record<string, string | null> | null = null
    if (found.ok && found.rows[0] !== undefined) row = toRecord(t.columns, found.rows[0]['v'] as (string | null)[])
    else {
      const inserted = await this.insert(t, 'A', false)
      if (typeof inserted !== 'string') row = inserted.values
    }
    this.globalRows.set(t.oid, row)
    return row
  }

  /**
   * Insert one row (as the current role) and, when `record`, remember it. Retries with fresh values on a
   * unique or partition-bound violation. Returns the row, or why it could not be inserted.
   */
  async insert(t: Table, k: TenantKey, record: boolean): Promise<SeededRow | string> {
    const retryBounds = t.partitionOf !== null && leafKeyValues(this.model.catalog, t).retry
    let last = ''
    let fillDefaults = false
    for (let attempt = 0; attempt < (retryBounds ? 30 : 8); attempt++) {
      const values = await this.values(t, k, { fillDefaults })
      if (typeof values === 'string') return values
      const { text, params } = insertSql(t, values)
      const result = await this.session.step(text, params)
      if (result.ok) {
        const r = result.rows[0]!
        const row: SeededRow = { tenant: k, tableOid: Number(r['tz_tableoid']), ctid: String(r['tz_ctid']), values: toRecord(t.columns, r['tz_values'] as (string | null)[]) }
        if (record) this.rows.push(row)
        return row
      }
      last = `${result.code}: ${result.message}`
      if (result.code === '23505') fillDefaults = true
      else if (result.code !== '23514') break
    }
    return `inserting a row into ${display(t)} failed (${last})`
  }
}

/** `INSERT … VALUES … RETURNING` the row's location and every column as text. */
export function insertSql(t: Table, values: RowValues, returning = true): { text: string; params: string[] } {
  const cols = [...values.keys()]
  const params = [...values.values()]
  const overriding = cols.some((c) => t.columns.find((x) => x.name === c)?.identity === 'always') ? ' OVERRIDING SYSTEM VALUE' : ''
  const body = cols.length === 0 ? 'DEFAULT VALUES' : `(${identList(cols)})${overriding} VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`
  const ret = returning ? ` RETURNING tableoid::int8 AS tz_tableoid, ctid::text AS tz_ctid, ${returnValues(t)} AS tz_values` : ''
  return { text: `INSERT INTO ${tableSql(t)} ${body}${ret}`, params }
}

/** `ARRAY[col::text, …]` over every column (NULL when there are none). */
function returnValues(t: Table): string {
  return t.columns.length === 0 ? 'NULL::text[]' : `ARRAY[${t.columns.map((c) => `${quoteIdent(c.name)}::text`).join(', ')}]`
}

function toRecord(columns: readonly Column[], values: readonly (string | null)[] | null): Record<string, string | null> {
  const out: Record<string, string | null> = {}
  columns.forEach((c, i) => {
    out[c.name] = values?.[i] ?? null
  })
  return out
}

/** Without the type query's answer (should not happen), guess from the catalog's type text. */
function fallbackType(t: Table, column: string): ColumnType {
  const type = t.columns.find((c) => c.name === column)?.type ?? 'text'
  const name = ({ integer: 'int4', bigint: 'int8', smallint: 'int2', boolean: 'bool', 'timestamp with time zone': 'timestamptz' } as Record<string, string>)[type] ?? type
  return { relid: t.oid, name: column, typeName: name, category: 'S', maxLength: null, precision: null, scale: null, labels: [] }
}
