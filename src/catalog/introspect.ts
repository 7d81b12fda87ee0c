import { ErrorCodes, TenantizeError } from '../errors.js'
import {
  MIN_SERVER_VERSION_NUM,
  PIN_SEARCH_PATH,
  RESTORE_SEARCH_PATH,
  SERVER_QUERY,
  catalogQueries,
} from './queries.js'
import type {
  Catalog,
  Column,
  Constraint,
  ForeignKeyMatch,
  IdentityKind,
  Index,
  Policy,
  PolicyCommand,
  ReferentialAction,
  RelationGrant,
  RelationRef,
  Role,
  RoleMembership,
  Routine,
  RoutineRef,
  Schema,
  Sequence,
  SequenceOwner,
  ServerInfo,
  Table,
  TableKind,
  Trigger,
  TriggerEnabled,
  TriggerEvent,
  View,
  ViewDependency,
  Volatility,
} from './types.js'

/**
 * Anything that runs a query and returns its rows: `pg.Client` and `pg.PoolClient` fit as they are.
 *
 * It must be ONE connection. A `pg.Pool` is refused: it may run each statement on a different
 * connection, so the snapshot would not be consistent and the `BEGIN` would be left open on a pooled
 * connection. Check a client out (`await pool.connect()`) and pass that.
 */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>
}

export interface IntrospectOptions {
  /** Only objects in these schemas (exact, case-sensitive names). Default: every user schema. */
  readonly schemas?: readonly string[] | undefined
  /** Keep the built-in `pg_*` roles in {@link Catalog.roles}. Default false. */
  readonly includeBuiltinRoles?: boolean | undefined
  /**
   * Set when the client is already inside a transaction (e.g. to see uncommitted DDL): introspect then
   * neither begins nor commits, and the snapshot is as consistent as the caller's isolation level.
   * Default false: introspect runs its queries in its own
   * `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY` … `COMMIT`, so they all see one snapshot.
   */
  readonly inTransaction?: boolean | undefined
}

/**
 * Read the database behind `client` into an immutable {@link Catalog}: a fixed, small number of
 * queries (about a dozen, whatever the number of tables), all in one repeatable-read snapshot.
 *
 * Notes:
 * - `totalBytes` comes from `pg_total_relation_size`, which takes (and at once releases) an ACCESS SHARE
 *   lock per table: introspection waits while another session holds, or queues for, an ACCESS EXCLUSIVE
 *   lock on a table. Bound the wait with the session's `lock_timeout` if that matters.
 * - While it runs, `search_path` is pinned to `pg_catalog` (transaction-local) so that all deparsed
 *   SQL text names user objects with their schema; the caller's value is reported in
 *   `server.settings.search_path` and restored afterwards.
 * - Functions such as `pg_get_indexdef` read the catalog caches, which follow the latest committed
 *   state rather than the snapshot; DDL committed during the introspection can show there.
 *
 * @throws TenantizeError `TZ_PREFLIGHT` on a server older than PostgreSQL 14.
 * @throws TypeError when given a `pg.Pool`.
 */
export async function introspect(client: Queryable, options: IntrospectOptions = {}): Promise<Catalog> {
  if (isPool(client)) {
    throw new TypeError('introspect needs one connection, not a pool: pass `await pool.connect()` and release it afterwards')
  }
  if (options.inTransaction === true) return readCatalog(client, options, true)
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
  try {
    const catalog = await readCatalog(client, options, false)
    await client.query('COMMIT')
    return catalog
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  }
}

function isPool(client: Queryable): boolean {
  return 'totalCount' in client && 'idleCount' in client && 'waitingCount' in client
}

async function readCatalog(client: Queryable, options: IntrospectOptions, restorePath: boolean): Promise<Catalog> {
  const serverRow = (await client.query(SERVER_QUERY)).rows[0] as ServerRow
  const server = serverInfo(serverRow)
  if (server.versionNum < MIN_SERVER_VERSION_NUM) {
    throw new TenantizeError(ErrorCodes.PREFLIGHT, `PostgreSQL ${server.version} is not supported`, {
      object: server.database,
      fix: 'upgrade the server to PostgreSQL 14 or later',
      details: { versionNum: server.versionNum },
    })
  }
  await client.query(PIN_SEARCH_PATH)
  const q = catalogQueries(server.versionNum)
  const filter = [options.schemas === undefined ? null : [...options.schemas]]
  const rows = async <R>(text: string, values: unknown[] = filter): Promise<R[]> => (await client.query(text, values)).rows as R[]
  const raw = {
    schemas: await rows<SchemaRow>(q.schemas),
    relations: await rows<RelationRow>(q.relations),
    columns: await rows<ColumnRow>(q.columns),
    constraints: await rows<ConstraintRow>(q.constraints),
    indexes: await rows<IndexRow>(q.indexes),
    policies: await rows<PolicyRow>(q.policies),
    routines: await rows<RoutineRow>(q.routines),
    triggers: await rows<TriggerRow>(q.triggers),
    roles: await rows<RoleRow>(q.roles, []),
  }
  if (restorePath) await client.query(RESTORE_SEARCH_PATH, [server.settings.search_path, serverRow.jit, serverRow.max_parallel_workers_per_gather])
  return buildCatalog(server, raw, options.includeBuiltinRoles === true)
}

// ---------------------------------------------------------------------------------------------------
// Rows as the queries return them. Numbers may arrive as strings (int8, or another driver's choice),
// so every number goes through num().

type Num = number | string
interface RefJson { oid: Num; schema: string; name: string }

interface ServerRow {
  version: string
  version_num: Num
  database: string
  current_user_name: string
  row_security: string
  search_path: string
  default_transaction_isolation: string
  lock_timeout: string
  statement_timeout: string
  max_connections: string
  server_encoding: string
  standard_conforming_strings: string
  is_superuser: string
  jit: string
  max_parallel_workers_per_gather: string
}

interface SchemaRow { oid: Num; name: string; owner: string; usage: string[] }

interface RelationRow {
  oid: Num
  schema: string
  name: string
  relkind: 'r' | 'p' | 'f' | 'v' | 'm' | 'S'
  relpersistence: 'p' | 'u' | 't'
  owner: string
  reltuples: Num
  total_bytes: Num | null
  relrowsecurity: boolean
  relforcerowsecurity: boolean
  relispartition: boolean
  relispopulated: boolean
  partition_key: string | null
  partition_bound: string | null
  foreign_server: string | null
  extension: string | null
  parents: RefJson[] | null
  children: (RefJson & { partition: boolean })[] | null
  grants: { grantee: string; grantor: string; privilege: RelationGrant['privilege']; grantable: boolean }[] | null
  view_definition: string | null
  security_invoker: boolean | null
  security_barrier: boolean | null
  check_option: string | null
  view_dependencies: (RefJson & { relkind: string })[] | null
  sequence_type: string | null
  owned_by: { table: RefJson; column: string; identity: boolean } | null
}

interface ColumnRow {
  relid: Num
  name: string
  position: Num
  type: string
  attnotnull: boolean
  not_null_validated: boolean | null
  attidentity: '' | 'a' | 'd'
  attgenerated: '' | 's' | 'v'
  expression: string | null
}

interface ConstraintRow {
  oid: Num
  name: string
  contype: 'p' | 'u' | 'c' | 'f' | 'x'
  table_oid: Num
  condeferrable: boolean
  condeferred: boolean
  convalidated: boolean
  enforced: boolean
  definition: string
  parent_oid: Num | null
  columns: string[]
  ref_table: RefJson | null
  ref_columns: string[] | null
  confupdtype: string
  confdeltype: string
  confmatchtype: string
  index_name: string | null
}

interface IndexRow {
  oid: Num
  schema: string
  name: string
  table_oid: Num
  columns: (string | null)[]
  include_columns: string[]
  indisunique: boolean
  indisprimary: boolean
  nulls_not_distinct: boolean
  predicate: string | null
  has_expressions: boolean
  indisvalid: boolean
  indisready: boolean
  method: string
  definition: string
  constraint_name: string | null
  partitioned: boolean
}

interface PolicyRow {
  oid: Num
  name: string
  table_oid: Num
  polcmd: '*' | 'r' | 'a' | 'w' | 'd'
  polpermissive: boolean
  roles: string[]
  using_expression: string | null
  with_check: string | null
}

interface RoutineRow {
  oid: Num
  schema: string
  name: string
  prokind: 'f' | 'p'
  identity_arguments: string
  return_type: string | null
  language: string
  provolatile: 'i' | 's' | 'v'
  prosecdef: boolean
  proleakproof: boolean
  config: string[] | null
  owner: string
  body: string | null
  extension: string | null
}

interface TriggerRow {
  oid: Num
  name: string
  table_oid: Num
  function: RefJson
  tgtype: Num
  tgenabled: 'O' | 'D' | 'R' | 'A'
  constraint_trigger: boolean
  parent_oid: Num | null
  definition: string
}

interface RoleRow {
  oid: Num
  name: string
  rolsuper: boolean
  rolbypassrls: boolean
  rolcanlogin: boolean
  rolinherit: boolean
  rolcreaterole: boolean
  rolcreatedb: boolean
  member_of: RoleMembership[] | null
}

interface RawCatalog {
  schemas: SchemaRow[]
  relations: RelationRow[]
  columns: ColumnRow[]
  constraints: ConstraintRow[]
  indexes: IndexRow[]
  policies: PolicyRow[]
  routines: RoutineRow[]
  triggers: TriggerRow[]
  roles: RoleRow[]
}

// ---------------------------------------------------------------------------------------------------
// Building the snapshot: pure functions of the rows.

const num = (value: Num): number => (typeof value === 'number' ? value : Number(value))
const numOrNull = (value: Num | null): number | null => (value === null ? null : num(value))
const ref = (r: RefJson): RelationRef => ({ oid: num(r.oid), schema: r.schema, name: r.name })

function groupBy<K, T>(items: readonly T[], key: (item: T) => K): Map<K, T[]> {
  const map = new Map<K, T[]>()
  for (const item of items) {
    const k = key(item)
    const list = map.get(k)
    if (list === undefined) map.set(k, [item])
    else list.push(item)
  }
  return map
}

function serverInfo(row: ServerRow): ServerInfo {
  const versionNum = num(row.version_num)
  return {
    version: row.version,
    versionNum,
    major: Math.floor(versionNum / 10000),
    database: row.database,
    currentUser: row.current_user_name,
    currentUserIsSuperuser: row.is_superuser === 'on',
    settings: {
      row_security: row.row_security,
      search_path: row.search_path,
      default_transaction_isolation: row.default_transaction_isolation,
      lock_timeout: row.lock_timeout,
      statement_timeout: row.statement_timeout,
      max_connections: row.max_connections,
      server_encoding: row.server_encoding,
      standard_conforming_strings: row.standard_conforming_strings,
      is_superuser: row.is_superuser,
    },
  }
}

function column(row: ColumnRow): Column {
  const generated = row.attgenerated === '' || row.expression === null ? null : { kind: row.attgenerated === 's' ? 'stored' as const : 'virtual' as const, expression: row.expression }
  const identity: IdentityKind | null = row.attidentity === 'a' ? 'always' : row.attidentity === 'd' ? 'by default' : null
  return {
    name: row.name,
    position: num(row.position),
    type: row.type,
    nullable: !row.attnotnull,
    notNullValidated: row.not_null_validated,
    default: row.attgenerated === '' ? row.expression : null,
    identity,
    generated,
  }
}

const ACTIONS: Record<string, ReferentialAction> = { a: 'no action', r: 'restrict', c: 'cascade', n: 'set null', d: 'set default' }
const MATCH: Record<string, ForeignKeyMatch> = { s: 'simple', f: 'full', p: 'partial' }
const CONSTRAINT_TYPES = { p: 'primary key', u: 'unique', c: 'check', x: 'exclusion' } as const

function constraint(row: ConstraintRow, table: RelationRef): Constraint {
  // Object literals written out in full, not spread: V8 builds them from one shape instead of adding the
  // properties one by one (the snapshot of 5,000 tables spent most of its JavaScript time there).
  const oid = num(row.oid)
  const parentOid = numOrNull(row.parent_oid)
  if (row.contype === 'f') {
    if (row.ref_table === null || row.ref_columns === null) throw new Error(`catalog: foreign key ${row.name} without a referenced table`)
    return {
      oid, name: row.name, table, columns: row.columns, deferrable: row.condeferrable, initiallyDeferred: row.condeferred,
      validated: row.convalidated, enforced: row.enforced, definition: row.definition, parentOid,
      type: 'foreign key',
      references: { table: ref(row.ref_table), columns: row.ref_columns },
      onDelete: ACTIONS[row.confdeltype] ?? 'no action',
      onUpdate: ACTIONS[row.confupdtype] ?? 'no action',
      match: MATCH[row.confmatchtype] ?? 'simple',
    }
  }
  return {
    oid, name: row.name, table, columns: row.columns, deferrable: row.condeferrable, initiallyDeferred: row.condeferred,
    validated: row.convalidated, enforced: row.enforced, definition: row.definition, parentOid,
    type: CONSTRAINT_TYPES[row.contype], index: row.index_name,
  }
}

function index(row: IndexRow, table: RelationRef): Index {
  return {
    oid: num(row.oid),
    schema: row.schema,
    name: row.name,
    table,
    columns: row.columns,
    includeColumns: row.include_columns,
    unique: row.indisunique,
    primary: row.indisprimary,
    nullsNotDistinct: row.nulls_not_distinct,
    predicate: row.predicate,
    hasExpressions: row.has_expressions,
    valid: row.indisvalid,
    ready: row.indisready,
    method: row.method,
    definition: row.definition,
    constraint: row.constraint_name,
    partitioned: row.partitioned,
  }
}

const COMMANDS: Record<PolicyRow['polcmd'], PolicyCommand> = { '*': 'all', r: 'select', a: 'insert', w: 'update', d: 'delete' }

function policy(row: PolicyRow, table: RelationRef): Policy {
  return {
    oid: num(row.oid),
    name: row.name,
    table,
    command: COMMANDS[row.polcmd],
    mode: row.polpermissive ? 'permissive' : 'restrictive',
    roles: row.roles,
    using: row.using_expression,
    withCheck: row.with_check,
  }
}

// pg_trigger.tgtype bits (src/include/catalog/pg_trigger.h).
const TG_ROW = 1
const TG_BEFORE = 2
const TG_INSTEAD = 64
const TG_EVENTS: readonly [number, TriggerEvent][] = [[4, 'insert'], [16, 'update'], [8, 'delete'], [32, 'truncate']]
const ENABLED: Record<TriggerRow['tgenabled'], TriggerEnabled> = { O: 'origin', D: 'disabled', R: 'replica', A: 'always' }

function trigger(row: TriggerRow, table: RelationRef): Trigger {
  const type = num(row.tgtype)
  const fn: RoutineRef = ref(row.function)
  return {
    oid: num(row.oid),
    name: row.name,
    table,
    function: fn,
    timing: type & TG_INSTEAD ? 'instead of' : type & TG_BEFORE ? 'before' : 'after',
    events: TG_EVENTS.filter(([bit]) => (type & bit) !== 0).map(([, event]) => event),
    level: type & TG_ROW ? 'row' : 'statement',
    enabled: ENABLED[row.tgenabled],
    constraintTrigger: row.constraint_trigger,
    parentOid: numOrNull(row.parent_oid),
    definition: row.definition,
  }
}

const VOLATILITY: Record<RoutineRow['provolatile'], Volatility> = { i: 'immutable', s: 'stable', v: 'volatile' }

/** `proconfig` entries are `name=value`; the value may itself contain `=`. */
function parseConfig(entries: readonly string[] | null): Readonly<Record<string, string>> {
  const config: Record<string, string> = {}
  for (const entry of entries ?? []) {
    const eq = entry.indexOf('=')
    if (eq > 0) config[entry.slice(0, eq)] = entry.slice(eq + 1)
  }
  return config
}

function routine(row: RoutineRow): Routine {
  const config = parseConfig(row.config)
  return {
    oid: num(row.oid),
    schema: row.schema,
    name: row.name,
    kind: row.prokind === 'p' ? 'procedure' : 'function',
    identityArguments: row.identity_arguments,
    returnType: row.return_type,
    language: row.language,
    volatility: VOLATILITY[row.provolatile],
    securityDefiner: row.prosecdef,
    leakproof: row.proleakproof,
    config,
    searchPath: config['search_path'] ?? null,
    owner: row.owner,
    body: row.body ?? '',
    extension: row.extension,
  }
}

const grants = (row: RelationRow): RelationGrant[] => (row.grants ?? []).map((g) => ({ grantee: g.grantee, grantor: g.grantor, privilege: g.privilege, grantable: g.grantable }))

function tableKind(row: RelationRow): TableKind {
  if (row.relispartition) return 'partition'
  if (row.relkind === 'p') return 'partitioned'
  if (row.relkind === 'f') return 'foreign'
  if ((row.parents ?? []).length > 0) return 'inheritance child'
  return 'ordinary'
}

const DEPENDENCY_KINDS: Record<string, ViewDependency['kind']> = {
  r: 'table', p: 'partitioned table', f: 'foreign table', v: 'view', m: 'materialized view',
}

/** Every role reachable from `name` through memberships, sorted. */
function transitiveMemberships(name: string, direct: ReadonlyMap<string, readonly string[]>): string[] {
  const seen = new Set<string>()
  const stack = [...(direct.get(name) ?? [])]
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    if (seen.has(next)) continue
    seen.add(next)
    stack.push(...(direct.get(next) ?? []))
  }
  return [...seen].sort(compareText)
}

/** One entry per granted role: PostgreSQL 16+ may hold the same membership from several grantors. */
function mergeMemberships(list: readonly RoleMembership[] | null): RoleMembership[] {
  const byRole = new Map<string, RoleMembership>()
  for (const m of list ?? []) {
    const prev = byRole.get(m.role)
    byRole.set(m.role, prev === undefined ? { ...m } : {
      role: m.role, admin: prev.admin || m.admin, inherit: prev.inherit || m.inherit, set: prev.set || m.set,
    })
  }
  return [...byRole.values()]
}

function roles(rows: readonly RoleRow[], includeBuiltin: boolean): Role[] {
  const memberships = new Map(rows.map((r) => [r.name, mergeMemberships(r.member_of)]))
  const direct = new Map([...memberships].map(([name, list]) => [name, list.map((m) => m.role)]))
  return rows
    .filter((r) => includeBuiltin || !r.name.startsWith('pg_'))
    .map((r) => ({
      oid: num(r.oid),
      name: r.name,
      superuser: r.rolsuper,
      bypassRls: r.rolbypassrls,
      login: r.rolcanlogin,
      inherit: r.rolinherit,
      createRole: r.rolcreaterole,
      createDb: r.rolcreatedb,
      memberOf: memberships.get(r.name) ?? [],
      memberOfTransitive: transitiveMemberships(r.name, direct),
    }))
}

/** Byte-wise order, as PostgreSQL's `name` type (C collation) sorts. */
function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function buildCatalog(server: ServerInfo, raw: RawCatalog, includeBuiltinRoles: boolean): Catalog {
  const columnsOf = groupBy(raw.columns, (r) => num(r.relid))
  const constraintsOf = groupBy(raw.constraints, (r) => num(r.table_oid))
  const indexesOf = groupBy(raw.indexes, (r) => num(r.table_oid))
  const policiesOf = groupBy(raw.policies, (r) => num(r.table_oid))
  const triggersOf = groupBy(raw.triggers, (r) => num(r.table_oid))

  const tables: Table[] = []
  const views: View[] = []
  const sequences: Sequence[] = []
  for (const row of raw.relations) {
    const self: RelationRef = { oid: num(row.oid), schema: row.schema, name: row.name }
    const cols = (columnsOf.get(self.oid) ?? []).map(column)
    const idx = (indexesOf.get(self.oid) ?? []).map((r) => index(r, self))
    const trg = (triggersOf.get(self.oid) ?? []).map((r) => trigger(r, self))
    if (row.relkind === 'r' || row.relkind === 'p' || row.relkind === 'f') {
      const parents = (row.parents ?? []).map(ref)
      const children = row.children ?? []
      const reltuples = num(row.reltuples)
      const parent = parents[0]
      tables.push({
        oid: self.oid, schema: self.schema, name: self.name,
        kind: tableKind(row),
        partitioned: row.relkind === 'p',
        foreign: row.relkind === 'f',
        foreignServer: row.foreign_server,
        owner: row.owner,
        persistence: row.relpersistence === 'u' ? 'unlogged' : 'permanent',
        estimatedRows: reltuples < 0 ? null : reltuples,
        totalBytes: numOrNull(row.total_bytes),
        rowSecurity: row.relrowsecurity,
        forceRowSecurity: row.relforcerowsecurity,
        partitionKey: row.partition_key,
        partitionOf: row.relispartition && parent !== undefined ? { parent, bound: row.partition_bound ?? '' } : null,
        partitions: children.filter((c) => c.partition).map(ref),
        inheritsFrom: row.relispartition ? [] : parents,
        inheritedBy: children.filter((c) => !c.partition).map(ref),
        extension: row.extension,
        columns: cols,
        constraints: (constraintsOf.get(self.oid) ?? []).map((r) => constraint(r, self)),
        indexes: idx,
        policies: (policiesOf.get(self.oid) ?? []).map((r) => policy(r, self)),
        triggers: trg,
        grants: grants(row),
      })
    } else if (row.relkind === 'v' || row.relkind === 'm') {
      const checkOption = row.check_option
      views.push({
        oid: self.oid, schema: self.schema, name: self.name,
        kind: row.relkind === 'v' ? 'view' : 'materialized view',
        owner: row.owner,
        definition: row.view_definition ?? '',
        securityInvoker: row.security_invoker === true,
        securityBarrier: row.security_barrier === true,
        checkOption: checkOption === 'local' || checkOption === 'cascaded' ? checkOption : null,
        populated: row.relispopulated,
        dependsOn: (row.view_dependencies ?? []).map((d) => ({ oid: num(d.oid), schema: d.schema, name: d.name, kind: DEPENDENCY_KINDS[d.relkind] ?? 'table' })),
        extension: row.extension,
        columns: cols,
        indexes: idx,
        triggers: trg,
        grants: grants(row),
      })
    } else {
      const owned = row.owned_by
      const ownedBy: SequenceOwner | null = owned === null ? null : { table: ref(owned.table), column: owned.column, identity: owned.identity }
      sequences.push({
        oid: self.oid, schema: self.schema, name: self.name,
        owner: row.owner,
        dataType: row.sequence_type ?? 'bigint',
        ownedBy,
        extension: row.extension,
        grants: grants(row),
      })
    }
  }
  const schemas: Schema[] = raw.schemas.map((r) => ({ oid: num(r.oid), name: r.name, owner: r.owner, usage: r.usage }))
  const routines = raw.routines.map(routine)
  const roleList = roles(raw.roles, includeBuiltinRoles)

  const key = (schema: string, name: string): string => JSON.stringify([schema, name])
  const tableByName = new Map(tables.map((t) => [key(t.schema, t.name), t]))
  const tableByOid = new Map(tables.map((t) => [t.oid, t]))
  const viewByName = new Map(views.map((v) => [key(v.schema, v.name), v]))
  const viewByOid = new Map(views.map((v) => [v.oid, v]))
  const sequenceByName = new Map(sequences.map((s) => [key(s.schema, s.name), s]))
  const routineByOid = new Map(routines.map((r) => [r.oid, r]))
  const routinesByName = groupBy(routines, (r) => key(r.schema, r.name))
  const roleByName = new Map(roleList.map((r) => [r.name, r]))

  const catalog: Catalog = {
    server,
    schemas,
    tables,
    views,
    routines,
    sequences,
    roles: roleList,
    table: (schema, name) => tableByName.get(key(schema, name)),
    tableByOid: (oid) => tableByOid.get(oid),
    view: (schema, name) => viewByName.get(key(schema, name)),
    viewByOid: (oid) => viewByOid.get(oid),
    routinesNamed: (schema, name) => routinesByName.get(key(schema, name)) ?? EMPTY,
    routineByOid: (oid) => routineByOid.get(oid),
    sequence: (schema, name) => sequenceByName.get(key(schema, name)),
    role: (name) => roleByName.get(name),
  }
  deepFreeze(routinesByName)
  return deepFreeze(catalog)
}

const EMPTY: readonly Routine[] = Object.freeze([])

/** Freeze plain objects and arrays all the way down (Map values included; the Maps themselves stay private). */
function deepFreeze<T>(value: T): T {
  if (value instanceof Map) {
    for (const v of value.values()) deepFreeze(v)
    return value
  }
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value
  for (const v of Object.values(value)) deepFreeze(v)
  return Object.freeze(value)
}
