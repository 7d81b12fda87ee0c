import { ErrorCodes, TenantizeError, type Problem } from '../errors.js'
import { parseQualifiedName, qualifiedName, quoteIdent, roleName } from '../sql/quote.js'

/** The building blocks `tenantize add` can write. */
export const BLOCKS = Object.freeze(['rbac', 'api-keys', 'audit'] as const)
export type BlockName = (typeof BLOCKS)[number]

export interface BlockOptions {
  /** The tenant table, `table` or `schema.table` as typed on the command line. Default `organizations`. */
  readonly tenantTable?: string
  /** The tenant key column of the new tables (type uuid). Default `org_id`. */
  readonly tenantColumn?: string
  /** The application role the policies and grants are for. Default `tenantize_app`, as init and apply. */
  readonly appRole?: string
}

/** Checked options: every name is known to be usable. */
export interface BlockNames {
  readonly tenantTable: { readonly schema: string; readonly name: string }
  readonly tenantColumn: string
  readonly appRole: string
}

/** One generated migration: the files' text and the tables it creates. */
export interface BlockMigration {
  readonly block: BlockName
  /** The migration's name after the number, e.g. `api_keys` → `0004_api_keys.up.sql`. */
  readonly label: string
  /** `schema.table` of each table created. */
  readonly tables: readonly string[]
  readonly up: string
  readonly down: string
}

export const BLOCK_DEFAULTS = Object.freeze({ tenantTable: 'organizations', tenantColumn: 'org_id', appRole: 'tenantize_app' })

const PSEUDO_ROLES = new Set(['public', 'current_role', 'current_user', 'session_user', 'none'])
const MAX_IDENTIFIER_BYTES = 63

/**
 * Why `value` cannot be used as a name in a generated migration, or `undefined` when it can.
 * Besides the usual rules (non-empty, at most 63 bytes so PostgreSQL does not truncate it), names
 * may not contain control characters (they would break the comments around them) or `$` (function
 * bodies are dollar-quoted).
 */
export function nameProblem(value: string): string | undefined {
  if (value.length === 0) return 'cannot be empty'
  if (Buffer.byteLength(value, 'utf8') > MAX_IDENTIFIER_BYTES) return `is longer than ${MAX_IDENTIFIER_BYTES} bytes (PostgreSQL would truncate it)`
  if (/\p{Cc}/u.test(value)) return 'cannot contain control characters'
  if (value.includes('$')) return 'cannot contain "$"'
  return undefined
}

/** Why `value` cannot be the app role, or `undefined`. */
export function roleProblem(value: string): string | undefined {
  if (PSEUDO_ROLES.has(value.toLowerCase())) return `must be a real role, not ${value.toUpperCase()}: policies TO ${value.toUpperCase()} apply to everyone`
  return nameProblem(value)
}

/** Why `value` cannot be the tenant table, or `undefined`. */
export function tableProblem(value: string): string | undefined {
  let parsed: { schema: string; name: string }
  try {
    parsed = parseQualifiedName(value)
  } catch (error) {
    return (error as Error).message
  }
  return nameProblem(parsed.schema) ?? nameProblem(parsed.name)
}

/**
 * Apply defaults and check every name; all problems are reported together.
 * @throws {TenantizeError} `TZ_USAGE` naming each bad option.
 */
export function blockNames(options: BlockOptions = {}): BlockNames {
  const tenantTable = options.tenantTable ?? BLOCK_DEFAULTS.tenantTable
  const tenantColumn = options.tenantColumn ?? BLOCK_DEFAULTS.tenantColumn
  const appRole = options.appRole ?? BLOCK_DEFAULTS.appRole
  const problems: Problem[] = []
  const check = (object: string, problem: string | undefined): void => {
    if (problem !== undefined) problems.push({ object, message: problem })
  }
  check('--tenant-table', tableProblem(tenantTable))
  check('--tenant-column', nameProblem(tenantColumn))
  check('--app-role', roleProblem(appRole))
  if (problems.length > 0) {
    throw new TenantizeError(ErrorCodes.USAGE, problems.length === 1 ? 'invalid option' : `${problems.length} invalid options`, { problems })
  }
  return Object.freeze({ tenantTable: Object.freeze(parseQualifiedName(tenantTable)), tenantColumn, appRole })
}

/** SQL fragments shared by every block, all names quoted through src/sql/quote.ts. */
export interface BlockSql {
  readonly names: BlockNames
  /** `"schema"."table"` of a block table, in the tenant table's schema. */
  table(name: string): string
  /** `"schema"."table"` as text for listings. */
  label(name: string): string
  readonly tenantColumn: string
  readonly tenantTable: string
  readonly appRole: string
  /** The tenant key column definition: uuid, NOT NULL, defaulting to the current tenant. */
  tenantColumnDefinition(references: boolean): string
  /** ENABLE + FORCE row-level security and the one tenant policy for the app role. */
  rowLevelSecurity(name: string): string
}

export function blockSql(names: BlockNames): BlockSql {
  const schema = names.tenantTable.schema
  const tenantColumn = quoteIdent(names.tenantColumn)
  const tenantTable = qualifiedName(names.tenantTable)
  const appRole = roleName(names.appRole)
  const table = (name: string): string => qualifiedName(schema, name)
  // The conversion's policy condition: `OPERATOR(pg_catalog.=)` binds no `=` of a schema earlier in the
  // migration's search_path; the scalar sub-select makes the inlined helper an InitPlan, once per statement.
  const check = `${tenantColumn} OPERATOR(pg_catalog.=) (SELECT tenantize.current_tenant_id())`
  return Object.freeze({
    names,
    table,
    label: (name: string) => `${schema}.${name}`,
    tenantColumn,
    tenantTable,
    appRole,
    tenantColumnDefinition: (references: boolean) =>
      `${tenantColumn} uuid NOT NULL DEFAULT tenantize.current_tenant_id()${references ? ` REFERENCES ${tenantTable} ("id") ON DELETE CASCADE` : ''}`,
    rowLevelSecurity: (name: string) =>
      [
        `ALTER TABLE ${table(name)} ENABLE ROW LEVEL SECURITY;`,
        `ALTER TABLE ${table(name)} FORCE ROW LEVEL SECURITY;`,
        `CREATE POLICY ${quoteIdent(`${name}_tenant_isolation`)} ON ${table(name)} TO ${appRole}`,
        `  USING (${check})`,
        `  WITH CHECK (${check});`,
      ].join('\n'),
  })
}

/**
 * The helper in the planner's shape (src/plan/plan.ts, contextFunction, for uuid tenant ids and the
 * `tenantize.tenant_id` setting): a SQL-standard body with every name qualified, parsed once at creation,
 * so it needs no `SET search_path` and the planner inlines it into the policies — with a SET clause every
 * statement would pay a function call with a configuration save and restore.
 */
export const HELPER_SQL = `CREATE FUNCTION tenantize.current_tenant_id() RETURNS pg_catalog.uuid LANGUAGE sql STABLE PARALLEL SAFE RETURN CASE WHEN pg_catalog.current_setting('tenantize.tenant_id', true) OPERATOR(pg_catalog.<>) '' THEN pg_catalog.current_setting('tenantize.tenant_id', true)::pg_catalog.uuid END`

/**
 * The start of every up file: the `tenantize` schema and, only when it does not exist yet, the
 * `tenantize.current_tenant_id()` helper the policies call ({@link HELPER_SQL}: the planner owns it and
 * may replace it; down files never drop it), and the app role's access to the schema.
 */
export function preamble(sql: BlockSql): string {
  return `CREATE SCHEMA IF NOT EXISTS tenantize;

-- The current transaction's tenant, or NULL without one (policies then match no rows). Created only
-- when missing: tenantize's planner owns this function and may replace it. Every name is qualified and
-- there is no SET clause, so the planner inlines it into the policies.
DO $tenantize$
BEGIN
  IF pg_catalog.to_regprocedure('tenantize.current_tenant_id()') IS NULL THEN
    ${HELPER_SQL};
  END IF;
END
$tenantize$;

GRANT USAGE ON SCHEMA tenantize TO ${sql.appRole};
`
}

/** The comment that ends every down file's header. */
export const DOWN_NOTE = `-- Schema tenantize and tenantize.current_tenant_id() stay: other tables' policies may use them.`
