import type { Catalog, Policy, RelationGrant, RelationRef, Routine, Table } from '../../catalog/types.js'
import { qualifiedName, quoteIdent, quoteLiteral, roleName } from '../../sql/quote.js'
import type { ObjectKind, Severity } from '../types.js'
import { DEFAULT_SETTING, type ModelTable, type TenantModel } from './model.js'

/** The groups rules are documented in. */
export type RuleCategory =
  | 'row-level security'
  | 'app role'
  | 'policies'
  | 'performance'
  | 'functions and triggers'
  | 'views and other relations'
  | 'keys and integrity'
  | 'grants and sequences'
  | 'server'

export const CATEGORIES: readonly RuleCategory[] = Object.freeze([
  'row-level security',
  'app role',
  'policies',
  'performance',
  'functions and triggers',
  'views and other relations',
  'keys and integrity',
  'grants and sequences',
  'server',
])

/** One finding as a rule reports it; the engine adds the rule's id, why and docs. */
export interface Hit {
  readonly objectKind: ObjectKind
  readonly object: string
  /** The table the hit belongs to, for grouping per table. */
  readonly table: RelationRef | null
  readonly message: string
  readonly fix: string
  /** Overrides the rule's severity (e.g. worse when the app role can read the object). */
  readonly severity?: Severity
}

/** A lint: pure, catalog + model → hits. */
export interface LintRule {
  /** Stable, kebab-case; never reused for another meaning. */
  readonly id: string
  readonly severity: Severity
  readonly category: RuleCategory
  /** `table`: every hit names a table (JUnit gets one testcase per table × rule); `database`: roles, functions, the server. */
  readonly scope: 'table' | 'database'
  /** One line for docs/rules.md and --help style listings. */
  readonly summary: string
  /** Why it matters. */
  readonly why: string
  /** What the fix does, in words (each finding carries its own SQL). */
  readonly fixHint: string
  check(model: TenantModel): Iterable<Hit>
}

// ---------------------------------------------------------------------------------------------------
// Naming objects in messages and fix SQL. Every identifier goes through src/sql.

export const tableSql = (t: { schema: string; name: string }): string => qualifiedName({ schema: t.schema, name: t.name })
export const display = (t: { schema: string; name: string }): string => `${t.schema}.${t.name}`
const policyObject = (p: Policy): string => `policy ${quoteIdent(p.name)} on ${tableSql(p.table)}`
export const routineSql = (r: Routine): string => `${qualifiedName({ schema: r.schema, name: r.name })}(${r.identityArguments})`

/** The kind of object a table is, for findings. */
function tableKind(t: Table): ObjectKind {
  return t.foreign ? 'foreign table' : 'table'
}

/** A hit on a table. */
export function onTable(t: Table, message: string, fix: string, severity?: Severity): Hit {
  return { objectKind: tableKind(t), object: tableSql(t), table: t, message, fix, ...(severity === undefined ? {} : { severity }) }
}

/** A hit on a policy. */
export function onPolicy(p: Policy, message: string, fix: string, severity?: Severity): Hit {
  return { objectKind: 'policy', object: policyObject(p), table: p.table, message, fix, ...(severity === undefined ? {} : { severity }) }
}

/** The role the fixes grant to: the app role, or a placeholder comment when it is unknown. */
export function appRoleSql(model: TenantModel): string {
  return model.appRole === null ? '"<app role>"' : roleName(model.appRole)
}

/** Builtin types a tenant column may have, safe to write as they are. */
const PLAIN_TYPES = new Set(['uuid', 'bigint', 'integer', 'smallint', 'text', 'character varying', 'numeric'])

function castType(m: ModelTable | undefined): string {
  const column = m?.tenantColumn === null || m === undefined ? undefined : m.table.columns.find((c) => c.name === m.tenantColumn)
  const type = column?.type ?? 'uuid'
  return PLAIN_TYPES.has(type.replace(/\(.*\)$/, '')) ? type : `${type} /* check this type */`
}

/**
 * The expression that yields the current tenant, for fixes: Tenantize's helper when it exists and reads
 * this setting, else a fail-closed read of the setting itself, wrapped in a scalar sub-select.
 */
export function contextSql(model: TenantModel, m?: ModelTable): string {
  const helper = model.catalog.routinesNamed('tenantize', 'current_tenant_id').find((r) => r.identityArguments === '')
  if (helper !== undefined && model.setting === DEFAULT_SETTING && model.contextRoutines.has(helper.oid)) return '(SELECT tenantize.current_tenant_id())'
  return `(SELECT nullif(pg_catalog.current_setting(${quoteLiteral(model.setting)}, true), '')::${castType(m)})`
}

/** `CREATE POLICY tenant_isolation …` for a table with a tenant column; a comment for one without. */
export function tenantPolicySql(model: TenantModel, m: ModelTable, name = 'tenant_isolation'): string {
  if (m.tenantColumn === null) {
    return `-- ${display(m.table)} has no tenant column: add one (filled from its parent), then\n-- CREATE POLICY ${name} ON ${tableSql(m.table)} … USING (<tenant column> = <current tenant>) WITH CHECK (…);`
  }
  const pred = `${quoteIdent(m.tenantColumn)} = ${contextSql(model, m)}`
  return `CREATE POLICY ${quoteIdent(name)} ON ${tableSql(m.table)} AS PERMISSIVE FOR ALL TO ${appRoleSql(model)}\n  USING (${pred}) WITH CHECK (${pred});`
}

/** `ENABLE` + `FORCE` row-level security. */
export function enableRlsSql(t: Table): string {
  return `ALTER TABLE ${tableSql(t)} ENABLE ROW LEVEL SECURITY;\nALTER TABLE ${tableSql(t)} FORCE ROW LEVEL SECURITY;`
}

// ---------------------------------------------------------------------------------------------------
// Privileges.

/** Grants on an object held by the app role, a role it belongs to, or PUBLIC — leaving out the owner's own. */
export function appGrants(model: TenantModel, grants: readonly RelationGrant[], owner: string): RelationGrant[] {
  return grants.filter((g) => model.appRoles.has(g.grantee) && g.grantee !== owner)
}

/** Whether the app role holds a privilege on an object (owner privileges included when it owns or inherits the owner). */
export function appHas(model: TenantModel, grants: readonly RelationGrant[], owner: string, privilege: string): boolean {
  if (model.appRole !== null && model.appRoles.has(owner)) return true
  return grants.some((g) => model.appRoles.has(g.grantee) && g.privilege === privilege)
}

/** Whether the app role is the owner of `owner`'s objects or inherits its privileges. */
export function appOwns(model: TenantModel, owner: string): boolean {
  return model.appRole !== null && owner !== 'public' && model.appRoles.has(owner)
}

/** Whether `role` escapes row-level security on `t`: superuser, BYPASSRLS, or owner of a table without FORCE. */
export function bypassesRls(catalog: Catalog, role: string, t: Table): boolean {
  const r = catalog.role(role)
  if (r === undefined) return false
  if (r.superuser || r.bypassRls) return true
  const owners = new Set([role, ...r.memberOfTransitive])
  return owners.has(t.owner) && !t.forceRowSecurity
}

/** Which policies apply to the app role (TO PUBLIC, the app role, or a role it belongs to). */
export function appliesToApp(model: TenantModel, p: Policy): boolean {
  return p.roles.some((r) => model.appRoles.has(r))
}

/** Tables a view reads, following views through views. */
export function tablesBehind(catalog: Catalog, viewOid: number, seen = new Set<number>()): RelationRef[] {
  if (seen.has(viewOid)) return []
  seen.add(viewOid)
  const view = catalog.viewByOid(viewOid)
  if (view === undefined) return []
  const out: RelationRef[] = []
  for (const d of view.dependsOn) {
    if (d.kind === 'view' || d.kind === 'materialized view') out.push(...tablesBehind(catalog, d.oid, seen))
    else out.push(d)
  }
  return out
}

