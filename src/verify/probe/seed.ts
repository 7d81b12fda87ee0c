import type { Column, ForeignKeyConstraint, Table } from '../../catalog/types.js'
import { identList, qualifiedName, quoteIdent, quoteLiteral } from '../../sql/quote.js'
import type { ModelTable, TenantModel } from '../lints/model.js'
import { columnHints, hintsFrom, mergeHints, type TableHints } from './constraint-values.js'
import { descendants, leafKeyValues, leaves } from './partitions.js'
import type { ProbeSession, StepResult } from './session.js'
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

/**
 * What the seeder learned about a table from the errors of earlier inserts, used for every later row of
 * it (its own retries, and the rows the checks build): columns to fill although nullable, defaults to
 * replace, which variant of value a column needs, and how long its strings may be.
 */
interface Tweaks {
  readonly fill: Set<string>
  /**
   * NULL-able foreign-key columns to leave NULL although a parent row exists: a CHECK asked for exactly one
   * of several references (`(plan_id IS NOT NULL) <> (subscription_id IS NOT NULL)`, `num_nonnulls(a, b) = 1`).
   */
  readonly leaveNull: Set<string>
  /** A value a column must take, found by {@link solveCheck} (the enum label a CHECK allows with the NULLs left). */
  readonly pinned: Map<string, string>
  /** CHECK constraints {@link solveCheck} has searched already. */
  readonly solved: Set<string>
  readonly override: Set<string>
  readonly variant: Map<string, number>
  readonly maxLength: Map<string, number>
  /** Replace every default (one failed: e.g. `current_setting('app.user_id')` with no such setting). */
  overrideAll: boolean
  /** Which existing row of each global parent to reference (the next one after a unique violation). */
  globalOffset: number
  /**
   * How far to rotate the probe rows of a tenant parent among the foreign keys that reference it (a CHECK
   * between two of them, `entity0 <> entity1` or `tag1 < tag2`, refused the order tried before).
   */
  parentShift: number
}

/** How many values a column cycles through before the seeder stops trying other shapes. */
const VARIANTS = 6

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
  private globalRows = new Map<string, Record<string, string | null> | null>()

  constructor(
    private readonly session: ProbeSession,
    private readonly model: TenantModel,
  ) {}

  private hintCache = new Map<number, TableHints>()
  private tweakCache = new Map<number, Tweaks>()

  /** What the table's CHECK constraints, and those of its columns' domains, ask of its columns (cached per table). */
  private hints(t: Table): TableHints {
    let h = this.hintCache.get(t.oid)
    if (h === undefined) {
      h = columnHints(t)
      for (const c of t.columns) {
        const checks = this.type(t, c.name)?.domainChecks ?? []
        if (checks.length === 0) continue
        const domain = hintsFrom(checks.map((x) => x.definition), (name) => (name === 'value' ? c.name : name))
        h.columns.set(c.name, mergeHints(domain.columns.get(c.name), h.columns.get(c.name)))
      }
      this.hintCache.set(t.oid, h)
    }
    return h
  }

  private tweaks(t: Table): Tweaks {
    let tw = this.tweakCache.get(t.oid)
    if (tw === undefined) {
      tw = { fill: new Set(), leaveNull: new Set(), pinned: new Map(), solved: new Set(), override: new Set(), variant: new Map(), maxLength: new Map(), overrideAll: false, globalOffset: 0, parentShift: 0 }
      this.tweakCache.set(t.oid, tw)
    }
    return tw
  }

  type(t: Table, column: string): ColumnType | undefined {
    return this.types.get(`${t.oid}:${column}`)
  }

  /** Rows of tenant `k` visible through `t` (its own, its partitions', its inheritance children's). */
  rowsOf(t: Table, k: TenantKey): SeededRow[] {
    const oids = descendants(this.model.catalog, t)
    return this.rows.filter((r) => r.tenant === k && oids.has(r.tableOid))
  }

  /**
   * How many probe rows per tenant `t` gets: as many as the most foreign keys one tenant table has to it
   * (or to the partitioned table it is a partition of), so that a child with two keys to it can point at
   * two different rows (a CHECK `entity0 <> entity1` between them). The tenant table itself: one.
   */
  private rowsPerTenant(t: Table): number {
    if (this.perTenant === null) {
      this.perTenant = new Map()
      for (const m of this.model.tenantTables()) {
        const keys = new Map<number, number>()
        for (const c of m.table.constraints) if (c.type === 'foreign key' && c.references.table.oid !== m.table.oid) keys.set(c.references.table.oid, (keys.get(c.references.table.oid) ?? 0) + 1)
        for (const [oid, n] of keys) if (n > (this.perTenant.get(oid) ?? 1)) this.perTenant.set(oid, n)
      }
    }
    if (t.oid === this.model.root?.oid) return 1
    let n = 1
    for (let x: Table | undefined = t; x !== undefined; x = x.partitionOf === null ? undefined : this.model.catalog.tableByOid(x.partitionOf.parent.oid)) n = Math.max(n, this.perTenant.get(x.oid) ?? 1)
    return n
  }

  private perTenant: Map<number, number> | null = null

  /**
   * Foreign keys left NULL because their tenant parent had no probe row yet (two tables that reference
   * each other): per table oid, the keys to fill in once both are seeded.
   */
  private deferred = new Map<number, Set<ForeignKeyConstraint>>()

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
        const owned = await this.seedOwnedByRoot(model.root, model.rootKey, k)
        const row = owned ?? (await this.insert(model.root, k, true))
        if (typeof row === 'string') {
          this.failures.set(model.root.oid, row)
          break
        }
        this.tenants[k] = row.values[model.rootKey] ?? ''
      }
    }
    if (this.tenants.A === '' || this.tenants.B === '') {
      // The narrowest type among the tenant columns, so the invented ids fit every one of them.
      const types = model.tables.filter((m) => m.class === 'direct' && m.tenantColumn !== null).map((m) => this.type(m.table, m.tenantColumn!)).filter((x): x is ColumnType => x !== undefined)
      const type = types.find((x) => x.typeName === 'int2') ?? types.find((x) => x.typeName === 'int4') ?? types[0]
      this.tenants = { A: tenantValueFor(type), B: tenantValueFor(type) }
    }
    for (const m of topological(model, this.seedable())) {
      if (m.class === 'root') continue
      for (const k of ['A', 'B'] as const) {
        const row = await this.insertRows(m.table, k)
        if (row !== null) {
          this.failures.set(m.table.oid, row)
          break
        }
      }
    }
    await this.linkDeferred()
  }

  /**
   * A tenant table whose NOT NULL foreign keys point at tenant tables (its settings, its claim: rows it
   * owns one to one, which take their tenant from it): those rows must exist before the tenant's row, and
   * they name the tenant's id, which the tenant table's row does not have yet. So the id is chosen first
   * (fresh, or from the key's default), the owned rows are inserted with it (their key to the tenant
   * table is checked at commit: the probe never commits), then the tenant's row. Undefined when the tenant
   * table has no such key (the usual insert does it); else the row, or why it could not be inserted.
   */
  private async seedOwnedByRoot(root: Table, rootKey: string, k: TenantKey): Promise<SeededRow | string | undefined> {
    const notNull = (c: string): boolean => root.columns.find((x) => x.name === c)?.nullable === false
    const owned = root.constraints.filter((c): c is ForeignKeyConstraint => c.type === 'foreign key' && c.references.table.oid !== root.oid && this.model.isTenantTable(c.references.table.oid) && c.columns.every(notNull))
    const key = root.columns.find((c) => c.name === rootKey)
    if (owned.length === 0 || key === undefined || key.identity !== null) return undefined
    let id: string | null
    if (key.default === null) id = valueFor(this.type(root, rootKey) ?? fallbackType(root, rootKey))
    else {
      const r = await this.session.step(`SELECT (${key.default})::text AS v`, [])
      id = r.ok ? ((r.rows[0]?.['v'] as string | null | undefined) ?? null) : null
    }
    if (id === null) return `cannot make a value for ${display(root)}.${rootKey} before the rows it references (foreign keys ${owned.map((c) => c.name).join(', ')})`
    this.tenants[k] = id
    this.rootIds.set(k, id)
    for (const fk of owned) {
      const ref = this.model.catalog.tableByOid(fk.references.table.oid)
      if (ref === undefined || this.rowsOf(ref, k).length > 0) continue
      const row = await this.insert(ref, k, true)
      if (typeof row === 'string') return `the row of ${display(ref)} it references (foreign key ${fk.name}) could not be inserted first: ${row}`
    }
    return this.insert(root, k, true)
  }

  /** The tenant ids {@link seedOwnedByRoot} chose before inserting the tenant's row. */
  private rootIds = new Map<TenantKey, string>()

  /**
   * The tenant's probe rows of `t` (see {@link rowsPerTenant}); the rows after the first are extra
   * parents, so only the first must succeed. Returns why the first could not be inserted, else null.
   */
  private async insertRows(t: Table, k: TenantKey): Promise<string | null> {
    const n = this.rowsPerTenant(t)
    for (let i = 0; i < n; i++) {
      const row = await this.insert(t, k, true)
      if (typeof row === 'string') return i === 0 ? ((await this.madeByTriggers(t, k)) ? null : row) : null
    }
    return null
  }

  /**
   * A table the app fills only through triggers on other tables (Lemmy's report_combined: one row per
   * post_report, comment_report, … under a CHECK that exactly one of their keys is set, each key unique):
   * the probe's own insert cannot succeed, but seeding the tables before it already gave tenant `k` a row
   * here. That row is the tenant's probe row (the tenants are the probe's own: no one else's rows carry
   * their ids). True when one was found.
   */
  private async madeByTriggers(t: Table, k: TenantKey): Promise<boolean> {
    const column = this.model.modelTable(t.oid)?.tenantColumn ?? null
    if (column === null || this.tenants[k] === '' || this.rowsOf(t, k).length > 0) return false
    const found = await this.session.step(`SELECT tableoid::int8 AS tz_tableoid, ctid::text AS tz_ctid, ${returnValues(t)} AS tz_values FROM ${tableSql(t)} WHERE ${quoteIdent(column)}::text = $1 LIMIT 1`, [this.tenants[k]])
    const r = found.ok ? found.rows[0] : undefined
    if (r === undefined) return false
    this.rows.push({ tenant: k, tableOid: Number(r['tz_tableoid']), ctid: String(r['tz_ctid']), values: toRecord(t.columns, r['tz_values'] as (string | null)[]) })
    return true
  }

  /**
   * Point the foreign keys seeded NULL (their parent was not seeded yet: a cycle through NULL-able keys)
   * at the parent's probe row of the same tenant, now that it exists. A row the database refuses to
   * update keeps its NULL: it is probed all the same.
   */
  private async linkDeferred(): Promise<void> {
    for (const [oid, fks] of this.deferred) {
      const t = this.model.catalog.tableByOid(oid)
      if (t === undefined) continue
      for (const fk of fks) {
        const ref = this.model.catalog.tableByOid(fk.references.table.oid)
        if (ref === undefined) continue
        for (const [i, row] of this.rows.entries()) {
          if (row.tableOid !== oid) continue
          const parent = this.rowsOf(ref, row.tenant)[0]?.values
          const values = fk.columns.map((_, j) => parent?.[fk.references.columns[j] ?? ''] ?? null)
          if (values.some((v) => v === null) || fk.columns.every((c, j) => row.values[c] === values[j])) continue
          const set = fk.columns.map((c, j) => `${quoteIdent(c)} = $${j + 3}`).join(', ')
          const r = await this.session.step(
            `UPDATE ${tableSql(t)} SET ${set} WHERE tableoid = $1::oid AND ctid = $2::tid RETURNING tableoid::int8 AS tz_tableoid, ctid::text AS tz_ctid, ${returnValues(t)} AS tz_values`,
            [row.tableOid, row.ctid, ...values],
          )
          const updated = r.ok ? r.rows[0] : undefined
          if (updated !== undefined) this.rows[i] = { tenant: row.tenant, tableOid: Number(updated['tz_tableoid']), ctid: String(updated['tz_ctid']), values: toRecord(t.columns, updated['tz_values'] as (string | null)[]) }
        }
      }
    }
    this.deferred.clear()
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
        const row = await this.insertRows(m.table, k)
        if (row !== null) {
          failed = row
          break
        }
      }
      if (failed === null) {
        this.failures.delete(m.table.oid)
        filled.push(`${m.table.schema}.${m.table.name}`)
      } else this.failures.set(m.table.oid, failed)
    }
    await this.linkDeferred()
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
    const tw = this.tweaks(t)
    // The how-manieth foreign key to each parent this is: several keys to one parent take different rows of it.
    const uses = new Map<number, number>()
    // Foreign keys first: the parent row of the same tenant.
    for (const fk of t.constraints.filter((c): c is ForeignKeyConstraint => c.type === 'foreign key')) {
      if (fk.references.table.oid === t.oid) continue
      const ref = model.catalog.tableByOid(fk.references.table.oid)
      if (ref === undefined) continue
      const use = uses.get(ref.oid) ?? 0
      uses.set(ref.oid, use + 1)
      let parent: Readonly<Record<string, string | null>> | null = null
      let deferrable = false
      if (model.isTenantTable(ref.oid)) {
        if (k === 'new') continue
        // A parent that does not decide the tenant (not the tenant table, no tenant column in the key) may be
        // a new row of its own, so that unique keys over several foreign keys do not collide.
        const decidesTenant = ref.oid === model.root?.oid || (m?.tenantColumn !== null && m?.tenantColumn !== undefined && fk.columns.includes(m.tenantColumn))
        if (options.freshParents === true && !decidesTenant && !ref.partitioned) {
          const fresh = await this.insert(ref, k, false)
          parent = typeof fresh === 'string' ? (this.rowsOf(ref, k)[0]?.values ?? null) : fresh.values
        } else {
          const rows = this.rowsOf(ref, k)
          parent = rows.length === 0 ? null : rows[(use + tw.parentShift) % rows.length]!.values
          deferrable = rows.length === 0
          // A row the tenant's row will reference (seedOwnedByRoot): its key to the tenant table, checked at commit, names the chosen id.
          const chosen = this.rootIds.get(k)
          if (parent === null && chosen !== undefined && ref.oid === model.root?.oid && model.rootKey !== null && fk.columns.length === 1 && fk.references.columns[0] === model.rootKey && fk.deferrable) parent = { [model.rootKey]: chosen }
        }
      } else {
        parent = (use > 0 ? await this.globalRow(ref, tw.globalOffset + use) : null) ?? (await this.globalRow(ref, tw.globalOffset))
      }
      // A NULL in any column of a MATCH SIMPLE key (all of them for MATCH FULL) means no reference: the
      // composite key (tenant column, parent id) of a NULL-able foreign key is skipped that way too.
      const canBeNull = (c: string): boolean => (t.columns.find((x) => x.name === c)?.nullable ?? false) && !tw.fill.has(c)
      const nullable = fk.match === 'full' ? fk.columns.every(canBeNull) : fk.columns.some(canBeNull)
      if (nullable && fk.columns.some((c) => tw.leaveNull.has(c) && canBeNull(c))) continue
      if (parent === null) {
        if (nullable) {
          if (deferrable && k !== 'new') this.deferred.set(t.oid, (this.deferred.get(t.oid) ?? new Set()).add(fk))
          continue
        }
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
        const chosen = k === 'new' ? undefined : this.rootIds.get(k)
        if (chosen !== undefined && !tw.fill.has(m.tenantColumn)) out.set(m.tenantColumn, chosen)
        else if (k === 'new' || key === undefined || (key.default === null && key.identity === null)) {
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
    const hints = this.hints(t)
    for (const c of t.columns) {
      if (out.has(c.name) || c.generated !== null || c.identity === 'always') continue
      const type = this.type(t, c.name) ?? fallbackType(t, c.name)
      // Defaults are used, unless a constant default collided with a unique key (`fillDefaults`) or failed a check.
      const replaceDefault = options.fillDefaults === true || tw.overrideAll || tw.override.has(c.name)
      const needed = !c.nullable || type.domainNotNull || tw.fill.has(c.name)
      if (c.identity !== null || (c.default !== null && !replaceDefault) || (c.default === null && !needed)) continue
      let v = tw.pinned.get(c.name) ?? valueFor(type, hints.columns.get(c.name), tw.variant.get(c.name) ?? 0)
      if (v === null) {
        if (!needed) continue
        return `cannot make a value for NOT NULL column ${display(t)}.${c.name} of type ${c.type}`
      }
      const max = tw.maxLength.get(c.name)
      if (max !== undefined && v.length > max) v = v.slice(-max)
      out.set(c.name, v)
    }
    orderRelated(out, hints, (c) => this.type(t, c)?.category ?? '')
    // A NOT NULL reference to the table itself: the row points at itself.
    for (const fk of t.constraints.filter((c): c is ForeignKeyConstraint => c.type === 'foreign key' && c.references.table.oid === t.oid)) {
      if (fk.columns.every((c) => t.columns.find((x) => x.name === c)?.nullable ?? true) && !fk.columns.some((c) => tw.fill.has(c))) continue
      for (const [i, c] of fk.columns.entries()) {
        const ref = fk.references.columns[i]!
        let v = out.get(ref)
        if (v === undefined) {
          const fresh = valueFor(this.type(t, ref) ?? fallbackType(t, ref), hints.columns.get(ref))
          if (fresh === null) return `cannot make a value for ${display(t)}.${ref} for the row to reference itself (foreign key ${fk.name})`
          v = fresh
          out.set(ref, v)
        }
        out.set(c, v)
      }
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

  /** A row of a shared (global) table to reference: the `offset`-th existing one, else one the probe inserts. */
  private async globalRow(t: Table, offset = 0): Promise<Record<string, string | null> | null> {
    const key = `${t.oid}:${offset}`
    if (this.globalRows.has(key)) return this.globalRows.get(key) ?? null
    this.globalRows.set(key, null)
    const cols = t.columns.map((c) => `${quoteIdent(c.name)}::text`).join(', ')
    const found = await this.session.step(`SELECT ARRAY[${cols}] AS v FROM ${tableSql(t)} LIMIT 1 OFFSET $1`, [offset])
    let row: Record<string, string | null> | null = null
    if (found.ok && found.rows[0] !== undefined) row = toRecord(t.columns, found.rows[0]['v'] as (string | null)[])
    else {
      const inserted = await this.insert(t, 'A', false)
      if (typeof inserted !== 'string') row = inserted.values
    }
    this.globalRows.set(key, row)
    return row
  }

  /**
   * Insert one row (as the current role) and, when `record`, remember it. When PostgreSQL refuses the row,
   * learns from the error (a check constraint → the values it lists, another shape of value, the nullable
   * columns it reads, no default; too long → shorter; a unique or exclusion violation → fresh values and
   * another global parent) and tries again. Returns the row, or precisely why it could not be inserted.
   */
  async insert(t: Table, k: TenantKey, record: boolean): Promise<SeededRow | string> {
    const retryBounds = t.partitionOf !== null && leafKeyValues(this.model.catalog, t).retry
    let last: StepResult | null = null
    let fillDefaults = false
    let blind = 0
    let attempts = 0
    for (; attempts < (retryBounds ? 30 : 16); attempts++) {
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
      last = result
      if (result.code === '23505' || result.code === '23P01') {
        // A collision: fresh values for defaulted columns too, and the next row of a global parent.
        if (fillDefaults) this.tweaks(t).globalOffset++
        fillDefaults = true
        continue
      }
      if (result.code === '23514' && (await this.solveCheck(t, result.constraint, values))) continue
      if (this.learn(t, result, values)) continue
      // Fresh random values may still pass a check the probe cannot read (or land in a hash partition).
      if ((result.code === '23514' || result.code === '23P01') && blind++ < (retryBounds ? 30 : 3)) continue
      break
    }
    return `inserting a row into ${display(t)} failed after ${attempts + (attempts < (retryBounds ? 30 : 16) ? 1 : 0)} attempt(s) (${last === null || last.ok ? '' : `${last.code}: ${last.message}${this.constraintNote(t, last.constraint)}`})`
  }

  /**
   * A CHECK that ties which references are set to an enum column (Lemmy's modlog: `(kind = 'AdminAdd' AND
   * num_nonnulls(target_person_id, target_instance_id) = 2 AND num_nonnulls(…) = 0) OR (kind = …) …`, 21
   * kinds over 5 references): asked of the database once per constraint, all at once — every label of each
   * enum column the check reads × every subset of its filled NULL-able references left NULL, the check's own
   * expression evaluated over a row of the table's type, fewest NULLs first. The first combination it passes
   * is kept for the table's rows (labels pinned, references left NULL). False when there is none, or the
   * search would be too large (over 12 references, over 2 enum columns).
   */
  private async solveCheck(t: Table, name: string | undefined, values: RowValues): Promise<boolean> {
    const tw = this.tweaks(t)
    if (name === undefined || tw.solved.has(name)) return false
    tw.solved.add(name)
    const check = t.constraints.find((c) => c.type === 'check' && c.name === name)
    const expression = check === undefined ? null : (/^CHECK \((.*)\)(?: NO INHERIT)?(?: NOT VALID)?$/s.exec(check.definition)?.[1] ?? null)
    if (check === undefined || expression === null) return false
    const fixed = this.fixedColumns(t)
    const tenantColumn = this.model.modelTable(t.oid)?.tenantColumn ?? null
    const columnOf = (c: string): Column | undefined => t.columns.find((x) => x.name === c)
    // The references it may leave NULL (as leaveNull does: NULL-able foreign-key columns, not the tenant column).
    const references = new Set(t.constraints.filter((c): c is ForeignKeyConstraint => c.type === 'foreign key' && c.references.table.oid !== t.oid).flatMap((fk) => fk.columns))
    const nullable = check.columns.filter((c) => values.has(c) && references.has(c) && columnOf(c)?.nullable === true && c !== tenantColumn && !tw.fill.has(c))
    const enums = check.columns.filter((c) => this.type(t, c)?.category === 'E' && (this.type(t, c)?.labels.length ?? 0) > 0 && !fixed.has(c))
    if (enums.length === 0 || enums.length > 2 || nullable.length > 12) return false
    const base = Object.fromEntries(check.columns.flatMap((c) => (values.has(c) ? [[c, values.get(c)!]] : [])))
    const params: unknown[] = [JSON.stringify(base), nullable, nullable.length === 0 ? 0 : 2 ** nullable.length - 1]
    const labels = enums.map((c) => {
      params.push(this.type(t, c)!.labels)
      return `CROSS JOIN unnest($${params.length}::text[]) AS tz_label${params.length}(tz_v)`
    })
    const labelRefs = enums.map((_, i) => `tz_label${i + 4}.tz_v`)
    const row = `pg_catalog.jsonb_populate_record(NULL::${tableSql(t)}, ($1::jsonb - ARRAY(SELECT tz_n FROM unnest($2::text[]) WITH ORDINALITY AS u(tz_n, tz_i) WHERE (tz_bits.tz_b >> (u.tz_i::int - 1)) & 1 = 1)) || pg_catalog.jsonb_build_object(${enums.map((c, i) => `${quoteLiteral(c)}, ${labelRefs[i]}`).join(', ')}))`
    const found = await this.session.step(
      `SELECT tz_bits.tz_b, ARRAY[${labelRefs.join(', ')}] AS tz_labels
         FROM generate_series(0, $3::int) AS tz_bits(tz_b) ${labels.join(' ')}
        CROSS JOIN LATERAL (SELECT (${row}).*) AS tz_row
        WHERE ${expression}
        ORDER BY pg_catalog.length(pg_catalog.replace(tz_bits.tz_b::bit(12)::text, '0', '')), tz_bits.tz_b
        LIMIT 1`,
      params,
    )
    const r = found.ok ? found.rows[0] : undefined
    if (r === undefined) return false
    const bits = Number(r['tz_b'])
    nullable.forEach((c, i) => {
      if ((bits >> i) & 1) tw.leaveNull.add(c)
    })
    enums.forEach((c, i) => tw.pinned.set(c, String((r['tz_labels'] as string[])[i])))
    return true
  }

  /** `; constraint "c" is CHECK (…)` for a table or domain constraint the error named. */
  private constraintNote(t: Table, name: string | undefined): string {
    if (name === undefined) return ''
    const own = t.constraints.find((c) => c.name === name)
    if (own !== undefined) return `; ${own.name} is ${own.definition}`
    for (const c of t.columns) {
      const d = this.type(t, c.name)?.domainChecks.find((x) => x.name === name)
      if (d !== undefined) return `; ${name} (domain of column ${c.name}) is ${d.definition}`
    }
    return ''
  }

  /** Change how the table's rows are built after `error`; false when there is nothing left to try. */
  private learn(t: Table, error: StepResult, values: RowValues): boolean {
    if (error.ok) return false
    const tw = this.tweaks(t)
    const columnOf = (name: string): Column | undefined => t.columns.find((c) => c.name === name)
    const fixed = this.fixedColumns(t)
    const bump = (cols: readonly string[]): boolean => {
      let changed = false
      for (const c of cols) {
        if (!values.has(c) || fixed.has(c)) continue
        const v = tw.variant.get(c) ?? 0
        if (v + 1 >= VARIANTS) continue
        tw.variant.set(c, v + 1)
        changed = true
      }
      return changed
    }
    switch (error.code) {
      case '23514': {
        const name = error.constraint
        if (name === undefined) return false
        const own = t.constraints.find((c) => c.name === name)
        const cols = own !== undefined ? [...own.columns] : t.columns.filter((c) => this.type(t, c.name)?.domainChecks.some((d) => d.name === name) ?? false).map((c) => c.name)
        // A default the check refuses: fill the column instead.
        const defaults = cols.filter((c) => columnOf(c)?.default != null && !tw.override.has(c) && !values.has(c))
        if (defaults.length > 0) {
          for (const c of defaults) tw.override.add(c)
          return true
        }
        // A check over nullable columns (`a IS NOT NULL OR b IS NOT NULL`, `num_nonnulls(a, b) = 1`): fill one more.
        const empty = cols.find((c) => !values.has(c) && !tw.fill.has(c) && columnOf(c)?.generated === null && columnOf(c)?.identity !== 'always')
        if (empty !== undefined) {
          tw.fill.add(empty)
          return true
        }
        // A check asking for exactly one of several references: leave one more NULL-able reference NULL
        // (not the tenant column, nor one a NOT NULL error asked for), keeping at least one filled.
        const tenantColumn = this.model.modelTable(t.oid)?.tenantColumn ?? null
        const references = new Set(t.constraints.filter((c): c is ForeignKeyConstraint => c.type === 'foreign key').flatMap((fk) => fk.columns))
        const filled = cols.filter((c) => values.has(c) && references.has(c) && c !== tenantColumn && columnOf(c)?.nullable === true && !tw.fill.has(c))
        const clear = filled.find((c) => !tw.leaveNull.has(c))
        if (clear !== undefined && filled.filter((c) => !tw.leaveNull.has(c)).length > 1) {
          tw.leaveNull.add(clear)
          return true
        }
        return bump(cols) || this.shiftParents(t, cols)
      }
      case '23502': {
        const col = error.column
        if (col === undefined || tw.fill.has(col)) return false
        tw.fill.add(col)
        tw.override.add(col)
        return true
      }
      case '22001': {
        // value too long for type character varying(n)
        const n = Number(/\((\d+)\)/.exec(error.message)?.[1] ?? NaN)
        if (Number.isNaN(n)) return false
        let changed = false
        for (const [c, v] of values) {
          const cat = this.type(t, c)?.category
          if ((cat === 'S' || cat === 'U') && v.length > n && !fixed.has(c) && (tw.maxLength.get(c) ?? Infinity) > n) {
            tw.maxLength.set(c, n)
            changed = true
          }
        }
        return changed
      }
      case '22003': {
        // numeric field overflow: small numbers (variant 1 is 1)
        let changed = false
        for (const c of values.keys()) {
          if (this.type(t, c)?.category !== 'N' || fixed.has(c) || (tw.variant.get(c) ?? 0) === 1) continue
          tw.variant.set(c, 1)
          changed = true
        }
        return changed
      }
      default: {
        // An input PostgreSQL did not take names the value: another shape of value for that column.
        const named = [...values].filter(([c, v]) => v.length > 0 && error.message.includes(`"${v}"`) && !fixed.has(c)).map(([c]) => c)
        if (named.length > 0 && bump(named)) return true
        // A default that fails (a setting the app sets, a sequence it may not use): fill every column.
        if (!tw.overrideAll && t.columns.some((c) => c.default !== null && !values.has(c.name))) {
          tw.overrideAll = true
          return true
        }
        return false
      }
    }
  }

  /**
   * A CHECK over columns of two foreign keys to one tenant parent refused its rows: take them in the next
   * rotation (`a < b` after `b < a`). False when every rotation was tried.
   */
  private shiftParents(t: Table, cols: readonly string[]): boolean {
    const counts = new Map<number, number>()
    for (const c of t.constraints) {
      if (c.type !== 'foreign key' || c.references.table.oid === t.oid || !c.columns.some((x) => cols.includes(x))) continue
      counts.set(c.references.table.oid, (counts.get(c.references.table.oid) ?? 0) + 1)
    }
    const rotations = Math.max(0, ...[...counts].filter(([oid, n]) => n > 1 && this.model.isTenantTable(oid)).map(([oid]) => this.rowsPerTenant(this.model.catalog.tableByOid(oid)!)))
    const tw = this.tweaks(t)
    if (tw.parentShift + 1 >= rotations) return false
    tw.parentShift++
    return true
  }

  /** Columns whose value is decided by the tenant, a parent row or a partition bound: never varied. */
  private fixedColumns(t: Table): Set<string> {
    const out = new Set<string>()
    const m = this.model.modelTable(t.oid)
    if (m?.tenantColumn != null && m.class !== 'root') out.add(m.tenantColumn)
    for (const c of t.constraints) if (c.type === 'foreign key' && c.references.table.oid !== t.oid) for (const x of c.columns) out.add(x)
    if (t.partitionOf !== null) for (const c of leafKeyValues(this.model.catalog, t).values.keys()) out.add(c)
    return out
  }
}

/**
 * Make `a < b`-style checks between two columns hold: swap the two values when they are the wrong way
 * round (numbers compared as numbers, dates and times as ISO text).
 */
function orderRelated(out: RowValues, hints: TableHints, category: (column: string) => string): void {
  for (const r of hints.relations) {
    const a = out.get(r.left)
    const b = out.get(r.right)
    if (a === undefined || b === undefined || category(r.left) !== category(r.right)) continue
    const cmp = category(r.left) === 'N' ? Math.sign(Number(a) - Number(b)) : a < b ? -1 : a > b ? 1 : 0
    const holds = r.op === '<' ? cmp < 0 : r.op === '<=' ? cmp <= 0 : r.op === '>' ? cmp > 0 : cmp >= 0
    if (holds) continue
    out.set(r.left, b)
    out.set(r.right, a)
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
  return { relid: t.oid, name: column, typeName: name, category: 'S', maxLength: null, precision: null, scale: null, labels: [], element: null, rangeSubtype: null, domainNotNull: false, domainChecks: [] }
}
