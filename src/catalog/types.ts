/**
 * The catalog's types: a typed, immutable snapshot of one PostgreSQL database, as read by
 * `introspect()` (./introspect.ts). Types only: this file is pure (no driver import), so the
 * planner and the lints can depend on it.
 *
 * Conventions:
 * - every object is a deeply frozen plain object; relations point at each other through
 *   {@link RelationRef} values (`oid`, `schema`, `name`), never through object links, so a snapshot has
 *   no cycles and serializes to JSON as it is;
 * - `oid`s are stable for the life of the object in that database (not across dump/restore);
 * - SQL fragments (`definition`, `using`, `default`, …) are PostgreSQL's own deparsed text
 *   (`pg_get_*def`, `pg_get_expr`) — catalog text, never safe to paste into other SQL unreviewed;
 * - "absent" is `null`, never `undefined`.
 */

/** A relation by identity: its oid plus its schema-qualified name (unquoted, exactly as in the catalog). */
export interface RelationRef {
  readonly oid: number
  readonly schema: string
  readonly name: string
}

/** A function or procedure by identity. */
export interface RoutineRef {
  readonly oid: number
  readonly schema: string
  readonly name: string
}

/** A schema other than the system ones (`pg_catalog`, `information_schema`, `pg_toast`, temp schemas). */
export interface Schema {
  readonly oid: number
  readonly name: string
  readonly owner: string
  /** Roles holding USAGE (`PUBLIC` for the public grant), the owner included; a default ACL counts as the owner's USAGE. */
  readonly usage: readonly string[]
}

/**
 * What a table is, one answer per table, checked in this order:
 * - `partition`: attached to a partitioned table (`relispartition`) — also when it is itself partitioned
 *   or foreign; see {@link Table.partitioned} and {@link Table.foreign};
 * - `partitioned`: a partitioned table (relkind `p`) that is not itself a partition;
 * - `foreign`: a foreign table (relkind `f`);
 * - `inheritance child`: an ordinary table that INHERITS from one or more tables;
 * - `ordinary`: everything else (relkind `r`), including inheritance parents.
 */
export type TableKind = 'ordinary' | 'partitioned' | 'partition' | 'inheritance child' | 'foreign'

/** `unlogged` tables are not crash-safe and are not replicated. Temporary tables are never in a catalog. */
export type Persistence = 'permanent' | 'unlogged'

/** A table (relkind `r`, `p` or `f`) with everything that hangs off it. */
export interface Table extends RelationRef {
  readonly kind: TableKind
  /** relkind `p`: has partitions of its own (a sub-partitioned partition has kind `partition` and this true). */
  readonly partitioned: boolean
  /** relkind `f`. */
  readonly foreign: boolean
  /** The foreign server's name for a foreign table, else null. */
  readonly foreignServer: string | null
  readonly owner: string
  readonly persistence: Persistence
  /** `reltuples`: the planner's estimate; null when the table was never vacuumed or analyzed (PG14+ reports -1). */
  readonly estimatedRows: number | null
  /**
   * `pg_total_relation_size`: table, TOAST and indexes, in bytes. 0 for partitioned and foreign tables
   * (they have no storage of their own). null only when the table was dropped during the snapshot.
   */
  readonly totalBytes: number | null
  /** `relrowsecurity`: ALTER TABLE … ENABLE ROW LEVEL SECURITY. */
  readonly rowSecurity: boolean
  /** `relforcerowsecurity`: ALTER TABLE … FORCE ROW LEVEL SECURITY (policies apply to the owner too). */
  readonly forceRowSecurity: boolean
  /** `pg_get_partkeydef` for a partitioned table, e.g. `RANGE (created_at)`; else null. */
  readonly partitionKey: string | null
  /** For a partition: its parent and its bound (`FOR VALUES …` / `DEFAULT`); else null. */
  readonly partitionOf: PartitionOf | null
  /** Direct partitions of a partitioned table, in name order. */
  readonly partitions: readonly RelationRef[]
  /** Tables this one INHERITS from, in declaration order (empty for partitions: see {@link partitionOf}). */
  readonly inheritsFrom: readonly RelationRef[]
  /** Tables that INHERIT from this one (not partitions), in name order. */
  readonly inheritedBy: readonly RelationRef[]
  /** The extension that owns the table (e.g. PostGIS's `spatial_ref_sys`), else null. */
  readonly extension: string | null
  /** Live columns (dropped ones omitted) in `attnum` order. */
  readonly columns: readonly Column[]
  /** Primary key, unique, check, foreign key and exclusion constraints, in name order. */
  readonly constraints: readonly Constraint[]
  readonly indexes: readonly Index[]
  readonly policies: readonly Policy[]
  readonly triggers: readonly Trigger[]
  /** See {@link RelationGrant} for how a never-granted table (null `relacl`) is represented. */
  readonly grants: readonly RelationGrant[]
}

export interface PartitionOf {
  readonly parent: RelationRef
  /** `pg_get_expr(relpartbound)`, e.g. `FOR VALUES FROM (1) TO (100)` or `DEFAULT`. */
  readonly bound: string
}

/** `GENERATED ALWAYS AS IDENTITY` → `always`; `GENERATED BY DEFAULT AS IDENTITY` → `by default`. */
export type IdentityKind = 'always' | 'by default'

export interface GeneratedColumn {
  /** `virtual` exists from PostgreSQL 18. */
  readonly kind: 'stored' | 'virtual'
  readonly expression: string
}

export interface Column {
  readonly name: string
  /** `attnum`: 1-based, with gaps where columns were dropped. */
  readonly position: number
  /** `format_type(atttypid, atttypmod)`, e.g. `character varying(20)`, `uuid`, `integer[]`. */
  readonly type: string
  /** false when a NOT NULL constraint applies (it checks every new or updated row). */
  readonly nullable: boolean
  /**
   * null for a nullable column. false when the NOT NULL was added `NOT VALID` (PostgreSQL 18+): new rows
   * are checked but existing ones may still hold NULL. true otherwise.
   */
  readonly notNullValidated: boolean | null
  /** The DEFAULT expression (not set for generated columns), else null. */
  readonly default: string | null
  readonly identity: IdentityKind | null
  readonly generated: GeneratedColumn | null
}

/** `pg_constraint.contype` p, u, c, f, x. NOT NULL (contype `n`, PG18) lives on {@link Column.nullable}. */
export type ConstraintType = 'primary key' | 'unique' | 'check' | 'foreign key' | 'exclusion'

/** Referential actions, spelled as in SQL. */
export type ReferentialAction = 'no action' | 'restrict' | 'cascade' | 'set null' | 'set default'

export type ForeignKeyMatch = 'simple' | 'full' | 'partial'

interface ConstraintBase {
  readonly oid: number
  readonly name: string
  readonly table: RelationRef
  /**
   * Constrained columns in `conkey` order (the key's order for keys; for checks, the columns the
   * expression reads).
   */
  readonly columns: readonly string[]
  readonly deferrable: boolean
  readonly initiallyDeferred: boolean
  /** false for a constraint added `NOT VALID` and not validated since. */
  readonly validated: boolean
  /** false for `NOT ENFORCED` (PostgreSQL 18+); always true before. */
  readonly enforced: boolean
  /** `pg_get_constraintdef`, e.g. `FOREIGN KEY (a, b) REFERENCES t(a, b) ON DELETE CASCADE`. */
  readonly definition: string
  /**
   * The constraint this one was cloned from by PostgreSQL (`conparentid`): a partition's copy of its
   * parent's constraint, or the per-partition copies of a foreign key that references a partitioned
   * table. null for constraints the user declared.
   */
  readonly parentOid: number | null
}

export interface KeyOrCheckConstraint extends ConstraintBase {
  readonly type: Exclude<ConstraintType, 'foreign key'>
  /** The index that enforces a primary key, unique or exclusion constraint, else null. */
  readonly index: string | null
}

export interface ForeignKeyConstraint extends ConstraintBase {
  readonly type: 'foreign key'
  /** The referenced table and its columns, paired by position with {@link columns}. */
  readonly references: { readonly table: RelationRef; readonly columns: readonly string[] }
  readonly onDelete: ReferentialAction
  readonly onUpdate: ReferentialAction
  readonly match: ForeignKeyMatch
}

/** Narrow with `constraint.type === 'foreign key'`. */
export type Constraint = KeyOrCheckConstraint | ForeignKeyConstraint

export interface Index extends RelationRef {
  readonly table: RelationRef
  /** Key columns in index order; null for an expression element. */
  readonly columns: readonly (string | null)[]
  /** `INCLUDE (…)` columns. */
  readonly includeColumns: readonly string[]
  readonly unique: boolean
  readonly primary: boolean
  /** `NULLS NOT DISTINCT` (PostgreSQL 15+). */
  readonly nullsNotDistinct: boolean
  /** The WHERE clause of a partial index, else null. */
  readonly predicate: string | null
  /** true when at least one element is an expression. */
  readonly hasExpressions: boolean
  /** `indisvalid`: false after a failed `CREATE INDEX CONCURRENTLY` (or an incomplete partitioned index). */
  readonly valid: boolean
  /** `indisready`: false while a concurrent build has not yet started accepting inserts. */
  readonly ready: boolean
  /** The access method: `btree`, `hash`, `gin`, `gist`, `brin`, … */
  readonly method: string
  /** `pg_get_indexdef`. */
  readonly definition: string
  /** The name of the primary key, unique or exclusion constraint this index backs, else null. */
  readonly constraint: string | null
  /** An index on a partitioned table (relkind `I`): a template for its partitions' indexes. */
  readonly partitioned: boolean
}

export type PolicyCommand = 'all' | 'select' | 'insert' | 'update' | 'delete'

export interface Policy {
  readonly oid: number
  readonly name: string
  readonly table: RelationRef
  readonly command: PolicyCommand
  /** Permissive policies are OR-ed together; restrictive ones are AND-ed on top. */
  readonly mode: 'permissive' | 'restrictive'
  /** Role names in catalog order; `public` stands for `TO PUBLIC` (role oid 0). */
  readonly roles: readonly string[]
  /** The USING expression, else null. */
  readonly using: string | null
  /** The WITH CHECK expression, else null (for INSERT/UPDATE/ALL PostgreSQL then checks `using`). */
  readonly withCheck: string | null
}

export type ViewKind = 'view' | 'materialized view'

/** A relation a view reads, from the view's rewrite rule dependencies. */
export interface ViewDependency extends RelationRef {
  readonly kind: 'table' | 'partitioned table' | 'foreign table' | 'view' | 'materialized view'
}

export interface View extends RelationRef {
  readonly kind: ViewKind
  readonly owner: string
  /** `pg_get_viewdef`: the SELECT. */
  readonly definition: string
  /** `WITH (security_invoker)` (PostgreSQL 15+): permissions and RLS are checked as the caller, not the owner. */
  readonly securityInvoker: boolean
  readonly securityBarrier: boolean
  /** `WITH [LOCAL | CASCADED] CHECK OPTION`, else null. */
  readonly checkOption: 'local' | 'cascaded' | null
  /** false for a materialized view created `WITH NO DATA` and never refreshed; always true for views. */
  readonly populated: boolean
  /** Tables and views the definition reads directly (not transitively), in schema/name order. */
  readonly dependsOn: readonly ViewDependency[]
  readonly extension: string | null
  readonly columns: readonly Column[]
  /** Materialized views only; empty for views. */
  readonly indexes: readonly Index[]
  /** INSTEAD OF triggers on views. */
  readonly triggers: readonly Trigger[]
  readonly grants: readonly RelationGrant[]
}

export type Volatility = 'immutable' | 'stable' | 'volatile'

/** A function or procedure in a user schema (aggregates and window functions are left out). */
export interface Routine extends RoutineRef {
  readonly kind: 'function' | 'procedure'
  /** `pg_get_function_identity_arguments`, e.g. `org uuid, n integer`; identifies an overload. */
  readonly identityArguments: string
  /** `pg_get_function_result`, e.g. `uuid`, `SETOF invoice`, `trigger`; null for procedures. */
  readonly returnType: string | null
  readonly language: string
  readonly volatility: Volatility
  readonly securityDefiner: boolean
  readonly leakproof: boolean
  /** `proconfig` (`ALTER FUNCTION … SET name = value`) as name → value text, e.g. `{ search_path: 'pg_catalog, public' }`. */
  readonly config: Readonly<Record<string, string>>
  /** `config.search_path` when set (an empty setting reads `""`), else null: the function runs with the caller's path. */
  readonly searchPath: string | null
  readonly owner: string
  /**
   * The body: `prosrc` (the source text for SQL/PL languages, the symbol for C); for a SQL-standard body
   * (`BEGIN ATOMIC …`, `RETURN …`) the deparsed `pg_get_function_sqlbody`.
   */
  readonly body: string
  readonly extension: string | null
}

export type TriggerTiming = 'before' | 'after' | 'instead of'
export type TriggerEvent = 'insert' | 'update' | 'delete' | 'truncate'
/** `tgenabled`: O → `origin` (the default, enabled), D → `disabled`, R → `replica`, A → `always`. */
export type TriggerEnabled = 'origin' | 'disabled' | 'replica' | 'always'

/** A user trigger (`tgisinternal` false), on a table or a view. */
export interface Trigger {
  readonly oid: number
  readonly name: string
  readonly table: RelationRef
  readonly function: RoutineRef
  readonly timing: TriggerTiming
  /** In the order insert, update, delete, truncate. */
  readonly events: readonly TriggerEvent[]
  readonly level: 'row' | 'statement'
  readonly enabled: TriggerEnabled
  /** `CREATE CONSTRAINT TRIGGER`. */
  readonly constraintTrigger: boolean
  /** The trigger on the partitioned parent this one was cloned from, else null. */
  readonly parentOid: number | null
  /** `pg_get_triggerdef`. */
  readonly definition: string
}

export interface SequenceOwner {
  readonly table: RelationRef
  readonly column: string
  /** true for an identity column's sequence, false for `serial` / `OWNED BY`. */
  readonly identity: boolean
}

export interface Sequence extends RelationRef {
  readonly owner: string
  /** `smallint`, `integer` or `bigint`. */
  readonly dataType: string
  readonly ownedBy: SequenceOwner | null
  readonly extension: string | null
  readonly grants: readonly RelationGrant[]
}

/** Table and view privileges. `MAINTAIN` exists from PostgreSQL 17. */
export type TablePrivilege = 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE' | 'REFERENCES' | 'TRIGGER' | 'MAINTAIN'
/** Sequence privileges. */
export type SequencePrivilege = 'USAGE' | 'SELECT' | 'UPDATE'

/**
 * One privilege held by one grantee, from `aclexplode(relacl)`; one entry per grantee × privilege × grantor.
 *
 * A relation whose `relacl` is null was never granted or revoked: PostgreSQL then applies the default
 * (`acldefault`), which gives the owner every privilege and nobody else anything. The catalog
 * represents it exactly so — the owner holding every privilege of that server version, granted by
 * itself, not grantable — so consumers need no special case.
 */
export interface RelationGrant {
  /** A role name, or `public` for PUBLIC. */
  readonly grantee: string
  readonly grantor: string
  readonly privilege: TablePrivilege | SequencePrivilege
  /** WITH GRANT OPTION. */
  readonly grantable: boolean
}

/** A direct membership: the member may use the privileges of `role` (subject to `inherit` / `set`). */
export interface RoleMembership {
  readonly role: string
  /** WITH ADMIN OPTION (by any grantor). */
  readonly admin: boolean
  /**
   * WITH INHERIT (PostgreSQL 16+, by any grantor). Before 16 it is the member's own `rolinherit`.
   */
  readonly inherit: boolean
  /** WITH SET (PostgreSQL 16+, by any grantor): may `SET ROLE` to it. Always true before 16. */
  readonly set: boolean
}

export interface Role {
  readonly oid: number
  readonly name: string
  readonly superuser: boolean
  readonly bypassRls: boolean
  readonly login: boolean
  readonly inherit: boolean
  readonly createRole: boolean
  readonly createDb: boolean
  /** Roles it is a direct member of, in name order (built-in `pg_*` roles included). */
  readonly memberOf: readonly RoleMembership[]
  /**
   * Every role reachable through memberships, direct or not, in name order, whatever the INHERIT/SET
   * options: the roles whose privileges this role could end up holding.
   */
  readonly memberOfTransitive: readonly string[]
}

/** Server settings as `current_setting()` shows them, for the introspecting session. */
export interface ServerSettings {
  readonly row_security: string
  readonly search_path: string
  readonly default_transaction_isolation: string
  readonly lock_timeout: string
  readonly statement_timeout: string
  readonly max_connections: string
  readonly server_encoding: string
  readonly standard_conforming_strings: string
  readonly is_superuser: string
}

export interface ServerInfo {
  /** `server_version`, e.g. `15.20 (Debian 15.20-0+deb12u1)` or `18.4`. */
  readonly version: string
  /** `server_version_num`, e.g. 150020. */
  readonly versionNum: number
  /** e.g. 15. */
  readonly major: number
  readonly database: string
  readonly currentUser: string
  /** `is_superuser` as a boolean. */
  readonly currentUserIsSuperuser: boolean
  readonly settings: ServerSettings
}

/**
 * One consistent, immutable snapshot of a database. The arrays are in schema/name order; the lookup
 * functions return `undefined` when there is no such object.
 */
export interface Catalog {
  readonly server: ServerInfo
  readonly schemas: readonly Schema[]
  readonly tables: readonly Table[]
  readonly views: readonly View[]
  readonly routines: readonly Routine[]
  readonly sequences: readonly Sequence[]
  /** All roles of the cluster except the built-in `pg_*` ones (unless asked for). */
  readonly roles: readonly Role[]
  /** The table `schema.name` (exact, case-sensitive names as in the catalog). */
  table(schema: string, name: string): Table | undefined
  tableByOid(oid: number): Table | undefined
  view(schema: string, name: string): View | undefined
  viewByOid(oid: number): View | undefined
  /** Every overload of `schema.name`, in identity-arguments order. */
  routinesNamed(schema: string, name: string): readonly Routine[]
  routineByOid(oid: number): Routine | undefined
  sequence(schema: string, name: string): Sequence | undefined
  role(name: string): Role | undefined
}
