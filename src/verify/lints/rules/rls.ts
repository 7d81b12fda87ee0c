import { quoteIdent, roleName } from '../../../sql/quote.js'
import type { ModelTable, TenantModel } from '../model.js'
import { appOwns, display, enableRlsSql, onTable, tableSql, tenantPolicySql, type LintRule } from '../rule.js'

const isPlain = (m: ModelTable): boolean => m.table.kind !== 'partition' && m.table.kind !== 'inheritance child' && !m.table.foreign

/** Tenant tables that can hold row-level security (foreign tables cannot). */
function scoped(model: TenantModel): ModelTable[] {
  return model.tenantTables().filter((m) => !m.table.foreign)
}

function ownerHow(model: TenantModel, owner: string): string {
  return owner === model.appRole ? 'owns' : `is a member of "${owner}", which owns`
}

export const rlsRules: readonly LintRule[] = [
  {
    id: 'rls-disabled',
    severity: 'error',
    category: 'row-level security',
    scope: 'table',
    summary: 'A tenant table has row-level security disabled.',
    why: 'Without row-level security every role with SELECT sees every tenant\'s rows; nothing in the database separates tenants.',
    fixHint: 'Enable and force row-level security and create the tenant policy.',
    *check(model) {
      for (const m of model.tenantTables()) {
        if (!isPlain(m) || m.class === 'policy' || m.table.rowSecurity || m.table.policies.length > 0) continue
        yield onTable(m.table, `row-level security is disabled on ${m.class} table ${display(m.table)}`, `${enableRlsSql(m.table)}\n${tenantPolicySql(model, m)}`)
      }
    },
  },
  {
    id: 'rls-disabled-with-policies',
    severity: 'error',
    category: 'row-level security',
    scope: 'table',
    summary: 'A table has policies, but row-level security is disabled, so they are ignored.',
    why: 'PostgreSQL only applies policies when row-level security is enabled on the table; the policies give a false sense of safety.',
    fixHint: 'Enable (and force) row-level security.',
    *check(model) {
      for (const m of model.tables) {
        if (m.table.foreign || m.table.rowSecurity || m.table.policies.length === 0) continue
        yield onTable(m.table, `${m.table.policies.length} ${m.table.policies.length === 1 ? 'policy is' : 'policies are'} defined on ${display(m.table)} but row-level security is disabled`, enableRlsSql(m.table))
      }
    },
  },
  {
    id: 'rls-enabled-no-policy',
    severity: 'warn',
    category: 'row-level security',
    scope: 'table',
    summary: 'Row-level security is enabled on a tenant table but no policy exists.',
    why: 'With no policy PostgreSQL denies every row to roles subject to RLS: safe, but the application sees an empty table (often a half-applied migration).',
    fixHint: 'Create the tenant policy.',
    *check(model) {
      for (const m of scoped(model)) {
        if (!m.table.rowSecurity || m.table.policies.length > 0 || m.table.kind === 'partition') continue
        yield onTable(m.table, `row-level security is enabled on ${display(m.table)} but it has no policy: the app role sees no rows`, tenantPolicySql(model, m))
      }
    },
  },
  {
    id: 'rls-not-forced-app-owner',
    severity: 'error',
    category: 'row-level security',
    scope: 'table',
    summary: 'The app role owns a tenant table (or inherits its owner) and row-level security is not forced.',
    why: 'Table owners bypass row-level security unless it is FORCEd: the application sees and changes every tenant\'s rows.',
    fixHint: 'FORCE row-level security, and move ownership to a separate role.',
    *check(model) {
      for (const m of scoped(model)) {
        if (!m.table.rowSecurity || m.table.forceRowSecurity || !appOwns(model, m.table.owner)) continue
        yield onTable(
          m.table,
          `the app role "${model.appRole}" ${ownerHow(model, m.table.owner)} ${display(m.table)} and row-level security is not forced: its policies do not apply to the app`,
          `ALTER TABLE ${tableSql(m.table)} FORCE ROW LEVEL SECURITY;\n-- better: ALTER TABLE ${tableSql(m.table)} OWNER TO <owner role>; and keep the app role a non-owner`,
        )
      }
    },
  },
  {
    id: 'rls-not-forced',
    severity: 'warn',
    category: 'row-level security',
    scope: 'table',
    summary: 'Row-level security is enabled but not forced on a tenant table.',
    why: 'The owner (migrations, jobs, anyone who connects as it) bypasses the policies; the tenant model forces RLS on every tenant table so no role except BYPASSRLS ones sees across tenants by accident.',
    fixHint: 'FORCE row-level security.',
    *check(model) {
      for (const m of scoped(model)) {
        if (!m.table.rowSecurity || m.table.forceRowSecurity || appOwns(model, m.table.owner)) continue
        yield onTable(m.table, `row-level security on ${display(m.table)} is not forced: its owner "${m.table.owner}" bypasses the policies`, `ALTER TABLE ${tableSql(m.table)} FORCE ROW LEVEL SECURITY;`)
      }
    },
  },
  {
    id: 'app-role-owns-table',
    severity: 'warn',
    category: 'row-level security',
    scope: 'table',
    summary: 'The app role owns a tenant table (row-level security is forced, but the owner can turn it off).',
    why: 'An owner may ALTER TABLE … NO FORCE / DISABLE ROW LEVEL SECURITY or drop the policies; a compromised application can undo isolation.',
    fixHint: 'Transfer ownership to a separate owner role.',
    *check(model) {
      for (const m of scoped(model)) {
        if (!m.table.forceRowSecurity || !appOwns(model, m.table.owner)) continue
        yield onTable(m.table, `the app role "${model.appRole}" ${ownerHow(model, m.table.owner)} ${display(m.table)}: it can disable row-level security or drop policies`, `ALTER TABLE ${tableSql(m.table)} OWNER TO ${quoteIdent('<owner role>')};`)
      }
    },
  },
  {
    id: 'partition-rls-disabled',
    severity: 'error',
    category: 'row-level security',
    scope: 'table',
    summary: 'A partition of a tenant table has row-level security disabled.',
    why: 'Policies of a partitioned table apply only to queries through the parent; a partition queried by name uses its own RLS settings and policies.',
    fixHint: 'Enable and force row-level security on the partition and give it the tenant policy.',
    *check(model) {
      for (const m of scoped(model)) {
        if (m.table.kind !== 'partition' || m.table.rowSecurity) continue
        yield onTable(m.table, `partition ${display(m.table)} of ${display(m.table.partitionOf!.parent)} has row-level security disabled: reading it by name shows every tenant`, `${enableRlsSql(m.table)}\n${tenantPolicySql(model, m)}`)
      }
    },
  },
  {
    id: 'inheritance-child-rls-disabled',
    severity: 'error',
    category: 'row-level security',
    scope: 'table',
    summary: 'A table that INHERITS from a tenant table has row-level security disabled.',
    why: 'The parent\'s policies apply to child rows only through the parent; the child queried by name is unprotected.',
    fixHint: 'Enable and force row-level security on the child and give it the tenant policy.',
    *check(model) {
      for (const m of scoped(model)) {
        if (m.table.kind !== 'inheritance child' || m.table.rowSecurity) continue
        yield onTable(m.table, `${display(m.table)} inherits from ${m.table.inheritsFrom.map(display).join(', ')} and has row-level security disabled`, `${enableRlsSql(m.table)}\n${tenantPolicySql(model, m)}`)
      }
    },
  },
]

/** `GRANT`-style role list of a policy, for messages. */
export function rolesText(roles: readonly string[]): string {
  return roles.map((r) => (r === 'public' ? 'PUBLIC' : roleName(r))).join(', ')
}

