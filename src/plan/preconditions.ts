import type { Catalog, ForeignKeyConstraint, Table } from '../catalog/types.js'
import { qualifiedName, quoteIdent, quoteLiteral } from '../sql/quote.js'
import { splitKey, tableKeyOf, type TenantPath, type TenantizeConfig } from './config.js'
import type { Precondition, Step } from './steps.js'

/**
 * PURE: what the data must satisfy for a plan step to succeed, as read-only SQL the data check runs before
 * the first step of `apply` (see src/datacheck/). Every query reads the data as it is before the
 * conversion — the tenant of a row is its existing tenant column, or its parent's through the configured
 * path, or the default tenant — so it gives the same answer before step 1 and in a resumed run.
 *
 * Each builder returns the preconditions for one step: an empty list when the step cannot fail on data.
 */

/** What the builders need from the planner (its context has these fields). */
export interface PlanFacts {
  readonly catalog: Catalog
  readonly config: TenantizeConfig
  /** The tenant table's id column. */
  readonly rootId: string
}

const SQL_TYPE = { uuid: 'uuid', bigint: 'bigint', text: 'text' } as const

/** How a table's rows get their tenant in the conversion. */
type Origin =
  | { readonly kind: 'column'; readonly column: string }
  | { readonly kind: 'default' }
  | { readonly kind: 'parent'; readonly path: TenantPath }

function tableOf(f: PlanFacts, key: string): Table | undefined {
  const { schema, name } = splitKey(key)
  return f.catalog.table(schema, name)
}

const tableSql = (key: string): string => qualifiedName(splitKey(key).schema, splitKey(key).name)

function originOf(f: PlanFacts, key: string): Origin | undefined {
  if (key === f.config.tenant.table) return { kind: 'column', column: f.rootId }
  const cfg = f.config.tables[key]
  if (cfg === undefined || cfg.class === 'global' || cfg.class === 'excluded') return undefined
  const column = cfg.column ?? f.config.tenant.column
  if (tableOf(f, key)?.columns.some((c) => c.name === column) === true) return { kind: 'column', column }
  if (cfg.class === 'child' && !f.config.tenant.create && cfg.path !== undefined) return { kind: 'parent', path: cfg.path }
  return { kind: 'default' }
}

const defaultTenantSql = (f: PlanFacts): string => `${quoteLiteral(f.config.tenant.default.id)}::${SQL_TYPE[f.config.tenant.idType]}`

/** Fresh table aliases for nested subqueries, after `t0` (the table checked) … `t<used>`. */
function aliases(used: number): () => string {
  let n = used
  return () => `t${++n}`
}

/** A path whose foreign key is declared on the parent (several parent rows may reference one row). */
const isReverse = (path: TenantPath): boolean => (path as { readonly reverse?: boolean }).reverse === true

/**
 * The tenant a row of `key` (aliased `alias`) gets, as a SQL expression over today's data; undefined when
 * the path loops. NULL when the row has no parent (the orphan check counts those) or, reached backwards,
 * when rows of several tenants reference it (the ambiguity check counts those).
 */
function tenantExpr(f: PlanFacts, key: string, alias: string, next: () => string, seen: ReadonlySet<string> = new Set()): string | undefined {
  const origin = originOf(f, key)
  if (origin === undefined || seen.has(key)) return undefined
  if (origin.kind === 'column') return `${alias}.${quoteIdent(origin.column)}`
  if (origin.kind === 'default') return defaultTenantSql(f)
  const p = next()
  const parent = tenantExpr(f, origin.path.parent, p, next, new Set([...seen, key]))
  if (parent === undefined) return undefined
  const from = `${tableSql(origin.path.parent)} AS ${p} WHERE ${joinOn(p, origin.path.parentColumns, alias, origin.path.columns)}`
  if (!isReverse(origin.path)) return `(SELECT ${parent} FROM ${from})`
  // Reached backwards: the tenant of the rows referencing it when they agree, the default tenant when none does.
  const v = next()
  return `(SELECT CASE count(DISTINCT ${v}.v) WHEN 0 THEN ${defaultTenantSql(f)} WHEN 1 THEN (array_agg(${v}.v) FILTER (WHERE ${v}.v IS NOT NULL))[1] END FROM (SELECT ${parent} AS v FROM ${from}) AS ${v})`
}

const joinOn = (parent: string, parentColumns: readonly string[], child: string, columns: readonly string[]): string =>
  columns.map((c, i) => `${parent}.${quoteIdent(parentColumns[i]!)} = ${child}.${quoteIdent(c)}`).join(' AND ')

/** The primary key (or, without one, the physical row address) of a row, as SQL text: `id=42`, `a=1, b=2`. */
function keyOf(table: Table | undefined, alias: string): { text: string; order: string } {
  const pk = table?.constraints.find((c) => c.type === 'primary key')?.columns
  if (pk === undefined || pk.length === 0) return { text: `concat('ctid=', ${alias}.ctid)`, order: `${alias}.ctid` }
  return {
    text: `concat(${pk.map((c, i) => `${quoteLiteral(`${i === 0 ? '' : ', '}${c}=`)}, ${alias}.${quoteIdent(c)}`).join(', ')})`,
    order: pk.map((c) => `${alias}.${quoteIdent(c)}`).join(', '),
  }
}

/** `col=value` for each column, NULL spelled out. */
const valuesOf = (alias: string, columns: readonly string[]): string =>
  columns.map((c, i) => `${quoteLiteral(`${i === 0 ? '' : ', '}${c}=`)}, coalesce(${alias}.${quoteIdent(c)}::text, 'NULL')`).join(', ')

const otherClassFix = (key: string): string =>
  `classify ${key} as global in the config if its rows are shared by every tenant (read-only to the app), or as direct if they all belong to the default tenant`

const alternativeFixes = (f: PlanFacts, key: string): string[] =>
  (f.config.tables[key]?.alternatives ?? []).map((a) => `use another path: move the alternative ${a.columns.join(', ')} → ${a.parent} (${a.parentColumns.join(', ')}) from tables["${key}"].alternatives into its path`)

/**
 * (backfill of a child's tenant column) Rows that would get no tenant. Forward path: rows whose foreign key
 * is NULL or points at no parent row — the backfill leaves them NULL and the NOT NULL steps after it fail.
 * Reverse path (the parent's foreign key references this table): rows referenced by parent rows of
 * several tenants, which cannot belong to one of them (rows nobody references keep the default tenant).
 */
export function backfillRows(f: PlanFacts, key: string, path: TenantPath): Precondition[] {
  const table = tableOf(f, key)
  const k = keyOf(table, 't0')
  const sql = tableSql(key)
  const parentSql = tableSql(path.parent)
  const join = joinOn('t1', path.parentColumns, 't0', path.columns)
  if (isReverse(path)) {
    const parentTenant = tenantExpr(f, path.parent, 't1', aliases(1))
    if (parentTenant === undefined) return []
    const where = `(SELECT count(DISTINCT v.v) FROM (SELECT ${parentTenant} AS v FROM ${parentSql} AS t1 WHERE ${join}) AS v) > 1`
    return [
      {
        id: `shared:${key}`,
        table: key,
        title: `each row of ${key} is referenced by ${path.parent} rows (${path.parentColumns.join(', ')} → ${path.columns.join(', ')}) of one tenant at most, whose tenant it takes`,
        countSql: `SELECT count(*)::bigint AS n FROM ${sql} AS t0 WHERE ${where}`,
        sampleSql: `SELECT ${k.text} AS sample FROM ${sql} AS t0 WHERE ${where} ORDER BY ${k.order} LIMIT 5`,
        fixes: [
          ...alternativeFixes(f, key),
          `classify ${key} as global in the config: rows shared by several tenants are reference data (read-only to the app)`,
          `or give each tenant its own copy of those rows and point its ${path.parent} rows at it: SELECT * FROM ${sql} AS t0 WHERE ${where}`,
        ],
      },
    ]
  }
  const where = `${path.columns.map((c) => `t0.${quoteIdent(c)} IS NULL OR `).join('')}NOT EXISTS (SELECT 1 FROM ${parentSql} AS t1 WHERE ${join})`
  return [
    {
      id: `orphans:${key}`,
      table: key,
      title: `every row of ${key} has a ${path.parent} row (${path.columns.join(', ')} → ${path.parentColumns.join(', ')}) to take its tenant from: the foreign key is neither NULL nor dangling`,
      countSql: `SELECT count(*)::bigint AS n FROM ${sql} AS t0 WHERE ${where}`,
      sampleSql: `SELECT concat(${k.text}, ': ', ${valuesOf('t0', path.columns)}) AS sample FROM ${sql} AS t0 WHERE ${where} ORDER BY ${k.order} LIMIT 5`,
      fixes: [
        ...alternativeFixes(f, key),
        otherClassFix(key),
        `give those rows a parent, or delete them: SELECT * FROM ${sql} AS t0 WHERE ${where}; DELETE FROM ${sql} AS t0 WHERE ${where}`,
      ],
    },
  ]
}

/**
 * (composite foreign key between tenant tables) Rows whose tenant differs from the tenant of the row they
 * reference through `fk`: the composite key (tenant, fk columns) would reject them. Empty when the two
 * tenants cannot differ (both the default tenant, or the child takes its tenant through this very key).
 * `on` is the table the key is declared on: `key` itself, or one partition of it (a key declared on that
 * partition only), whose rows alone it covers.
 */
export function crossingRows(f: PlanFacts, key: string, fk: ForeignKeyConstraint, on = key): Precondition[] {
  return [...(fk.validated && fk.enforced ? [] : danglingRows(f, key, fk, on)), ...crossing(f, key, fk, on)]
}

/**
 * (composite foreign key between tenant tables, `fk` NOT VALID or NOT ENFORCED) Rows whose key `fk` names no
 * row of the parent — PostgreSQL never checked the rows the table had when the key was added: validating the
 * composite key fails on them, part-way through the schema phase. (A validated key has none.)
 */
function danglingRows(f: PlanFacts, key: string, fk: ForeignKeyConstraint, on: string): Precondition[] {
  const parentKey = tableKeyOf(fk.references.table)
  const sql = tableSql(on)
  const present = fk.columns.map((c) => `t0.${quoteIdent(c)} IS NOT NULL`).join(' AND ')
  const where = `${present} AND NOT EXISTS (SELECT 1 FROM ${tableSql(parentKey)} AS t1 WHERE ${joinOn('t1', fk.references.columns, 't0', fk.columns)})`
  const k = keyOf(tableOf(f, on), 't0')
  return [
    {
      id: `dangling:${on}:${fk.name}`,
      table: key,
      title: `every row of ${on} whose ${fk.columns.join(', ')} is set references a ${parentKey} row through ${fk.name} (NOT VALID: PostgreSQL never checked the rows it had)`,
      countSql: `SELECT count(*)::bigint AS n FROM ${sql} AS t0 WHERE ${where}`,
      sampleSql: `SELECT concat(${k.text}, ': ', ${valuesOf('t0', fk.columns)}) AS sample FROM ${sql} AS t0 WHERE ${where} ORDER BY ${k.order} LIMIT 5`,
      fixes: [
        `point those rows at an existing ${parentKey} row, clear ${fk.columns.join(', ')}, or delete them: SELECT * FROM ${sql} AS t0 WHERE ${where}`,
        `then validate the key: ALTER TABLE ${sql} VALIDATE CONSTRAINT ${quoteIdent(fk.name)}`,
      ],
    },
  ]
}

function crossing(f: PlanFacts, key: string, fk: ForeignKeyConstraint, on: string): Precondition[] {
  const parentKey = tableKeyOf(fk.references.table)
  const child = originOf(f, key)
  const parent = originOf(f, parentKey)
  if (child === undefined || parent === undefined || (child.kind === 'default' && parent.kind === 'default')) return []
  if (child.kind === 'parent' && child.path.parent === parentKey && sameColumns(child.path.columns, fk.columns) && sameColumns(child.path.parentColumns, fk.references.columns)) return []
  const next = aliases(1) // t1 is the referenced row
  const childTenant = tenantExpr(f, key, 't0', next)
  const parentTenant = tenantExpr(f, parentKey, 't1', next)
  if (childTenant === undefined || parentTenant === undefined) return []
  const sql = tableSql(on)
  const from = `${sql} AS t0 JOIN ${tableSql(parentKey)} AS t1 ON ${joinOn('t1', fk.references.columns, 't0', fk.columns)}`
  const where = `${childTenant} <> ${parentTenant}`
  const k = keyOf(tableOf(f, on), 't0')
  const fixes = [
    ...alternativeFixes(f, key),
    `classify ${parentKey} as global in the config if its rows are shared by every tenant`,
    `or, if rows may point at another tenant's row on purpose, declare it: add { "constraint": ${JSON.stringify(fk.name)}, "reason": "…" } to tables["${key}"].sharedReferences`,
    ...(child.kind === 'column'
      ? [`if the referenced rows' tenant is right, correct the rows' tenant: UPDATE ${sql} AS t0 SET ${quoteIdent(child.column)} = ${parentTenant} FROM ${tableSql(parentKey)} AS t1 WHERE ${joinOn('t1', fk.references.columns, 't0', fk.columns)} AND ${where}`]
      : []),
    `or point each row at a ${parentKey} row of its own tenant (or clear ${fk.columns.join(', ')}): SELECT t0.* FROM ${from} WHERE ${where}`,
  ]
  return [
    {
      id: `crossing:${on}:${fk.name}`,
      table: key,
      title: `no row of ${on} references a ${parentKey} row of another tenant through ${fk.name} (${fk.columns.join(', ')})`,
      countSql: `SELECT count(*)::bigint AS n FROM ${from} WHERE ${where}`,
      sampleSql: `SELECT concat(${k.text}, ': ', ${valuesOf('t0', fk.columns)}) AS sample FROM ${from} WHERE ${where} ORDER BY ${k.order} LIMIT 5`,
      fixes,
    },
  ]
}

const sameColumns = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((c, i) => c === b[i])

/**
 * (NOT NULL on an existing tenant column) Rows whose tenant column is NULL: validating the NOT NULL check
 * fails on them. Empty when the plan adds the column (the orphan check covers derived ones).
 */
export function nullTenantRows(f: PlanFacts, key: string, column: string): Precondition[] {
  const table = tableOf(f, key)
  if (table?.columns.some((c) => c.name === column) !== true) return []
  const sql = tableSql(key)
  const col = quoteIdent(column)
  const k = keyOf(table, 't0')
  const where = `t0.${col} IS NULL`
  return [
    {
      id: `null-tenant:${key}`,
      table: key,
      title: `${column} of ${key} is never NULL (it becomes NOT NULL)`,
      countSql: `SELECT count(*)::bigint AS n FROM ${sql} AS t0 WHERE ${where}`,
      sampleSql: `SELECT ${k.text} AS sample FROM ${sql} AS t0 WHERE ${where} ORDER BY ${k.order} LIMIT 5`,
      fixes: [
        `give those rows their tenant (here the default tenant): UPDATE ${sql} SET ${col} = ${defaultTenantSql(f)} WHERE ${col} IS NULL`,
        `or delete them: DELETE FROM ${sql} WHERE ${col} IS NULL`,
        otherClassFix(key),
      ],
    },
  ]
}

/**
 * (foreign key from an existing tenant column to the tenant table) Values that are not a tenant: validating
 * the key fails on them. A new tenant table holds only the default tenant, so there every other value is
 * foreign. Empty when the plan adds the column.
 */
export function foreignTenantRows(f: PlanFacts, key: string, column: string): Precondition[] {
  const table = tableOf(f, key)
  if (table?.columns.some((c) => c.name === column) !== true) return []
  const sql = tableSql(key)
  const col = quoteIdent(column)
  const rootKey = f.config.tenant.table
  const root = tableSql(rootKey)
  const where = f.config.tenant.create ? `t0.${col} <> ${defaultTenantSql(f)}` : `t0.${col} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${root} AS t1 WHERE t1.${quoteIdent(f.rootId)} = t0.${col})`
  const k = keyOf(table, 't0')
  return [
    {
      id: `foreign-tenant:${key}`,
      table: key,
      title: f.config.tenant.create
        ? `every ${column} of ${key} is the default tenant (the new tenant table ${rootKey} holds only that one)`
        : `every ${column} of ${key} is a tenant: a row of ${rootKey}`,
      countSql: `SELECT count(*)::bigint AS n FROM ${sql} AS t0 WHERE ${where}`,
      sampleSql: `SELECT concat(${k.text}, ': ', ${valuesOf('t0', [column])}) AS sample FROM ${sql} AS t0 WHERE ${where} ORDER BY ${k.order} LIMIT 5`,
      fixes: f.config.tenant.create
        ? [
            `if ${column} already holds tenant ids, set tenant.create to false and tenant.table to the table they come from`,
            `or give the rows the default tenant: UPDATE ${sql} AS t0 SET ${col} = ${defaultTenantSql(f)} WHERE ${where}`,
            `or set tables["${key}"].column to another name so the plan adds its own tenant column`,
          ]
        : [
            `add the missing tenants to ${rootKey} (with its other columns): SELECT DISTINCT t0.${col} FROM ${sql} AS t0 WHERE ${where}`,
            `or move the rows to an existing tenant: UPDATE ${sql} AS t0 SET ${col} = <a tenant id> WHERE ${where}`,
            `or delete them: DELETE FROM ${sql} AS t0 WHERE ${where}`,
          ],
    },
  ]
}

/**
 * (an existing tenant table) The default tenant — the one today's rows of direct tables get — is a row of
 * the tenant table; the sample says when the table is empty. Attached to the first step that gives rows
 * the default tenant; empty when the plan creates the tenant table (it inserts the default tenant).
 */
export function defaultTenantRow(f: PlanFacts & { readonly steps: readonly Step[] }): Precondition[] {
  if (f.config.tenant.create) return []
  const rootKey = f.config.tenant.table
  const id = `default-tenant:${rootKey}`
  if (f.steps.some((s) => s.preconditions?.some((p) => p.id === id) === true)) return []
  const root = tableSql(rootKey)
  const idCol = quoteIdent(f.rootId)
  const where = `NOT EXISTS (SELECT 1 FROM ${root} AS t0 WHERE t0.${idCol} = ${defaultTenantSql(f)})`
  return [
    {
      id,
      table: rootKey,
      title: `the default tenant (tenant.default.id in the config) is a row of ${rootKey}: today's rows of direct tables get it`,
      countSql: `SELECT count(*)::bigint AS n WHERE ${where}`,
      sampleSql: `SELECT CASE WHEN EXISTS (SELECT 1 FROM ${root}) THEN ${quoteLiteral(`no row of ${rootKey} has ${f.rootId} = tenant.default.id`)} ELSE ${quoteLiteral(`${rootKey} is empty: there is no tenant yet`)} END AS sample WHERE ${where}`,
      fixes: [
        `set tenant.default.id in the config to the ${f.rootId} of the ${rootKey} row that owns today's rows`,
        `or add it: INSERT INTO ${root} (${idCol}, …) VALUES (${defaultTenantSql(f)}, …)`,
      ],
    },
  ]
}
