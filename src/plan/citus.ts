/**
 * `target: 'citus'`: what the plan adds or changes when the database is a Citus coordinator. PURE, like
 * the rest of the planner. Facts measured on Citus 13.2 (docs/citus.md):
 * - a policy with a sub-select is refused on a distributed table: the policy calls the STABLE helper directly;
 * - a RESTRICTIVE policy reaches the shards as PERMISSIVE (Citus drops `AS RESTRICTIVE` when it copies
 *   policies): sub-tenant scopes are AND-ed into the tenant policy, and existing restrictive policies refused;
 * - primary keys and unique constraints must include the distribution column (the tenant column), and
 *   foreign keys between distributed tables must include it on both sides: the plan's composite keys;
 * - a table with triggers cannot be distributed; neither can one referenced by, or referencing, a local table;
 * - `SET LOCAL` reaches the workers only with `citus.propagate_set_commands = 'local'` (set for the app role);
 * - the coordinator connects to the workers as the current user, also after `SET ROLE`: the app role needs LOGIN.
 *
 * The conversion runs on the coordinator's local tables exactly as on PostgreSQL (concurrent builds,
 * NOT VALID + VALIDATE, readiness counters), and the tables are distributed last, once enforce has
 * replaced the fill triggers and counters: the tenant table and global tables become reference tables,
 * every tenant table is distributed by its tenant column, all in one colocation group.
 */
import type { Catalog, ForeignKeyConstraint, Table } from '../catalog/types.js'
import type { Problem } from '../errors.js'
import { qualifiedName, quoteIdent, quoteLiteral, roleName } from '../sql/quote.js'
import { splitKey, tableKeyOf, type TenantizeConfig } from './config.js'
import { literal, sqlText, type Operation, type Rel } from './operations.js'
import type { LockLevel, ManualStep, Step } from './steps.js'

/** The setting that makes Citus send `SET LOCAL` to the workers a transaction uses. */
export const CITUS_PROPAGATE_SETTING = 'citus.propagate_set_commands'

/** The tenant policy's condition on Citus: the helper called directly (Citus refuses sub-selects in policies). */
export function citusPolicyExpr(column: string, helperCall: string): string {
  return `(${quoteIdent(column)} OPERATOR(pg_catalog.=) ${helperCall})`
}

/** A sub-tenant scope's condition on Citus: empty scope = the whole tenant, else the scope's rows. */
export function citusScopeExpr(column: string, helperCall: string): string {
  return `(${helperCall} IS NULL OR ${quoteIdent(column)} OPERATOR(pg_catalog.=) ${helperCall})`
}

/**
 * Sub-tenant scopes on Citus. Citus 13.2 copies a table's policies to its shards without `AS RESTRICTIVE`
 * (commands/policy.c, CreatePolicyCommandForPolicy), so a RESTRICTIVE scope policy would be OR-ed with the
 * tenant policy on the shards and widen access to every row of every tenant. On Citus the scope is AND-ed
 * into the one permissive tenant policy instead: the policy is replaced, in the step's transaction, by one
 * whose condition is the tenant's AND each scope's so far. `before` is the scopes already folded in.
 */
export function citusScopedPolicy(table: Rel, policy: string, role: string, tenantExpr: string, before: readonly string[], scope: string): { up: Operation[]; down: Operation[] } {
  const policyOf = (scopes: readonly string[]): Operation => {
    const expr = sqlText(scopes.length === 0 ? tenantExpr : `(${[tenantExpr, ...scopes].join(' AND ')})`)
    return { op: 'createPolicy', table, name: policy, mode: 'PERMISSIVE', command: 'ALL', roles: [role], using: expr, withCheck: expr }
  }
  return {
    up: [{ op: 'dropPolicy', table, name: policy }, policyOf([...before, scope])],
    down: [{ op: 'dropPolicy', table, name: policy }, policyOf(before)],
  }
}

/** A tenant table as the planner resolved it. */
export interface CitusTenantTable {
  readonly key: string
  readonly rel: Rel
  readonly table: Table
  readonly column: string
  readonly rows: number
  /** The plan fills its tenant column from its parent with this BEFORE trigger (child tables): dropped before distribution. */
  readonly fillTrigger?: Operation
  /** Its tenant comes from the row that references it (a reverse path): a trigger on the parent writes it. */
  readonly reverse: boolean
}

/** A view over tenant or global tables: Citus recreates it (CREATE VIEW + owner, no grants) whenever it converts a table it reads. */
export interface CitusView {
  readonly rel: Rel
  /** The privileges it must have once the tables are distributed (its own, and the app role's SELECT when the plan grants it). */
  readonly grants: readonly { readonly grantee: string; readonly privilege: string }[]
}

export interface CitusInput {
  readonly catalog: Catalog
  readonly config: TenantizeConfig
  readonly rootKey: string
  /** Tenant tables other than the tenant table. */
  readonly tables: readonly CitusTenantTable[]
  /** The steps planned so far: which keys the plan rewrites or drops. */
  readonly planned: readonly Step[]
  /** The composite foreign keys between tenant tables the plan adds (`addForeignKey` operations). */
  readonly compositeForeignKeys: readonly Operation[]
  /** The helper call policies and defaults use, e.g. `tenantize.current_tenant_id()`. */
  readonly helperCall: string
  /** Views over tenant and global tables (their grants are lost each time Citus converts a table they read). */
  readonly views: readonly CitusView[]
  /** A relation name in `table`'s schema that nothing uses yet. */
  freeName(table: Table, ...parts: string[]): string
}

/** A step as citus.ts writes it; the planner compiles it like its own. */
export interface CitusStepSpec {
  readonly id: string
  readonly phase: 'enforce'
  readonly table: string | null
  readonly title: string
  readonly up: readonly Operation[]
  readonly down: readonly Operation[]
  readonly lock?: LockLevel
  readonly lockHeld: Step['lockHeld']
  readonly rows?: number
}

export interface CitusPlan {
  readonly steps: readonly CitusStepSpec[]
  readonly problems: readonly Problem[]
  readonly manual: readonly ManualStep[]
}

type Placement = 'distributed' | 'reference' | 'local'

const relSql = (r: Rel): string => qualifiedName(r.schema, r.name)
const regclass = (r: Rel): string => `${quoteLiteral(relSql(r))}::pg_catalog.regclass`

/** Undo a distribution: back to a local table with its rows, together with every table its foreign keys connect it to; nothing when it is local already. */
function undistribute(r: Rel): Operation {
  return { op: 'select', sql: sqlText(`SELECT pg_catalog.undistribute_table(logicalrelid, cascade_via_foreign_keys => true) FROM pg_catalog.pg_dist_partition WHERE logicalrelid = ${regclass(r)}`) }
}

/** Order tables so that every table comes after the tables its foreign keys reference (among `keys`); cycles keep key order. */
function referencedFirst(keys: readonly string[], references: (key: string) => readonly string[]): string[] {
  const out: string[] = []
  const state = new Map<string, 'visiting' | 'done'>()
  const visit = (key: string): void => {
    if (state.has(key)) return
    state.set(key, 'visiting')
    for (const r of references(key)) if (r !== key && keys.includes(r)) visit(r)
    state.set(key, 'done')
    out.push(key)
  }
  for (const k of [...keys].sort()) visit(k)
  return out
}

/**
 * PURE: the Citus steps (appended at the end of enforce), and what Citus would refuse, each with its fix.
 */
export function citusPlan(input: CitusInput): CitusPlan {
  const { catalog, config, rootKey } = input
  const problems: Problem[] = []
  const manual: ManualStep[] = []
  const steps: CitusStepSpec[] = []
  const tenantKeys = new Set(input.tables.map((t) => t.key))
  const globalKeys = Object.entries(config.tables).filter(([, c]) => c.class === 'global').map(([k]) => k).filter((k) => catalog.table(splitKey(k).schema, splitKey(k).name) !== undefined)
  const placement = (key: string): Placement => (tenantKeys.has(key) ? 'distributed' : key === rootKey || globalKeys.includes(key) ? 'reference' : 'local')
  const planned = new Set(input.planned.map((s) => s.id))

  if (config.tenant.membership !== null && config.tenant.create) {
    problems.push({ object: 'tenant.membership', message: 'a membership table is not planned for target citus yet (its user key references a distributed table without the tenant column)', fix: 'set tenant.membership to null and keep memberships in a tenant table of your own' })
  }

  // Foreign keys Citus refuses: between placements that cannot reference each other, or between tenant tables without the tenant column.
  for (const table of catalog.tables) {
    const key = tableKeyOf(table)
    for (const fk of table.constraints.filter((c): c is ForeignKeyConstraint => c.type === 'foreign key' && c.parentOid === null)) {
      const parentKey = tableKeyOf(fk.references.table)
      const from = placement(key)
      const to = placement(parentKey)
      const name = `${key} ${fk.name}`
      if (from === 'local' && to === 'local') continue
      if (from === 'local' && to === 'distributed') {
        problems.push({ object: name, message: `references the tenant table ${parentKey}, which becomes distributed; Citus refuses a local table referencing a distributed one`, fix: `classify ${key} direct, child or global, or drop ${fk.name}` })
      } else if (from === 'reference' && to !== 'reference') {
        problems.push({ object: name, message: `${key} becomes a reference table and references ${to === 'distributed' ? `the tenant table ${parentKey}` : `the local table ${parentKey}`}; Citus refuses that`, fix: to === 'distributed' ? `make ${key} a tenant table, or drop ${fk.name}` : `classify ${parentKey} global, or drop ${fk.name}` })
      } else if (from === 'distributed' && to === 'local') {
        problems.push({ object: name, message: `the tenant table ${key} references the local table ${parentKey}; Citus refuses that`, fix: `classify ${parentKey} global (a reference table) or as a tenant table, or drop ${fk.name}` })
      } else if (from === 'distributed' && to === 'distributed') {
        const t = input.tables.find((x) => x.key === key)!
        const p = input.tables.find((x) => x.key === parentKey)!
        const scoped = fk.columns[0] === t.column && fk.references.columns[0] === p.column
        if (!scoped && !planned.has(`drop-single-fk:${key}:${fk.name}`)) {
          const shared = config.tables[key]?.sharedReferences.some((r) => r.constraint === fk.name) === true
          problems.push({ object: name, message: shared ? 'is a shared reference (may point at another tenant\'s row); Citus cannot keep a foreign key across shards' : `does not include the tenant column ${t.column}, and the plan cannot drop it (its composite twin cannot carry its actions)`, fix: shared ? `drop ${fk.name}, or classify ${parentKey} global` : `rewrite it as (${t.column}, ${fk.columns.join(', ')}) → ${parentKey} (${p.column}, ${fk.references.columns.join(', ')}) yourself, or drop it` })
        }
      }
    }
  }

  // Unique keys Citus refuses on a distributed table: those without the tenant column that the plan keeps.
  for (const t of input.tables) {
    if (t.reverse) problems.push({ object: t.key, message: 'takes its tenant from the row that references it (a reverse path), kept up to date by a trigger; Citus refuses triggers on distributed tables', fix: 'choose a forward path (a foreign key of this table) in tables.' + t.key + '.path, or classify it global' })
    if (t.table.kind === 'partitioned') problems.push({ object: t.key, message: 'is partitioned: its keys are not rewritten for target citus yet', fix: 'distribute it by hand (create_distributed_table) after the conversion, or classify it global' })
    const restrictive = t.table.policies.filter((p) => p.mode === 'restrictive')
    if (restrictive.length > 0) problems.push({ object: t.key, message: `has RESTRICTIVE polic${restrictive.length === 1 ? 'y' : 'ies'} ${restrictive.map((p) => p.name).join(', ')}; Citus 13.2 copies policies to the shards without AS RESTRICTIVE, where each would widen access instead of narrowing it`, fix: 'drop them and put their condition into a sub-tenant scope (scopes in the config), which target citus AND-s into the tenant policy' })
    const userTriggers = t.table.triggers.filter((g) => g.parentOid === null)
    if (userTriggers.length > 0) problems.push({ object: t.key, message: `has trigger(s) ${userTriggers.map((g) => g.name).join(', ')}; Citus refuses to distribute a table with triggers`, fix: 'drop them (move their work into the app), or set citus.enable_unsafe_triggers and distribute it yourself' })
    for (const index of t.table.indexes) {
      if (!index.unique || index.primary || index.columns.includes(t.column)) continue
      if (planned.has(`tenant-unique:${t.key}:${index.name}`)) continue
      problems.push({ object: `${t.key} ${index.name}`, message: `unique without the tenant column ${t.column}; Citus refuses unique keys without the distribution column`, fix: `remove it from keepGlobalUnique, or recreate it as (${t.column}, …) first` })
    }
  }
  for (const key of globalKeys) {
    const table = catalog.table(splitKey(key).schema, splitKey(key).name)!
    const userTriggers = table.triggers.filter((g) => g.parentOid === null)
    if (userTriggers.length > 0) problems.push({ object: key, message: `a global table becomes a reference table, and has trigger(s) ${userTriggers.map((g) => g.name).join(', ')}, which Citus refuses`, fix: 'drop them, or classify the table excluded' })
  }
  if (problems.length > 0) return { steps, problems, manual }

  // The app role's sessions send SET LOCAL to the workers. The coordinator opens its connections to the
  // workers as the current user, also after SET ROLE: the app role must be allowed to log in there.
  const role = config.roles.app
  const login = catalog.role(role)?.login !== true
  steps.push({
    id: 'citus-context',
    phase: 'enforce',
    table: null,
    title: `${CITUS_PROPAGATE_SETTING} = 'local' for ${role}: its SET LOCAL tenant context reaches the workers${login ? `; LOGIN, since the coordinator connects to the workers as ${role} (it stays a role your login role SET ROLEs to; pg_hba.conf decides who may log in as it)` : ''}`,
    up: [{ op: 'roleSetting', role, setting: CITUS_PROPAGATE_SETTING, value: literal('local') }, ...(login ? [{ op: 'select', sql: sqlText(`ALTER ROLE ${roleName(role)} LOGIN`) } as const] : [])],
    down: [...(login ? [{ op: 'select', sql: sqlText(`ALTER ROLE ${roleName(role)} NOLOGIN`) } as const] : []), { op: 'roleSetting', role, setting: CITUS_PROPAGATE_SETTING, value: null }],
    lockHeld: 'brief',
  })
  manual.push({ object: `role ${role}`, reason: `${CITUS_PROPAGATE_SETTING} = 'local' applies to sessions that log in as ${role}; a login role that only SET ROLEs to it does not get it, and set_config() never reaches the workers`, fix: `ALTER ROLE <your login role> SET ${CITUS_PROPAGATE_SETTING} = 'local'; and use the runtime's strategy 'set-local'` })

  // Primary keys with the tenant column first (Citus requires the distribution column in every unique key).
  for (const t of input.tables) {
    const pk = t.table.indexes.find((i) => i.primary)
    if (pk === undefined || pk.columns.includes(t.column) || planned.has(`tenant-primary-key:${t.key}`)) continue
    const constraint = t.table.constraints.find((c) => c.type === 'primary key')
    if (constraint === undefined) continue
    const columns = pk.columns as string[]
    const scoped = input.freeName(t.table, pk.name, 'tenant')
    const global = input.freeName(t.table, pk.name, 'global')
    const build = (name: string, cols: readonly string[]): Operation => ({ op: 'createIndex', table: t.rel, name, columns: cols, unique: true, concurrently: true, only: false })
    const swap = (from: string): Operation => ({ op: 'swapUniqueConstraint', table: t.rel, name: constraint.name, index: from, deferrable: 'no', primary: true })
    steps.push({
      id: `citus-primary-key:${t.key}`,
      phase: 'enforce',
      table: t.key,
      title: `primary key ${constraint.name} (${columns.join(', ')}) becomes (${[t.column, ...columns].join(', ')}): Citus needs the distribution column in it (index built concurrently, then swapped)`,
      up: [build(scoped, [t.column, ...columns]), swap(scoped)],
      down: [build(global, columns), swap(global)],
      lockHeld: 'brief',
      rows: t.rows,
    })
  }

  // Citus recreates the views over a table each time it converts the table (to a Citus local table when a
  // reference table it references appears, to a distributed one, back to a local one), without their grants.
  const viewGrants: Operation[] = input.views.flatMap((v) => {
    const byGrantee = new Map<string, string[]>()
    for (const g of v.grants) byGrantee.set(g.grantee, [...new Set([...(byGrantee.get(g.grantee) ?? []), g.privilege])])
    return [...byGrantee].sort(([a], [b]) => a.localeCompare(b)).map(([grantee, privileges]): Operation => ({ op: 'grant', privileges: privileges.sort(), on: { kind: 'table', rel: v.rel }, role: grantee }))
  })

  // Reference tables: global tables (referenced ones first), then the tenant table.
  const tableOf = (key: string): Table | undefined => catalog.table(splitKey(key).schema, splitKey(key).name)
  const refsOf = (key: string): string[] => (tableOf(key)?.constraints ?? []).filter((c): c is ForeignKeyConstraint => c.type === 'foreign key').map((c) => tableKeyOf(c.references.table))
  const references = [...referencedFirst(globalKeys, refsOf), rootKey]
  for (const key of references) {
    const r = splitKey(key)
    const rows = Math.max(0, Math.round(tableOf(key)?.estimatedRows ?? (key === rootKey ? 1 : 0)))
    // The first conversion is the last one rollback undoes: the views get their grants back after it.
    const restoreViews = key === references[0] && viewGrants.length > 0
    steps.push({
      id: `citus-reference:${key}`,
      phase: 'enforce',
      table: key,
      title: `${key === rootKey ? 'the tenant table' : 'global table'} becomes a reference table (a copy on every node; writes wait while its rows are copied)${restoreViews ? '; rollback grants the views theirs again (Citus recreates views without grants)' : ''}`,
      up: [{ op: 'select', sql: sqlText(`SELECT pg_catalog.create_reference_table(${quoteLiteral(relSql(r))})`) }],
      down: [undistribute(r), ...(restoreViews ? viewGrants : [])],
      lock: 'EXCLUSIVE',
      lockHeld: 'writes wait, reads go on',
      rows,
    })
  }

  // Citus distributes no table that a local table references or that references a local one: the
  // foreign keys between tenant tables go while the tables are distributed one by one, and come back after.
  const composite = input.compositeForeignKeys.filter((o): o is Extract<Operation, { op: 'addForeignKey' }> => o.op === 'addForeignKey')
  if (composite.length > 0) {
    steps.push({
      id: 'citus-foreign-keys-off',
      phase: 'enforce',
      table: null,
      title: `drop the ${composite.length} composite foreign key(s) between tenant tables while they are distributed (Citus refuses keys between local and distributed tables); added back next`,
      up: composite.map((o) => ({ op: 'dropConstraint', table: o.table, name: o.name, ifExists: true })),
      down: composite.flatMap((o) => [{ ...o, notValid: true }, { op: 'validateConstraint', table: o.table, name: o.name } as const]),
      lockHeld: 'brief',
    })
  }

  // Tenant tables, distributed by the tenant column in one colocation group, referenced tables first.
  const ordered = referencedFirst([...tenantKeys], refsOf)
  const anchor = ordered[0] ?? ''
  for (const key of ordered) {
    const t = input.tables.find((x) => x.key === key)!
    const up: Operation[] = []
    const down: Operation[] = []
    if (t.fillTrigger !== undefined && t.fillTrigger.op === 'createTrigger') {
      // Citus routes an insert by its tenant column before any trigger could fill it: the context's tenant is the default instead.
      up.push({ op: 'dropTrigger', table: t.rel, name: t.fillTrigger.name }, { op: 'setDefault', table: t.rel, column: t.column, default: sqlText(input.helperCall) })
      down.unshift({ op: 'setDefault', table: t.rel, column: t.column, default: sqlText('NULL') }, t.fillTrigger)
    }
    const colocate = key === anchor ? `'none'` : quoteLiteral(relSql(splitKey(anchor)))
    up.push({ op: 'select', sql: sqlText(`SELECT pg_catalog.create_distributed_table(${quoteLiteral(relSql(t.rel))}, ${quoteLiteral(t.column)}, colocate_with => ${colocate})`) })
    down.unshift(undistribute(t.rel))
    steps.push({
      id: `citus-distribute:${key}`,
      phase: 'enforce',
      table: key,
      title: `distribute by ${t.column}${key === anchor ? '' : ` colocated with ${anchor}`} (shards on the workers; writes wait while its rows are copied)${t.fillTrigger === undefined ? '' : `; new rows take ${t.column} from the context (${input.helperCall}) instead of the fill trigger`}`,
      up,
      down,
      lock: 'EXCLUSIVE',
      lockHeld: 'writes wait, reads go on',
      rows: t.rows,
    })
  }
  if (composite.length > 0) {
    steps.push({
      id: 'citus-foreign-keys-on',
      phase: 'enforce',
      table: null,
      title: `the composite foreign keys again, between the colocated shards, checked at once (a violation checked at commit reaches the app only as "could not commit transaction for shard N"); each validated on its shards: writes to the two tables wait meanwhile`,
      up: composite.map((o) => ({ ...o, notValid: false, deferred: false })),
      down: composite.map((o) => ({ op: 'dropConstraint', table: o.table, name: o.name, ifExists: true })),
      lock: 'SHARE ROW EXCLUSIVE',
      lockHeld: 'writes wait, reads go on',
      rows: input.tables.reduce((n, t) => n + t.rows, 0),
    })
  }
  if (viewGrants.length > 0) {
    steps.push({
      id: 'citus-view-grants',
      phase: 'enforce',
      table: null,
      title: `the grants of ${input.views.length} view(s) over the converted tables again: Citus recreated the views without them`,
      up: viewGrants,
      down: [],
      lockHeld: 'brief',
    })
  }
  return { steps, problems, manual }
}
