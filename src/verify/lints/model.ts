import type { Catalog, ForeignKeyConstraint, Policy, RelationGrant, Role, Table } from '../../catalog/types.js'
import type { Inference, ModelSummary, TableClass } from '../types.js'
import { analyzeExpression, routinesInExpression, settingsInExpression, type ExpressionFacts, type ExpressionScope } from './expressions.js'
import { routineFacts, settingsReadBy, type RoutineFacts } from './routines.js'
import type { Acceptance } from './accept.js'

/**
 * The tenant model verify checks a database against: which column holds the tenant id, which setting
 * carries the current tenant, which role the application uses, and what every table is. Given by options
 * or inferred from the catalog (policies first, then names), with a note saying what was inferred.
 */

export const DEFAULT_SETTING = 'tenantize.tenant_id'
/** Column names that usually hold the tenant id, in order of preference. */
export const TENANT_COLUMN_NAMES: readonly string[] = Object.freeze(['org_id', 'organization_id', 'tenant_id'])
/** Table names that usually are the tenant table. */
const ROOT_NAMES: readonly string[] = ['organizations', 'organization', 'orgs', 'org', 'tenants', 'tenant']
/** Schemas verify leaves out: Tenantize's own helpers and ledger. */
export const EXCLUDED_SCHEMAS: ReadonlySet<string> = new Set(['tenantize'])

export interface ModelOptions {
  /** The column holding the tenant id. Default: inferred from policies, then from names (org_id, organization_id, tenant_id). */
  readonly tenantColumn?: string | undefined
  /** The role the application connects as (or SETs ROLE to). Default: inferred from policies, then grants. */
  readonly appRole?: string | undefined
  /** The setting carrying the current tenant. Default: the setting policies compare a column with, else tenantize.tenant_id. */
  readonly setting?: string | undefined
  /** The tenant table, `schema.table`. Default: inferred from foreign keys, policies, then names. */
  readonly tenantTable?: string | undefined
  /** Tables (`schema.table`) with the tenant id under another column name. */
  readonly tableColumns?: Readonly<Record<string, string>> | undefined
  /** Tables (`schema.table`) verify leaves out entirely. */
  readonly exclude?: readonly string[] | undefined
  /** Unique constraints or indexes (by table, by name) that are meant to span all tenants. */
  readonly globalUniques?: Readonly<Record<string, readonly string[]>> | undefined
  /**
   * The class the config gives each table (`schema.table`). Reports count tables by it: a converted child
   * has a tenant column of its own, so the lints check it as direct, but it is still a child.
   */
  readonly classes?: Readonly<Record<string, 'root' | 'direct' | 'child' | 'global' | 'excluded'>> | undefined
  /** The membership table (user ↔ tenant): its rows point at users of other tenants by design. */
  readonly membershipTable?: string | undefined
  /** Accepted risks: findings they match are reported apart, with their reason. */
  readonly accept?: readonly Acceptance[] | undefined
}

export interface ModelTable {
  readonly table: Table
  readonly class: TableClass
  readonly tenantColumn: string | null
  readonly via: string | null
  /** The class the config gives the table, when it differs from `class` (a converted child is checked as direct). */
  readonly declared?: TableClass
}

export interface PolicyFacts {
  readonly policy: Policy
  readonly using: ExpressionFacts | null
  readonly withCheck: ExpressionFacts | null
}

export interface TenantModel {
  readonly catalog: Catalog
  readonly tenantColumn: string | null
  readonly tenantColumnSource: Inference
  readonly setting: string
  readonly settingSource: Inference
  readonly appRole: string | null
  readonly appRoleSource: Inference
  /** The app role's catalog entry; null when it does not exist (or is unknown). */
  readonly app: Role | null
  /** The app role and every role it is a member of (transitively), plus `public`. */
  readonly appRoles: ReadonlySet<string>
  readonly root: Table | null
  readonly rootKey: string | null
  readonly rootSource: Inference
  /** Every table outside the excluded schemas, classified, in catalog order. */
  readonly tables: readonly ModelTable[]
  readonly notes: readonly string[]
  /** Unique constraints or indexes meant to span all tenants, by `schema.table`. */
  readonly globalUniques: Readonly<Record<string, readonly string[]>>
  /** The membership table, `schema.table`, or null. */
  readonly membershipTable: string | null
  readonly acceptances: readonly Acceptance[]
  readonly routines: ReadonlyMap<number, RoutineFacts>
  /** Routines that read the tenant setting (directly or through others). */
  readonly contextRoutines: ReadonlySet<number>
  /** Per table oid. */
  readonly policies: ReadonlyMap<number, readonly PolicyFacts[]>
  modelTable(oid: number): ModelTable | undefined
  /** Root, direct, child or policy-scoped. */
  isTenantTable(oid: number): boolean
  /** The tenant tables, in catalog order. */
  tenantTables(): readonly ModelTable[]
}

const tableKey = (t: { schema: string; name: string }): string => `${t.schema}.${t.name}`

/** The key with the highest count; ties go to the earlier entry of `prefer`, then to the smaller key. */
function mostCommon(counts: Map<string, number>, prefer: readonly string[] = []): [string, number] | null {
  const rank = (value: string): number => (prefer.includes(value) ? prefer.indexOf(value) : prefer.length)
  const sorted = [...counts].sort(([a, n], [b, m]) => m - n || rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0))
  return sorted[0] ?? null
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1)
}

const plural = (n: number, word: string): string => `${n} ${n === 1 ? word : word.endsWith('y') ? `${word.slice(0, -1)}ies` : `${word}s`}`

/** Roles whose privileges `role` may end up holding (itself included). */
export function roleClosure(catalog: Catalog, role: string): Set<string> {
  const r = catalog.role(role)
  return new Set([role, ...(r?.memberOfTransitive ?? [])])
}

/** Build the model. Pure: the catalog is the only input besides the options. */
export function buildModel(catalog: Catalog, options: ModelOptions = {}): TenantModel {
  const notes: string[] = []
  const routines = routineFacts(catalog)
  const routineSettings = new Map<number, Set<string>>()
  for (const oid of routines.keys()) routineSettings.set(oid, settingsReadBy(oid, routines))
  const excluded = new Set(options.exclude ?? [])
  const candidates = catalog.tables.filter((t) => !EXCLUDED_SCHEMAS.has(t.schema) && t.extension === null && !excluded.has(tableKey(t)))
  const columnOf = (t: Table): string | null => options.tableColumns?.[tableKey(t)] ?? null
  const expressions = (p: Policy): string[] => [p.using, p.withCheck].filter((e): e is string => e !== null)

  // 1. The setting: the one policies compare a column with. A setting read only as a switch
  // (`current_setting('app.bypass') = 'on'`) never carries the tenant, however often it is read.
  let setting = options.setting?.toLowerCase() ?? DEFAULT_SETTING
  let settingSource: Inference = options.setting === undefined ? 'default' : 'option'
  if (options.setting === undefined) {
    const inferred = inferSetting(candidates, catalog, routineSettings, options)
    if (inferred.chosen !== null) {
      setting = inferred.chosen
      settingSource = 'policies'
    }
    notes.push(...inferred.notes)
  }
  const contextRoutines = new Set<number>()
  for (const [oid, settings] of routineSettings) if (settings.has(setting)) contextRoutines.add(oid)
  const scopeFor = (tenantColumn: string | null): ExpressionScope => ({ catalog, setting, contextRoutines, routineSettings, tenantColumn })

  // 2. The tenant column.
  let tenantColumn: string | null = options.tenantColumn ?? null
  let tenantColumnSource: Inference = options.tenantColumn === undefined ? 'none' : 'option'
  if (options.tenantColumn === undefined) {
    const counts = new Map<string, number>()
    for (const t of candidates) {
      const cols = new Set<string>()
      for (const p of t.policies) for (const e of expressions(p)) for (const c of analyzeExpression(e, scopeFor(null)).columnsComparedToContext) cols.add(c)
      // Only columns that are not the table's own key: the tenant table compares its id.
      for (const c of cols) if (!isSingleKey(t, c)) bump(counts, c)
    }
    const fromPolicies = mostCommon(counts, TENANT_COLUMN_NAMES)
    if (fromPolicies !== null) {
      tenantColumn = fromPolicies[0]
      tenantColumnSource = 'policies'
      notes.push(`tenant column "${tenantColumn}" inferred from the policies of ${plural(fromPolicies[1], 'table')}`)
    } else {
      const byName = new Map<string, number>()
      for (const t of candidates) for (const c of t.columns) if (TENANT_COLUMN_NAMES.includes(c.name)) bump(byName, c.name)
      const best = mostCommon(byName, TENANT_COLUMN_NAMES)
      if (best !== null) {
        tenantColumn = best[0]
        tenantColumnSource = 'names'
        notes.push(`tenant column "${tenantColumn}" inferred from column names (${plural(best[1], 'table')} have it); pass --tenant-column to choose another`)
      } else {
        notes.push('no tenant column found (no policy compares a column with the context, no org_id/organization_id/tenant_id column); pass --tenant-column')
      }
    }
  }

  // 3. The root (tenant) table.
  let root: Table | null = null
  let rootKey: string | null = null
  let rootSource: Inference = 'none'
  if (options.tenantTable !== undefined) {
    root = candidates.find((t) => tableKey(t) === options.tenantTable) ?? null
    const pk = root?.constraints.find((c) => c.type === 'primary key' && c.columns.length === 1)
    if (root === null || pk === undefined) notes.push(`the tenant table ${options.tenantTable} does not exist or has no single-column primary key; inferring it instead`)
    else {
      rootKey = pk.columns[0]!
      rootSource = 'option'
    }
    if (rootKey === null) root = null
  }
  // Tables whose own policies compare their single-column key with the context: the tenant table says so itself.
  const policyRoots: [Table, string][] = []
  for (const t of candidates) {
    if (tenantColumn !== null && t.columns.some((c) => c.name === tenantColumn)) continue
    const cols = new Set(t.policies.flatMap((p) => expressions(p).flatMap((e) => analyzeExpression(e, scopeFor(null)).columnsComparedToContext)))
    const key = [...cols].find((c) => isSingleKey(t, c))
    if (key !== undefined) policyRoots.push([t, key])
  }
  if (root === null && tenantColumn !== null) {
    const targets = new Map<string, number>()
    const keyOf = new Map<string, string>()
    for (const t of candidates) {
      for (const c of t.constraints) {
        if (c.type !== 'foreign key' || c.columns.length !== 1 || c.columns[0] !== tenantColumn) continue
        const k = tableKey(c.references.table)
        if (k === tableKey(t)) continue
        bump(targets, k)
        keyOf.set(k, c.references.columns[0]!)
      }
    }
    // Foreign keys decide, unless they point elsewhere than every table whose policies compare its key with the
    // context (a legacy organisations table): then the policies do, and the note says so.
    const byPolicy = new Set(policyRoots.map(([t]) => tableKey(t)))
    const best = mostCommon(targets, [...byPolicy])
    if (best !== null && (byPolicy.size === 0 || byPolicy.has(best[0]))) {
      root = candidates.find((t) => tableKey(t) === best[0]) ?? null
      rootKey = keyOf.get(best[0]) ?? null
      rootSource = 'foreign keys'
    } else if (best !== null) {
      const [t, key] = policyRoots[0]!
      root = t
      rootKey = key
      rootSource = 'policies'
      const elsewhere = [...targets].map(([k, n]) => `${k} (${plural(n, 'table')})`).join(', ')
      notes.push(`the tenant column's foreign keys point at ${elsewhere}, whose key no policy compares with the context; ${tableKey(t)} is taken as the tenant table because its policies compare "${key}" with it (set tenant.table in the config to choose another)`)
    }
  }
  if (root === null && policyRoots.length > 0) {
    ;[root, rootKey] = policyRoots[0]!
    rootSource = 'policies'
  }
  if (root === null) {
    for (const name of ROOT_NAMES) {
      const t = candidates.find((x) => x.name === name && x.kind !== 'partition')
      const pk = t?.constraints.find((c) => c.type === 'primary key' && c.columns.length === 1)
      if (t !== undefined && pk !== undefined) {
        root = t
        rootKey = pk.columns[0]!
        rootSource = 'names'
        break
      }
    }
  }
  if (root !== null && rootSource !== 'option') notes.push(`tenant table ${tableKey(root)} (key "${rootKey}") inferred from ${rootSource}`)

  // 4. Classify every table.
  const cls = new Map<number, ModelTable>()
  for (const t of candidates) {
    if (root !== null && t.oid === root.oid) cls.set(t.oid, { table: t, class: 'root', tenantColumn: rootKey, via: null })
    else if (columnOf(t) !== null && t.columns.some((c) => c.name === columnOf(t))) cls.set(t.oid, { table: t, class: 'direct', tenantColumn: columnOf(t), via: null })
    else if (tenantColumn !== null && t.columns.some((c) => c.name === tenantColumn)) cls.set(t.oid, { table: t, class: 'direct', tenantColumn, via: null })
  }
  for (let changed = true; changed; ) {
    changed = false
    for (const t of candidates) {
      if (cls.has(t.oid)) continue
      const fk = t.constraints.find((c): c is ForeignKeyConstraint => c.type === 'foreign key' && c.references.table.oid !== t.oid && cls.has(c.references.table.oid))
      if (fk === undefined) continue
      const parent = cls.get(fk.references.table.oid)!
      const via = parent.via === null ? `${t.name} → ${parent.table.name}` : `${t.name} → ${parent.via}`
      cls.set(t.oid, { table: t, class: 'child', tenantColumn: null, via })
      changed = true
    }
  }
  // Partitions and inheritance children of a tenant table belong to it, whatever their columns.
  for (let changed = true; changed; ) {
    changed = false
    for (const t of candidates) {
      if (cls.has(t.oid)) continue
      const parent = t.partitionOf?.parent ?? t.inheritsFrom[0]
      const p = parent === undefined ? undefined : cls.get(parent.oid)
      if (p === undefined) continue
      cls.set(t.oid, { table: t, class: p.class === 'root' ? 'direct' : p.class, tenantColumn: p.tenantColumn, via: p.via })
      changed = true
    }
  }
  for (const t of candidates) {
    if (cls.has(t.oid)) continue
    cls.set(t.oid, { table: t, class: t.rowSecurity || t.policies.length > 0 ? 'policy' : 'global', tenantColumn: null, via: null })
  }
  for (const [oid, m] of cls) {
    const declared = options.classes?.[tableKey(m.table)]
    if (declared !== undefined && declared !== 'excluded' && declared !== m.class) cls.set(oid, { ...m, declared })
  }
  const tables = candidates.map((t) => cls.get(t.oid)!)
  const isTenant = (oid: number): boolean => {
    const c = cls.get(oid)?.class
    return c !== undefined && c !== 'global'
  }

  // 5. The app role.
  let appRole: string | null = options.appRole ?? null
  let appRoleSource: Inference = options.appRole === undefined ? 'none' : 'option'
  if (options.appRole === undefined) {
    const owners = new Set(tables.filter((m) => isTenant(m.table.oid)).map((m) => m.table.owner))
    const eligible = (name: string): boolean => {
      const r = catalog.role(name)
      return r !== undefined && !r.superuser && !owners.has(name)
    }
    const fromPolicies = new Map<string, number>()
    for (const m of tables) {
      if (!isTenant(m.table.oid)) continue
      const roles = new Set(m.table.policies.flatMap((p) => p.roles).filter((r) => r !== 'public' && eligible(r)))
      for (const r of roles) bump(fromPolicies, r)
    }
    const best = mostCommon(fromPolicies)
    if (best !== null) {
      appRole = best[0]
      appRoleSource = 'policies'
      notes.push(`app role "${appRole}" inferred from the policies of ${plural(best[1], 'table')}; pass --app-role to choose another`)
    } else {
      const fromGrants = new Map<string, number>()
      for (const m of tables) {
        if (!isTenant(m.table.oid)) continue
        const grantees = new Set(m.table.grants.filter((g: RelationGrant) => g.privilege === 'SELECT' && g.grantee !== 'public' && eligible(g.grantee) && catalog.role(g.grantee)?.login === true).map((g) => g.grantee))
        for (const g of grantees) bump(fromGrants, g)
      }
      const byGrant = mostCommon(fromGrants)
      if (byGrant !== null) {
        appRole = byGrant[0]
        appRoleSource = 'grants'
        notes.push(`app role "${appRole}" inferred from SELECT grants on ${plural(byGrant[1], 'tenant table')}; pass --app-role to choose another`)
      }
    }
  }
  const app = appRole === null ? null : catalog.role(appRole) ?? null
  const appRoles = new Set<string>(['public'])
  if (appRole !== null) for (const r of roleClosure(catalog, appRole)) appRoles.add(r)

  // 6. Policy facts per table, with each table's own tenant column.
  const policies = new Map<number, PolicyFacts[]>()
  for (const m of tables) {
    const scope = scopeFor(m.tenantColumn)
    policies.set(
      m.table.oid,
      m.table.policies.map((p) => ({
        policy: p,
        using: p.using === null ? null : analyzeExpression(p.using, scope),
        withCheck: p.withCheck === null ? null : analyzeExpression(p.withCheck, scope),
      })),
    )
  }

  return {
    catalog,
    tenantColumn,
    tenantColumnSource,
    setting,
    settingSource,
    appRole,
    appRoleSource,
    app,
    appRoles,
    root,
    rootKey,
    rootSource,
    tables,
    notes,
    globalUniques: options.globalUniques ?? {},
    membershipTable: options.membershipTable ?? null,
    acceptances: options.accept ?? [],
    routines,
    contextRoutines,
    policies,
    modelTable: (oid) => cls.get(oid),
    isTenantTable: isTenant,
    tenantTables: () => tables.filter((m) => m.class !== 'global'),
  }
}

interface SettingInference {
  readonly chosen: string | null
  readonly notes: readonly string[]
}

/**
 * The tenant setting from the policies: the setting compared with a column (`org_id = current_setting(…)`,
 * directly or through a helper function) in the most policies — only with the tenant column when it is
 * given. Settings only compared with constants are switches and never chosen. The notes say which setting
 * was chosen and why, and what became of the others.
 */
function inferSetting(tables: readonly Table[], catalog: Catalog, routineSettings: ReadonlyMap<number, ReadonlySet<string>>, options: ModelOptions): SettingInference {
  const compared = new Map<string, number>()
  const read = new Map<string, number>()
  // Any setting will do as "the context" here: only the comparisons' columns and settings are read.
  const scope: ExpressionScope = { catalog, setting: '\u0000', contextRoutines: new Set(), routineSettings, tenantColumn: null }
  for (const t of tables) {
    const wanted = (column: string): boolean => {
      if (options.tenantColumn === undefined) return true
      return column === (options.tableColumns?.[tableKey(t)] ?? options.tenantColumn) || isSingleKey(t, column)
    }
    for (const p of t.policies) {
      const reads = new Set<string>()
      const compares = new Set<string>()
      for (const e of [p.using, p.withCheck]) {
        if (e === null) continue
        for (const s of settingsInExpression(e)) reads.add(s)
        for (const r of routinesInExpression(e, catalog)) for (const s of routineSettings.get(r.oid) ?? []) reads.add(s)
        for (const c of analyzeExpression(e, scope).settingComparisons) if (wanted(c.column)) for (const s of c.settings) compares.add(s)
      }
      for (const s of reads) bump(read, s)
      for (const s of compares) bump(compared, s)
    }
  }
  const best = mostCommon(compared, [DEFAULT_SETTING])
  const notes: string[] = []
  if (best === null) {
    notes.push(read.size === 0 ? `no policy reads a setting; assuming the default context setting "${DEFAULT_SETTING}"` : `no policy compares a column with a setting; assuming the default context setting "${DEFAULT_SETTING}"`)
  } else {
    notes.push(`context setting "${best[0]}" inferred from current_setting() in ${plural(best[1], 'policy')} that compare a column with it`)
  }
  const chosen = best?.[0] ?? DEFAULT_SETTING
  for (const [s, n] of [...read].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (s === chosen) continue
    const c = compared.get(s) ?? 0
    if (c === 0) notes.push(`setting "${s}" (read by ${plural(n, 'policy')}) is never compared with a column, only used as a switch: not the tenant context`)
    else notes.push(`setting "${s}" is compared with a column in ${plural(c, 'policy')}, ${c === best?.[1] ? `as many as "${chosen}", which was preferred${chosen === DEFAULT_SETTING ? ' as Tenantize\'s own' : ' by name'}` : `fewer than "${chosen}"`}; pass --setting ${s} if that is the one your runtime sets`)
  }
  return { chosen: best?.[0] ?? null, notes }
}

/** Whether `column` alone is the table's primary key. */
function isSingleKey(t: Table, column: string): boolean {
  return t.constraints.some((c) => c.type === 'primary key' && c.columns.length === 1 && c.columns[0] === column)
}

/** The serializable part of the model, for reports. */
export function summarizeModel(model: TenantModel): ModelSummary {
  return {
    tenantColumn: model.tenantColumn,
    tenantColumnSource: model.tenantColumnSource,
    setting: model.setting,
    settingSource: model.settingSource,
    appRole: model.appRole,
    appRoleSource: model.appRoleSource,
    rootTable: model.root === null ? null : tableKey(model.root),
    rootSource: model.rootSource,
    tables: model.tables.map((m) => ({ table: tableKey(m.table), class: m.declared ?? m.class, tenantColumn: m.tenantColumn, via: m.via })),
    notes: model.notes,
  }
}
