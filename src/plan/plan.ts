import type { Catalog, Column, ForeignKeyConstraint, Index, KeyOrCheckConstraint, Policy, Table } from '../catalog/types.js'
import { ErrorCodes, TenantizeError, type Problem } from '../errors.js'
import { indexDefinitionParts } from '../sql/index-definition.js'
import { parseQualifiedName, qualifiedName, quoteIdent, quoteLiteral, roleName } from '../sql/quote.js'
import { citusPlan, citusPolicyExpr, citusScopedPolicy, citusScopeExpr, type CitusView } from './citus.js'
import { compile, lockOf, needsOwnTransaction, strongest } from './compile.js'
import { splitKey, tableKeyOf, type TableConfig, type TenantizeConfig } from './config.js'
import { foreignKeysOf } from './classify.js'
import { objectName } from './names.js'
import { literal, sqlText, type Operation, type PrivilegeObject, type Rel, type Value } from './operations.js'
import { backfillRows, crossingRows, defaultTenantRow, foreignTenantRows, nullTenantRows } from './preconditions.js'
import { LOCK_LEVELS, type Backfill, type LockLevel, type ManualStep, type Plan, type Step } from './steps.js'

/** The helper every policy calls; STABLE, fail-closed, a SQL-standard body the planner inlines (see contextFunction). */
export const CURRENT_TENANT_FN = 'tenantize.current_tenant_id()'
const HELPER: Rel = { schema: 'tenantize', name: 'current_tenant_id' }
export const POLICY_NAME = 'tenant_isolation'
const FILL_TRIGGER = 'tenantize_fill_tenant'
const SQL_TYPE = { uuid: 'uuid', bigint: 'bigint', text: 'text' } as const
const DATA = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] as const

interface Ctx {
  readonly catalog: Catalog
  readonly config: TenantizeConfig
  readonly steps: Step[]
  readonly manual: ManualStep[]
  readonly rootKey: string
  readonly root: Rel
  readonly rootId: string
  readonly idSql: string
  readonly deriveChildren: boolean
  /** Names the plan has handed out, `constraint:<table oid>:<name>` or `relation:<schema>:<name>`. */
  readonly used: Set<string>
  /** Single-column foreign keys with a composite twin that carries their actions: dropped at enforce. */
  readonly singleForeignKeys: { table: TenantTable; fk: ForeignKeyConstraint }[]
  /** The composite foreign keys the plan adds (target citus re-adds them once every tenant table is distributed). */
  readonly compositeForeignKeys: Operation[]
  /** The ids of `steps` (kept by `step`): a lookup per id instead of a scan of every step. */
  readonly stepIds: Set<string>
  /** Every prefix of a step id that ends with `:` or `,` (kept by `step`), for `startsWith` lookups. */
  readonly stepIdPrefixes: Set<string>
  /** Relation names (tables, indexes, views, sequences) the catalog has per schema, built on first use. */
  relationNames?: ReadonlyMap<string, ReadonlySet<string>>
  /** Per referenced table oid, the column lists (`a,b`) foreign keys in the catalog reference, built on first use. */
  referencedColumns?: ReadonlyMap<number, ReadonlySet<string>>
}

/** The column lists (`a,b`) that foreign keys anywhere in the catalog reference on the table `oid`. */
function referencedColumnsOf(ctx: Ctx, oid: number): ReadonlySet<string> {
  if (ctx.referencedColumns === undefined) {
    const out = new Map<number, Set<string>>()
    for (const o of ctx.catalog.tables) {
      for (const c of o.constraints) {
        if (c.type !== 'foreign key') continue
        let cols = out.get(c.references.table.oid)
        if (cols === undefined) out.set(c.references.table.oid, (cols = new Set()))
        cols.add(c.references.columns.join(','))
      }
    }
    ctx.referencedColumns = out
  }
  return ctx.referencedColumns.get(oid) ?? NO_COLUMNS
}
const NO_COLUMNS: ReadonlySet<string> = new Set()

/** Relation names per schema in the catalog: tables, their indexes, views and sequences (each namespace `freeName` checks). */
function relationNamesOf(ctx: Ctx): ReadonlyMap<string, ReadonlySet<string>> {
  if (ctx.relationNames !== undefined) return ctx.relationNames
  const out = new Map<string, Set<string>>()
  const add = (schema: string, name: string): void => {
    let names = out.get(schema)
    if (names === undefined) out.set(schema, (names = new Set()))
    names.add(name)
  }
  const c = ctx.catalog
  for (const t of c.tables) {
    add(t.schema, t.name)
    for (const i of t.indexes) add(t.schema, i.name)
  }
  for (const v of c.views) add(v.schema, v.name)
  for (const q of c.sequences) add(q.schema, q.name)
  ctx.relationNames = out
  return out
}

/** A converted table with everything the steps need. */
interface TenantTable {
  readonly key: string
  readonly cfg: TableConfig
  readonly table: Table | undefined
  readonly rel: Rel
  /** Quoted, qualified name (for SQL text the compiler does not build: backfill queries). */
  readonly sql: string
  readonly column: string
  /** The tenant column exists already (reused) — nothing to add, nothing to drop on rollback. */
  readonly existing: Column | undefined
  readonly rows: number
}

const relOf = (key: string): Rel => splitKey(key)
const relSql = (r: Rel): string => qualifiedName(r.schema, r.name)

/**
 * A name for a new constraint (per table) or index (per schema) that neither the database nor this plan
 * uses yet: `IF NOT EXISTS` must never mistake the user's object of the same name for the one it builds.
 */
function freeName(ctx: Ctx, table: Table | RelationRefLike, kind: 'constraint' | 'relation', ...parts: string[]): string {
  const inDb = (name: string): boolean => {
    if (kind === 'constraint') return 'constraints' in table && table.constraints.some((c) => c.name === name)
    return relationNamesOf(ctx).get(table.schema)?.has(name) === true
  }
  const tag = (name: string): string => (kind === 'constraint' ? `constraint:${table.oid}:${name}` : `relation:${table.schema}:${name}`)
  let name = objectName(...parts)
  for (let i = 2; inDb(name) || ctx.used.has(tag(name)); i++) name = objectName(...parts, String(i))
  ctx.used.add(tag(name))
  return name
}
type RelationRefLike = { readonly oid: number; readonly schema: string; readonly name: string }

/** A step as the planner writes it: operations, compiled to SQL here, once, for every step. */
interface StepSpec extends Omit<Step, 'rows' | 'up' | 'down' | 'lock' | 'transactional'> {
  readonly up: readonly Operation[]
  readonly down: readonly Operation[]
  readonly rows?: number
  /** Only for a backfill (no operations: `apply` runs its batches): the lock each batch takes. */
  readonly lock?: LockLevel
}

/**
 * Compile a step: SQL from the one compiler, the declared lock the strongest its statements take (at least
 * `spec.lock`), and outside a transaction exactly when a statement cannot run in one.
 */
function step(ctx: Ctx, spec: StepSpec): void {
  const computed = strongest(spec.up.map(lockOf))
  const lock = spec.lock !== undefined && LOCK_LEVELS.indexOf(spec.lock) > LOCK_LEVELS.indexOf(computed) ? spec.lock : computed
  const transactional = !spec.up.some(needsOwnTransaction) && !spec.down.some(needsOwnTransaction)
  const { up, down, rows, lock: _lock, ...rest } = spec
  // A table never analyzed (reltuples = -1) has no row estimate: the step says so rather than "0 rows".
  const table = spec.table === null || rows === undefined ? undefined : ctx.catalog.table(splitKey(spec.table).schema, splitKey(spec.table).name)
  const unknown = table !== undefined && table.estimatedRows === null && !table.partitioned ? { rowsUnknown: true as const, tableBytes: table.totalBytes } : {}
  ctx.steps.push({ ...rest, up: up.map(compile), down: down.map(compile), lock, transactional, rows: rows ?? 0, ...unknown })
  ctx.stepIds.add(spec.id)
  for (let i = 0; i < spec.id.length; i++) if (spec.id[i] === ':' || spec.id[i] === ',') ctx.stepIdPrefixes.add(spec.id.slice(0, i + 1))
}

/**
 * The tenant policy's condition: the helper's body written out in the policy, in a scalar sub-select.
 * Every name is qualified (`pg_catalog.current_setting`, `OPERATOR(pg_catalog.=)` / `<>`, the type as
 * `pg_catalog.uuid` …), so no function, operator or type of the same name in a schema earlier in the
 * applying or the querying session's search_path can be bound in its place; the sub-select makes it an
 * InitPlan, evaluated once per statement. Written out rather than as `(SELECT tenantize.current_tenant_id())`:
 * the planner inlines the helper in every statement it plans, and reading the helper's stored body back
 * costs about as much again as the rest of the policy (bench/causes.md, policy planning).
 */
const policyExpr = (column: string, idType: keyof typeof QUALIFIED_TYPE, setting: string): string => `(${quoteIdent(column)} OPERATOR(pg_catalog.=) (SELECT ${contextExpr(idType, setting)}))`

/** Built-in types by their `pg_catalog` names, so that a type of the same name elsewhere cannot be bound. */
const QUALIFIED_TYPE = { uuid: 'pg_catalog.uuid', bigint: 'pg_catalog.int8', text: 'pg_catalog.text' } as const

/**
 * A fail-closed helper that reads `setting`: NULL when it is unset or empty, an error when malformed.
 * A SQL-standard body (`RETURN …`) is parsed once, when the function is created, with every name
 * qualified (`pg_catalog.current_setting`, `OPERATOR(pg_catalog.<>)`, `pg_catalog.uuid`; no NULLIF,
 * whose `=` is looked up in the search_path): nothing is resolved when it runs, so it needs no
 * `SET search_path` — and without a SET clause the planner inlines it into the policy, where a SET
 * clause costs a function call with a configuration save and restore in every statement.
 */
function contextFunction(name: Rel, idType: keyof typeof QUALIFIED_TYPE, setting: string): Operation {
  return { op: 'createFunction', name, args: '', returns: QUALIFIED_TYPE[idType], language: 'sql', attributes: 'STABLE PARALLEL SAFE', body: `RETURN ${contextExpr(idType, setting)}`, standardBody: true }
}

/** The tenant from `setting` as `idType`: NULL when unset or empty, an error when malformed; every name qualified. */
function contextExpr(idType: keyof typeof QUALIFIED_TYPE, setting: string): string {
  const read = `pg_catalog.current_setting(${quoteLiteral(setting)}, true)`
  const value = idType === 'text' ? read : `${read}::${QUALIFIED_TYPE[idType]}`
  return `CASE WHEN ${read} OPERATOR(pg_catalog.<>) '' THEN ${value} END`
}
/**
 * PURE: the ordered steps that take the database described by `catalog` to the tenant model of `config`.
 * Throws `TZ_CONFIG` listing every problem (unknown tables, wrong column types, missing keys) at once.
 */
export function planConversion(catalog: Catalog, config: TenantizeConfig): Plan {
  const problems: Problem[] = []
  const rootKey = config.tenant.table
  const rootParts = splitKey(rootKey)
  const rootTable = catalog.table(rootParts.schema, rootParts.name)
  let rootId = 'id'
  if (config.tenant.create && rootTable !== undefined) {
    problems.push({ object: `tenant.table ${rootKey}`, message: 'exists already, but tenant.create is true', fix: 'set tenant.create to false to use it, or choose another name' })
  }
  if (!config.tenant.create) {
    const pk = rootTable?.constraints.find((c) => c.type === 'primary key')
    if (rootTable === undefined) problems.push({ object: `tenant.table ${rootKey}`, message: 'does not exist', fix: 'set tenant.create to true, or name an existing table' })
    else if (pk === undefined || pk.columns.length !== 1) problems.push({ object: `tenant.table ${rootKey}`, message: 'needs a single-column primary key (the tenant id)', fix: 'add one, or let Tenantize create the tenant table' })
    else rootId = pk.columns[0]!
  }
  if (catalog.server.versionNum < 140000) {
    problems.push({ object: 'server', message: `PostgreSQL ${catalog.server.version} is too old`, fix: 'upgrade to PostgreSQL 14 or later' })
  }

  const ctx: Ctx = {
    catalog,
    config,
    steps: [],
    manual: [],
    rootKey,
    root: rootParts,
    rootId,
    idSql: SQL_TYPE[config.tenant.idType],
    deriveChildren: !config.tenant.create,
    used: new Set(),
    singleForeignKeys: [],
    compositeForeignKeys: [],
    stepIds: new Set(),
    stepIdPrefixes: new Set(),
  }

  // Resolve every configured table against the catalog.
  const tenantTables: TenantTable[] = []
  for (const [key, cfg] of Object.entries(config.tables)) {
    const { schema, name } = splitKey(key)
    const table = catalog.table(schema, name)
    if (table === undefined) {
      problems.push({ object: `tables.${key}`, message: 'no such table in the database', fix: 'remove it from the config or re-run tenantize init' })
      continue
    }
    if (cfg.class === 'global' || cfg.class === 'excluded') continue
    const column = cfg.class === 'root' ? rootId : (cfg.column ?? config.tenant.column)
    const existing = table.columns.find((c) => c.name === column)
    if (existing !== undefined && cfg.class !== 'root' && existing.type !== ctx.idSql && !(ctx.idSql === 'bigint' && existing.type === 'integer')) {
      problems.push({ object: `${key}.${column}`, message: `exists with type ${existing.type}, but tenant ids are ${ctx.idSql}`, fix: `change the column type, or set tables.${key}.column to another name` })
    }
    // A composite key mapping the column onto the parent's column of the same name (its tenant column) is tenant-scoped already.
    const scoped = (c: ForeignKeyConstraint): boolean => tableKeyOf(c.references.table) !== rootKey && c.references.columns[c.columns.indexOf(column)] === column
    const elsewhere = cfg.class === 'root' ? undefined : table.constraints.find((c): c is ForeignKeyConstraint => c.type === 'foreign key' && c.columns.includes(column) && (tableKeyOf(c.references.table) !== rootKey || c.columns.length !== 1) && !scoped(c))
    if (existing !== undefined && elsewhere !== undefined) {
      problems.push({ object: `${key}.${column}`, message: `references ${tableKeyOf(elsewhere.references.table)} through ${elsewhere.name}: its values are not tenant ids, so it cannot be the tenant column`, fix: `set tables.${key}.column to a new name (e.g. tenantize_${column}), or re-run tenantize init` })
    }
    if (cfg.class === 'child' && ctx.deriveChildren) {
      const parentKey = cfg.path!.parent
      if (backfillKey(table, cfg.path?.reverse !== true) === undefined) problems.push({ object: key, message: 'has no primary key (nor a NOT NULL unique key), so the rows that reference it cannot be matched in batches', fix: 'add a primary key, or classify it global' })
      if (parentKey !== rootKey && config.tables[parentKey] === undefined) problems.push({ object: `tables.${key}.path.parent`, message: `${parentKey} is not in the config`, fix: 'add it or choose another path' })
    }
    tenantTables.push({ key, cfg, table, rel: { schema, name }, sql: qualifiedName(schema, name), column, existing, rows: Math.max(0, Math.round(table.estimatedRows ?? 0)) })
  }
  // A global table (every tenant reads it, nothing filters it) whose rows point at rows of a tenant table:
  // those rows tell every tenant about one tenant's rows, and verify sees a child without row-level security.
  const tenantOwned = (key: string): boolean => key === rootKey || ['root', 'direct', 'child'].includes(config.tables[key]?.class ?? '') || key === config.tenant.membership?.table
  for (const [key, cfg] of Object.entries(config.tables)) {
    if (cfg.class !== 'global') continue
    const table = catalog.table(splitKey(key).schema, splitKey(key).name)
    for (const fk of table?.constraints ?? []) {
      if (fk.type !== 'foreign key' || !tenantOwned(tableKeyOf(fk.references.table))) continue
      problems.push({ object: `${key} ${fk.name}`, message: `is global (every tenant reads it) but references the tenant table ${tableKeyOf(fk.references.table)}: its rows point at one tenant's rows`, fix: `classify ${key} direct or child (its rows belong to a tenant), or ${tableKeyOf(fk.references.table)} global (shared by every tenant), or drop the foreign key` })
    }
  }
  const app = catalog.role(config.roles.app)
  if (problems.length > 0) throw new TenantizeError(ErrorCodes.CONFIG, `cannot plan: ${problems.length} problem${problems.length === 1 ? '' : 's'}`, { problems })

  const byKey = new Map(tenantTables.map((t) => [t.key, t]))
  const tenantColumnOf = (key: string): string => (key === rootKey ? rootId : (byKey.get(key)?.column ?? config.tenant.column))

  helpersStep(ctx)
  if (config.tenant.create) tenantTableStep(ctx)
  const membership = membershipStep(ctx, problems)
  if (problems.length > 0) throw new TenantizeError(ErrorCodes.CONFIG, `cannot plan: ${problems.length} problem${problems.length === 1 ? '' : 's'}`, { problems })
  // Parents before children, so a child's backfill reads a filled parent.
  const depth = (t: TenantTable): number => {
    let d = 0
    let cur: TenantTable | undefined = t
    const seen = new Set<string>()
    while (cur?.cfg.class === 'child' && cur.cfg.path !== undefined && !seen.has(cur.key)) {
      seen.add(cur.key)
      d++
      cur = byKey.get(cur.cfg.path.parent)
    }
    return d
  }
  const ordered = [...tenantTables].sort((a, b) => depth(a) - depth(b) || a.key.localeCompare(b.key))
  for (const t of ordered) if (t.cfg.class !== 'root') columnSteps(ctx, t, byKey)
  for (const t of ordered) compositeKeySteps(ctx, t, byKey, tenantColumnOf)
  const tenantKeys = new Set([rootKey, ...tenantTables.map((t) => t.key)])
  for (const t of ordered) uniqueRewriteSteps(ctx, t, tenantKeys)
  for (const t of ordered) tenantIndexStep(ctx, t)
  statusViewStep(ctx, tenantTables)
  const readiness = readinessSteps(ctx, ordered.filter((t) => t.cfg.class !== 'root'))

  // Enforce phase.
  const enforceBlockers: ManualStep[] = []
  if (app !== undefined) {
    const powerful = [app.name, ...app.memberOfTransitive].map((n) => catalog.role(n)).filter((r) => r !== undefined && (r.superuser || r.bypassRls))
    for (const r of powerful) {
      enforceBlockers.push({
        object: `role ${config.roles.app}`,
        reason: r!.name === app.name ? `is ${r!.superuser ? 'a superuser' : 'BYPASSRLS'}: row-level security does not apply to it` : `is a member of ${r!.name}, which is ${r!.superuser ? 'a superuser' : 'BYPASSRLS'}`,
        fix: r!.name === app.name ? `ALTER ROLE ${roleName(app.name)} ${r!.superuser ? 'NOSUPERUSER' : 'NOBYPASSRLS'};` : `REVOKE ${roleName(r!.name)} FROM ${roleName(app.name)};`,
      })
    }
    for (const t of tenantTables) {
      if (t.table?.owner === app.name) {
        enforceBlockers.push({ object: t.key, reason: `is owned by the app role ${app.name}; owners can switch row-level security off`, fix: `ALTER TABLE ${t.sql} OWNER TO <a migration role>;` })
      }
    }
  }
  roleStep(ctx, app === undefined)
  grantSteps(ctx, tenantTables)
  if (config.tenant.create) {
    rlsStep(ctx, { key: rootKey, cfg: { class: 'root', reason: '', alternatives: [], keepGlobalUnique: [], sharedReferences: [] }, table: undefined, rel: ctx.root, sql: relSql(ctx.root), column: 'id', existing: undefined, rows: 1 })
  }
  if (membership !== undefined) rlsStep(ctx, membership)
  for (const t of ordered) rlsStep(ctx, t, readiness.get(t.key))
  for (const { table, fk } of ctx.singleForeignKeys) singleForeignKeyDrop(ctx, table, fk)
  scopeSteps(ctx, byKey)
  viewSteps(ctx, tenantTables)
  manualChecks(ctx, tenantTables)
  if (config.target === 'citus') citusSteps(ctx, ordered)
  return { steps: ctx.steps, manual: ctx.manual, enforceBlockers }
}

/** target citus: the steps of ./citus.ts at the end of enforce, or TZ_CONFIG naming what Citus would refuse. */
function citusSteps(ctx: Ctx, tables: readonly TenantTable[]): void {
  const tenant = tables.filter((t) => t.cfg.class !== 'root')
  const fillTriggerOf = (t: TenantTable): Operation | undefined =>
    t.existing === undefined && t.cfg.class === 'child' && ctx.deriveChildren && t.cfg.path?.reverse !== true ? fillTrigger(t) : undefined
  const citus = citusPlan({
    catalog: ctx.catalog,
    config: ctx.config,
    rootKey: ctx.rootKey,
    tables: tenant.map((t) => ({ key: t.key, rel: t.rel, table: t.table!, column: t.column, rows: t.rows, reverse: t.cfg.class === 'child' && ctx.deriveChildren && t.cfg.path?.reverse === true, ...(fillTriggerOf(t) === undefined ? {} : { fillTrigger: fillTriggerOf(t)! }) })),
    planned: ctx.steps,
    compositeForeignKeys: ctx.compositeForeignKeys,
    helperCall: CURRENT_TENANT_FN,
    views: citusViews(ctx, tables),
    freeName: (table, ...parts) => freeName(ctx, table, 'relation', ...parts),
  })
  if (citus.problems.length > 0) throw new TenantizeError(ErrorCodes.CONFIG, `cannot plan for citus: ${citus.problems.length} problem${citus.problems.length === 1 ? '' : 's'}`, { problems: [...citus.problems] })
  for (const s of citus.steps) step(ctx, s)
  ctx.manual.push(...citus.manual)
}

/** target citus: views over tenant and global tables, with the grants they must keep (the app's SELECT when the plan grants it). */
function citusViews(ctx: Ctx, tables: readonly TenantTable[]): CitusView[] {
  const globals = Object.entries(ctx.config.tables).filter(([, c]) => c.class === 'global').map(([k]) => ctx.catalog.table(splitKey(k).schema, splitKey(k).name)?.oid)
  const converted = new Set([...tables.flatMap((t) => (t.table === undefined ? [] : [t.table.oid])), ...globals.filter((o): o is number => o !== undefined)])
  return ctx.catalog.views
    .filter((v) => v.kind === 'view' && v.extension === null && tenantTablesBehind(ctx, v.oid, converted).length > 0)
    .map((v) => ({
      rel: { schema: v.schema, name: v.name },
      grants: [...v.grants.filter((g) => g.grantee !== v.owner).map((g) => ({ grantee: g.grantee, privilege: g.privilege })), ...(ctx.stepIds.has(`view:${v.schema}.${v.name}`) ? [{ grantee: ctx.config.roles.app, privilege: 'SELECT' }] : [])],
    }))
    .filter((v) => v.grants.length > 0)
}

function helpersStep(ctx: Ctx): void {
  const { setting, idType } = ctx.config.tenant
  step(ctx, {
    id: 'helpers',
    phase: 'schema',
    table: null,
    title: `schema tenantize and the fail-closed helper ${CURRENT_TENANT_FN}`,
    up: [
      { op: 'createSchema', schema: 'tenantize' },
      contextFunction(HELPER, idType, setting),
      { op: 'commentOnFunction', name: HELPER, args: '', comment: `The tenant of the current transaction from ${setting}; NULL when unset or empty (no rows), an error when malformed. Set it with set_config(${setting}, id, true).` },
    ],
    down: [{ op: 'dropFunction', name: HELPER, args: '' }],
    lockHeld: 'brief',
  })
}

function tenantTableStep(ctx: Ctx): void {
  const { idType, default: d } = ctx.config.tenant
  const idColumn = idType === 'uuid' ? 'uuid PRIMARY KEY DEFAULT gen_random_uuid()' : idType === 'bigint' ? 'bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY' : 'text PRIMARY KEY'
  const up: Operation[] = [
    {
      op: 'createTable',
      table: ctx.root,
      references: [],
      body: sqlText(`(
  "id" ${idColumn},
  "slug" text NOT NULL UNIQUE CHECK ("slug" ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  "name" text NOT NULL,
  "status" text NOT NULL DEFAULT 'active' CHECK ("status" IN ('active', 'suspended', 'importing')),
  "created_at" timestamptz NOT NULL DEFAULT now(),
  "updated_at" timestamptz NOT NULL DEFAULT now()
)`),
    },
    { op: 'insert', table: ctx.root, columns: ['id', 'slug', 'name'], values: [literal(d.id), literal(d.slug), literal(d.name)] },
  ]
  if (idType === 'bigint') up.push({ op: 'select', sql: sqlText(`SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence(${quoteLiteral(relSql(ctx.root))}, 'id'), ${quoteLiteral(d.id)}::bigint)`) })
  step(ctx, { id: `tenant-table:${ctx.rootKey}`, phase: 'schema', table: ctx.rootKey, title: `create the tenant table ${ctx.rootKey} with the default tenant "${d.slug}"`, up, down: [{ op: 'dropTable', table: ctx.root }], lockHeld: 'brief', rows: 1 })
}

/**
 * The tenant column's default until enforce: the context tenant when the writer sets one (tenant-aware code,
 * or a second tenant of an existing tenant table), else the default tenant (the old app). Non-volatile, so
 * ADD COLUMN stores it once for the existing rows — no rewrite, no scan — and they get the default tenant.
 */
function schemaPhaseDefault(ctx: Ctx): Value {
  return sqlText(`COALESCE(${CURRENT_TENANT_FN}, ${quoteLiteral(ctx.config.tenant.default.id)}::${ctx.idSql})`)
}

/** Add the tenant column (or reuse it), make it NOT NULL without a blocking scan, and reference the tenant table. */
function columnSteps(ctx: Ctx, t: TenantTable, byKey: ReadonlyMap<string, TenantTable>): void {
  const col = quoteIdent(t.column)
  const fkName = freeName(ctx, t.table!, 'constraint', t.table!.name, t.column, 'fkey')
  const hasRootFk = t.table!.constraints.some((c) => c.type === 'foreign key' && tableKeyOf(c.references.table) === ctx.rootKey && c.columns.length === 1 && c.columns[0] === t.column)
  const derive = t.cfg.class === 'child' && ctx.deriveChildren
  let needsNotNull = false
  if (t.existing === undefined && !derive) {
    step(ctx, {
      id: `add-column:${t.key}`,
      phase: 'schema',
      table: t.key,
      title: `add ${t.column} with the default tenant as a constant default (no rewrite, no scan)`,
      up: [{ op: 'addColumn', table: t.rel, column: t.column, type: ctx.idSql, notNull: true, default: schemaPhaseDefault(ctx) }],
      down: [{ op: 'dropColumn', table: t.rel, column: t.column }],
      lockHeld: 'brief',
      addsTenantColumn: { column: t.column, derived: false },
      preconditions: defaultTenantRow(ctx),
    })
  } else if (t.existing === undefined && derive && t.cfg.path!.reverse) {
    reverseColumnSteps(ctx, t, byKey)
  } else if (t.existing === undefined && derive) {
    const path = t.cfg.path!
    const parent = relOf(path.parent)
    const parentSql = relSql(parent)
    const parentCol = quoteIdent(path.parent === ctx.rootKey ? ctx.rootId : (byKey.get(path.parent)?.column ?? ctx.config.tenant.column))
    const fn: Rel = { schema: 'tenantize', name: objectName('fill', t.table!.schema, t.table!.name) }
    const match = path.columns.map((c, i) => `p.${quoteIdent(path.parentColumns[i]!)} = NEW.${quoteIdent(c)}`).join(' AND ')
    step(ctx, {
      id: `add-column:${t.key}`,
      phase: 'schema',
      table: t.key,
      title: `add ${t.column} (nullable, instant) and a trigger that fills it from ${path.parent} for rows written during the backfill`,
      up: [
        { op: 'addColumn', table: t.rel, column: t.column, type: ctx.idSql, notNull: false },
        {
          op: 'createFunction',
          name: fn,
          args: '',
          returns: 'trigger',
          language: 'plpgsql',
          attributes: 'SET search_path = pg_catalog',
          body: `
BEGIN
  IF NEW.${col} IS NULL THEN
    SELECT p.${parentCol} INTO NEW.${col} FROM ${parentSql} AS p WHERE ${match};
  END IF;
  RETURN NEW;
END
`,
        },
        fillTrigger(t),
      ],
      down: [{ op: 'dropTrigger', table: t.rel, name: FILL_TRIGGER }, { op: 'dropFunction', name: fn, args: '' }, { op: 'dropColumn', table: t.rel, column: t.column }],
      lockHeld: 'brief',
      addsTenantColumn: { column: t.column, derived: true },
    })
    step(ctx, {
      id: `backfill:${t.key}`,
      phase: 'schema',
      table: t.key,
      title: `fill ${t.column} from ${path.parent} in batches of ${ctx.config.batchSize}, then VACUUM (ANALYZE) the table`,
      up: [],
      down: [],
      lock: 'SHARE UPDATE EXCLUSIVE',
      lockHeld: 'per batch',
      rows: t.rows,
      backfill: backfillOf(t, parentSql, parentCol, path.columns, path.parentColumns, ctx.config.batchSize, false),
      preconditions: backfillRows(ctx, t.key, path),
    })
    needsNotNull = true
  } else if (t.existing !== undefined && t.existing.nullable) {
    needsNotNull = true
  }
  if (needsNotNull) {
    const check = freeName(ctx, t.table!, 'constraint', t.table!.name, t.column, 'not_null')
    step(ctx, {
      id: `not-null-check:${t.key}`,
      phase: 'schema',
      table: t.key,
      title: `CHECK (${t.column} IS NOT NULL) NOT VALID: new rows only`,
      up: [{ op: 'addCheck', table: t.rel, name: check, check: sqlText(`${col} IS NOT NULL`), notValid: true }],
      down: [{ op: 'dropConstraint', table: t.rel, name: check, ifExists: true }],
      lockHeld: 'brief',
    })
    step(ctx, {
      id: `not-null-validate:${t.key}`,
      phase: 'schema',
      table: t.key,
      title: `validate the check (scans without blocking writes)`,
      up: [{ op: 'validateConstraint', table: t.rel, name: check }],
      down: [],
      lockHeld: 'scan without blocking writes',
      rows: t.rows,
      preconditions: nullTenantRows(ctx, t.key, t.column),
    })
    step(ctx, {
      id: `not-null:${t.key}`,
      phase: 'schema',
      table: t.key,
      title: `SET NOT NULL (instant: the validated check proves it) and drop the check`,
      up: [{ op: 'setNotNull', table: t.rel, column: t.column }, { op: 'dropConstraint', table: t.rel, name: check, ifExists: false }],
      down: [{ op: 'dropNotNull', table: t.rel, column: t.column }],
      lockHeld: 'brief',
    })
  }
  if (!hasRootFk && t.table!.kind === 'partitioned') {
    ctx.manual.push({ object: t.key, reason: `no foreign key ${t.column} → ${ctx.rootKey}: PostgreSQL cannot add one NOT VALID on a partitioned table, and a validating one would block writes while it scans`, fix: `add it per partition (ADD CONSTRAINT … NOT VALID, then VALIDATE), then once on ${t.sql}; row-level security does not depend on it` })
  } else if (!hasRootFk) {
    step(ctx, {
      id: `tenant-fk:${t.key}`,
      phase: 'schema',
      table: t.key,
      title: `foreign key ${t.column} → ${ctx.rootKey}, checked at commit (NOT VALID: new rows only)`,
      up: [{ op: 'addForeignKey', table: t.rel, name: fkName, columns: [t.column], references: ctx.root, refColumns: [ctx.rootId], deferred: true, notValid: true }],
      down: [{ op: 'dropConstraint', table: t.rel, name: fkName, ifExists: true }],
      lockHeld: 'brief',
    })
    step(ctx, {
      id: `tenant-fk-validate:${t.key}`,
      phase: 'schema',
      table: t.key,
      title: 'validate the foreign key (scans without blocking writes)',
      up: [{ op: 'validateConstraint', table: t.rel, name: fkName }],
      down: [],
      lockHeld: 'scan without blocking writes',
      rows: t.rows,
      preconditions: foreignTenantRows(ctx, t.key, t.column),
    })
  }
}

/**
 * The trigger that gives a derived tenant column its parent's tenant on rows written while the backfill runs.
 * `WHEN (NEW.col IS NULL)`: it fires only for a row without a tenant, as the function itself would decide
 * (in a BEFORE trigger the condition is checked just before the call), so the backfill's own UPDATE, which
 * sets the column, does not call the function for each of its rows.
 */
function fillTrigger(t: TenantTable): Operation {
  const fn: Rel = { schema: 'tenantize', name: objectName('fill', t.table!.schema, t.table!.name) }
  return { op: 'createTrigger', table: t.rel, name: FILL_TRIGGER, timing: 'BEFORE', events: sqlText('INSERT OR UPDATE'), fn, when: sqlText(`NEW.${quoteIdent(t.column)} IS NULL`) }
}

/**
 * A table reached backwards: the parent's foreign key references it (e.g. the tenant table's settings_id).
 * The column is added with the default tenant as a constant default (instant, and the old app's inserts
 * keep working), a trigger on the parent hands each newly referenced row the parent's tenant, and a
 * batched backfill gives every referenced row the tenant of the row that references it.
 */
function reverseColumnSteps(ctx: Ctx, t: TenantTable, byKey: ReadonlyMap<string, TenantTable>): void {
  const path = t.cfg.path!
  const col = quoteIdent(t.column)
  const parent = relOf(path.parent)
  const parentTenant = path.parent === ctx.rootKey ? ctx.rootId : (byKey.get(path.parent)?.column ?? ctx.config.tenant.column)
  const fn: Rel = { schema: 'tenantize', name: objectName('fill_from', parent.name, t.table!.schema, t.table!.name) }
  const trigger = objectName('tenantize_fill', t.table!.schema, t.table!.name)
  const match = path.columns.map((c, i) => `c.${quoteIdent(c)} = NEW.${quoteIdent(path.parentColumns[i]!)}`).join(' AND ')
  const watched = [...new Set([...path.parentColumns, parentTenant])]
  step(ctx, {
    id: `add-column:${t.key}`,
    phase: 'schema',
    table: t.key,
    title: `add ${t.column} with the default tenant as a constant default (no rewrite, no scan), and a trigger on ${path.parent} that gives each row it references its tenant`,
    up: [
      { op: 'addColumn', table: t.rel, column: t.column, type: ctx.idSql, notNull: true, default: schemaPhaseDefault(ctx) },
      {
        op: 'createFunction',
        name: fn,
        args: '',
        returns: 'trigger',
        language: 'plpgsql',
        attributes: 'SET search_path = pg_catalog',
        body: `
BEGIN
  UPDATE ${t.sql} AS c SET ${col} = NEW.${quoteIdent(parentTenant)}
   WHERE ${match} AND c.${col} IS DISTINCT FROM NEW.${quoteIdent(parentTenant)};
  RETURN NULL;
END
`,
      },
      { op: 'createTrigger', table: parent, name: trigger, timing: 'AFTER', events: sqlText(`INSERT OR UPDATE OF ${watched.map(quoteIdent).join(', ')}`), fn },
    ],
    down: [{ op: 'dropTrigger', table: parent, name: trigger }, { op: 'dropFunction', name: fn, args: '' }, { op: 'dropColumn', table: t.rel, column: t.column }],
    lockHeld: 'brief',
    addsTenantColumn: { column: t.column, derived: true },
    preconditions: defaultTenantRow(ctx),
  })
  step(ctx, {
    id: `backfill:${t.key}`,
    phase: 'schema',
    table: t.key,
    title: `give each row of ${t.key} the tenant of the ${path.parent} row referencing it, in batches of ${ctx.config.batchSize}, then VACUUM (ANALYZE) the table`,
    up: [],
    down: [],
    lock: 'SHARE UPDATE EXCLUSIVE',
    lockHeld: 'per batch',
    rows: t.rows,
    backfill: backfillOf(t, relSql(parent), quoteIdent(parentTenant), path.columns, path.parentColumns, ctx.config.batchSize, true),
    preconditions: backfillRows(ctx, t.key, path),
  })
}
/**
 * The key a backfill pages by: the primary key, else a NOT NULL unique key without expressions or
 * predicate. With `physical`, a table with neither pages by row address — `ctid` (with `tableoid` on a
 * partitioned table, whose partitions reuse addresses): a row the app updates meanwhile moves, but the
 * fill trigger has given it its tenant by then, and rows that arrive later are the trigger's too.
 */
export function backfillKey(table: Table, physical = false): readonly string[] | undefined {
  const pk = table.constraints.find((c) => c.type === 'primary key')
  if (pk !== undefined) return pk.columns
  const notNull = (c: string | null): boolean => c !== null && table.columns.find((col) => col.name === c)?.nullable === false
  const unique = table.indexes.filter((i) => i.unique && i.predicate === null && !i.hasExpressions && i.valid && i.columns.every(notNull)).sort((a, b) => a.columns.length - b.columns.length || a.name.localeCompare(b.name))[0]
  if (unique !== undefined) return unique.columns as readonly string[]
  return physical ? (table.kind === 'partitioned' ? ['tableoid', 'ctid'] : ['ctid']) : undefined
}

const SYSTEM_COLUMN_TYPE: Readonly<Record<string, string>> = { ctid: 'tid', tableoid: 'oid' }

/**
 * Keys travel as text and are cast back in SQL (`$1::timestamptz`): never through JavaScript types, which
 * lose microseconds and time zones (Date) or precision (bigint as number). With `reverse`, the parent's
 * foreign key references this table, several parent rows may match, and rows are moved from the default
 * tenant to the parent's (IS DISTINCT FROM) rather than filled from NULL.
 */
function backfillOf(t: TenantTable, parentSql: string, parentCol: string, fkColumns: readonly string[], parentColumns: readonly string[], batchSize: number, reverse: boolean): Backfill {
  const keys = backfillKey(t.table!, !reverse)!
  const typeOf = (c: string): string => t.table!.columns.find((col) => col.name === c)?.type ?? SYSTEM_COLUMN_TYPE[c] ?? 'text'
  const k = keys.map(quoteIdent)
  const params = keys.map((c, i) => `$${i + 1}::${typeOf(c)}`)
  const after = `($1::${typeOf(keys[0]!)} IS NULL OR (${k.join(', ')}) > (${params.join(', ')}))`
  const limit = `$${keys.length + 1}`
  const upper = `(${k.join(', ')}) <= (${keys.map((c, i) => `$${keys.length + 2 + i}::${typeOf(c)}`).join(', ')})`
  const col = quoteIdent(t.column)
  const pending = (c: string, p: string): string => (reverse ? `${c}.${col} IS DISTINCT FROM ${p}.${parentCol}` : `${c}.${col} IS NULL`)
  // The UPDATE finds its rows by the batch's first and last key, a range the planner turns into an index
  // (or TID) range scan. Joined to the batch's keys instead, it hashed the whole table once per batch: the
  // new tenant column has no statistics, so it expected few rows still to fill and chose a sequential scan.
  const row = (prefix: string): string => `(${k.map((x) => `${prefix}${x}`).join(', ')})`
  // A table without a key pages by row address. Sorted (ORDER BY ctid LIMIT n), a batch would read and sort
  // every row after the previous batch, each time. Unsorted, the TID range scan stops after n rows: the batch
  // is then everything after the previous batch's last address up to the highest address it found, a
  // contiguous range whichever order the rows came in, so no row is skipped or filled twice.
  const byAddress = keys.length === 1 && keys[0] === 'ctid'
  const n = keys.length
  const param = (i: number): string => `$${i}`
  const batchSql = `WITH batch AS (
  SELECT ${k.join(', ')} FROM ${t.sql} WHERE ${after} AND ${upper}${byAddress ? '' : ` ORDER BY ${k.join(', ')}`} LIMIT ${limit}
), ${byAddress
    ? `last AS (
  SELECT max(${k[0]}) AS ${k[0]} FROM batch HAVING count(*) > 0
)`
    : `first AS (
  SELECT ${k.join(', ')} FROM batch ORDER BY ${k.join(', ')} LIMIT 1
), last AS (
  SELECT ${k.join(', ')} FROM batch ORDER BY ${k.map((x) => `${x} DESC`).join(', ')} LIMIT 1
)`}, filled AS (
  UPDATE ${t.sql} AS c SET ${col} = p.${parentCol}
  FROM ${parentSql} AS p
  WHERE ${byAddress ? `($1::tid IS NULL OR (c.${k[0]}) > ($1::tid))` : `${row('c.')} >= (SELECT ${k.join(', ')} FROM first)`} AND ${row('c.')} <= (SELECT ${k.join(', ')} FROM last)
    AND ${pending('c', 'p')} AND ${fkColumns.map((c, i) => `p.${quoteIdent(parentColumns[i]!)} = c.${quoteIdent(c)}`).join(' AND ')}
  RETURNING 1
), saved AS (
  INSERT INTO tenantize.backfill_progress (scope, step, last_key, rows_done)
  SELECT ${param(2 * n + 2)}::text, ${param(2 * n + 3)}::text,
         pg_catalog.jsonb_build_object('last', pg_catalog.jsonb_build_array(${k.map((x) => `last.${x}::text`).join(', ')}), 'upper', ${param(2 * n + 4)}::jsonb, 'text', true),
         ${param(2 * n + 5)}::bigint + (SELECT count(*) FROM filled)
  FROM last
  ON CONFLICT (scope, step) DO UPDATE SET last_key = EXCLUDED.last_key, rows_done = EXCLUDED.rows_done, updated_at = pg_catalog.clock_timestamp()
)
SELECT (SELECT count(*) FROM filled)::int AS updated, ${k.map((x, i) => `last.${x}::text AS k${i + 1}`).join(', ')}
FROM last`
  const join = (c: string, p: string): string => fkColumns.map((f, i) => `${p}.${quoteIdent(parentColumns[i]!)} = ${c}.${quoteIdent(f)}`).join(' AND ')
  const loopSql = `DO $tenantize$
DECLARE
  n integer;
BEGIN
  LOOP
    UPDATE ${t.sql} AS c SET ${col} = p.${parentCol}
      FROM ${parentSql} AS p
     WHERE (${k.map((x) => `c.${x}`).join(', ')}) IN (
             SELECT ${k.map((x) => `c2.${x}`).join(', ')} FROM ${t.sql} AS c2 JOIN ${parentSql} AS p2 ON ${join('c2', 'p2')}
              WHERE ${pending('c2', 'p2')} LIMIT ${batchSize})
       AND ${join('c', 'p')} AND ${pending('c', 'p')};
    GET DIAGNOSTICS n = ROW_COUNT;
    EXIT WHEN n = 0;
    COMMIT;
  END LOOP;
END
$tenantize$`
  const upperKeySql = `SELECT ${k.map((x, i) => `${x}::text AS k${i + 1}`).join(', ')} FROM ${t.sql} ORDER BY ${k.map((x) => `${x} DESC`).join(', ')} LIMIT 1`
  const remainingSql = reverse
    ? `SELECT count(*)::bigint AS remaining FROM ${t.sql} AS c WHERE EXISTS (SELECT FROM ${parentSql} AS p WHERE ${join('c', 'p')} AND ${pending('c', 'p')})`
    : `SELECT count(*)::bigint AS remaining FROM ${t.sql} WHERE ${col} IS NULL`
  return { table: t.sql, keyColumns: k, batchSql, savesProgress: true, upperKeySql, remainingSql, loopSql, reverse, vacuumAfter: true }
}

/**
 * For every foreign key between two tenant tables: (tenant, key) unique on the referenced table and a
 * composite foreign key (tenant, fk columns) on the referencing one — no row can point at another
 * tenant's row. When tenants are derived from existing data, rows whose two tenants disagree are counted
 * first and the step stops with the count instead of adding a key the data violates.
 */
function compositeKeySteps(ctx: Ctx, t: TenantTable, byKey: ReadonlyMap<string, TenantTable>, tenantColumnOf: (key: string) => string): void {
  // A partitioned table's keys include those declared on a partition only (`ALTER TABLE ONLY partition ADD FOREIGN
  // KEY …`, no parent constraint; corpus F21: pagila's payment partitions): they can point across tenants too.
  const own = (table: Table): ForeignKeyConstraint[] => table.constraints.filter((c): c is ForeignKeyConstraint => c.type === 'foreign key' && !c.columns.includes(t.column))
  const fks = [
    ...own(t.table!).map((fk) => ({ fk, on: t.table! })),
    ...partitionsOf(ctx, t.table!).flatMap((p) => own(p).filter((fk) => fk.parentOid === null).map((fk) => ({ fk, on: p }))),
  ]
  for (const { fk, on } of fks) {
    const parentKey = tableKeyOf(fk.references.table)
    const parentEntry = byKey.get(parentKey)
    if (parentKey === ctx.rootKey || parentEntry === undefined || parentEntry.cfg.class === 'root') continue
    if (t.cfg.sharedReferences.some((r) => r.constraint === fk.name)) continue
    // From the tenant table: only to the tables that take their tenant from it through this very key.
    const reversePath = parentEntry.cfg.path
    if (t.cfg.class === 'root' && !(reversePath?.reverse === true && reversePath.parent === t.key && reversePath.parentColumns.join(',') === fk.columns.join(','))) continue
    const parentTable = parentEntry.table!
    const onKey = tableKeyOf(fk.table)
    const partitionOnly = on !== t.table
    // A key declared on one leaf partition only is that plain table's own: its composite twin goes there too, added
    // NOT VALID and validated like any other. Listed instead: a key of a partitioned table (PostgreSQL cannot add one
    // NOT VALID there, and a validating one blocks writes while it scans), one declared on a sub-partitioned or
    // foreign partition, one to a partitioned table, and a partition's key on Citus.
    const referencesPartitioned = parentTable.kind === 'partitioned' || parentTable.partitioned
    const automatic = !referencesPartitioned && (partitionOnly ? !on.partitioned && !on.foreign && ctx.config.target !== 'citus' : t.table!.kind !== 'partitioned')
    if (!automatic) {
      ctx.manual.push({ object: `${onKey} ${fk.name}`, reason: `can point at another tenant's row of ${parentKey}; the composite foreign key is not added automatically for partitioned tables${partitionOnly ? ` (declared on the partition ${onKey} of ${t.key} only)` : ''}`, fix: `add (${t.column}, ${fk.columns.join(', ')}) → ${parentKey} (${tenantColumnOf(parentKey)}, ${fk.references.columns.join(', ')})${partitionOnly ? ` on ${onKey}` : ''} by hand once the unique key includes the partition key` })
      continue
    }
    const onRel: Rel = partitionOnly ? { schema: on.schema, name: on.name } : t.rel
    const onSql = partitionOnly ? relSql(onRel) : t.sql
    const onRows = partitionOnly ? Math.max(0, Math.round(on.estimatedRows ?? 0)) : t.rows
    // A key that names the parent's tenant column already is tenant-scoped (and the composite key would list it twice).
    if (fk.references.columns.includes(tenantColumnOf(parentKey))) continue
    const parentCols = [tenantColumnOf(parentKey), ...fk.references.columns]
    const existingUnique = parentTable.indexes.some((i) => i.unique && i.valid && i.predicate === null && !i.hasExpressions && i.columns.length === parentCols.length && i.columns.every((c, n) => c === parentCols[n]))
    const stepId = `tenant-key:${parentKey}:${parentCols.join(',')}`
    if (!existingUnique && !ctx.stepIds.has(stepId)) {
      const uniqueName = freeName(ctx, parentTable, 'relation', parentTable.name, ...parentCols, 'key')
      step(ctx, {
        id: stepId,
        phase: 'schema',
        table: parentKey,
        title: `unique (${parentCols.join(', ')}) for composite foreign keys, built concurrently`,
        up: [{ op: 'createIndex', table: parentEntry.rel, name: uniqueName, columns: parentCols, unique: true, concurrently: true, only: false }],
        down: [{ op: 'dropIndex', index: { schema: parentTable.schema, name: uniqueName }, concurrently: true, ifExists: true }],
        lockHeld: 'scan without blocking writes',
        rows: parentEntry.rows,
      })
    }
    const name = freeName(ctx, on, 'constraint', on.name, t.column, ...fk.columns, 'tenant_fkey')
    const up: Operation[] = []
    if (ctx.deriveChildren) {
      const join = fk.columns.map((c, i) => `p.${quoteIdent(fk.references.columns[i]!)} = c.${quoteIdent(c)}`).join(' AND ')
      up.push({
        op: 'raiseIfRows',
        from: sqlText(`FROM ${onSql} AS c JOIN ${parentEntry.sql} AS p ON ${join}
   WHERE c.${quoteIdent(t.column)} IS DISTINCT FROM p.${quoteIdent(tenantColumnOf(parentKey))}`),
        message: `row(s) of ${onKey} reference a ${parentKey} row of another tenant through ${fk.name}`,
        hint: 'fix those rows (or choose this foreign key as the tenant path in the config), then run apply again',
      })
    }
    // Checked at commit: the original key keeps doing its cascades and SET NULLs, and by commit time the
    // twin only has to find every surviving row in the same tenant as its parent.
    // The twin carries the original's actions, so the original can go later (see singleForeignKeyDrop).
    const actions = twinActions(ctx, fk)
    up.push({ op: 'addForeignKey', table: onRel, name, columns: [t.column, ...fk.columns], references: parentEntry.rel, refColumns: parentCols, deferred: true, notValid: true, ...(actions ?? {}) })
    // On Citus every foreign key between distributed tables must include the tenant column, so the original goes.
    // On PostgreSQL it stays for now (its existence-oracle is docs/security.md row 32): dropping it changes what
    // the app's error messages and ORMs see, and needs its own rollout.
    if (actions !== undefined && ctx.config.target === 'citus') ctx.singleForeignKeys.push({ table: t, fk })
    ctx.compositeForeignKeys.push(up[up.length - 1]!)
    step(ctx, {
      id: `composite-fk:${onKey}:${fk.name}`,
      phase: 'schema',
      table: t.key,
      title: `foreign key (${t.column}, ${fk.columns.join(', ')}) → ${parentKey} (${parentCols.join(', ')})${partitionOnly ? ` on the partition ${onKey}` : ''}, checked at commit, NOT VALID${ctx.deriveChildren ? ', after checking no row crosses tenants' : ''}`,
      up,
      down: [{ op: 'dropConstraint', table: onRel, name, ifExists: true }],
      lockHeld: 'brief',
      rows: ctx.deriveChildren ? onRows : 0,
      preconditions: crossingRows(ctx, t.key, fk, onKey),
    })
    step(ctx, { id: `composite-fk-validate:${onKey}:${fk.name}`, phase: 'schema', table: t.key, title: `validate the composite foreign key${partitionOnly ? ` on ${onKey}` : ''} (scans without blocking writes)`, up: [{ op: 'validateConstraint', table: onRel, name }], down: [], lockHeld: 'scan without blocking writes', rows: onRows })
  }
}

/** Every partition of `table`, sub-partitions too (none for a table that is not partitioned). */
function partitionsOf(ctx: Ctx, table: Table): Table[] {
  return table.partitions.flatMap((ref) => {
    const part = ctx.catalog.tableByOid(ref.oid)
    return part === undefined ? [] : [part, ...partitionsOf(ctx, part)]
  })
}

const ACTION_SQL = { 'no action': undefined, restrict: 'RESTRICT', cascade: 'CASCADE', 'set null': 'SET NULL', 'set default': 'SET DEFAULT' } as const

/**
 * The original key's referential actions for its composite twin, or undefined when the twin cannot carry
 * them (then the original stays): SET NULL / SET DEFAULT must leave the tenant column alone, which needs
 * a column list (PostgreSQL 15, ON DELETE only).
 */
function twinActions(ctx: Ctx, fk: ForeignKeyConstraint): { onDelete?: ReturnType<typeof sqlText>; onUpdate?: ReturnType<typeof sqlText> } | undefined {
  if (fk.match !== 'simple' || fk.columns.length !== fk.references.columns.length) return undefined
  const nulling = (a: string): boolean => a === 'set null' || a === 'set default'
  if (nulling(fk.onUpdate)) return undefined
  if (nulling(fk.onDelete) && ctx.catalog.server.versionNum < 150000) return undefined
  const del = ACTION_SQL[fk.onDelete]
  const upd = ACTION_SQL[fk.onUpdate]
  return {
    ...(del === undefined ? {} : { onDelete: sqlText(nulling(fk.onDelete) ? `${del} (${fk.columns.map(quoteIdent).join(', ')})` : del) }),
    ...(upd === undefined ? {} : { onUpdate: sqlText(upd) }),
  }
}

/**
 * Once row-level security is on, the single-column key beside its composite twin is an existence oracle:
 * it accepts another tenant's id (the twin refuses it at commit) but refuses an unknown one at once, so a
 * tenant learns which ids exist. The twin enforces everything it did, with the same actions: drop it.
 */
function singleForeignKeyDrop(ctx: Ctx, t: TenantTable, fk: ForeignKeyConstraint): void {
  const definition = /\bNOT VALID$/.test(fk.definition) ? fk.definition : `${fk.definition} NOT VALID`
  step(ctx, {
    id: `drop-single-fk:${t.key}:${fk.name}`,
    phase: 'enforce',
    table: t.key,
    title: `drop foreign key ${fk.name} (${fk.columns.join(', ')}): its tenant-scoped twin enforces it, with its actions; kept, it would tell a tenant which ids of other tenants exist`,
    up: [{ op: 'dropConstraint', table: t.rel, name: fk.name, ifExists: false }],
    down: [{ op: 'addConstraintDefinition', table: t.rel, name: fk.name, definition: sqlText(definition) }, ...(fk.validated ? [{ op: 'validateConstraint', table: t.rel, name: fk.name } as const] : [])],
    lockHeld: 'brief',
  })
}

/** Global unique constraints become tenant-scoped (`UNIQUE (org_id, email)`): no existence oracle across tenants. */
function uniqueRewriteSteps(ctx: Ctx, t: TenantTable, tenantKeys: ReadonlySet<string>): void {
  const table = t.table!
  if (t.cfg.class === 'root') return
  const referenced = referencedColumnsOf(ctx, table.oid)
  for (const index of table.indexes) {
    if (index.primary && !index.columns.includes(t.column)) naturalPrimaryKey(ctx, t, index, referenced, tenantKeys)
    if (!index.unique || index.primary || index.columns.includes(t.column) || t.cfg.keepGlobalUnique.includes(index.name) || (index.constraint !== null && t.cfg.keepGlobalUnique.includes(index.constraint))) continue
    const constraint = index.constraint === null ? undefined : (table.constraints.find((c) => c.name === index.constraint) as KeyOrCheckConstraint | undefined)
    if (constraint !== undefined && constraint.type !== 'unique') continue
    if (index.hasExpressions || table.kind === 'partitioned' || index.columns.some((c) => c === null)) {
      const parts = indexDefinitionParts(index.definition, index.method)
      const keys = parts === undefined ? '…' : `${parts.keys})${parts.tail}`
      const build = table.kind === 'partitioned' ? `CREATE UNIQUE INDEX ON ONLY ${t.sql} (${quoteIdent(t.column)}, ${keys}, then the same CONCURRENTLY on each partition and ALTER INDEX … ATTACH PARTITION` : `CREATE UNIQUE INDEX CONCURRENTLY ON ${t.sql} (${quoteIdent(t.column)}, ${keys}`
      ctx.manual.push({ object: `${t.key} ${index.name}`, reason: 'unique across all tenants: one tenant can learn that a value exists in another (existence oracle)', fix: `recreate it with ${t.column} first: ${build}; then drop ${quoteIdent(index.name)}` })
      continue
    }
    if (referenced.has(index.columns.join(','))) {
      ctx.manual.push({ object: `${t.key} ${index.name}`, reason: 'unique across all tenants, but foreign keys reference it, so it cannot be replaced automatically', fix: `make the referencing foreign keys include ${t.column}, then rewrite the constraint with ${t.column} first` })
      continue
    }
    rewriteUnique(ctx, t, index, constraint)
  }
}

/** Key values that come from the database (a sequence, an identity, a uuid or other function default), not from the app. */
function generated(table: Table, column: string): boolean {
  const c = table.columns.find((col) => col.name === column)
  return c !== undefined && (c.identity !== null || c.generated !== null || (c.default !== null && /\(/.test(c.default)))
}

/**
 * A primary key whose values the app assigns (no sequence, identity or function default) stays unique across
 * tenants: a tenant cannot use a key another tenant has, and the error tells it the key exists. A manual
 * step says so and how to fix it.
 */
function naturalPrimaryKey(ctx: Ctx, t: TenantTable, index: Index, referenced: ReadonlySet<string>, tenantKeys: ReadonlySet<string>): void {
  const table = t.table!
  const columns = index.columns as string[]
  // Random uuids never collide and reveal nothing: only keys a tenant could guess or reuse matter.
  const uuid = columns.every((c) => table.columns.find((col) => col.name === c)?.type === 'uuid')
  // A key that includes a reference to a tenant row (an order's line numbers) is per parent, so per tenant already.
  const perParent = table.constraints.some((c) => c.type === 'foreign key' && tenantKeys.has(tableKeyOf(c.references.table)) && c.columns.every((x) => columns.includes(x)))
  if (index.hasExpressions || uuid || perParent || columns.some((c) => generated(table, c)) || index.constraint === null) return
  const why = `primary key ${index.name} (${columns.join(', ')}) takes its values from the app, so it is unique across all tenants: a tenant cannot use a key another tenant has, and the duplicate-key error tells it that key exists`
  // Not rewritten automatically: the app's upserts (ON CONFLICT on this key) and lookups name it.
  ctx.manual.push({
    object: `${t.key} ${index.name}`,
    reason: `${why}${referenced.has(columns.join(',')) ? '; foreign keys reference it' : ''}`,
    fix: `give ${columns.join(', ')} a database default (GENERATED BY DEFAULT AS IDENTITY) so keys never collide, or make the key (${[t.column, ...columns].join(', ')})${referenced.has(columns.join(',')) ? ` once every foreign key referencing it includes ${t.column}` : ''} and change the app's ON CONFLICT (${columns.join(', ')}) to match`,
  })
}

/** The unique index `index` again under `name` on `columns`: same method, INCLUDE, NULLS NOT DISTINCT and predicate. */
function uniqueIndexOp(index: Index, name: string, table: Rel, columns: readonly string[]): Operation {
  return {
    op: 'createIndex',
    table,
    name,
    columns,
    unique: true,
    concurrently: true,
    only: false,
    method: index.method,
    include: index.includeColumns,
    nullsNotDistinct: index.nullsNotDistinct,
    ...(index.predicate === null ? {} : { where: sqlText(index.predicate) }),
  }
}

function rewriteUnique(ctx: Ctx, t: TenantTable, index: Index, constraint: KeyOrCheckConstraint | undefined): void {
  const schema = t.table!.schema
  const columns = index.columns as string[]
  const scoped = freeName(ctx, t.table!, 'relation', index.name, 'tenant')
  const global = freeName(ctx, t.table!, 'relation', index.name, 'global')
  const swap = (from: string): Operation[] =>
    constraint === undefined
      ? [{ op: 'dropIndex', index: { schema, name: index.name }, concurrently: true, ifExists: false }, { op: 'renameIndex', index: { schema, name: from }, to: index.name }]
      : [{ op: 'swapUniqueConstraint', table: t.rel, name: constraint.name, index: from, deferrable: !constraint.deferrable ? 'no' : constraint.initiallyDeferred ? 'deferred' : 'immediate' }]
  step(ctx, {
    id: `tenant-unique:${t.key}:${index.name}`,
    phase: 'schema',
    table: t.key,
    title: `make ${constraint === undefined ? 'unique index' : 'unique constraint'} ${index.name} (${columns.join(', ')}) tenant-scoped: (${[t.column, ...columns].join(', ')})`,
    up: [uniqueIndexOp(index, scoped, t.rel, [t.column, ...columns]), ...swap(scoped)],
    down: [uniqueIndexOp(index, global, t.rel, columns), ...swap(global)],
    lockHeld: 'brief',
    rows: t.rows,
  })
}

/** Every tenant table gets an index leading with its tenant column, for the policy's equality. */
function tenantIndexStep(ctx: Ctx, t: TenantTable): void {
  const table = t.table!
  const leads = (cols: readonly (string | null)[]): boolean => cols[0] === t.column
  if (table.indexes.some((i) => i.predicate === null && leads(i.columns))) return
  if (ctx.stepIdPrefixes.has(`tenant-key:${t.key}:${t.column},`) || ctx.stepIdPrefixes.has(`tenant-unique:${t.key}:`)) return
  const name = freeName(ctx, table, 'relation', table.name, t.column, 'idx')
  if (table.kind === 'partitioned') {
    const up: Operation[] = [{ op: 'createIndex', table: t.rel, name, columns: [t.column], unique: false, concurrently: false, only: true }]
    for (const p of table.partitions) {
      const pname = freeName(ctx, p, 'relation', p.name, t.column, 'idx')
      up.push({ op: 'createIndex', table: p, name: pname, columns: [t.column], unique: false, concurrently: true, only: false })
      up.push({ op: 'attachIndex', index: { schema: table.schema, name }, partitionIndex: { schema: p.schema, name: pname } })
    }
    step(ctx, { id: `tenant-index:${t.key}`, phase: 'schema', table: t.key, title: `index leading with ${t.column}: on the parent only (brief), then each partition concurrently and attached`, up, down: [{ op: 'dropIndex', index: { schema: table.schema, name }, concurrently: false, ifExists: true }], lockHeld: 'scan without blocking writes', rows: t.rows })
    return
  }
  step(ctx, {
    id: `tenant-index:${t.key}`,
    phase: 'schema',
    table: t.key,
    title: `index leading with ${t.column}, built concurrently`,
    up: [{ op: 'createIndex', table: t.rel, name, columns: [t.column], unique: false, concurrently: true, only: false }],
    down: [{ op: 'dropIndex', index: { schema: table.schema, name }, concurrently: true, ifExists: true }],
    lockHeld: 'scan without blocking writes',
    rows: t.rows,
  })
}

/** The membership table (user ↔ tenant ↔ role) beside a new tenant table; every existing user joins the default tenant. */
function membershipStep(ctx: Ctx, problems: Problem[]): TenantTable | undefined {
  const m = ctx.config.tenant.membership
  if (m === null || !ctx.config.tenant.create) return undefined
  const users = relOf(m.users)
  const usersTable = ctx.catalog.table(users.schema, users.name)
  const pk = usersTable?.constraints.find((c) => c.type === 'primary key')
  if (usersTable === undefined || pk === undefined || pk.columns.length !== 1) {
    problems.push({ object: 'tenant.membership.users', message: `${m.users} ${usersTable === undefined ? 'does not exist' : 'needs a single-column primary key'}`, fix: 'name the users table, or set tenant.membership to null' })
    return undefined
  }
  const userKey = pk.columns[0]!
  const userType = usersTable.columns.find((c) => c.name === userKey)!.type
  const rel = relOf(m.table)
  step(ctx, {
    id: `membership:${m.table}`,
    phase: 'schema',
    table: m.table,
    title: `membership table ${m.table} (user ↔ tenant ↔ role); every existing user joins the default tenant`,
    up: [
      {
        op: 'createTable',
        table: rel,
        references: [ctx.root, users],
        body: sqlText(`(
  "org_id" ${ctx.idSql} NOT NULL REFERENCES ${relSql(ctx.root)} ("id") ON DELETE CASCADE,
  "user_id" ${userType} NOT NULL REFERENCES ${relSql(users)} (${quoteIdent(userKey)}) ON DELETE CASCADE,
  "role" text NOT NULL DEFAULT 'member' CHECK ("role" IN ('owner', 'admin', 'member', 'viewer')),
  "created_at" timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY ("org_id", "user_id")
)`),
      },
      { op: 'createIndex', table: rel, name: objectName(rel.name, 'user_id', 'idx'), columns: ['user_id'], unique: false, concurrently: false, only: false },
      { op: 'insertSelect', table: rel, columns: ['org_id', 'user_id'], select: sqlText(`SELECT ${quoteLiteral(ctx.config.tenant.default.id)}, ${quoteIdent(userKey)} FROM ${relSql(users)}`) },
    ],
    down: [{ op: 'dropTable', table: rel }],
    lockHeld: 'brief',
    rows: Math.max(0, Math.round(usersTable.estimatedRows ?? 0)),
  })
  return { key: m.table, cfg: { class: 'direct', reason: '', alternatives: [], keepGlobalUnique: [], sharedReferences: [] }, table: undefined, rel, sql: relSql(rel), column: 'org_id', existing: { name: 'org_id' } as Column, rows: 0 }
}

function statusViewStep(ctx: Ctx, tables: readonly TenantTable[]): void {
  const rows = Object.entries(ctx.config.tables).map(([key, cfg]) => {
    const column = tables.find((t) => t.key === key)?.column ?? null
    return `(${quoteLiteral(key)}, ${quoteLiteral(relSql(relOf(key)))}, ${quoteLiteral(cfg.class)}, ${column === null ? 'NULL' : quoteLiteral(column)})`
  })
  if (ctx.config.tenant.create) rows.unshift(`(${quoteLiteral(ctx.rootKey)}, ${quoteLiteral(relSql(ctx.root))}, 'root', 'id')`)
  const m = ctx.config.tenant.membership
  if (m !== null && ctx.config.tenant.create) rows.push(`(${quoteLiteral(m.table)}, ${quoteLiteral(relSql(relOf(m.table)))}, 'membership', 'org_id')`)
  if (rows.length === 0) return
  const view: Rel = { schema: 'tenantize', name: 'status' }
  step(ctx, {
    id: 'status-view',
    phase: 'schema',
    table: null,
    title: 'view tenantize.status: each table\'s class, tenant column, NOT NULL, RLS enabled/forced, policy and index',
    up: [
      {
        op: 'createView',
        view,
        query: sqlText(`SELECT t.table_name, t.class, t.tenant_column,
       a.attnotnull AS tenant_not_null,
       c.relrowsecurity AS rls_enabled,
       c.relforcerowsecurity AS rls_forced,
       EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid AND p.polname = ${quoteLiteral(POLICY_NAME)}) AS policy_present,
       EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indkey[0] = a.attnum AND i.indisvalid) AS tenant_index_present
  FROM (VALUES ${rows.join(',\n               ')}) AS t(table_name, regname, class, tenant_column)
  LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(t.regname)
  LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = t.tenant_column AND NOT a.attisdropped`),
      },
    ],
    down: [{ op: 'dropView', view }],
    lockHeld: 'brief',
  })
}

export const READINESS_TRIGGER = 'tenantize_readiness'
const READINESS_FN: Rel = { schema: 'tenantize', name: 'count_context' }
const READINESS_VIEW: Rel = { schema: 'tenantize', name: 'readiness' }

/**
 * Cut-over readiness: from the schema phase on, every write statement on a tenant table is counted, with
 * and without a tenant context, in two sequences per table (non-transactional, no row to contend for, one
 * statement-level trigger call per statement). `tenantize.readiness` shows the counts; enforce refuses
 * while writes without context go on. Returns each table's trigger, which its enforce step drops.
 */
function readinessSteps(ctx: Ctx, tables: readonly TenantTable[]): Map<string, Operation> {
  const triggers = new Map<string, Operation>()
  if (tables.length === 0) return triggers
  const setting = quoteLiteral(ctx.config.tenant.setting)
  step(ctx, {
    id: 'readiness-counter',
    phase: 'schema',
    table: null,
    title: 'count write statements with and without a tenant context per table (cut-over readiness)',
    up: [
      {
        op: 'createFunction',
        name: READINESS_FN,
        args: '',
        returns: 'trigger',
        language: 'plpgsql',
        attributes: 'SECURITY DEFINER SET search_path = pg_catalog',
        body: `
BEGIN
  IF NULLIF(pg_catalog.current_setting(${setting}, true), '') IS NULL THEN
    PERFORM pg_catalog.nextval(TG_ARGV[0]::pg_catalog.regclass);
  ELSE
    PERFORM pg_catalog.nextval(TG_ARGV[1]::pg_catalog.regclass);
  END IF;
  RETURN NULL;
END
`,
      },
    ],
    down: [{ op: 'dropFunction', name: READINESS_FN, args: '' }],
    lockHeld: 'brief',
  })
  const rows: string[] = []
  for (const t of tables) {
    const tenantize: RelationRefLike = { oid: 0, schema: 'tenantize', name: '' }
    const without: Rel = { schema: 'tenantize', name: freeName(ctx, tenantize, 'relation', 'ctx', t.rel.schema, t.rel.name, 'without') }
    const withCtx: Rel = { schema: 'tenantize', name: freeName(ctx, tenantize, 'relation', 'ctx', t.rel.schema, t.rel.name, 'with') }
    const trigger: Operation = { op: 'createTrigger', table: t.rel, name: READINESS_TRIGGER, timing: 'AFTER', events: sqlText('INSERT OR UPDATE OR DELETE'), fn: READINESS_FN, level: 'STATEMENT', args: [literal(relSql(without)), literal(relSql(withCtx))] }
    triggers.set(t.key, trigger)
    rows.push(`(${quoteLiteral(t.key)}, ${quoteLiteral(without.name)}, ${quoteLiteral(withCtx.name)})`)
    step(ctx, {
      id: `readiness:${t.key}`,
      phase: 'schema',
      table: t.key,
      title: 'count its write statements with and without a tenant context (a statement-level trigger)',
      up: [{ op: 'createSequence', sequence: without }, { op: 'createSequence', sequence: withCtx }, trigger],
      down: [{ op: 'dropTrigger', table: t.rel, name: READINESS_TRIGGER }, { op: 'dropSequence', sequence: withCtx }, { op: 'dropSequence', sequence: without }],
      lockHeld: 'brief',
    })
  }
  step(ctx, {
    id: 'readiness-view',
    phase: 'schema',
    table: null,
    title: 'view tenantize.readiness: write statements per table with and without a tenant context',
    up: [
      {
        op: 'createView',
        view: READINESS_VIEW,
        query: sqlText(`SELECT t.table_name,
       COALESCE(w.last_value, 0) AS with_context,
       COALESCE(wo.last_value, 0) AS without_context
  FROM (VALUES ${rows.join(',\n               ')}) AS t(table_name, without_seq, with_seq)
  LEFT JOIN pg_catalog.pg_sequences wo ON wo.schemaname = 'tenantize' AND wo.sequencename = t.without_seq
  LEFT JOIN pg_catalog.pg_sequences w ON w.schemaname = 'tenantize' AND w.sequencename = t.with_seq`),
      },
    ],
    down: [{ op: 'dropView', view: READINESS_VIEW }],
    lockHeld: 'brief',
  })
  return triggers
}

function roleStep(ctx: Ctx, create: boolean): void {
  if (!create) return
  const role = ctx.config.roles.app
  step(ctx, { id: 'app-role', phase: 'enforce', table: null, title: `create the app role ${role} (NOLOGIN, NOSUPERUSER, NOBYPASSRLS: grant it to your login role)`, up: [{ op: 'createRole', role }], down: [{ op: 'dropRole', role }], lockHeld: 'brief' })
}

function grantSteps(ctx: Ctx, tables: readonly TenantTable[]): void {
  const role = ctx.config.roles.app
  const up: Operation[] = []
  const down: Operation[] = []
  const schemas = new Set<string>(['tenantize'])
  const grant = (on: PrivilegeObject, privileges: readonly string[], have: readonly string[]): void => {
    const missing = privileges.filter((p) => !have.includes(p))
    if (missing.length === 0) return
    up.push({ op: 'grant', privileges: missing, on, role })
    down.unshift({ op: 'revoke', privileges: missing, on, role })
  }
  const held = (grants: readonly { grantee: string; privilege: string }[]): string[] => grants.filter((g) => g.grantee === role).map((g) => g.privilege)
  for (const t of tables) {
    schemas.add(t.table!.schema)
    grant({ kind: 'table', rel: t.rel }, DATA, held(t.table!.grants))
  }
  // The schemas of the functions the tenant tables' triggers run (and their partitions'): a trigger runs its function
  // as the app role (SECURITY INVOKER), so without USAGE there every write of the app fails 42501. Only USAGE:
  // EXECUTE is PUBLIC's by default, and a function whose EXECUTE was revoked is the schema owner's decision.
  for (const t of tables) {
    const own = [t.table!, ...t.table!.partitions.map((p) => ctx.catalog.tableByOid(p.oid))]
    for (const x of own) {
      for (const tg of x?.triggers ?? []) {
        if (!['pg_catalog', 'information_schema', 'tenantize'].includes(tg.function.schema)) schemas.add(tg.function.schema)
      }
    }
  }
  if (ctx.config.tenant.create) {
    schemas.add(ctx.root.schema)
    grant({ kind: 'table', rel: ctx.root }, ['SELECT', 'UPDATE'], [])
    const m = ctx.config.tenant.membership
    if (m !== null) {
      schemas.add(relOf(m.table).schema)
      grant({ kind: 'table', rel: relOf(m.table) }, DATA, [])
    }
  }
  for (const [key, cfg] of Object.entries(ctx.config.tables)) {
    if (cfg.class !== 'global') continue
    const rel = relOf(key)
    const table = ctx.catalog.table(rel.schema, rel.name)
    if (table === undefined) continue
    schemas.add(rel.schema)
    grant({ kind: 'table', rel }, ['SELECT'], held(table.grants))
  }
  // Partitions too: the app role reads them through the parent, and a partition it may not touch directly is a finding of its own.
  for (const t of tables) {
    for (const p of t.table!.partitions) grant({ kind: 'table', rel: p }, DATA, held(ctx.catalog.tableByOid(p.oid)?.grants ?? []))
  }
  const tenantOids = new Set(tables.flatMap((t) => [t.table!.oid, ...t.table!.partitions.map((p) => p.oid)]))
  // Sequences the app draws from: owned by a tenant table, or named in a column default (`DEFAULT nextval('x_seq')`
  // without OWNED BY, as many schemas define their ids; Roundcube's `nextval('x_seq'::text)`, printed `nextval(('x_seq'::text)::regclass)`, names it as text).
  const drawn = new Set<string>()
  for (const t of tables) {
    for (const c of t.table!.columns) {
      for (const m of (c.default ?? '').matchAll(/nextval\(\(?'((?:[^']|'')+)'::(?:regclass|text\)::regclass)\)/g)) {
        try {
          const name = parseQualifiedName(m[1]!.replaceAll("''", "'"))
          drawn.add(`${name.schema}.${name.name}`)
        } catch {
          // not a plain name: nothing to grant
        }
      }
    }
  }
  for (const s of ctx.catalog.sequences) {
    if (!(s.ownedBy !== null && tenantOids.has(s.ownedBy.table.oid)) && !drawn.has(`${s.schema}.${s.name}`)) continue
    grant({ kind: 'sequence', rel: s }, ['USAGE', 'SELECT'], held(s.grants))
  }
  // USAGE only where the role does not have it yet (itself or through PUBLIC), and rollback revokes exactly that:
  // afterwards the role's privileges are what they were (a role the plan created is dropped).
  const hasUsage = (name: string): boolean => {
    const schema = ctx.catalog.schemas.find((s) => s.name === name)
    return schema !== undefined && name !== 'tenantize' && (schema.usage.includes(role) || schema.usage.includes('PUBLIC') || schema.owner === role)
  }
  const schemaList = [...schemas].filter((s) => !hasUsage(s)).sort()
  const helper: PrivilegeObject = { kind: 'function', signature: sqlText(CURRENT_TENANT_FN) }
  up.unshift({ op: 'grant', privileges: ['EXECUTE'], on: helper, role })
  down.push({ op: 'revoke', privileges: ['EXECUTE'], on: helper, role })
  if (schemaList.length > 0) {
    up.unshift({ op: 'grant', privileges: ['USAGE'], on: { kind: 'schema', names: schemaList }, role })
    down.push({ op: 'revoke', privileges: ['USAGE'], on: { kind: 'schema', names: schemaList }, role })
  }
  step(ctx, { id: 'grants', phase: 'enforce', table: null, title: `privileges for ${role}: data on tenant tables, SELECT on global tables — never TRUNCATE, REFERENCES or TRIGGER`, up, down, lockHeld: 'brief' })
}

/** ENABLE + FORCE row-level security and one policy per table (and per partition, so partitions cannot be read around it). */
function rlsStep(ctx: Ctx, t: TenantTable, counter?: Operation): void {
  const table = t.table
  const role = ctx.config.roles.app
  const expr = sqlText(ctx.config.target === 'citus' ? citusPolicyExpr(t.column, CURRENT_TENANT_FN) : policyExpr(t.column, ctx.config.tenant.idType, ctx.config.tenant.setting))
  const targets: { rel: Rel; rls: boolean; force: boolean; policies: readonly Policy[] }[] = []
  if (table === undefined) {
    targets.push({ rel: t.rel, rls: false, force: false, policies: [] })
  } else {
    targets.push({ rel: t.rel, rls: table.rowSecurity, force: table.forceRowSecurity, policies: table.policies })
    for (const p of table.partitions) {
      const part = ctx.catalog.tableByOid(p.oid)
      targets.push({ rel: p, rls: part?.rowSecurity ?? false, force: part?.forceRowSecurity ?? false, policies: part?.policies ?? [] })
    }
  }
  const up: Operation[] = []
  const down: Operation[] = []
  const restore: Operation[] = []
  const addedWithConstantDefault = t.existing === undefined && !(t.cfg.class === 'child' && ctx.deriveChildren && t.cfg.path?.reverse !== true) && t.cfg.class !== 'root'
  if (addedWithConstantDefault) {
    up.push({ op: 'setDefault', table: t.rel, column: t.column, default: sqlText(CURRENT_TENANT_FN) })
    down.push({ op: 'setDefault', table: t.rel, column: t.column, default: schemaPhaseDefault(ctx) })
  }
  // Permissive policies already there would be OR-ed with the tenant policy: each is a way around it. They are
  // replaced, and rollback puts them back verbatim (after dropping the tenant policy). Restrictive ones only narrow access and stay.
  const replaced: string[] = []
  for (const target of targets) {
    for (const p of target.policies) {
      if (p.mode !== 'permissive' || p.name === POLICY_NAME) continue
      replaced.push(p.name)
      up.push({ op: 'dropPolicy', table: target.rel, name: p.name })
      restore.push(restorePolicy(p, target.rel))
    }
  }
  for (const target of targets) {
    up.push({ op: 'rowSecurity', table: target.rel, action: 'ENABLE' }, { op: 'rowSecurity', table: target.rel, action: 'FORCE' })
    up.push({ op: 'createPolicy', table: target.rel, name: POLICY_NAME, mode: 'PERMISSIVE', command: 'ALL', roles: [role], using: expr, withCheck: expr })
    down.push({ op: 'dropPolicy', table: target.rel, name: POLICY_NAME })
    if (!target.force) down.push({ op: 'rowSecurity', table: target.rel, action: 'NO FORCE' })
    if (!target.rls) down.push({ op: 'rowSecurity', table: target.rel, action: 'DISABLE' })
  }
  // Once row-level security is on, a write without context fails: counting them is over for this table.
  if (counter !== undefined && counter.op === 'createTrigger') {
    up.push({ op: 'dropTrigger', table: counter.table, name: counter.name })
    restore.push(counter)
  }
  const replacing = replaced.length === 0 ? '' : `; replaces permissive ${replaced.length === 1 ? 'policy' : 'policies'} ${[...new Set(replaced)].join(', ')} (OR-ed with the tenant policy, a way around it; rollback restores ${replaced.length === 1 ? 'it' : 'them'})`
  step(ctx, { id: `rls:${t.key}`, phase: 'enforce', table: t.key, title: `row-level security ENABLE + FORCE and policy ${POLICY_NAME} TO ${role}${targets.length > 1 ? ` (also on ${targets.length - 1} partition(s))` : ''}${addedWithConstantDefault ? '; new rows default to the context tenant' : ''}${replacing}`, up, down: [...down, ...restore], lockHeld: 'brief' })
}

/** A policy as it was: for rollback. Expressions are the catalog's deparsed text (schema-qualified). */
function restorePolicy(p: Policy, table: Rel): Operation {
  return {
    op: 'createPolicy',
    table,
    name: p.name,
    mode: p.mode === 'permissive' ? 'PERMISSIVE' : 'RESTRICTIVE',
    command: p.command.toUpperCase(),
    roles: p.roles,
    using: p.using === null ? null : sqlText(`(${p.using})`),
    withCheck: p.withCheck === null ? null : sqlText(`(${p.withCheck})`),
  }
}

/** Sub-tenant scopes: a helper per scope and a RESTRICTIVE policy on each of its tables. */
/**
 * A multi-table step's tables, each referencing table before the tables it references (then by name;
 * a cycle keeps name order). The step locks them in this order, the order a writer's foreign-key check
 * takes them (its own row's table, then the parent's), so the step and a writer cannot deadlock: in name
 * order the step held `customers` while a writer holding `meter_readings` waited for it (40P01).
 */
function childrenFirst<T>(ctx: Ctx, entries: readonly (readonly [string, T])[], byKey: ReadonlyMap<string, TenantTable>): [string, T][] {
  const left = [...entries].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, v] as [string, T])
  const keys = new Set(left.map(([k]) => k))
  const refs = new Map(left.map(([k]) => {
    const table = byKey.get(k)?.table
    const parents = table === undefined ? [] : foreignKeysOf(ctx.catalog, table).map((fk) => tableKeyOf(fk.references.table)).filter((p) => p !== k && keys.has(p))
    return [k, new Set(parents)] as const
  }))
  const out: [string, T][] = []
  while (left.length > 0) {
    const i = left.findIndex(([k]) => !left.some(([other]) => refs.get(other)?.has(k) === true))
    out.push(...left.splice(i === -1 ? 0 : i, 1))
  }
  return out
}

function scopeSteps(ctx: Ctx, byKey: ReadonlyMap<string, TenantTable>): void {
  const role = ctx.config.roles.app
  const citusScopes = new Map<string, string[]>()
  for (const scope of ctx.config.scopes) {
    const fn: Rel = { schema: 'tenantize', name: `current_${scope.name}_id` }
    const call = `${relSql(fn)}()`
    const up: Operation[] = [
      contextFunction(fn, scope.idType, scope.setting),
      { op: 'grant', privileges: ['EXECUTE'], on: { kind: 'function', signature: sqlText(call) }, role },
    ]
    const down: Operation[] = []
    const policy = objectName('tenant_scope', scope.name)
    for (const [key, column] of childrenFirst(ctx, Object.entries(scope.tables), byKey)) {
      const t = byKey.get(key)
      if (t === undefined) continue
      if (ctx.config.target === 'citus') {
        // Citus copies policies to the shards as PERMISSIVE: the scope goes into the tenant policy (see citusScopedPolicy).
        const before = citusScopes.get(key) ?? []
        const scoped = citusScopedPolicy(t.rel, POLICY_NAME, role, citusPolicyExpr(t.column, CURRENT_TENANT_FN), before, citusScopeExpr(column, call))
        citusScopes.set(key, [...before, citusScopeExpr(column, call)])
        up.push(...scoped.up)
        down.unshift(...scoped.down)
        continue
      }
      const expr = sqlText(`((SELECT ${call}) IS NULL OR ${quoteIdent(column)} OPERATOR(pg_catalog.=) (SELECT ${call}))`)
      up.push({ op: 'createPolicy', table: t.rel, name: policy, mode: 'RESTRICTIVE', command: 'ALL', roles: [role], using: expr, withCheck: expr })
      down.unshift({ op: 'dropPolicy', table: t.rel, name: policy })
    }
    down.push({ op: 'dropFunction', name: fn, args: '' })
    const how = ctx.config.target === 'citus' ? `AND-ed into policy ${POLICY_NAME} (Citus copies RESTRICTIVE policies to its shards as PERMISSIVE)` : 'RESTRICTIVE policies'
    step(ctx, { id: `scope:${scope.name}`, phase: 'enforce', table: null, title: `sub-tenant scope ${scope.name}: ${how} from ${scope.setting} on ${Object.keys(scope.tables).length} table(s)`, up, down, lockHeld: 'brief' })
  }
}

/** The tenant tables a view reads, also through other views (a view over a view over a tenant table). */
function tenantTablesBehind(ctx: Ctx, viewOid: number, tenantOids: ReadonlySet<number>, seen = new Set<number>()): { schema: string; name: string }[] {
  if (seen.has(viewOid)) return []
  seen.add(viewOid)
  const view = ctx.catalog.views.find((v) => v.oid === viewOid)
  if (view === undefined) return []
  return view.dependsOn.flatMap((d) => (tenantOids.has(d.oid) ? [d] : d.kind === 'view' || d.kind === 'materialized view' ? tenantTablesBehind(ctx, d.oid, tenantOids, seen) : []))
}

function viewSteps(ctx: Ctx, tables: readonly TenantTable[]): void {
  const tenantOids = new Set(tables.map((t) => t.table!.oid))
  const role = ctx.config.roles.app
  for (const view of ctx.catalog.views) {
    const reads = [...new Map(tenantTablesBehind(ctx, view.oid, tenantOids).map((r) => [`${r.schema}.${r.name}`, r])).values()]
    if (reads.length === 0 || view.extension !== null) continue
    const v = relSql(view)
    if (view.kind === 'materialized view') {
      ctx.manual.push({ object: `${view.schema}.${view.name}`, reason: `materialized view over tenant table(s) ${reads.map((r) => `${r.schema}.${r.name}`).join(', ')}: its stored rows are not filtered by row-level security`, fix: `REVOKE ALL ON ${v} FROM ${roleName(role)}; serve it per tenant through a view with security_invoker, or add ${ctx.config.tenant.column} and filter` })
      continue
    }
    if (view.securityInvoker) continue
    if (ctx.catalog.server.versionNum < 150000) {
      ctx.manual.push({ object: `${view.schema}.${view.name}`, reason: 'a view runs with its owner\'s rights, so it reads around row-level security; security_invoker needs PostgreSQL 15', fix: 'upgrade to PostgreSQL 15+, or revoke the app role\'s access to the view' })
      continue
    }
    const granted = view.grants.some((g) => g.grantee === role && g.privilege === 'SELECT')
    const on: PrivilegeObject = { kind: 'table', rel: view }
    step(ctx, {
      id: `view:${view.schema}.${view.name}`,
      phase: 'enforce',
      table: `${view.schema}.${view.name}`,
      title: `security_invoker = true: the view applies the caller's row-level security${granted ? '' : `; SELECT for ${role}`}`,
      up: [{ op: 'viewSecurityInvoker', view, on: true }, ...(granted ? [] : [{ op: 'grant', privileges: ['SELECT'], on, role } as const])],
      down: [...(granted ? [] : [{ op: 'revoke', privileges: ['SELECT'], on, role } as const]), { op: 'viewSecurityInvoker', view, on: false }],
      lockHeld: 'brief',
    })
  }
}
/** SECURITY DEFINER code over tenant tables runs with its owner's rights and sees every tenant. */
function manualChecks(ctx: Ctx, tables: readonly TenantTable[]): void {
  const names = tables.map((t) => t.table!).map((t) => ({ key: tableKeyOf(t), re: new RegExp(`\\b${t.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b`, 'i') }))
  const triggerFns = new Map<number, string[]>()
  for (const t of tables) for (const trg of t.table!.triggers) triggerFns.set(trg.function.oid, [...(triggerFns.get(trg.function.oid) ?? []), `${t.key} trigger ${trg.name}`])
  for (const fn of ctx.catalog.routines) {
    if (!fn.securityDefiner || fn.extension !== null || fn.schema === 'tenantize') continue
    const touched = names.filter((n) => n.re.test(fn.body)).map((n) => n.key)
    const fires = triggerFns.get(fn.oid) ?? []
    if (touched.length === 0 && fires.length === 0) continue
    ctx.manual.push({
      object: `function ${fn.schema}.${fn.name}(${fn.identityArguments})`,
      reason: `SECURITY DEFINER${fires.length > 0 ? `, fired by ${fires.join(', ')},` : ''} reads or writes tenant table(s) ${touched.join(', ') || '(through its trigger table)'} with its owner's rights, around row-level security${fn.searchPath === null ? '; and its search_path is not pinned' : ''}`,
      fix: `make it SECURITY INVOKER (ALTER FUNCTION ${qualifiedName(fn.schema, fn.name)}(${fn.identityArguments}) SECURITY INVOKER), or filter every query by ${CURRENT_TENANT_FN} inside it and pin search_path`,
    })
  }
}
