import { z } from 'zod'
import { ErrorCodes, TenantizeError, type Problem } from '../errors.js'

/**
 * `tenantize.config.json`: what `init` proposes and the user edits; the planner's second input besides
 * the catalog. Table keys are `schema.table` exactly as in the catalog (no quoting).
 */

/** `schema.table`: split at the first dot, so table names may contain dots; schema names may not. */
const tableKey = z.string().regex(/^[^.]+\..+$/, 'must be "schema.table"')
const identifier = z.string().min(1).max(63, 'PostgreSQL names are at most 63 bytes')
const settingName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$/, 'must be "prefix.name", e.g. tenantize.tenant_id')

export const TABLE_CLASSES = ['root', 'direct', 'child', 'global', 'excluded'] as const
export type TableClass = (typeof TABLE_CLASSES)[number]

/**
 * The foreign key a child table reaches its tenant through (its first hop), and the rest of the path.
 * A row takes the tenant of the parent row where `parent.parentColumns = this.columns`.
 */
const pathSchema = z.object({
  /** Columns of this table in the foreign key. */
  columns: z.array(identifier).min(1),
  /** The parent table: the referenced one, or with `reverse` the one whose foreign key references this table. */
  parent: tableKey,
  /** The parent's columns in the foreign key. */
  parentColumns: z.array(identifier).min(1),
  /**
   * true: the foreign key is declared on the parent (e.g. the tenant table's `settings_id` → this table):
   * each row takes the tenant of the parent row that references it; a row referenced by several tenants
   * cannot belong to one (the data check refuses it: make the table global instead).
   */
  reverse: z.boolean().default(false),
  /** The whole chain to the tenant table, for people: e.g. ["public.tariff_rate", "public.client", "public.organizations"]. */
  via: z.array(tableKey).default([]),
})
export type TenantPath = z.output<typeof pathSchema>

const tableSchema = z
  .object({
    class: z.enum(TABLE_CLASSES),
    /** Why init chose the class (kept for people; the planner ignores it). */
    reason: z.string().default(''),
    /** For direct tables that already have a tenant column under another name (e.g. organization_id). */
    column: identifier.optional(),
    /** For child tables: the chosen path. */
    path: pathSchema.optional(),
    /** Other paths init found, for the user to choose from (move one into `path`). */
    alternatives: z.array(pathSchema).default([]),
    /** Unique constraints/indexes (by name) to keep global instead of making them tenant-scoped. */
    keepGlobalUnique: z.array(identifier).default([]),
    /**
     * Foreign keys (by constraint name) that may point at another tenant's row on purpose: kept single-column
     * (no composite tenant key), and reported by verify as an accepted risk with the reason given here.
     */
    sharedReferences: z.array(z.object({ constraint: identifier, reason: z.string().min(1, 'say why rows may point at another tenant') })).default([]),
  })
  .superRefine((t, ctx) => {
    if (t.class === 'child' && t.path === undefined) ctx.addIssue({ code: 'custom', path: ['path'], message: 'a child table needs a path: the foreign key to its parent' })
  })
export type TableConfig = z.output<typeof tableSchema>

/**
 * A sub-tenant scope (seed 000's organization → client → customer tiers): an extra RESTRICTIVE policy on
 * the listed tables. With the scope's setting empty the tenant policy alone applies (tenant-wide access);
 * with it set, only rows whose column matches.
 */
const scopeSchema = z.object({
  /** Lower-case name, e.g. `client`: the helper is tenantize.current_client_id(). */
  name: z.string().regex(/^[a-z][a-z0-9_]{0,30}$/, 'lower-case letters, digits and _, e.g. client'),
  setting: settingName,
  idType: z.enum(['uuid', 'bigint', 'text']).default('uuid'),
  /** `schema.table` → the column holding the scope id. */
  tables: z.record(tableKey, identifier),
})
export type ScopeConfig = z.output<typeof scopeSchema>

export const configSchema = z.object({
  $schema: z.string().optional(),
  version: z.literal(1),
  target: z.enum(['postgres', 'citus']).default('postgres'),
  tenant: z.object({
    /** The tenant (root) table, `schema.table`. */
    table: tableKey,
    /** true: the plan creates it; false: it exists and its primary key is the tenant id. */
    create: z.boolean(),
    idType: z.enum(['uuid', 'bigint', 'text']).default('uuid'),
    /** The tenant column added to direct and child tables. */
    column: identifier.default('org_id'),
    /** The transaction-local setting the runtime sets and policies read. */
    setting: settingName.default('tenantize.tenant_id'),
    /** The tenant that owns today's rows (created with the tenant table). */
    default: z.object({ id: z.string().min(1), slug: z.string().min(1).default('default'), name: z.string().min(1).default('Default organization') }),
    /**
     * With a new tenant table: a membership table (user ↔ tenant ↔ role) next to it, filled with every
     * existing user as a member of the default tenant. null: none.
     */
    membership: z
      .object({
        /** The membership table to create, `schema.table`. */
        table: tableKey.default('public.organization_members'),
        /** The users table, `schema.table`, with a single-column primary key. */
        users: tableKey,
      })
      .nullable()
      .default(null),
  }),
  roles: z
    .object({
      /** The role the application connects as (or SET ROLEs to). Created NOLOGIN if missing. Never owner, superuser or BYPASSRLS. */
      app: identifier.default('tenantize_app'),
      /** A separate role for cross-tenant jobs (asSystem); gets BYPASSRLS only if you grant it yourself. */
      system: identifier.nullable().default(null),
      /** The login role the app connects with (its DATABASE_URL user): apply grants it membership in `app`. Never owner, superuser or BYPASSRLS. */
      login: identifier.optional(),
    })
    .default({ app: 'tenantize_app', system: null }),
  tables: z.record(tableKey, tableSchema),
  scopes: z.array(scopeSchema).default([]),
  /** What `tenantize verify` reads besides the tenant model. */
  verify: z
    .object({
      /**
       * Accepted risks: each silences one rule on one object (the finding's object as verify prints it, e.g.
       * `constraint "users_email_key" on "public"."users"`, or a table as `schema.table` for every finding of
       * the rule on it). The report lists each with its reason.
       */
      accept: z.array(z.object({ rule: z.string().min(1), object: z.string().min(1), reason: z.string().min(1, 'say why the risk is accepted') })).default([]),
    })
    .default({ accept: [] }),
  batchSize: z.number().int().min(1).max(1_000_000).default(5000),
  lockTimeout: z.string().regex(/^\d+(ms|s)$/, 'e.g. 1s or 500ms').default('1s'),
})
export type TenantizeConfig = z.output<typeof configSchema>
export type TenantizeConfigInput = z.input<typeof configSchema>

const ID_PATTERNS: Record<TenantizeConfig['tenant']['idType'], RegExp> = {
  uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
  bigint: /^[0-9]{1,19}$/,
  text: /^[^\0]{1,256}$/,
}

/** Validate a parsed config object. Every problem is reported at once, each naming its key and the fix. */
export function parseConfig(raw: unknown, source = 'tenantize.config.json'): TenantizeConfig {
  const result = configSchema.safeParse(raw)
  const problems: Problem[] = []
  if (!result.success) {
    for (const issue of result.error.issues) {
      problems.push({ object: `${source}: ${issue.path.map(String).join('.') || '(root)'}`, message: issue.message, fix: 'edit the value (see docs/config.md) or re-run tenantize init' })
    }
  } else {
    const c = result.data
    if (!ID_PATTERNS[c.tenant.idType].test(c.tenant.default.id)) {
      problems.push({ object: `${source}: tenant.default.id`, message: `is not a valid ${c.tenant.idType} tenant id`, fix: `use a ${c.tenant.idType} value` })
    }
    const roots = Object.entries(c.tables).filter(([, t]) => t.class === 'root').map(([k]) => k)
    if (roots.some((r) => r !== c.tenant.table) || (!c.tenant.create && !roots.includes(c.tenant.table))) {
      problems.push({ object: `${source}: tables`, message: `exactly the tenant table ${c.tenant.table} may have class "root" (found: ${roots.join(', ') || 'none'})`, fix: 'set the other tables to direct, child, global or excluded' })
    }
    if (c.tenant.membership !== null && !c.tenant.create) {
      problems.push({ object: `${source}: tenant.membership`, message: 'is only created together with a new tenant table', fix: 'set it to null, or set tenant.create to true' })
    }
    for (const [i, scope] of c.scopes.entries()) {
      if (c.scopes.findIndex((o) => o.name === scope.name) !== i) problems.push({ object: `${source}: scopes.${i}.name`, message: `scope ${scope.name} is defined twice`, fix: 'give each scope its own name' })
      if (scope.setting === c.tenant.setting) problems.push({ object: `${source}: scopes.${i}.setting`, message: 'is the tenant setting', fix: 'use its own setting, e.g. tenantize.client_id' })
      for (const key of Object.keys(scope.tables)) {
        const cls = c.tables[key]?.class
        if (cls !== 'direct' && cls !== 'child') problems.push({ object: `${source}: scopes.${i}.tables.${key}`, message: cls === undefined ? 'is not in tables' : `is ${cls}; scopes apply to direct and child tables`, fix: 'list only tenant tables' })
      }
    }
    for (const [key, t] of Object.entries(c.tables)) {
      if (t.path !== undefined && t.path.parent !== c.tenant.table && c.tables[t.path.parent] === undefined) {
        problems.push({ object: `${source}: tables.${key}.path.parent`, message: `${t.path.parent} is not in tables`, fix: 'point the path at a table of the config' })
      }
      if (t.path !== undefined && t.path.columns.length !== t.path.parentColumns.length) {
        problems.push({ object: `${source}: tables.${key}.path`, message: 'columns and parentColumns differ in length', fix: 'copy the foreign key from alternatives or re-run init' })
      }
    }
  }
  if (problems.length > 0) {
    throw new TenantizeError(ErrorCodes.CONFIG, `${problems.length} problem${problems.length === 1 ? '' : 's'} in the configuration`, { object: source, problems })
  }
  return result.data!
}

/** The config's JSON Schema, published for editors (docs/config.schema.json). */
export function configJsonSchema(): unknown {
  return z.toJSONSchema(configSchema, { io: 'input' })
}

export function splitKey(key: string): { schema: string; name: string } {
  const dot = key.indexOf('.')
  return { schema: key.slice(0, dot), name: key.slice(dot + 1) }
}

export function tableKeyOf(t: { schema: string; name: string }): string {
  return `${t.schema}.${t.name}`
}
