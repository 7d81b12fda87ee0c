import type { Catalog, ForeignKeyConstraint, Table } from '../catalog/types.js'
import { ErrorCodes, TenantizeError } from '../errors.js'
import { splitKey, tableKeyOf, type TableConfig, type TenantPath, type TenantizeConfig, type TenantizeConfigInput } from './config.js'

/** Column names that suggest a table is already tenant-scoped. */
export const TENANT_LIKE_COLUMNS = ['organization_id', 'organisation_id', 'org_id', 'tenant_id', 'client_id', 'account_id', 'company_id', 'workspace_id', 'team_id']

/** Names of shared reference data: global, read-only to the app. */
const REFERENCE_DATA = /^(countries|country|currencies|currency|languages|language|locales?|time_?zones?|units?|[a-z_]*_types?|[a-z_]*_statuses|[a-z_]*_categories|holidays|feature_flags?)$/

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

function pathOf(table: Table, fk: ForeignKeyConstraint, via: readonly string[]): TenantPath {
  return { columns: [...fk.columns], parent: fkKey(fk), parentColumns: [...fk.references.columns], via: [...via] }
}

/** A users table to hang memberships on: named users/user/accounts, single-column primary key. */
function membershipFor(tables: readonly Table[], schema: string): { table: string; users: string } | null {
  const users = tables.find((t) => ['users', 'user', 'accounts', 'app_users'].includes(t.name) && t.constraints.find((c) => c.type === 'primary key')?.columns.length === 1)
  return users === undefined ? null : { table: `${schema}.organization_members`, users: tableKeyOf(users) }
}

/**
 * Pure: classify every table of the catalog and propose a config. With `previous` (a config the user may
 * have edited), the user's choices win for every table still present; new tables are classified; tables
 * that are gone are dropped and noted.
 */
export function proposeConfig(catalog: Catalog, options: InitOptions, previous?: TenantizeConfig): InitResult {
  const notes: string[] = []
  const column = options.tenantColumn ?? previous?.tenant.column ?? 'org_id'
  const inScope = (t: Table): boolean => (options.schemas === undefined || options.schemas.includes(t.schema)) && t.schema !== 'tenantize'
  const tables = catalog.tables.filter(inScope)

  // The tenant (root) table.
  let rootKey: string
  let create: boolean
  let idType: 'uuid' | 'bigint' | 'text' = 'uuid'
  if (options.tenantTable !== undefined) {
    const root = catalog.table(options.tenantTable.schema, options.tenantTable.name)
    rootKey = tableKeyOf(options.tenantTable)
    if (root === undefined) {
      throw new TenantizeError(ErrorCodes.CONFIG, 'the tenant table does not exist', { object: rootKey, fix: 'pass --tenant-table SCHEMA.TABLE of an existing table, or leave it out to create public.organizations' })
    }
    const pk = root.constraints.find((c) => c.type === 'primary key')
    if (pk === undefined || pk.columns.length !== 1) {
      throw new TenantizeError(ErrorCodes.CONFIG, pk === undefined ? 'the tenant table has no primary key' : 'the tenant table has a composite primary key', { object: rootKey, fix: 'give it a single-column primary key (uuid, bigint or text): that is the tenant id' })
    }
    const pkType = root.columns.find((c) => c.name === pk.columns[0])?.type ?? ''
    const t = idTypeOf(pkType)
    if (t === undefined) throw new TenantizeError(ErrorCodes.CONFIG, `the tenant table's primary key has type ${pkType}`, { object: rootKey, fix: 'use a uuid, bigint/integer or text primary key' })
    idType = t
    create = false
  } else {
    rootKey = previous?.tenant.create === true ? previous.tenant.table : 'public.organizations'
    const existing = catalog.table(splitKey(rootKey).schema, splitKey(rootKey).name)
    if (existing !== undefined) {
      throw new TenantizeError(ErrorCodes.CONFIG, 'a table of that name already exists', { object: rootKey, fix: `pass --tenant-table ${rootKey} to use it as the tenant table, or rename it` })
    }
    create = true
  }

  // Tables that cannot be converted (yet) are excluded with the reason.
  const classes = new Map<string, TableConfig>()
  const candidates: Table[] = []
  for (const t of tables) {
    const key = tableKeyOf(t)
    if (key === rootKey) continue
    const exclude = (reason: string): void => void classes.set(key, { class: 'excluded', reason, alternatives: [], keepGlobalUnique: [] })
    if (t.kind === 'partition') continue // follows its parent
    if (t.extension !== null) exclude(`owned by extension ${t.extension}`)
    else if (t.kind === 'foreign') exclude('foreign table: its rows live on another server and row-level security cannot protect them')
    else if (t.kind === 'inheritance child' || t.inheritedBy.length > 0) exclude('table inheritance is not supported: convert to partitioning or tenantize by hand')
    else if (t.schema.includes('.') || t.name.includes('.')) exclude('names containing a dot cannot be written as schema.table keys')
    else candidates.push(t)
  }
  const candidateKeys = new Set(candidates.map(tableKeyOf))
  const outgoing = new Map<string, ForeignKeyConstraint[]>()
  const incoming = new Map<string, number>()
  for (const t of candidates) {
    const fks = t.constraints.filter((c): c is ForeignKeyConstraint => c.type === 'foreign key' && fkKey(c) !== tableKeyOf(t) && (candidateKeys.has(fkKey(c)) || fkKey(c) === rootKey))
    outgoing.set(tableKeyOf(t), fks)
    for (const fk of fks) incoming.set(fkKey(fk), (incoming.get(fkKey(fk)) ?? 0) + 1)
  }

  // Global reference data: matches a reference-data name, is referenced, references nothing.
  for (const t of candidates) {
    const key = tableKeyOf(t)
    if (REFERENCE_DATA.test(t.name) && (outgoing.get(key) ?? []).length === 0 && (incoming.get(key) ?? 0) > 0) {
      classes.set(key, { class: 'global', reason: 'reference data: referenced by other tables, references none, and named like a lookup table', alternatives: [], keepGlobalUnique: [] })
    }
  }
  const isTenantOwned = (key: string): boolean => key === rootKey || (candidateKeys.has(key) && classes.get(key)?.class !== 'global')

  // Direct tables: reference the existing tenant table, or (new tenant table) reference no other tenant-owned table.
  for (const t of candidates) {
    const key = tableKeyOf(t)
    if (classes.has(key)) continue
    const fks = (outgoing.get(key) ?? []).filter((fk) => isTenantOwned(fkKey(fk)))
    const toRoot = fks.find((fk) => fkKey(fk) === rootKey && fk.columns.length === 1)
    if (toRoot !== undefined) {
      classes.set(key, { class: 'direct', reason: `already references the tenant table through ${toRoot.columns[0]}`, column: toRoot.columns[0]!, alternatives: [], keepGlobalUnique: [] })
    } else if (fks.length === 0) {
      classes.set(key, { class: 'direct', reason: create ? 'references no other tenant table: gets its own tenant column; existing rows belong to the default tenant' : 'has no foreign-key path to the tenant table: gets its own tenant column; existing rows belong to the default tenant', alternatives: [], keepGlobalUnique: [] })
    }
  }

  // Child tables. First which tables reach a placed table at all, and how far (shortest path); then each
  // child picks its parent once every reachable parent of it is placed: a NOT NULL foreign key first, then
  // the shortest path, then the name — and lists the other paths as alternatives.
  const notNull = (t: Table, fk: ForeignKeyConstraint): boolean => fk.columns.every((c) => t.columns.find((col) => col.name === c)?.nullable === false)
  const distance = new Map<string, number>([[rootKey, 0]])
  for (const [key, cfg] of classes) if (cfg.class === 'direct') distance.set(key, 0)
  for (let changed = true; changed; ) {
    changed = false
    for (const t of candidates) {
      const key = tableKeyOf(t)
      if (classes.has(key)) continue
      const best = Math.min(...(outgoing.get(key) ?? []).map((fk) => distance.get(fkKey(fk)) ?? Infinity)) + 1
      if (best < (distance.get(key) ?? Infinity)) {
        distance.set(key, best)
        changed = true
      }
    }
  }
  const hops = new Map<string, string[]>([[rootKey, []]])
  for (const [key, cfg] of classes) if (cfg.class === 'direct') hops.set(key, [])
  const place = (t: Table, parents: readonly ForeignKeyConstraint[]): void => {
    const key = tableKeyOf(t)
    const ranked = [...parents].sort((a, b) => Number(notNull(t, b)) - Number(notNull(t, a)) || hops.get(fkKey(a))!.length - hops.get(fkKey(b))!.length || a.name.localeCompare(b.name))
    const paths = ranked.map((fk) => pathOf(t, fk, [fkKey(fk), ...hops.get(fkKey(fk))!, rootKey].filter((v, i, a) => a.indexOf(v) === i)))
    const best = ranked[0]!
    classes.set(key, {
      class: 'child',
      reason: `reaches the tenant through ${best.name} (${best.columns.join(', ')} → ${fkKey(best)})${notNull(t, best) ? '' : '; that foreign key is nullable: rows with NULL get no tenant'}`,
      path: paths[0]!,
      alternatives: paths.slice(1),
      keepGlobalUnique: [],
    })
    hops.set(key, [fkKey(best), ...hops.get(fkKey(best))!])
  }
  for (;;) {
    const pending = candidates.filter((t) => !classes.has(tableKeyOf(t)) && distance.has(tableKeyOf(t)))
    if (pending.length === 0) break
    let progress = false
    for (const t of pending) {
      const fks = (outgoing.get(tableKeyOf(t)) ?? []).filter((fk) => distance.has(fkKey(fk)))
      if (fks.every((fk) => hops.has(fkKey(fk)))) {
        place(t, fks)
        progress = true
      }
    }
    if (!progress) {
      // A cycle among children: place the nearest one with the parents already placed.
      const t = [...pending].sort((a, b) => distance.get(tableKeyOf(a))! - distance.get(tableKeyOf(b))!)[0]!
      place(t, (outgoing.get(tableKeyOf(t)) ?? []).filter((fk) => hops.has(fkKey(fk))))
    }
  }
  for (const t of candidates) {
    const key = tableKeyOf(t)
    if (!classes.has(key)) {
      classes.set(key, { class: 'direct', reason: 'its foreign keys form a cycle that never reaches the tenant table: gets its own tenant column', alternatives: [], keepGlobalUnique: [] })
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
  if (!create) result[rootKey] = { class: 'root', reason: 'the tenant table', alternatives: [], keepGlobalUnique: [] }
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
      idType: previous?.tenant.idType ?? idType,
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
