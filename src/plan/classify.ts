import type { Catalog, ForeignKeyConstraint, Table } from '../catalog/types.js'
import { ErrorCodes, TenantizeError } from '../errors.js'
import { qualifiedName } from '../sql/quote.js'
import { splitKey, tableKeyOf, type TableConfig, type TenantPath, type TenantizeConfig, type TenantizeConfigInput } from './config.js'

/** Column names that suggest a table is already tenant-scoped. */
export const TENANT_LIKE_COLUMNS = ['organization_id', 'organisation_id', 'org_id', 'tenant_id', 'client_id', 'account_id', 'company_id', 'workspace_id', 'team_id']

/** Names of shared reference data: global, read-only to the app. */
const REFERENCE_DATA = /^(countries|country|currencies|currency|languages|language|locales?|time_?zones?|units?|[a-z_]*_types?|[a-z_]*_statuses|[a-z_]*_categories|holidays|feature_flags?)$/

/**
 * Bookkeeping tables of migration tools (Rails, Prisma, Knex, Flyway, goose, Django, Alembic, Drizzle,
 * TypeORM, Sequelize, Liquibase, sql-migrate, node-pg-migrate, Kysely, EF Core, sqlx, Diesel, Atlas,
 * Doctrine, Sequel, dbmate, Mattermost): the tool reads and writes them without a tenant context, so they stay as they are.
 */
const MIGRATION_TABLES = new Set([
  'schema_migrations', 'ar_internal_metadata', '_prisma_migrations', 'knex_migrations', 'knex_migrations_lock',
  'flyway_schema_history', 'schema_version', 'goose_db_version', 'django_migrations', 'alembic_version',
  '__drizzle_migrations', 'typeorm_metadata', 'SequelizeMeta', 'SequelizeData', 'gorp_migrations',
  'databasechangelog', 'databasechangeloglock', 'pgmigrations', 'kysely_migration', 'kysely_migration_lock',
  '__EFMigrationsHistory', '_sqlx_migrations', '__diesel_schema_migrations', 'atlas_schema_revisions',
  'doctrine_migration_versions', 'migration_versions', 'schema_info', 'db_migrations', 'db_lock', 'seaql_migrations',
])
/** Whole schemas that belong to a migration tool. */
const MIGRATION_SCHEMAS = new Set(['drizzle', 'graphile_migrate', 'sqitch', 'atlas_schema_revisions', 'flyway'])
/** A table named `migrations` is bookkeeping when it has only the columns such tools use (TypeORM, Laravel, db-migrate, MikroORM). */
const MIGRATIONS_SHAPE = new Set(['id', 'timestamp', 'name', 'migration', 'batch', 'run_on', 'version', 'applied_at', 'executed_at', 'checksum', 'created_at', 'hash'])

function migrationTool(t: Table): boolean {
  if (MIGRATION_SCHEMAS.has(t.schema) || MIGRATION_TABLES.has(t.name)) return true
  return t.name === 'migrations' && t.columns.every((c) => MIGRATIONS_SHAPE.has(c.name)) && t.columns.some((c) => c.name === 'name' || c.name === 'migration')
}

/**
 * A foreign key from a table whose tenant is known (the tenant table itself, or a table with a tenant
 * column referencing it) to a table with no foreign-key path to the tenant table: the referenced rows
 * may belong to the referencing rows' tenants. `init` counts, per edge, how many rows are referenced by
 * one tenant and how many by several ({@link ReverseReach}).
 */
export interface ReverseEdge {
  /** The referenced table, `schema.table`. */
  readonly table: string
  /** The table holding the foreign key, `schema.table`. */
  readonly parent: string
  readonly constraint: string
  /** Referenced columns of `table`. */
  readonly columns: readonly string[]
  /** Foreign-key columns of `parent`. */
  readonly parentColumns: readonly string[]
  /**
   * The parent's column holding its tenant (the tenant table's primary key, or its tenant column); with
   * `through`, that column of the last hop's table.
   */
  readonly parentTenant: string
  /**
   * A parent whose tenant is not in its own row (it reaches the tenant through its foreign keys): the NOT
   * NULL foreign keys from `parent` to a table whose rows name their tenant, in order. Empty otherwise.
   */
  readonly through: readonly ReverseHop[]
}

/** One NOT NULL foreign key of a {@link ReverseEdge}'s `through`: `columns` of the previous table → `table` (`referenced`). */
export interface ReverseHop {
  readonly columns: readonly string[]
  readonly table: string
  readonly referenced: readonly string[]
}

/** What the data says about a {@link ReverseEdge}. */
export interface ReverseReach extends ReverseEdge {
  /** Rows of `table`. */
  readonly rows: number
  /** Rows referenced by parent rows of exactly one tenant. */
  readonly single: number
  /** Rows referenced by parent rows of several tenants. */
  readonly multi: number
}

/** Facts read from the data for `init` (see src/apply/init.ts); all optional: without them init classifies from the catalog alone. */
export interface InitFacts {
  readonly reverse: readonly ReverseReach[]
}

export interface InitOptions {
  /** An existing table whose primary key becomes the tenant id; otherwise `public.organizations` is created. */
  readonly tenantTable?: { readonly schema: string; readonly name: string }
  /** Column name for the tenant column (default org_id). */
  readonly tenantColumn?: string
  /** Id of the tenant that owns today's rows. */
  readonly defaultTenantId: string
  readonly appRole?: string
  /** Only these schemas (default: all user schemas). */
  readonly schemas?: readonly string[]
  /** Facts from the data (reverse paths); see {@link reverseEdges}. */
  readonly facts?: InitFacts
}

export interface InitResult {
  readonly config: TenantizeConfigInput
  /** Things init noticed that the user should read (tenant-like columns, cycles, skipped tables). */
  readonly notes: readonly string[]
}

const fkKey = (fk: ForeignKeyConstraint): string => tableKeyOf(fk.references.table)

function idTypeOf(sqlType: string): 'uuid' | 'bigint' | 'text' | undefined {
  if (sqlType === 'uuid') return 'uuid'
  if (['bigint', 'integer', 'smallint'].includes(sqlType)) return 'bigint'
  if (sqlType === 'text' || sqlType.startsWith('character varying')) return 'text'
  return undefined
}

function pathOf(fk: ForeignKeyConstraint, via: readonly string[]): TenantPath {
  return { columns: [...fk.columns], parent: fkKey(fk), parentColumns: [...fk.references.columns], via: [...via], reverse: false }
}

/** A users table to hang memberships on: named users/user/accounts, single-column primary key. */
function membershipFor(tables: readonly Table[], schema: string): { table: string; users: string } | null {
  const users = tables.find((t) => ['users', 'user', 'accounts', 'app_users'].includes(t.name) && t.constraints.find((c) => c.type === 'primary key')?.columns.length === 1)
  return users === undefined ? null : { table: `${schema}.organization_members`, users: tableKeyOf(users) }
}

/**
 * A table's foreign keys, and for a partitioned table also those declared on every one of its partitions
 * (PostgreSQL 11 could only declare them there): they hold for all its rows.
 */
export function foreignKeysOf(catalog: Catalog, t: Table): ForeignKeyConstraint[] {
  const own = t.constraints.filter((c): c is ForeignKeyConstraint => c.type === 'foreign key')
  if (t.kind !== 'partitioned' || t.partitions.length === 0) return own
  const sig = (fk: ForeignKeyConstraint): string => `${fk.columns.join(',')}→${fkKey(fk)}(${fk.references.columns.join(',')})`
  const have = new Set(own.map(sig))
  const perPartition = t.partitions.map((p) => catalog.tableByOid(p.oid)?.constraints.filter((c): c is ForeignKeyConstraint => c.type === 'foreign key' && c.parentOid === null) ?? [])
  const common = (perPartition[0] ?? []).filter((fk) => !have.has(sig(fk)) && perPartition.every((fks) => fks.some((o) => sig(o) === sig(fk))))
  return [...own, ...common]
}

interface Graph {
  readonly rootKey: string
  readonly rootId: string | null
  readonly create: boolean
  readonly idType: 'uuid' | 'bigint' | 'text'
  readonly column: string
  /** Tables that cannot be converted, with the reason. */
  readonly excluded: ReadonlyMap<string, string>
  readonly candidates: readonly Table[]
  /** Foreign keys to other candidates or the root, per table key. */
  readonly outgoing: ReadonlyMap<string, readonly ForeignKeyConstraint[]>
  /** A column of the tenant column's name that is no tenant column (it references another table, or has another type). */
  readonly renamed: ReadonlyMap<string, string>
  /** Tables that already hold the tenant column (of the tenant id's type): their rows name their tenant. */
  readonly holdsTenant: ReadonlySet<string>
  readonly notes: readonly string[]
}

function resolveRoot(catalog: Catalog, options: InitOptions, previous: TenantizeConfig | undefined, notes: string[]): { rootKey: string; root: Table | undefined; create: boolean } {
  if (options.tenantTable === undefined) {
    const rootKey = previous?.tenant.create === true ? previous.tenant.table : 'public.organizations'
    if (catalog.table(splitKey(rootKey).schema, splitKey(rootKey).name) !== undefined) {
      throw new TenantizeError(ErrorCodes.CONFIG, 'a table of that name already exists', { object: rootKey, fix: `pass --tenant-table ${rootKey} to use it as the tenant table, or rename it` })
    }
    return { rootKey, root: undefined, create: true }
  }
  const { schema, name } = options.tenantTable
  let root = catalog.table(schema, name)
  if (root === undefined) {
    // An unquoted --tenant-table public.Organisation folds to lower case, as in SQL: find the table the user meant.
    const folded = catalog.tables.filter((t) => t.schema.toLowerCase() === schema.toLowerCase() && t.name.toLowerCase() === name.toLowerCase())
    if (folded.length === 1) {
      root = folded[0]!
      notes.push(`--tenant-table ${schema}.${name} matched ${tableKeyOf(root)} (unquoted names fold to lower case; quote them to be exact: '${qualifiedName(root.schema, root.name)}')`)
    } else {
      const hint = folded.length > 1 ? `; several tables differ only in case: ${folded.map(tableKeyOf).join(', ')} — quote the name, e.g. '${qualifiedName(folded[0]!.schema, folded[0]!.name)}'` : ''
      throw new TenantizeError(ErrorCodes.CONFIG, 'the tenant table does not exist', { object: tableKeyOf(options.tenantTable), fix: `pass --tenant-table SCHEMA.TABLE of an existing table, or leave it out to create public.organizations${hint}` })
    }
  }
  return { rootKey: tableKeyOf(root), root, create: false }
}

function buildGraph(catalog: Catalog, options: InitOptions, previous?: TenantizeConfig): Graph {
  const notes: string[] = []
  const column = options.tenantColumn ?? previous?.tenant.column ?? 'org_id'
  const inScope = (t: Table): boolean => (options.schemas === undefined || options.schemas.includes(t.schema)) && t.schema !== 'tenantize'
  const tables = catalog.tables.filter(inScope)
  const { rootKey, root, create } = resolveRoot(catalog, options, previous, notes)
  let idType: 'uuid' | 'bigint' | 'text' = 'uuid'
  let rootId: string | null = null
  if (root !== undefined) {
    const pk = root.constraints.find((c) => c.type === 'primary key')
    if (pk === undefined || pk.columns.length !== 1) {
      throw new TenantizeError(ErrorCodes.CONFIG, pk === undefined ? 'the tenant table has no primary key' : 'the tenant table has a composite primary key', { object: rootKey, fix: 'give it a single-column primary key (uuid, bigint or text): that is the tenant id' })
    }
    const pkType = root.columns.find((c) => c.name === pk.columns[0])?.type ?? ''
    const t = idTypeOf(pkType)
    if (t === undefined) throw new TenantizeError(ErrorCodes.CONFIG, `the tenant table's primary key has type ${pkType}`, { object: rootKey, fix: 'use a uuid, bigint/integer or text primary key' })
    idType = t
    rootId = pk.columns[0]!
  }

  // Tables that cannot be converted (yet) are excluded with the reason.
  const excluded = new Map<string, string>()
  const candidates: Table[] = []
  for (const t of tables) {
    const key = tableKeyOf(t)
    if (key === rootKey) continue
    if (t.kind === 'partition') continue // follows its parent
    if (t.schema.includes('.')) {
      notes.push(`${key}: schema names containing a dot cannot be written as schema.table keys; the table is left as it is`)
      continue
    }
    if (t.extension !== null) excluded.set(key, `owned by extension ${t.extension}`)
    else if (migrationTool(t)) excluded.set(key, 'bookkeeping table of a migration tool: the tool reads it without a tenant context, so it stays shared and untouched')
    else if (t.kind === 'foreign') excluded.set(key, 'foreign table: its rows live on another server and row-level security cannot protect them')
    else if (t.kind === 'inheritance child' || t.inheritedBy.length > 0) excluded.set(key, 'table inheritance is not supported: convert to partitioning or tenantize by hand')
    else candidates.push(t)
  }
  const candidateKeys = new Set(candidates.map(tableKeyOf))
  const outgoing = new Map<string, ForeignKeyConstraint[]>()
  for (const t of candidates) {
    outgoing.set(tableKeyOf(t), foreignKeysOf(catalog, t).filter((c) => fkKey(c) !== tableKeyOf(t) && (candidateKeys.has(fkKey(c)) || fkKey(c) === rootKey)))
  }

  // A column named like the tenant column that is not one: the table's tenant column gets another name.
  const renamed = new Map<string, string>()
  const idSql = idType === 'text' ? 'text' : idType
  for (const t of candidates) {
    const existing = t.columns.find((c) => c.name === column)
    if (existing === undefined) continue
    const fks = foreignKeysOf(catalog, t).filter((fk) => fk.columns.includes(column))
    // A composite key that maps the column onto the parent's own tenant column (lago: (membership_id,
    // organization_id) → memberships (id, organization_id)) keeps it a tenant column: it is already tenant-scoped.
    const scoped = (fk: ForeignKeyConstraint): boolean => fk.references.columns[fk.columns.indexOf(column)] === column && fkKey(fk) !== rootKey
    const elsewhere = fks.find((fk) => (fkKey(fk) !== rootKey || fk.columns.length !== 1) && !scoped(fk))
    const typeOk = existing.type === idSql || (idSql === 'bigint' && ['integer', 'smallint'].includes(existing.type)) || (idSql === 'text' && existing.type.startsWith('character varying'))
    if (elsewhere === undefined && typeOk) continue
    const why = elsewhere !== undefined ? `references ${fkKey(elsewhere)} through ${elsewhere.name}` : `has type ${existing.type}, but tenant ids are ${idSql}`
    let name = `tenantize_${column}`
    for (let i = 2; t.columns.some((c) => c.name === name); i++) name = `tenantize_${column}_${i}`
    renamed.set(tableKeyOf(t), name)
    notes.push(`${tableKeyOf(t)}.${column} ${why}: it is not the tenant column; the tenant column of this table is ${name}`)
  }
  const holdsTenant = new Set(create ? [] : candidates.filter((t) => t.columns.some((c) => c.name === column) && !renamed.has(tableKeyOf(t))).map(tableKeyOf))
  return { rootKey, rootId, create, idType, column, excluded, candidates, outgoing, renamed, holdsTenant, notes }
}

/** Tables whose rows already name their tenant: the tenant table (its primary key) and tables with a single-column foreign key to it. */
function tenantKnown(g: Graph): Map<string, string> {
  const out = new Map<string, string>()
  if (g.rootId !== null) out.set(g.rootKey, g.rootId)
  for (const t of g.candidates) {
    const toRoot = (g.outgoing.get(tableKeyOf(t)) ?? []).find((fk) => fkKey(fk) === g.rootKey && fk.columns.length === 1 && !g.renamed.has(tableKeyOf(t)))
    if (toRoot !== undefined) out.set(tableKeyOf(t), toRoot.columns[0]!)
    else if (g.holdsTenant.has(tableKeyOf(t))) out.set(tableKeyOf(t), g.column)
  }
  return out
}

/** Candidates that reach the tenant table through their own foreign keys (with `notNull`, through NOT NULL ones only). */
function forwardReach(g: Graph, notNull = false): Set<string> {
  const reach = new Set<string>([g.rootKey, ...g.holdsTenant])
  const usable = (t: Table, fk: ForeignKeyConstraint): boolean => !notNull || fk.columns.every((c) => t.columns.find((col) => col.name === c)?.nullable === false)
  for (let changed = true; changed; ) {
    changed = false
    for (const t of g.candidates) {
      const key = tableKeyOf(t)
      if (!reach.has(key) && (g.outgoing.get(key) ?? []).some((fk) => reach.has(fkKey(fk)) && usable(t, fk))) {
        reach.add(key)
        changed = true
      }
    }
  }
  return reach
}

/** The parent's foreign key of `e` is NOT NULL and unique: each parent row references a row of its own. */
function ownsOne(catalog: Catalog, e: ReverseEdge): boolean {
  const parent = catalog.table(splitKey(e.parent).schema, splitKey(e.parent).name)
  if (parent === undefined) return false
  const same = (cols: readonly (string | null)[]): boolean => cols.length === e.parentColumns.length && e.parentColumns.every((c) => cols.includes(c))
  const notNull = e.parentColumns.every((c) => parent.columns.find((col) => col.name === c)?.nullable === false)
  return notNull && parent.indexes.some((i) => i.unique && i.predicate === null && !i.hasExpressions && same(i.columns))
}

/**
 * PURE: the reverse edges `init` should count rows for — foreign keys from tables whose tenant is known to
 * tables with no foreign-key path to an existing tenant table. Empty when the tenant table is created
 * (then every existing row belongs to the default tenant).
 */
export function reverseEdges(catalog: Catalog, options: InitOptions, previous?: TenantizeConfig): ReverseEdge[] {
  const g = buildGraph(catalog, options, previous)
  if (g.create) return []
  const known = tenantKnown(g)
  const reach = forwardReach(g)
  // Tables that reach it only through NULL-able keys count too: a row with NULL there has no tenant on that
  // path, and a table referencing every row (a settings row per tenant) may give it one.
  const strong = forwardReach(g, true)
  const targets = new Set(g.candidates.map(tableKeyOf).filter((k) => !strong.has(k)))
  const all = [...g.candidates, ...(g.rootId === null ? [] : [catalog.table(splitKey(g.rootKey).schema, splitKey(g.rootKey).name)!])]
  // A parent that reaches the tenant through its foreign keys: the shortest chain of NOT NULL ones to a
  // table whose rows name their tenant (the child's rows take their tenant along such a chain).
  const byKey = new Map(g.candidates.map((t) => [tableKeyOf(t), t]))
  const chainOf = (start: string): ReverseHop[] | undefined => {
    const seen = new Set([start])
    let frontier: { key: string; hops: ReverseHop[] }[] = [{ key: start, hops: [] }]
    while (frontier.length > 0) {
      const next: { key: string; hops: ReverseHop[] }[] = []
      for (const { key, hops } of frontier) {
        const t = byKey.get(key)
        if (t === undefined) continue
        const fks = [...(g.outgoing.get(key) ?? [])].filter((fk) => fk.columns.every((c) => t.columns.find((col) => col.name === c)?.nullable === false)).sort((a, b) => a.name.localeCompare(b.name))
        for (const fk of fks) {
          const to = fkKey(fk)
          if (seen.has(to)) continue
          seen.add(to)
          const chain = [...hops, { columns: [...fk.columns], table: to, referenced: [...fk.references.columns] }]
          if (known.has(to)) return chain
          next.push({ key: to, hops: chain })
        }
      }
      frontier = next
    }
    return undefined
  }
  const out: ReverseEdge[] = []
  for (const p of all) {
    const own = known.get(tableKeyOf(p))
    const through = own !== undefined ? [] : reach.has(tableKeyOf(p)) ? chainOf(tableKeyOf(p)) : undefined
    if (through === undefined) continue
    const parentTenant = own ?? known.get(through[through.length - 1]!.table)!
    for (const fk of foreignKeysOf(catalog, p)) {
      if (!targets.has(fkKey(fk)) || (own !== undefined && fk.columns.includes(parentTenant))) continue
      out.push({ table: fkKey(fk), parent: tableKeyOf(p), constraint: fk.name, columns: [...fk.references.columns], parentColumns: [...fk.columns], parentTenant, through })
    }
  }
  return out.sort((a, b) => a.table.localeCompare(b.table) || a.parent.localeCompare(b.parent) || a.constraint.localeCompare(b.constraint))
}

/**
 * Pure: classify every table of the catalog and propose a config. With `previous` (a config the user may
 * have edited), the user's choices win for every table still present; new tables are classified; tables
 * that are gone are dropped and noted. With `options.facts` (rows per tenant along reverse edges), a table
 * the tenant table points at takes the tenant of the rows that reference it, or is proposed global when
 * rows are shared by several tenants — never silently given to the default tenant.
 */
export function proposeConfig(catalog: Catalog, options: InitOptions, previous?: TenantizeConfig): InitResult {
  const g = buildGraph(catalog, options, previous)
  const notes: string[] = [...g.notes]
  const { rootKey, create, column, candidates, outgoing } = g
  const classes = new Map<string, TableConfig>()
  const withColumn = (key: string): { column?: string } => (g.renamed.has(key) ? { column: g.renamed.get(key)! } : {})
  for (const [key, reason] of g.excluded) classes.set(key, { class: 'excluded', reason, alternatives: [], keepGlobalUnique: [], sharedReferences: [] })
  const incoming = new Map<string, number>()
  for (const fks of outgoing.values()) for (const fk of fks) incoming.set(fkKey(fk), (incoming.get(fkKey(fk)) ?? 0) + 1)

  // Global reference data: matches a reference-data name, is referenced, references nothing.
  for (const t of candidates) {
    const key = tableKeyOf(t)
    if (REFERENCE_DATA.test(t.name) && !g.holdsTenant.has(key) && (outgoing.get(key) ?? []).length === 0 && (incoming.get(key) ?? 0) > 0) {
      classes.set(key, { class: 'global', reason: 'reference data: referenced by other tables, references none, and named like a lookup table', alternatives: [], keepGlobalUnique: [], sharedReferences: [] })
    }
  }

  // Tables with no path of their own to an existing tenant table, referenced by rows whose tenant is known:
  // each row takes the tenant of the rows referencing it; rows shared by several tenants make the table global.
  const reverseHops = new Map<string, string[]>()
  if (!create) {
    const reach = forwardReach(g)
    const strong = forwardReach(g, true)
    const byTable = new Map<string, ReverseReach[]>()
    for (const r of options.facts?.reverse ?? []) byTable.set(r.table, [...(byTable.get(r.table) ?? []), r])
    for (const t of candidates) {
      const key = tableKeyOf(t)
      if (classes.has(key) || strong.has(key)) continue
      let edges = byTable.get(key) ?? []
      // Its own path uses NULL-able keys only: a reverse path wins when one tenant references each of its rows,
      // or when the referencing key is NOT NULL and unique (each parent row owns one row: its settings).
      if (reach.has(key)) edges = edges.filter((e) => e.multi === 0 && e.single > 0 && (e.single === e.rows || ownsOne(catalog, e)))
      if (edges.length === 0) continue
      const shared = edges.filter((e) => e.multi > 0)
      if (shared.length > 0) {
        const e = shared.sort((a, b) => b.multi - a.multi)[0]!
        classes.set(key, { class: 'global', reason: `rows are shared by several tenants: ${e.multi} of ${e.rows} row(s) are referenced by more than one tenant through ${e.parent}.${e.constraint}, so no single tenant owns them; global (read-only to the app), or make it excluded`, alternatives: [], keepGlobalUnique: [], sharedReferences: [] })
        notes.push(`${key}: ${e.multi} row(s) referenced by several tenants through ${e.parent}.${e.constraint}: proposed global`)
        continue
      }
      const used = edges.filter((e) => e.single > 0).sort((a, b) => b.single - a.single || (a.parent === rootKey ? -1 : b.parent === rootKey ? 1 : 0) || a.constraint.localeCompare(b.constraint))
      if (used.length === 0) continue
      const viaOf = (e: ReverseReach): string[] => [e.parent, ...(e.through ?? []).map((h) => h.table), rootKey].filter((v, i, a) => a.indexOf(v) === i)
      const paths = used.map((e): TenantPath => ({ columns: [...e.columns], parent: e.parent, parentColumns: [...e.parentColumns], via: viaOf(e), reverse: true }))
      const best = used[0]!
      const unreached = best.rows - best.single
      classes.set(key, {
        class: 'child',
        reason: `${reach.has(key) ? 'its own paths to the tenant table go through NULL-able foreign keys only' : 'no path of its own to the tenant table'}, but ${best.parent}.${best.constraint} references it: each row takes the tenant of the row referencing it (${best.single} of ${best.rows} referenced by exactly one tenant${unreached > 0 ? `; the ${unreached} row(s) nobody references belong to the default tenant` : ''})`,
        ...withColumn(key),
        path: paths[0]!,
        alternatives: paths.slice(1),
        keepGlobalUnique: [],
        sharedReferences: [],
      })
      reverseHops.set(key, viaOf(best).filter((v) => v !== rootKey))
    }
  }
  const candidateKeys = new Set(candidates.map(tableKeyOf))
  const isTenantOwned = (key: string): boolean => key === rootKey || (candidateKeys.has(key) && classes.get(key)?.class !== 'global' && classes.get(key)?.class !== 'excluded')

  // Tables whose rows get the default tenant only because nothing says otherwise (an existing tenant table, no
  // path to it): a child that can take its tenant from a table whose rows name their tenant takes it from there.
  const assumed = new Set<string>()
  // Direct tables: reference the existing tenant table, or (new tenant table) reference no other tenant-owned table.
  for (const t of candidates) {
    const key = tableKeyOf(t)
    if (classes.has(key)) continue
    const fks = (outgoing.get(key) ?? []).filter((fk) => isTenantOwned(fkKey(fk)))
    const toRoot = g.renamed.has(key) ? undefined : fks.find((fk) => fkKey(fk) === rootKey && fk.columns.length === 1)
    if (toRoot !== undefined) {
      classes.set(key, { class: 'direct', reason: `already references the tenant table through ${toRoot.columns[0]}`, column: toRoot.columns[0]!, alternatives: [], keepGlobalUnique: [], sharedReferences: [] })
    } else if (g.holdsTenant.has(key)) {
      classes.set(key, { class: 'direct', reason: `already holds the tenant column ${column} (without a foreign key): its rows keep their tenants; the data check finds values that are no tenant, and the plan adds the foreign key`, alternatives: [], keepGlobalUnique: [], sharedReferences: [] })
    } else if (fks.length === 0) {
      if (!create) assumed.add(key)
      classes.set(key, { class: 'direct', reason: create ? 'references no other tenant table: gets its own tenant column; existing rows belong to the default tenant' : 'has no foreign-key path to the tenant table: gets its own tenant column; existing rows belong to the default tenant', ...withColumn(key), alternatives: [], keepGlobalUnique: [], sharedReferences: [] })
    }
  }

  // Child tables. First which tables reach a placed table at all, and how far (shortest path); then each
  // child picks its parent once every reachable parent of it is placed: a NOT NULL foreign key first, then
  // the shortest path, then the name — and lists the other paths as alternatives.
  const notNull = (t: Table, fk: ForeignKeyConstraint): boolean => fk.columns.every((c) => t.columns.find((col) => col.name === c)?.nullable === false)
  const distance = new Map<string, number>([[rootKey, 0]])
  const hops = new Map<string, string[]>([[rootKey, []]])
  for (const [key, cfg] of classes) {
    if (cfg.class === 'direct') {
      distance.set(key, 0)
      hops.set(key, [])
    }
  }
  for (const [key, h] of reverseHops) {
    distance.set(key, 1)
    hops.set(key, h)
  }
  for (let changed = true; changed; ) {
    changed = false
    for (const t of candidates) {
      const key = tableKeyOf(t)
      if (classes.has(key)) continue
      const best = Math.min(...(outgoing.get(key) ?? []).filter((fk) => isTenantOwned(fkKey(fk))).map((fk) => distance.get(fkKey(fk)) ?? Infinity)) + 1
      if (best < (distance.get(key) ?? Infinity)) {
        distance.set(key, best)
        changed = true
      }
    }
  }
  const place = (t: Table, parents: readonly ForeignKeyConstraint[]): void => {
    const key = tableKeyOf(t)
    const ranked = [...parents].sort((a, b) => Number(notNull(t, b)) - Number(notNull(t, a)) || Number(assumed.has(fkKey(a))) - Number(assumed.has(fkKey(b))) || hops.get(fkKey(a))!.length - hops.get(fkKey(b))!.length || a.name.localeCompare(b.name))
    const paths = ranked.map((fk) => pathOf(fk, [fkKey(fk), ...hops.get(fkKey(fk))!, rootKey].filter((v, i, a) => a.indexOf(v) === i)))
    const best = ranked[0]!
    classes.set(key, {
      class: 'child',
      reason: `reaches the tenant through ${best.name} (${best.columns.join(', ')} → ${fkKey(best)})${notNull(t, best) ? '' : '; that foreign key is nullable: rows with NULL get no tenant'}`,
      ...withColumn(key),
      path: paths[0]!,
      alternatives: paths.slice(1),
      keepGlobalUnique: [],
        sharedReferences: [],
    })
    hops.set(key, [fkKey(best), ...hops.get(fkKey(best))!])
    if (assumed.has(fkKey(best))) assumed.add(key)
  }
  for (;;) {
    const pending = candidates.filter((t) => !classes.has(tableKeyOf(t)) && distance.has(tableKeyOf(t)))
    if (pending.length === 0) break
    let progress = false
    for (const t of pending) {
      const fks = (outgoing.get(tableKeyOf(t)) ?? []).filter((fk) => isTenantOwned(fkKey(fk)) && distance.has(fkKey(fk)))
      if (fks.every((fk) => hops.has(fkKey(fk)))) {
        place(t, fks)
        progress = true
      }
    }
    if (!progress) {
      // A cycle among children: place the nearest one with the parents already placed.
      const t = [...pending].sort((a, b) => distance.get(tableKeyOf(a))! - distance.get(tableKeyOf(b))!)[0]!
      place(t, (outgoing.get(tableKeyOf(t)) ?? []).filter((fk) => isTenantOwned(fkKey(fk)) && hops.has(fkKey(fk))))
    }
  }
  for (const t of candidates) {
    const key = tableKeyOf(t)
    if (!classes.has(key)) {
      classes.set(key, { class: 'direct', reason: 'its foreign keys form a cycle that never reaches the tenant table: gets its own tenant column', ...withColumn(key), alternatives: [], keepGlobalUnique: [], sharedReferences: [] })
      notes.push(`${key}: foreign-key cycle; classified direct`)
    }
  }

  // Tenant-like columns already present.
  for (const t of candidates) {
    const like = t.columns.filter((c) => TENANT_LIKE_COLUMNS.includes(c.name) && c.name !== column && classes.get(tableKeyOf(t))?.column !== c.name)
    if (like.length > 0) notes.push(`${tableKeyOf(t)} has tenant-like column(s) ${like.map((c) => c.name).join(', ')}: if that is the tenant, run init --tenant-table on the table it references`)
  }

  // The user's earlier choices win.
  const result: Record<string, TableConfig> = {}
  if (!create) result[rootKey] = { class: 'root', reason: 'the tenant table', alternatives: [], keepGlobalUnique: [], sharedReferences: [] }
  for (const [key, cfg] of [...classes].sort(([a], [b]) => a.localeCompare(b))) {
    const kept = previous?.tables[key]
    result[key] = kept ?? cfg
  }
  if (previous !== undefined) {
    for (const key of Object.keys(previous.tables)) if (result[key] === undefined) notes.push(`${key} is no longer in the database: removed from the config`)
  }

  const config: TenantizeConfigInput = {
    ...(previous?.$schema === undefined ? {} : { $schema: previous.$schema }),
    version: 1,
    target: previous?.target ?? 'postgres',
    tenant: {
      table: rootKey,
      create,
      idType: previous?.tenant.idType ?? g.idType,
      column,
      setting: previous?.tenant.setting ?? 'tenantize.tenant_id',
      default: previous?.tenant.default ?? { id: options.defaultTenantId, slug: 'default', name: 'Default organization' },
      membership: previous !== undefined ? previous.tenant.membership : create ? membershipFor(candidates, splitKey(rootKey).schema) : null,
    },
    roles: previous?.roles ?? { app: options.appRole ?? 'tenantize_app', system: null },
    tables: result,
    batchSize: previous?.batchSize ?? 5000,
    lockTimeout: previous?.lockTimeout ?? '1s',
  }
  return { config, notes }
}
