/**
 * The shapes `tenantize verify` produces: findings (from lints, the live probe and the pooler probe),
 * probe check results and the report that the text, JSON, JUnit and HTML renderers read.
 * Types only, no I/O: the pure lints depend on this file.
 */

/** `error` breaks isolation (or lets it break), `warn` weakens it or is slow, `info` is worth knowing. */
export type Severity = 'error' | 'warn' | 'info'

export const SEVERITIES: readonly Severity[] = Object.freeze(['error', 'warn', 'info'])

/** Where a finding came from. */
export type FindingSource = 'lint' | 'probe' | 'pooler'

export type ObjectKind =
  | 'table'
  | 'view'
  | 'materialized view'
  | 'foreign table'
  | 'policy'
  | 'role'
  | 'schema'
  | 'function'
  | 'trigger'
  | 'sequence'
  | 'constraint'
  | 'index'
  | 'column'
  | 'server'
  | 'pooler'

/** One thing verify found. */
export interface Finding {
  /** A stable rule id, e.g. `rls-disabled` or `probe-read-other`; documented in docs/rules.md. */
  readonly rule: string
  readonly severity: Severity
  readonly source: FindingSource
  readonly objectKind: ObjectKind
  /** The object, as SQL would name it, e.g. `"app"."invoice"` or `policy "p" on "app"."invoice"`. */
  readonly object: string
  /** The table the finding belongs to (`schema.name`, unquoted), for grouping; null for roles, functions, the server. */
  readonly table: string | null
  /** What is wrong with this object. */
  readonly message: string
  /** Why it matters (the rule's reason). */
  readonly why: string
  /** The fix as SQL (identifiers quoted through src/sql); lines starting with `--` explain what SQL cannot say. */
  readonly fix: string
  /** Where the rule is documented, e.g. `docs/rules.md#rls-disabled`. */
  readonly docs: string
}

/** A finding the config accepts as a known risk (`verify.accept`, or a foreign key listed in `sharedReferences`). */
export interface AcceptedRisk {
  readonly rule: string
  /** The severity the finding would have had. */
  readonly severity: Severity
  readonly object: string
  readonly table: string | null
  readonly message: string
  /** Why it is accepted, from the config. */
  readonly reason: string
  /** Where the config says so, e.g. `verify.accept` or `tables["public.users"].sharedReferences`. */
  readonly source: string
}

/** What a table is in the tenant model. */
export type TableClass =
  /** The tenant table itself (e.g. `organizations`); its key is the tenant id. */
  | 'root'
  /** Has the tenant column. */
  | 'direct'
  /** No tenant column, but reaches a tenant table through foreign keys. */
  | 'child'
  /** Neither, but has row-level security or policies: someone meant it to be scoped. */
  | 'policy'
  /** Shared by all tenants (reference data). */
  | 'global'

export type Inference = 'option' | 'policies' | 'names' | 'foreign keys' | 'grants' | 'default' | 'none'

/** One table as the model classifies it. */
export interface ModelTableSummary {
  readonly table: string
  readonly class: TableClass
  /** The column holding the tenant id (the key column for the root), else null. */
  readonly tenantColumn: string | null
  /** For a child: the foreign key path to a table with a tenant column, e.g. `customers → clients`. */
  readonly via: string | null
}

/** The tenant model verify checked against, and how each part was found. */
export interface ModelSummary {
  readonly tenantColumn: string | null
  readonly tenantColumnSource: Inference
  readonly setting: string
  readonly settingSource: Inference
  readonly appRole: string | null
  readonly appRoleSource: Inference
  readonly rootTable: string | null
  readonly rootSource: Inference
  readonly tables: readonly ModelTableSummary[]
  /** Plain sentences on what was inferred, e.g. `tenant column "org_id" inferred from 12 policies`. */
  readonly notes: readonly string[]
}

export type ProbeStatus = 'pass' | 'fail' | 'skip' | 'error'

/** One check of the live probe on one table or view. */
export interface ProbeCheck {
  /** `schema.name`. */
  readonly table: string
  readonly check: string
  readonly status: ProbeStatus
  /** What was done and seen (never a tenant id of a real tenant: the probe's tenants are throw-away). */
  readonly detail: string
  /** The SQLSTATE PostgreSQL answered with, when the statement failed. */
  readonly sqlstate: string | null
}

/** A tenant table the probe has no rows of both tenants in, so its row checks prove nothing. */
export interface UnprobedTable {
  /** `schema.name`. */
  readonly table: string
  /** Why: the seeder's failure (the statement's SQLSTATE and message), or which tenant's rows are missing. */
  readonly reason: string
}

export interface ProbeReport {
  /** The role the probe connected as (session_user). */
  readonly sessionUser: string
  /** The role it ran the checks as (SET ROLE). */
  readonly appRole: string
  readonly setting: string
  /** true: nothing persisted (the probe always rolls back). */
  readonly rolledBack: boolean
  /** Tables seeded with rows for the two throw-away tenants, and those that could not be. */
  readonly seeded: readonly { readonly table: string; readonly rows: number; readonly error: string | null }[]
  /**
   * Tenant tables without a probe row of each tenant: verify could not prove their isolation. Each is a
   * `probe-unprobed` finding (an error; a warning with `allowUnprobed`). Their checks that only mean
   * something with rows are `skip`, never `pass`.
   */
  readonly unprobed: readonly UnprobedTable[]
  readonly checks: readonly ProbeCheck[]
}

export interface PoolerObservation {
  readonly status: ProbeStatus
  readonly detail: string
}

export interface PoolerReport {
  /** The pooler URL without its password. */
  readonly url: string
  readonly setting: string
  /** Context set with session scope (`set_config(…, false)` / `SET`) by one client, seen by another? */
  readonly sessionScope: PoolerObservation
  /** Context set transaction-locally (`set_config(…, true)`), seen by another client after COMMIT? */
  readonly transactionScope: PoolerObservation
  /** Server backends the probe's clients were handed. */
  readonly backends: readonly number[]
  /** Whether the probe cleared its session-scope marker from every backend it left it on. */
  readonly cleaned: boolean
}

export interface VerifySummary {
  readonly error: number
  readonly warn: number
  readonly info: number
  readonly checks: Readonly<Record<ProbeStatus, number>>
  /** Tenant tables the probe could not probe (0 without the probe). */
  readonly unprobed: number
}

/** Everything one `verify` run found. Serialized as is for `--format json` (see ./report/schema.ts). */
export interface VerifyReport {
  readonly kind: 'tenantize.verify'
  readonly schemaVersion: 1
  readonly tool: { readonly name: 'tenantize'; readonly version: string }
  readonly generatedAt: string
  readonly database: { readonly name: string; readonly serverVersion: string; readonly serverVersionNum: number }
  readonly model: ModelSummary
  readonly findings: readonly Finding[]
  /** Findings the config accepts, with the reason; they do not count towards the exit code. */
  readonly accepted: readonly AcceptedRisk[]
  /** null with `--no-probe`. */
  readonly probe: ProbeReport | null
  /** null without `--pooler-url`. */
  readonly pooler: PoolerReport | null
  /** Lint rules that ran, for reports that list passing checks (JUnit, HTML). */
  readonly rules: readonly { readonly id: string; readonly severity: Severity; readonly scope: 'table' | 'database' }[]
  readonly summary: VerifySummary
}
