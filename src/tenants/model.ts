import type { Catalog, ForeignKeyConstraint, Table } from '../catalog/types.js'
import { ErrorCodes, TenantizeError, type Problem } from '../errors.js'
import { splitKey, tableKeyOf, type TenantizeConfig } from '../plan/config.js'
import { qualifiedName, quoteIdent } from '../sql/quote.js'

/**
 * PURE: the converted database as the tenant lifecycle sees it — which tables hold a tenant's rows, in
 * which column, and the foreign keys between them (the order rows are deleted, exported and imported in).
 */

/** How a table came to hold tenant rows. `attached`: not in the config, but its column references the tenant table (e.g. a `tenantize add` block). */
export type TenantTableRole = 'root' | 'direct' | 'child' | 'membership' | 'attached'

export interface TenantTable {
  /** `schema.table`, as in the config. */
  readonly key: string
  /** `"schema"."table"`. */
  readonly sql: string
  readonly table: Table
  /** The column holding the tenant id (the primary key column for the tenant table itself). */
  readonly column: string
  readonly role: TenantTableRole
  /** The column did not exist before the conversion (the plan added it): export drops it. */
  readonly added: boolean
}

/** A foreign key between two tenant tables: `from` rows reference `to` rows. */
export interface TenantEdge {
  readonly from: string
  readonly to: string
  readonly fk: ForeignKeyConstraint
}

/** A foreign key from a table that holds no tenant rows (global, excluded, unclassified) into a tenant table. */
export interface SharedReference {
  readonly from: Table
  readonly to: string
  readonly fk: ForeignKeyConstraint
}

export interface TenantModel {
  readonly config: TenantizeConfig
  readonly root: TenantTable
  /** Tenant tables, the tenant table first, then by key. */
  readonly tables: readonly TenantTable[]
  readonly edges: readonly TenantEdge[]
  readonly shared: readonly SharedReference[]
  /** Tenant tables children before parents (the delete order); parents first is its reverse. */
  readonly childrenFirst: readonly string[]
  /** Tenantize created the tenant table (config tenant.create): its columns are id, slug, name, status, created_at, updated_at. */
  readonly ownsTenantTable: boolean
  /** The tenant table's slug column, when it has one. */
  readonly slugColumn: string | null
  readonly nameColumn: string | null
  readonly createdAtColumn: string | null
  table(key: string): TenantTable | undefined
}

const SQL_TYPE = { uuid: 'uuid', bigint: 'bigint', text: 'text' } as const

/** The SQL type of tenant ids. */
export function tenantIdType(config: TenantizeConfig): string {
  return SQL_TYPE[config.tenant.idType]
}

/**
 * Tarjan's strongly connected components, emitted so that a component comes after every component it
 * references: reversed, that is children before parents. Ties by key, so the order is stable.
 */
/** The partitioned table at the top of `table`'s partition tree (`table` itself when it is no partition). */
function partitionRoot(catalog: Catalog, table: Table): Table {
  let t = table
  for (;;) {
    const parent = t.partitionOf === null ? undefined : catalog.tableByOid(t.partitionOf.parent.oid)
    if (parent === undefined) return t
    t = parent
  }
}

function parentsFirst(keys: readonly string[], edges: readonly TenantEdge[]): string[] {
  const out = new Map<string, string[]>()
  for (const k of keys) out.set(k, [])
  for (const e of edges) if (e.from !== e.to) out.get(e.from)?.push(e.to)
  for (const list of out.values()) list.sort()
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const order: string[] = []
  let next = 0
  const visit = (v: string): void => {
    index.set(v, next)
    low.set(v, next)
    next++
    stack.push(v)
    onStack.add(v)
    for (const w of out.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!))
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = []
      for (;;) {
        const w = stack.pop()!
        onStack.delete(w)
        component.push(w)
        if (w === v) break
      }
      order.push(...component.sort())
    }
  }
  for (const k of [...keys].sort()) if (!index.has(k)) visit(k)
  return order
}

/**
 * Build the model from the catalog of a converted database (at least `apply --phase schema`) and its config.
 * @throws {TenantizeError} TZ_CONFIG naming every table whose tenant column is missing (not converted yet).
 */
export function tenantModel(catalog: Catalog, config: TenantizeConfig): TenantModel {
  const problems: Problem[] = []
  const rootParts = splitKey(config.tenant.table)
  const rootTable = catalog.table(rootParts.schema, rootParts.name)
  if (rootTable === undefined) {
    throw new TenantizeError(ErrorCodes.CONFIG, 'the tenant table does not exist: the database is not converted yet', { object: config.tenant.table, fix: 'run tenantize apply --phase schema first' })
  }
  const pk = rootTable.constraints.find((c) => c.type === 'primary key')
  if (pk === undefined || pk.columns.length !== 1) {
    throw new TenantizeError(ErrorCodes.CONFIG, 'the tenant table needs a single-column primary key (the tenant id)', { object: config.tenant.table })
  }
  const rootColumn = pk.columns[0]!
  const tables: TenantTable[] = [{ key: config.tenant.table, sql: qualifiedName(rootParts.schema, rootParts.name), table: rootTable, column: rootColumn, role: 'root', added: false }]
  const seen = new Set([config.tenant.table])
  const add = (key: string, table: Table, column: string, role: TenantTableRole, added: boolean): void => {
    if (seen.has(key)) return
    seen.add(key)
    if (!table.columns.some((c) => c.name === column)) {
      problems.push({ object: `${key}.${column}`, message: 'the tenant column does not exist', fix: 'run tenantize apply --phase schema first' })
      return
    }
    tables.push({ key, sql: qualifiedName(table.schema, table.name), table, column, role, added })
  }
  for (const [key, cfg] of Object.entries(config.tables)) {
    if (cfg.class !== 'direct' && cfg.class !== 'child') continue
    const { schema, name } = splitKey(key)
    const table = catalog.table(schema, name)
    if (table === undefined) {
      problems.push({ object: key, message: 'is in the config but not in the database', fix: 'remove it from the config or re-run tenantize init' })
      continue
    }
    // The column was added by the conversion unless it is named in the config (an existing column reused).
    add(key, table, cfg.column ?? config.tenant.column, cfg.class, cfg.column === undefined)
  }
  const m = config.tenant.membership
  if (m !== null && config.tenant.create) {
    const { schema, name } = splitKey(m.table)
    const table = catalog.table(schema, name)
    if (table !== undefined) add(m.table, table, 'org_id', 'membership', false)
  }
  // Tables outside the config whose single-column foreign key references the tenant id (tenantize add blocks, later tables).
  for (const table of catalog.tables) {
    const key = tableKeyOf(table)
    if (seen.has(key) || config.tables[key] !== undefined || table.kind === 'partition' || table.schema === 'tenantize') continue
    const fk = table.constraints.find((c): c is ForeignKeyConstraint => c.type === 'foreign key' && c.references.table.oid === rootTable.oid && c.columns.length === 1 && c.references.columns[0] === rootColumn)
    if (fk !== undefined) add(key, table, fk.columns[0]!, 'attached', false)
  }
  if (problems.length > 0) throw new TenantizeError(ErrorCodes.CONFIG, `${problems.length} tenant table(s) are not converted`, { problems })

  const byOid = new Map(tables.map((t) => [t.table.oid, t]))
  const edges: TenantEdge[] = []
  const shared: SharedReference[] = []
  for (const table of catalog.tables) {
    // A key declared on a partition only (`ALTER TABLE ONLY partition ADD FOREIGN KEY`, pagila's payments) says what
    // the column means for the partitioned table's rows: an edge (or shared reference) of that table — the import
    // rewrites the column in every partition, the delete empties it before the rows referenced, the export filters
    // a shared table's rows by it. Keys a partition inherits are its parent's, seen there.
    const root = partitionRoot(catalog, table)
    const from = byOid.get(root.oid)
    for (const c of table.constraints) {
      if (c.type !== 'foreign key' || c.parentOid !== null) continue
      const to = byOid.get(c.references.table.oid)
      if (to === undefined) continue
      if (from !== undefined) edges.push({ from: from.key, to: to.key, fk: c })
      else if (root.schema !== 'tenantize') shared.push({ from: root, to: to.key, fk: c })
    }
  }
  const keys = tables.map((t) => t.key)
  const childrenFirst = parentsFirst(keys, edges).reverse()
  const column = (name: string): string | null => (rootTable.columns.some((c) => c.name === name) ? name : null)
  const byKey = new Map(tables.map((t) => [t.key, t]))
  return Object.freeze({
    config,
    root: tables[0]!,
    tables: Object.freeze([tables[0]!, ...tables.slice(1).sort((a, b) => a.key.localeCompare(b.key))]),
    edges: Object.freeze(edges),
    shared: Object.freeze(shared),
    childrenFirst: Object.freeze(childrenFirst),
    ownsTenantTable: config.tenant.create,
    slugColumn: column('slug'),
    nameColumn: column('name'),
    createdAtColumn: column('created_at'),
    table: (key: string) => byKey.get(key),
  })
}

/**
 * PURE: tables the conversion did not know (created after it: not in the config, no single-column foreign
 * key to the tenant table) whose rows may belong to tenants — a column named like the tenant column, or
 * row-level security enabled. A tenant command cannot tell which of their rows are a tenant's: `export`
 * would copy every tenant's rows as a shared table's, `delete` would leave the tenant's rows behind. Both
 * refuse, naming each table and the fix.
 */
export function unknownTenancy(catalog: Catalog, model: TenantModel, command: 'export' | 'delete'): Problem[] {
  const problems: Problem[] = []
  for (const table of catalog.tables) {
    const key = tableKeyOf(table)
    if (table.kind === 'partition' || table.schema === 'tenantize' || table.foreign || table.extension !== null) continue
    if (model.config.tables[key] !== undefined || model.table(key) !== undefined) continue
    const tenantColumn = table.columns.find((c) => c.name === model.config.tenant.column)
    const why = tenantColumn !== undefined
      ? `has a column ${tenantColumn.name} like the tenant tables but no foreign key to ${model.root.key}`
      : table.rowSecurity ? 'has row-level security enabled' : undefined
    if (why === undefined) continue
    problems.push({
      object: key,
      message: `was created after the conversion and ${why}, so ${command} cannot tell which of its rows are this tenant's; ${command === 'export' ? 'as a shared table it would carry every tenant\'s rows' : 'the tenant\'s rows in it would stay behind'}`,
      fix: tenantColumn !== undefined
        ? `add its foreign key (ALTER TABLE ${qualifiedName(table.schema, table.name)} ADD FOREIGN KEY (${quoteIdent(tenantColumn.name)}) REFERENCES ${model.root.sql} (${quoteIdent(model.root.column)})), or add the table to the config, then ${command} again`
        : `add the table to the config (its class: direct, child or global), or ${command === 'export' ? 'export from a copy of the database without the table' : 'delete its rows of this tenant yourself first'}`,
    })
  }
  return problems
}
