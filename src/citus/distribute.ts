/**
 * The second way onto Citus (docs/citus.md, "The two ways in"): a database converted on PostgreSQL
 * (`tenantize apply` with target postgres: tenant column, composite keys, row-level security) is
 * distributed online once it sits on a Citus coordinator. Each step is typed and states its lock:
 *
 * 1. `citus-state`: the composite foreign keys and the view grants the next steps drop (or Citus loses)
 *    are written to `tenantize.distribute_state`, so an interrupted run resumes with them.
 * 2. `citus-context`: the app role gets `citus.propagate_set_commands = 'local'` and LOGIN (its `SET LOCAL`
 *    context reaches the workers; the coordinator connects to them as that role).
 * 3. `citus-policy:<table>`: policies in the shape Citus accepts — the helper called directly instead of
 *    a scalar sub-select (refused on Citus tables), restrictive policies AND-ed into the tenant policy
 *    (Citus copies them to the shards without `AS RESTRICTIVE`).
 * 4. `citus-default:<table>`: a child table's fill trigger becomes `DEFAULT tenantize.current_tenant_id()`
 *    (Citus refuses triggers on distributed tables and routes an insert before a trigger could fill it).
 * 5. `citus-drop-single-fk:<table>:<fk>`: a single-column foreign key beside its composite twin goes.
 * 6. `citus-primary-key:<table>`: `(id)` → `(org_id, id)` (index built concurrently, then swapped).
 * 7. `citus-reference:<table>`: global tables, then the tenant table: `create_reference_table`.
 * 8. `citus-foreign-keys-off`: the composite keys between tenant tables go while the tables are distributed.
 * 9. `citus-distribute:<table>`: `create_distributed_table_concurrently(<table>, <column>, colocate_with => <first>)`:
 *    rows copied by logical replication while writes go on; writes wait only at the switch.
 * 10. `citus-foreign-keys-on`, `citus-finish`: the keys again (checked at once), the views' grants again.
 *
 * Resumable: before each step the catalog is read again and every step whose effect is there is skipped;
 * a re-run of a distributed database does nothing. Preconditions are checked before the first step and
 * reported together, each with its fix.
 */
import type pg from 'pg'
import { connect } from '../db/connect.js'
import { ErrorCodes, TenantizeError, type Problem } from '../errors.js'
import { DEFAULT_TIMEOUTS, sleep, type TimeoutPolicy } from '../migrate/index.js'
import { CITUS_PROPAGATE_SETTING, citusPolicyExpr } from '../plan/citus.js'
import { compile, lockOf, strongest } from '../plan/compile.js'
import { splitKey, type TenantizeConfig } from '../plan/config.js'
import { literal, sqlText, type Operation, type Rel } from '../plan/operations.js'
import { CURRENT_TENANT_FN, POLICY_NAME } from '../plan/plan.js'
import type { LockLevel } from '../plan/steps.js'
import { qualifiedName, quoteLiteral, roleName } from '../sql/quote.js'

/** The trigger `apply` puts on child tables to fill the tenant column from the parent (src/plan/plan.ts). */
const FILL_TRIGGER = 'tenantize_fill_tenant'
const STATE: Rel = { schema: 'tenantize', name: 'distribute_state' }

export interface DistributeOptions {
  /** The Citus coordinator holding the converted database. */
  readonly databaseUrl: string
  /** The config the database was converted with (target postgres or citus). */
  readonly config: TenantizeConfig
  /** Check the preconditions and list the steps (done or to do); change nothing. */
  readonly dryRun?: boolean | undefined
  /** lock_timeout and retries of the steps that lock briefly (default: 1 s, 10 tries). */
  readonly timeouts?: Partial<TimeoutPolicy> | undefined
  /** Called when a step starts, ends or is skipped (done already). */
  readonly onProgress?: ((event: DistributeProgress) => void) | undefined
}

export type DistributeLockHeld = 'none' | 'brief' | 'scan without blocking writes' | 'writes wait, reads go on' | 'writes go on; they wait only at the switch'

/** A step of the distribution, as data: statements in transactions, or alone (outside any transaction). */
export interface DistributeStep {
  readonly id: string
  readonly table: string | null
  readonly title: string
  /** The strongest table lock the step takes, and for how long it holds writes up. */
  readonly lock: LockLevel
  readonly lockHeld: DistributeLockHeld
  /** Run in order; `transaction`: together in one transaction, `alone`: one statement outside a transaction. */
  readonly units: readonly ({ readonly transaction: readonly string[] } | { readonly alone: string })[]
  /** Its effect is in the catalog already: a run skips it. */
  readonly done: boolean
}

export interface DistributeProgress {
  readonly step: string
  readonly title: string
  readonly lock: LockLevel
  readonly lockHeld: DistributeLockHeld
  readonly status: 'running' | 'done' | 'skipped'
  readonly elapsedMs: number
  /** With `done`: how long the step took. */
  readonly stepMs?: number
}

export interface DistributeResult {
  /** Every step in order, with what this run did. */
  readonly steps: readonly { readonly id: string; readonly title: string; readonly lock: LockLevel; readonly lockHeld: DistributeLockHeld; readonly status: 'applied' | 'skipped' | 'planned'; readonly ms: number }[]
  /** Hash-distributed tenant tables, with their colocation group. */
  readonly distributed: readonly string[]
  readonly colocationId: number | null
  readonly reference: readonly string[]
}

// ---- Facts: what the catalog says (read by gatherFacts, judged by the pure functions below) ----

type Placement = 'local' | 'citus-local' | 'reference' | 'distributed'

interface PolicyFacts {
  readonly name: string
  readonly permissive: boolean
  readonly command: string
  readonly roles: readonly string[]
  readonly using: string | null
  readonly withCheck: string | null
}

interface TableFacts {
  readonly key: string
  readonly rel: Rel
  readonly role: 'root' | 'tenant' | 'global'
  /** The tenant column (for the root: its id column). */
  readonly column: string
  readonly oid: number | null
  readonly kind: string | null
  readonly columnNotNull: boolean | null
  readonly rls: boolean
  readonly force: boolean
  readonly placement: Placement
  readonly distColumn: string | null
  readonly colocation: number | null
  readonly primaryKey: { readonly name: string; readonly columns: readonly string[] } | null
  readonly uniques: readonly { readonly name: string; readonly columns: readonly string[] }[]
  readonly invalidIndexes: readonly string[]
  readonly policies: readonly PolicyFacts[]
  readonly triggers: readonly string[]
}

interface ForeignKeyFacts {
  readonly name: string
  readonly table: Rel
  readonly parent: Rel
  readonly columns: readonly string[]
  readonly parentColumns: readonly string[]
  readonly definition: string
}

interface ViewGrant {
  readonly view: Rel
  readonly grantee: string
  readonly privilege: string
}

interface Facts {
  readonly citus: string | null
  readonly nodes: readonly { readonly node: string; readonly active: boolean; readonly coordinator: boolean }[]
  readonly walLevels: readonly { readonly node: string; readonly wal: string }[]
  /** `output_plugin_libraries` per node, where the server has it (Debian's PostgreSQL approves logical decoding plugins by name). */
  readonly outputPlugins: readonly { readonly node: string; readonly libraries: string }[]
  readonly replicationFactor: string
  readonly helper: boolean
  readonly role: { readonly exists: boolean; readonly login: boolean; readonly propagates: boolean }
  readonly tables: readonly TableFacts[]
  /** Foreign keys from or to any table of {@link tables}. */
  readonly foreignKeys: readonly ForeignKeyFacts[]
  /** View grants on views over the tables (Citus recreates such views without them). */
  readonly viewGrants: readonly ViewGrant[]
  /** What `citus-state` saved, or null when the state table does not exist. */
  readonly saved: { readonly foreignKeys: readonly ForeignKeyFacts[]; readonly viewGrants: readonly ViewGrant[] } | null
}

const keyOf = (r: Rel): string => `${r.schema}.${r.name}`
const relSql = (r: Rel): string => qualifiedName(r.schema, r.name)
const sameRel = (a: Rel, b: Rel): boolean => a.schema === b.schema && a.name === b.name
const sameColumns = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((c, i) => c === b[i])

/** `( SELECT tenantize.fn() AS fn)` — PostgreSQL's deparse of the wrapped helper call — becomes `tenantize.fn()`. */
const WRAPPED_HELPER = /\(\s*SELECT\s+(tenantize\.[a-z_][a-z0-9_]*\(\))\s+AS\s+[a-z_][a-z0-9_]*\s*\)/gi
const unwrap = (expr: string | null): string | null => (expr === null ? null : expr.replace(WRAPPED_HELPER, '$1'))
/** A foreign key's referential actions, without SET NULL's column list: `ON DELETE CASCADE …`. */
const actionsOf = (definition: string): string => [...definition.matchAll(/ON (DELETE|UPDATE) (CASCADE|RESTRICT|SET NULL|SET DEFAULT|NO ACTION)/g)].map((m) => m[0]).sort().join(' ')
/** A list setting as PostgreSQL shows it (`a, "b c"`): its elements, a double-quoted one unquoted. */
const listSetting = (value: string): string[] => [...value.matchAll(/"((?:[^"]|"")*)"|([^,\s][^,]*)/g)].map((m) => (m[1] === undefined ? m[2]!.trim() : m[1].replaceAll('""', '"')))
const COMMANDS: Readonly<Record<string, string>> = { '*': 'ALL', r: 'SELECT', a: 'INSERT', w: 'UPDATE', d: 'DELETE' }
const hasSubquery = (expr: string | null): boolean => expr !== null && /\bSELECT\b/i.test(expr)

/** The composite foreign keys between tenant tables: (tenant column, …) → (parent's tenant column, …). */
function compositeKeys(facts: Facts): ForeignKeyFacts[] {
  const tenant = (r: Rel): TableFacts | undefined => facts.tables.find((t) => t.role === 'tenant' && sameRel(t.rel, r))
  return facts.foreignKeys.filter((fk) => {
    const from = tenant(fk.table)
    const to = tenant(fk.parent)
    return from !== undefined && to !== undefined && fk.columns[0] === from.column && fk.parentColumns[0] === to.column
  })
}

/** Tenant tables, referenced ones first (by their foreign keys between tenant tables); cycles keep name order. */
function referencedFirst(tables: readonly TableFacts[], keys: readonly ForeignKeyFacts[]): TableFacts[] {
  const out: TableFacts[] = []
  const seen = new Set<string>()
  const visit = (t: TableFacts): void => {
    if (seen.has(t.key)) return
    seen.add(t.key)
    for (const fk of keys) {
      if (!sameRel(fk.table, t.rel)) continue
      const parent = tables.find((p) => sameRel(p.rel, fk.parent))
      if (parent !== undefined && parent !== t) visit(parent)
    }
    out.push(t)
  }
  for (const t of [...tables].sort((a, b) => a.key.localeCompare(b.key))) visit(t)
  return out
}

/**
 * PURE: what stops the distribution, each with its fix. Tolerates a database part-way through (a resumed run):
 * tables already Citus tables, composite keys dropped for the distribution, policies already unwrapped.
 */
export function distributionProblems(facts: Facts, config: TenantizeConfig): Problem[] {
  const problems: Problem[] = []
  if (facts.citus === null) {
    return [{ object: 'extension citus', message: 'this database is not on a Citus coordinator (no citus extension)', fix: 'move the database to the coordinator, then CREATE EXTENSION citus and add the workers (citus_add_node)' }]
  }
  const workers = facts.nodes.filter((n) => !n.coordinator)
  if (workers.length === 0) problems.push({ object: 'pg_dist_node', message: 'the coordinator has no worker nodes', fix: "SELECT citus_add_node('<worker host>', <port>) for each worker" })
  for (const n of facts.nodes.filter((x) => !x.active)) problems.push({ object: `node ${n.node}`, message: 'is not active', fix: `SELECT citus_activate_node('${n.node.replace(/:(\d+)$/, "', $1")}) once it answers` })
  if (!facts.nodes.some((n) => n.coordinator)) problems.push({ object: 'pg_dist_node', message: 'the coordinator is not in the cluster metadata: Citus cannot make the tenant table a reference table while local tables reference it', fix: "SELECT citus_set_coordinator_host('<coordinator host>', <port>)" })
  const toDistribute = facts.tables.filter((t) => t.role === 'tenant' && t.placement !== 'distributed')
  if (toDistribute.length > 0) {
    const notLogical = facts.walLevels.filter((w) => w.wal !== 'logical')
    if (notLogical.length > 0) {
      problems.push({
        object: 'wal_level',
        message: `create_distributed_table_concurrently copies the rows by logical replication and needs wal_level = logical on every node; ${notLogical.map((w) => `${w.node} has ${w.wal}`).join(', ')}`,
        fix: "ALTER SYSTEM SET wal_level = 'logical' on every node and restart them (then run tenantize distribute again)",
      })
    }
    const unapproved = facts.outputPlugins.filter((o) => !listSetting(o.libraries).includes('citus'))
    if (unapproved.length > 0) {
      problems.push({
        object: 'output_plugin_libraries',
        message: `this PostgreSQL approves logical decoding plugins by name, and Citus's is not approved on ${unapproved.map((o) => `${o.node} ('${o.libraries}')`).join(', ')}: its logical replication would fail with "library citus may not be used as an output plugin"`,
        fix: `ALTER SYSTEM SET output_plugin_libraries = ${[...listSetting(unapproved[0]!.libraries), 'citus'].map((l) => quoteLiteral(l)).join(', ')} on every node (a list: one literal per library), then SELECT pg_reload_conf()`,
      })
    }
    if (facts.replicationFactor !== '1') problems.push({ object: 'citus.shard_replication_factor', message: `is ${facts.replicationFactor}; Citus distributes a table concurrently only with 1`, fix: "ALTER SYSTEM SET citus.shard_replication_factor = 1 (or ALTER DATABASE … SET), then run again" })
  }
  if (!facts.helper) problems.push({ object: CURRENT_TENANT_FN, message: 'the conversion has not run here (no tenant helper)', fix: 'run tenantize apply (both phases) first, with target postgres, then tenantize distribute' })
  if (!facts.role.exists) problems.push({ object: `role ${config.roles.app}`, message: 'the app role does not exist', fix: 'run tenantize apply --phase enforce first' })
  const composite = compositeKeys(facts)
  for (const t of facts.tables) {
    if (t.oid === null) {
      problems.push({ object: t.key, message: 'does not exist', fix: t.role === 'root' ? 'run tenantize apply --phase schema first' : `correct tables.${t.key} in the config` })
      continue
    }
    if (t.kind !== 'r') problems.push({ object: t.key, message: t.kind === 'p' ? 'is partitioned: distribute it by hand after the others, or classify it excluded' : `is not an ordinary table (relkind ${t.kind ?? '?'})`, fix: 'classify it excluded, or distribute it yourself' })
    if (t.role === 'global') continue
    if (t.placement === 'distributed' && t.distColumn !== t.column) problems.push({ object: t.key, message: `is distributed by ${t.distColumn ?? '?'}, not by the tenant column ${t.column}`, fix: `SELECT alter_distributed_table('${relSql(t.rel)}', distribution_column := '${t.column}'), or undistribute_table it` })
    if (t.role === 'tenant' && t.columnNotNull !== true) problems.push({ object: `${t.key}.${t.column}`, message: t.columnNotNull === null ? 'the tenant column is missing' : 'the tenant column is still nullable', fix: `run tenantize apply --phase schema${t.columnNotNull === null ? '' : ' to the end'} first` })
    if (t.role === 'root' && !config.tenant.create) continue
    // FORCE is off only while citus-distribute copies a table (a resumed run finds it so on a Citus table).
    if (!t.rls || (!t.force && t.placement === 'local')) problems.push({ object: t.key, message: 'row-level security is not enabled and forced', fix: 'run tenantize apply --phase enforce first' })
    if (!t.policies.some((p) => p.name === POLICY_NAME)) problems.push({ object: t.key, message: `has no ${POLICY_NAME} policy`, fix: 'run tenantize apply --phase enforce first' })
    if (t.primaryKey === null) problems.push({ object: t.key, message: 'has no primary key: Citus needs one in it with the tenant column, and logical replication needs it as replica identity', fix: `add a primary key (${t.column}, …) first` })
    if (t.role === 'tenant') {
      for (const u of t.uniques) {
        if (!u.columns.includes(t.column)) problems.push({ object: `${t.key} ${u.name}`, message: `unique (${u.columns.join(', ')}) without the tenant column ${t.column}; Citus refuses unique keys without the distribution column`, fix: `remove it from keepGlobalUnique and run tenantize apply again (it becomes (${t.column}, ${u.columns.join(', ')})), or drop it` })
      }
    }
    for (const p of t.policies) {
      // The tenant policy is written anew in the shape Citus accepts (citus-policy), whatever its sub-select.
      if (p.name !== POLICY_NAME && (hasSubquery(unwrap(p.using)) || hasSubquery(unwrap(p.withCheck)))) problems.push({ object: `${t.key} policy ${p.name}`, message: 'has a sub-select; Citus refuses policies with sub-selects on its tables', fix: 'rewrite it with a STABLE function called directly (no SELECT), then run again' })
      if (!p.permissive && (p.command !== '*' || (p.withCheck !== null && p.withCheck !== p.using))) problems.push({ object: `${t.key} policy ${p.name}`, message: 'is RESTRICTIVE and not FOR ALL with one condition; Citus copies policies to the shards without AS RESTRICTIVE, and this one cannot be AND-ed into the tenant policy', fix: 'drop it and put its condition into a sub-tenant scope (scopes in the config)' })
    }
    const others = t.triggers.filter((g) => g !== FILL_TRIGGER)
    if (others.length > 0) problems.push({ object: t.key, message: `has trigger(s) ${others.join(', ')}; Citus refuses triggers on distributed and reference tables`, fix: 'drop them (move their work into the app), or classify the table excluded' })
  }
  const placeOf = (r: Rel): TableFacts | undefined => facts.tables.find((t) => sameRel(t.rel, r))
  for (const fk of facts.foreignKeys) {
    const from = placeOf(fk.table)
    const to = placeOf(fk.parent)
    const name = `${keyOf(fk.table)} ${fk.name}`
    if (from === undefined && to !== undefined && to.role === 'tenant') problems.push({ object: name, message: `references the tenant table ${to.key}; Citus refuses a local table referencing a distributed one`, fix: `classify ${keyOf(fk.table)} direct or child and run tenantize apply, or drop ${fk.name}` })
    if (from === undefined) continue
    if (to === undefined) {
      problems.push({ object: name, message: `references ${keyOf(fk.parent)}, which the config leaves local; Citus refuses a key from one of its tables to a local table`, fix: `classify ${keyOf(fk.parent)} global (a reference table), or drop ${fk.name}` })
    } else if (from.role !== 'tenant' && to.role === 'tenant') {
      problems.push({ object: name, message: `${from.key} becomes a reference table and references the tenant table ${to.key}; Citus refuses that`, fix: `make ${from.key} a tenant table, or drop ${fk.name}` })
    } else if (from.role === 'tenant' && to.role === 'tenant' && !composite.includes(fk)) {
      const twin = composite.find((c) => sameRel(c.table, fk.table) && sameRel(c.parent, fk.parent) && sameColumns(c.columns.slice(1), fk.columns) && sameColumns(c.parentColumns.slice(1), fk.parentColumns))
      if (twin === undefined) problems.push({ object: name, message: `does not include the tenant column ${from.column} and has no composite twin; Citus cannot keep a foreign key across shards`, fix: `run tenantize apply --phase schema first (it adds (${from.column}, ${fk.columns.join(', ')}) → ${to.key}), or drop ${fk.name} if it is a shared reference` })
      else if (actionsOf(twin.definition) !== actionsOf(fk.definition)) problems.push({ object: name, message: `its composite twin ${twin.name} does not carry its referential actions (${actionsOf(fk.definition) || 'none'}), so it cannot be dropped for Citus`, fix: `rewrite ${fk.name} as (${from.column}, ${fk.columns.join(', ')}) → ${to.key} with its actions yourself, then run again` })
    }
  }
  return problems
}

const step = (spec: Omit<DistributeStep, 'lock'> & { lock?: LockLevel; ops?: readonly Operation[] }): DistributeStep => {
  const { ops, ...rest } = spec
  return Object.freeze({ ...rest, lock: spec.lock ?? strongest((ops ?? []).map(lockOf)), units: ops === undefined ? spec.units : [{ transaction: ops.map(compile) }, ...spec.units] })
}

/** PURE: every step of the distribution in order, each marked done when the catalog has its effect. */
export function distributionSteps(facts: Facts, config: TenantizeConfig): DistributeStep[] {
  const steps: DistributeStep[] = []
  const role = config.roles.app
  const tenants = facts.tables.filter((t) => t.role === 'tenant')
  const root = facts.tables.find((t) => t.role === 'root')
  const globals = facts.tables.filter((t) => t.role === 'global')
  const present = compositeKeys(facts)
  const savedKeys = facts.saved?.foreignKeys ?? []
  const keys = [...present, ...savedKeys.filter((s) => !present.some((p) => p.name === s.name && sameRel(p.table, s.table)))]
  const allPlaced = tenants.every((t) => t.placement === 'distributed') && [...globals, ...(root === undefined ? [] : [root])].every((t) => t.placement === 'reference')

  const saveOps: Operation[] = [
    { op: 'createTable', table: STATE, body: sqlText('(kind text NOT NULL, name text NOT NULL, value jsonb NOT NULL, PRIMARY KEY (kind, name))'), references: [] },
    ...present.map((fk): Operation => ({ op: 'insertSelect', table: STATE, columns: ['kind', 'name', 'value'], select: sqlText(`SELECT 'foreign key', ${quoteLiteral(`${keyOf(fk.table)} ${fk.name}`)}, ${quoteLiteral(JSON.stringify(fk))}::jsonb ON CONFLICT DO NOTHING`) })),
    ...facts.viewGrants.map((g): Operation => ({ op: 'insertSelect', table: STATE, columns: ['kind', 'name', 'value'], select: sqlText(`SELECT 'view grant', ${quoteLiteral(`${keyOf(g.view)} ${g.grantee} ${g.privilege}`)}, ${quoteLiteral(JSON.stringify(g))}::jsonb ON CONFLICT DO NOTHING`) })),
  ]
  steps.push(step({ id: 'citus-state', table: null, title: `save ${present.length} composite foreign key(s) and ${facts.viewGrants.length} view grant(s) in ${keyOf(STATE)}: the next steps drop them (or Citus loses them), an interrupted run takes them from there`, lock: 'none', lockHeld: 'none', units: [], ops: saveOps, done: facts.saved !== null || allPlaced }))

  steps.push(step({
    id: 'citus-context',
    table: null,
    title: `${CITUS_PROPAGATE_SETTING} = 'local' for ${role} (its SET LOCAL tenant context reaches the workers) and LOGIN (the coordinator connects to the workers as ${role}); sessions opened before keep their settings: reconnect the app`,
    lockHeld: 'none',
    units: [],
    ops: [{ op: 'roleSetting', role, setting: CITUS_PROPAGATE_SETTING, value: literal('local') }, { op: 'select', sql: sqlText(`ALTER ROLE ${roleName(role)} LOGIN`) }],
    done: facts.role.login && facts.role.propagates,
  }))

  for (const t of [...(root === undefined ? [] : [root]), ...tenants, ...globals]) {
    const restrictive = t.policies.filter((p) => !p.permissive)
    // Policies to write without a sub-select: the helper unwrapped, and the tenant policy with its sub-select
    // (apply writes the helper's body out in one) replaced by the helper called directly.
    const wrapped = t.policies.filter((p) => p.permissive && (unwrap(p.using) !== p.using || unwrap(p.withCheck) !== p.withCheck || (p.name === POLICY_NAME && (hasSubquery(p.using) || hasSubquery(p.withCheck)))))
    if (restrictive.length === 0 && wrapped.length === 0) continue
    const ops: Operation[] = []
    const scopes = restrictive.map((p) => unwrap(p.using)!)
    for (const p of [...new Set([...wrapped, ...restrictive, ...t.policies.filter((x) => x.name === POLICY_NAME && restrictive.length > 0)])]) {
      ops.push({ op: 'dropPolicy', table: t.rel, name: p.name })
      if (!p.permissive) continue
      const base = p.name === POLICY_NAME ? citusPolicyExpr(t.column, CURRENT_TENANT_FN) : null
      const using = base ?? unwrap(p.using)
      const check = base ?? unwrap(p.withCheck)
      const and = (e: string | null): string | null => (e === null || p.name !== POLICY_NAME || scopes.length === 0 ? e : `(${[e, ...scopes].join(' AND ')})`)
      ops.push({ op: 'createPolicy', table: t.rel, name: p.name, mode: 'PERMISSIVE', command: COMMANDS[p.command] ?? 'ALL', roles: p.roles, using: using === null ? null : sqlText(and(using)!), withCheck: check === null ? null : sqlText(and(check)!) })
    }
    steps.push(step({
      id: `citus-policy:${t.key}`,
      table: t.key,
      title: `policies in the shape Citus accepts: ${wrapped.length > 0 ? `the helper called directly in ${wrapped.map((p) => p.name).join(', ')} (Citus refuses sub-selects)` : ''}${wrapped.length > 0 && restrictive.length > 0 ? '; ' : ''}${restrictive.length > 0 ? `restrictive ${restrictive.map((p) => p.name).join(', ')} AND-ed into ${POLICY_NAME} (Citus copies policies to the shards without AS RESTRICTIVE)` : ''}; one transaction`,
      lockHeld: 'brief',
      units: [],
      ops,
      done: false,
    }))
  }

  for (const t of tenants.filter((x) => x.triggers.includes(FILL_TRIGGER))) {
    steps.push(step({
      id: `citus-default:${t.key}`,
      table: t.key,
      title: `new rows take ${t.column} from the context (DEFAULT ${CURRENT_TENANT_FN}) instead of the fill trigger: Citus refuses triggers on distributed tables and routes an insert by ${t.column} before a trigger could fill it`,
      lockHeld: 'brief',
      units: [],
      ops: [{ op: 'setDefault', table: t.rel, column: t.column, default: sqlText(CURRENT_TENANT_FN) }, { op: 'dropTrigger', table: t.rel, name: FILL_TRIGGER }],
      done: false,
    }))
  }

  for (const fk of facts.foreignKeys) {
    const from = tenants.find((t) => sameRel(t.rel, fk.table))
    const to = tenants.find((t) => sameRel(t.rel, fk.parent))
    if (from === undefined || to === undefined || present.includes(fk)) continue
    steps.push(step({
      id: `citus-drop-single-fk:${from.key}:${fk.name}`,
      table: from.key,
      title: `drop foreign key ${fk.name} (${fk.columns.join(', ')}): its composite twin (${from.column}, ${fk.columns.join(', ')}) enforces it; Citus needs the tenant column in every key between distributed tables`,
      lockHeld: 'brief',
      units: [],
      ops: [{ op: 'dropConstraint', table: from.rel, name: fk.name, ifExists: true }],
      done: false,
    }))
  }

  for (const t of tenants) {
    const pk = t.primaryKey
    if (pk === null || pk.columns.includes(t.column)) continue
    const index = `${pk.name.slice(0, 55)}_tenant`
    const units: DistributeStep['units'] = [
      ...(t.invalidIndexes.includes(index) ? [{ alone: compile({ op: 'dropIndex', index: { schema: t.rel.schema, name: index }, concurrently: true, ifExists: true }) }] : []),
      { alone: compile({ op: 'createIndex', table: t.rel, name: index, columns: [t.column, ...pk.columns], unique: true, concurrently: true, only: false }) },
      { transaction: [compile({ op: 'swapUniqueConstraint', table: t.rel, name: pk.name, index, deferrable: 'no', primary: true })] },
    ]
    steps.push(step({
      id: `citus-primary-key:${t.key}`,
      table: t.key,
      title: `primary key ${pk.name} (${pk.columns.join(', ')}) becomes (${[t.column, ...pk.columns].join(', ')}): Citus needs the distribution column in it (index built concurrently, then swapped under a brief ACCESS EXCLUSIVE)`,
      lock: 'ACCESS EXCLUSIVE',
      lockHeld: 'brief',
      units,
      done: false,
    }))
  }

  for (const t of [...globals, ...(root === undefined ? [] : [root])]) {
    steps.push(step({
      id: `citus-reference:${t.key}`,
      table: t.key,
      title: `${t.role === 'root' ? 'the tenant table' : 'global table'} becomes a reference table (a copy on every node): create_reference_table, writes to it wait while its rows are copied, reads go on; the tenant tables referencing it become Citus local tables on the way`,
      lock: 'EXCLUSIVE',
      lockHeld: 'writes wait, reads go on',
      units: [{ transaction: [`SELECT pg_catalog.create_reference_table(${quoteLiteral(relSql(t.rel))})`] }],
      done: t.placement === 'reference',
    }))
  }

  const toDrop = present.filter((fk) => [fk.table, fk.parent].some((r) => tenants.find((t) => sameRel(t.rel, r))?.placement !== 'distributed'))
  steps.push(step({
    id: 'citus-foreign-keys-off',
    table: null,
    title: `drop the ${keys.length} composite foreign key(s) between tenant tables while the tables are distributed one by one (Citus distributes a table concurrently only when no local or Citus local table references it); saved, added back after`,
    lockHeld: 'brief',
    units: [],
    ops: toDrop.map((fk): Operation => ({ op: 'dropConstraint', table: fk.table, name: fk.name, ifExists: true })),
    done: toDrop.length === 0,
  }))

  const ordered = referencedFirst(tenants, keys)
  const anchor = ordered.find((t) => t.placement === 'distributed') ?? ordered[0]
  for (const t of ordered) {
    const colocate = t === anchor ? "'none'" : quoteLiteral(relSql(anchor!.rel))
    // Citus's subscription on the worker applies the writes made during the copy as a member of the table's owner, not
    // BYPASSRLS: with FORCE ROW LEVEL SECURITY, PostgreSQL refuses it ("cannot replicate into relation with row-level
    // security enabled") and the distribution waits forever. FORCE is off for the copy only: the app role (never the
    // owner) stays under row-level security throughout; only sessions of the owner itself are not, until FORCE is back.
    const copy = t.placement === 'distributed' ? [] : [{ transaction: [compile({ op: 'rowSecurity', table: t.rel, action: 'NO FORCE' })] }, { alone: `SELECT pg_catalog.create_distributed_table_concurrently(${quoteLiteral(relSql(t.rel))}, ${quoteLiteral(t.column)}, colocate_with => ${colocate})` }]
    steps.push(step({
      id: `citus-distribute:${t.key}`,
      table: t.key,
      title: `distribute by ${t.column}${t === anchor ? '' : ` colocated with ${anchor!.key}`}: create_distributed_table_concurrently copies the rows to the shards by logical replication while writes go on (SHARE UPDATE EXCLUSIVE); writes wait only at the switch. Row-level security stays on for the app role; FORCE (for the owner) is off during the copy, since Citus's replication applies the writes as the owner`,
      lock: 'SHARE UPDATE EXCLUSIVE',
      lockHeld: 'writes go on; they wait only at the switch',
      units: [...copy, { transaction: [compile({ op: 'rowSecurity', table: t.rel, action: 'FORCE' })] }],
      done: t.placement === 'distributed' && t.force,
    }))
  }

  const missing = keys.filter((k) => !present.some((p) => p.name === k.name && sameRel(p.table, k.table)))
  const readd = missing.map((fk) => `ALTER TABLE ${relSql(fk.table)} ADD CONSTRAINT ${qualifiedName(fk.name)} ${fk.definition.replace(/\s+DEFERRABLE(\s+INITIALLY\s+(DEFERRED|IMMEDIATE))?/, '').replace(/\s+NOT VALID$/, '')}`)
  steps.push(step({
    id: 'citus-foreign-keys-on',
    table: null,
    title: `the ${keys.length} composite foreign key(s) again, between colocated shards, checked at once (a violation checked at commit would reach the app only as "could not commit transaction for shard N"); validated on the shards: writes to the two tables wait meanwhile`,
    lock: readd.length === 0 ? 'none' : 'SHARE ROW EXCLUSIVE',
    lockHeld: 'writes wait, reads go on',
    units: readd.length === 0 ? [] : [{ transaction: readd }],
    done: readd.length === 0 && toDrop.length === 0,
  }))

  const grants = facts.saved?.viewGrants ?? []
  steps.push(step({
    id: 'citus-finish',
    table: null,
    title: `the ${grants.length} grant(s) of views over the converted tables again (Citus recreated the views without them), and ${keyOf(STATE)} dropped`,
    lockHeld: 'none',
    units: [],
    ops: [...grants.map((g): Operation => ({ op: 'grant', privileges: [g.privilege], on: { kind: 'table', rel: g.view }, role: g.grantee })), { op: 'dropTable', table: STATE }],
    done: facts.saved === null && allPlaced,
  }))
  // Policies, defaults, single keys and primary keys are done when absent from the list: they are planned only while needed.
  return steps
}

// ---- I/O ----

async function gatherFacts(client: pg.ClientBase, config: TenantizeConfig): Promise<Facts> {
  const citus = (await client.query<{ v: string | null }>(`SELECT (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'citus') AS v`)).rows[0]?.v ?? null
  type Entry = { key: string; role: TableFacts['role']; column: string | undefined }
  const entries: Entry[] = [
    { key: config.tenant.table, role: 'root', column: undefined },
    ...Object.entries(config.tables).flatMap(([key, c]): Entry[] => (c.class === 'direct' || c.class === 'child' ? [{ key, role: 'tenant', column: c.column ?? config.tenant.column }] : c.class === 'global' ? [{ key, role: 'global', column: undefined }] : [])),
  ]
  const regs = entries.map((e) => relSql(splitKey(e.key)))
  const { rows } = await client.query<{ i: number; oid: string | null; kind: string | null; rls: boolean | null; force: boolean | null; pk: string | null; pk_columns: string[] | null }>(
    `SELECT t.i::int AS i, c.oid::int8::text AS oid, c.relkind::text AS kind, c.relrowsecurity AS rls, c.relforcerowsecurity AS force, k.conname AS pk,
            ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(n, o) JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.n ORDER BY u.o) AS pk_columns
       FROM unnest($1::text[]) WITH ORDINALITY t(reg, i)
       LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(t.reg)
       LEFT JOIN pg_catalog.pg_constraint k ON k.conrelid = c.oid AND k.contype = 'p'
      ORDER BY t.i`,
    [regs],
  )
  const oids = rows.map((r) => r.oid).filter((o): o is string => o !== null)
  const placement = citus === null ? [] : (await client.query<{ oid: string; method: string; repmodel: string; dist: string | null; colocation: number }>(
    `SELECT logicalrelid::oid::int8::text AS oid, partmethod::text AS method, repmodel::text AS repmodel,
            CASE WHEN partmethod = 'h' THEN pg_catalog.column_to_column_name(logicalrelid, partkey) END AS dist, colocationid AS colocation
       FROM pg_catalog.pg_dist_partition WHERE logicalrelid::oid::int8::text = ANY ($1::text[])`,
    [oids],
  )).rows
  const attrs = (await client.query<{ oid: string; name: string; notnull: boolean }>(`SELECT attrelid::int8::text AS oid, attname::text AS name, attnotnull AS notnull FROM pg_catalog.pg_attribute WHERE attrelid::int8::text = ANY ($1::text[]) AND attnum > 0 AND NOT attisdropped`, [oids])).rows
  const indexes = (await client.query<{ oid: string; name: string; unique: boolean; primary: boolean; valid: boolean; columns: (string | null)[] }>(
    `SELECT i.indrelid::int8::text AS oid, c.relname::text AS name, i.indisunique AS unique, i.indisprimary AS primary, i.indisvalid AS valid,
            ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY u(n, o) LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.n ORDER BY u.o) AS columns
       FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid WHERE i.indrelid::int8::text = ANY ($1::text[])`,
    [oids],
  )).rows
  const policies = (await client.query<{ oid: string; name: string; permissive: boolean; command: string; roles: string[]; using: string | null; check: string | null }>(
    `SELECT p.polrelid::int8::text AS oid, p.polname::text AS name, p.polpermissive AS permissive, p.polcmd::text AS command,
            ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_catalog.pg_get_userbyid(r)::text END FROM unnest(p.polroles) r) AS roles,
            pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS using, pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) AS check
       FROM pg_catalog.pg_policy p WHERE p.polrelid::int8::text = ANY ($1::text[]) ORDER BY p.polname`,
    [oids],
  )).rows
  const triggers = (await client.query<{ oid: string; name: string }>(`SELECT tgrelid::int8::text AS oid, tgname::text AS name FROM pg_catalog.pg_trigger WHERE NOT tgisinternal AND tgrelid::int8::text = ANY ($1::text[]) ORDER BY tgname`, [oids])).rows
  const fkRows = (await client.query<{ name: string; ts: string; tn: string; ps: string; pn: string; columns: string[]; parent_columns: string[]; definition: string }>(
    `SELECT k.conname::text AS name, tn.nspname::text AS ts, t.relname::text AS tn, pn.nspname::text AS ps, p.relname::text AS pn,
            ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(n, o) JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.o) AS columns,
            ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(n, o) JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.o) AS parent_columns,
            pg_catalog.pg_get_constraintdef(k.oid) AS definition
       FROM pg_catalog.pg_constraint k
       JOIN pg_catalog.pg_class t ON t.oid = k.conrelid JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
       JOIN pg_catalog.pg_class p ON p.oid = k.confrelid JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
      WHERE k.contype = 'f' AND k.conparentid = 0 AND (k.conrelid::int8::text = ANY ($1::text[]) OR k.confrelid::int8::text = ANY ($1::text[]))
      ORDER BY 2, 3, 1`,
    [oids],
  )).rows
  const viewGrants = (await client.query<{ vs: string; vn: string; grantee: string; privilege: string }>(
    `SELECT DISTINCT n.nspname::text AS vs, v.relname::text AS vn, CASE WHEN g.grantee = 0 THEN 'public' ELSE pg_catalog.pg_get_userbyid(g.grantee)::text END AS grantee, g.privilege_type::text AS privilege
       FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite w ON w.oid = d.objid JOIN pg_catalog.pg_class v ON v.oid = w.ev_class AND v.relkind = 'v'
       JOIN pg_catalog.pg_namespace n ON n.oid = v.relnamespace, LATERAL pg_catalog.aclexplode(v.relacl) g
      WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid::int8::text = ANY ($1::text[]) AND g.grantee <> v.relowner
      ORDER BY 1, 2, 3, 4`,
    [oids],
  )).rows
  const role = (await client.query<{ exists: boolean; login: boolean; propagates: boolean }>(
    `SELECT r.oid IS NOT NULL AS exists, coalesce(r.rolcanlogin, false) AS login,
            EXISTS (SELECT 1 FROM pg_catalog.pg_db_role_setting s WHERE s.setrole = r.oid AND s.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()))
                      AND $2 = ANY (s.setconfig)) AS propagates
       FROM (SELECT 1) one LEFT JOIN pg_catalog.pg_roles r ON r.rolname = $1`,
    [config.roles.app, `${CITUS_PROPAGATE_SETTING}=local`],
  )).rows[0]!
  const helper = (await client.query<{ ok: boolean }>(`SELECT pg_catalog.to_regprocedure('tenantize.current_tenant_id()') IS NOT NULL AS ok`)).rows[0]?.ok === true
  let nodes: Facts['nodes'] = []
  let walLevels: Facts['walLevels'] = []
  let outputPlugins: Facts['outputPlugins'] = []
  let replicationFactor = '1'
  if (citus !== null) {
    nodes = (await client.query<{ node: string; active: boolean; coordinator: boolean }>(`SELECT nodename || ':' || nodeport AS node, isactive AS active, groupid = 0 AS coordinator FROM pg_catalog.pg_dist_node WHERE noderole = 'primary' ORDER BY groupid, nodename, nodeport`)).rows
    walLevels = (await client.query<{ node: string; wal: string }>(
      `SELECT n.nodename || ':' || n.nodeport AS node, CASE WHEN r.success THEN r.result ELSE 'unreachable (' || r.result || ')' END AS wal
         FROM pg_catalog.run_command_on_all_nodes($$SELECT pg_catalog.current_setting('wal_level')$$) r JOIN pg_catalog.pg_dist_node n USING (nodeid) ORDER BY n.groupid, 1`,
    )).rows
    outputPlugins = (await client.query<{ node: string; libraries: string }>(
      `SELECT n.nodename || ':' || n.nodeport AS node, r.result AS libraries
         FROM pg_catalog.run_command_on_all_nodes($$SELECT pg_catalog.current_setting('output_plugin_libraries', true)$$) r JOIN pg_catalog.pg_dist_node n USING (nodeid)
        WHERE r.success AND r.result IS NOT NULL AND EXISTS (SELECT 1 FROM pg_catalog.pg_settings WHERE name = 'output_plugin_libraries') ORDER BY n.groupid, 1`,
    )).rows
    if (!nodes.some((n) => n.coordinator)) walLevels = [{ node: 'coordinator', wal: (await client.query<{ w: string }>(`SELECT pg_catalog.current_setting('wal_level') AS w`)).rows[0]!.w }, ...walLevels]
    replicationFactor = (await client.query<{ f: string }>(`SELECT pg_catalog.current_setting('citus.shard_replication_factor') AS f`)).rows[0]!.f
  }
  const stateExists = (await client.query<{ ok: boolean }>(`SELECT pg_catalog.to_regclass($1) IS NOT NULL AS ok`, [relSql(STATE)])).rows[0]?.ok === true
  let saved: Facts['saved'] = null
  if (stateExists) {
    const state = (await client.query<{ kind: string; value: unknown }>(`SELECT kind, value FROM ${relSql(STATE)} ORDER BY kind, name`)).rows
    saved = { foreignKeys: state.filter((s) => s.kind === 'foreign key').map((s) => s.value as ForeignKeyFacts), viewGrants: state.filter((s) => s.kind === 'view grant').map((s) => s.value as ViewGrant) }
  }
  const tables = entries.map((e, n): TableFacts => {
    const row = rows[n]!
    const oid = row.oid
    const place = placement.find((p) => p.oid === oid)
    const pkColumns = row.pk_columns ?? []
    const column = e.column ?? pkColumns[0] ?? 'id'
    const attr = attrs.find((a) => a.oid === oid && a.name === column)
    return {
      key: e.key,
      rel: splitKey(e.key),
      role: e.role,
      column,
      oid: oid === null ? null : Number(oid),
      kind: row.kind,
      columnNotNull: attr === undefined ? null : attr.notnull,
      rls: row.rls === true,
      force: row.force === true,
      placement: place === undefined ? 'local' : place.method === 'h' ? 'distributed' : place.repmodel === 't' ? 'reference' : 'citus-local',
      distColumn: place?.dist ?? null,
      colocation: place === undefined ? null : place.colocation,
      primaryKey: row.pk === null ? null : { name: row.pk, columns: pkColumns },
      uniques: indexes.filter((i) => i.oid === oid && i.unique && !i.primary && i.valid && i.columns.every((c) => c !== null)).map((i) => ({ name: i.name, columns: i.columns as string[] })),
      invalidIndexes: indexes.filter((i) => i.oid === oid && !i.valid).map((i) => i.name),
      policies: policies.filter((p) => p.oid === oid).map((p) => ({ name: p.name, permissive: p.permissive, command: p.command, roles: p.roles, using: p.using, withCheck: p.check })),
      triggers: triggers.filter((g) => g.oid === oid).map((g) => g.name),
    }
  })
  return {
    citus,
    nodes,
    walLevels,
    outputPlugins,
    replicationFactor,
    helper,
    role,
    tables,
    foreignKeys: fkRows.map((f) => ({ name: f.name, table: { schema: f.ts, name: f.tn }, parent: { schema: f.ps, name: f.pn }, columns: f.columns, parentColumns: f.parent_columns, definition: f.definition })),
    viewGrants: viewGrants.map((g) => ({ view: { schema: g.vs, name: g.vn }, grantee: g.grantee, privilege: g.privilege })),
    saved,
  }
}

const RETRY_SQLSTATES = new Set(['55P03', '40P01', '40001'])

/** One unit of a step: its statements in one transaction (or one alone), retried on lock timeouts and deadlocks. */
async function runUnit(client: pg.Client, unit: DistributeStep['units'][number], policy: TimeoutPolicy, concurrentCall: boolean): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      // The concurrent distribution waits for writes only at the switch: no lock_timeout for it.
      await client.query(`SELECT pg_catalog.set_config('lock_timeout', $1, false)`, [concurrentCall ? '0' : `${policy.lockTimeoutMs}ms`])
      if ('alone' in unit) {
        await client.query(unit.alone)
      } else {
        await client.query('BEGIN')
        try {
          for (const text of unit.transaction) await client.query(text)
          await client.query('COMMIT')
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined)
          throw error
        }
      }
      return
    } catch (error) {
      const code = (error as { code?: string }).code ?? ''
      if (!RETRY_SQLSTATES.has(code) || attempt >= policy.tries) throw error
      await sleep(Math.min(10_000, policy.retryDelayMs * 2 ** (attempt - 1)))
    }
  }
}

function failure(s: DistributeStep, error: unknown): TenantizeError {
  if (error instanceof TenantizeError) return error
  const e = error as { message?: string; code?: string }
  return new TenantizeError(ErrorCodes.MIGRATION_FAILED, `step ${s.id} failed: ${e.message ?? String(error)}`, {
    object: s.table ?? s.id,
    fix: 'fix what the error names (a lock held elsewhere, a node down, the data), then run tenantize distribute again: it resumes at this step',
    details: { sqlstate: e.code },
    cause: error,
  })
}

/**
 * Distribute a database converted on PostgreSQL across the Citus cluster it now sits on, online (see the
 * module comment for the steps). Checks every precondition before the first step and reports them together.
 *
 * @throws TenantizeError `TZ_PREFLIGHT` with `problems` when a precondition fails (nothing changed);
 * `TZ_MIGRATION_FAILED` naming the step when one fails (the steps before it stay; run again to resume).
 */
export async function distribute(options: DistributeOptions): Promise<DistributeResult> {
  const policy: TimeoutPolicy = { ...DEFAULT_TIMEOUTS, ...options.timeouts }
  const client = await connect(options.databaseUrl, { applicationName: 'tenantize distribute' })
  const started = performance.now()
  const emit = (s: DistributeStep, status: DistributeProgress['status'], stepMs?: number): void =>
    options.onProgress?.({ step: s.id, title: s.title, lock: s.lock, lockHeld: s.lockHeld, status, elapsedMs: performance.now() - started, ...(stepMs === undefined ? {} : { stepMs }) })
  try {
    const first = await gatherFacts(client, options.config)
    const problems = distributionProblems(first, options.config)
    const only = problems.length === 1 ? problems[0] : undefined
    if (only !== undefined) throw new TenantizeError(ErrorCodes.PREFLIGHT, `cannot distribute (nothing was changed): ${only.message}`, { object: only.object, ...(only.fix === undefined ? {} : { fix: only.fix }) })
    if (problems.length > 0) throw new TenantizeError(ErrorCodes.PREFLIGHT, `cannot distribute: ${problems.length} problems; nothing was changed`, { object: 'tenantize distribute', problems })
    const initial = distributionSteps(first, options.config)
    const outcome = new Map<string, { status: 'applied' | 'skipped' | 'planned'; ms: number }>()
    for (const s of initial) {
      if (s.done) {
        outcome.set(s.id, { status: 'skipped', ms: 0 })
        emit(s, 'skipped')
      }
    }
    const order = initial.map((s) => s)
    if (options.dryRun !== true) {
      let last: string | undefined
      for (;;) {
        // The catalog again before each step: what is done is skipped, also after an interruption.
        const next = distributionSteps(await gatherFacts(client, options.config), options.config).find((s) => !s.done)
        if (next === undefined) break
        if (next.id === last) throw failure(next, new Error('it ran, but the catalog does not show its effect'))
        last = next.id
        if (!order.some((s) => s.id === next.id)) order.push(next)
        emit(next, 'running')
        const t0 = performance.now()
        try {
          for (const unit of next.units) await runUnit(client, unit, policy, next.id.startsWith('citus-distribute:') && 'alone' in unit)
        } catch (error) {
          throw failure(next, error)
        }
        const ms = performance.now() - t0
        outcome.set(next.id, { status: 'applied', ms })
        emit(next, 'done', ms)
      }
    }
    const end = await gatherFacts(client, options.config)
    const tenants = end.tables.filter((t) => t.role === 'tenant' && t.placement === 'distributed')
    return {
      steps: order.map((s) => ({ id: s.id, title: s.title, lock: s.lock, lockHeld: s.lockHeld, ...(outcome.get(s.id) ?? { status: 'planned' as const, ms: 0 }) })),
      distributed: tenants.map((t) => t.key),
      colocationId: tenants[0]?.colocation ?? null,
      reference: end.tables.filter((t) => t.placement === 'reference').map((t) => t.key),
    }
  } finally {
    await client.end().catch(() => undefined)
  }
}
