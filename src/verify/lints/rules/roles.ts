import { quoteIdent, roleName } from '../../../sql/quote.js'
import type { TenantModel } from '../model.js'
import type { Hit, LintRule } from '../rule.js'

function onRole(role: string, message: string, fix: string): Hit {
  return { objectKind: 'role', object: roleName(role), table: null, message, fix }
}

/** The app role's catalog entry, when the model knows it. */
function app(model: TenantModel) {
  return model.app
}

export const roleRules: readonly LintRule[] = [
  {
    id: 'app-role-missing',
    severity: 'error',
    category: 'app role',
    scope: 'database',
    summary: 'The app role given to verify does not exist.',
    why: 'Every role check and the live probe run as this role; a typo would make verify check nothing.',
    fixHint: 'Pass the role the application really uses (--app-role), or create it.',
    *check(model) {
      if (model.appRole === null || model.app !== null) return
      yield onRole(model.appRole, `role "${model.appRole}" does not exist on this server`, `CREATE ROLE ${roleName(model.appRole)} LOGIN NOSUPERUSER NOBYPASSRLS;`)
    },
  },
  {
    id: 'app-role-superuser',
    severity: 'error',
    category: 'app role',
    scope: 'database',
    summary: 'The app role is a superuser.',
    why: 'Superusers bypass row-level security entirely (and every other permission check).',
    fixHint: 'Make the app role NOSUPERUSER; keep a separate role for administration.',
    *check(model) {
      const r = app(model)
      if (r === null || !r.superuser) return
      yield onRole(r.name, `the app role "${r.name}" is a superuser: row-level security never applies to it`, `ALTER ROLE ${roleName(r.name)} NOSUPERUSER;`)
    },
  },
  {
    id: 'app-role-bypassrls',
    severity: 'error',
    category: 'app role',
    scope: 'database',
    summary: 'The app role has BYPASSRLS.',
    why: 'BYPASSRLS roles are exempt from every policy: the application sees all tenants.',
    fixHint: 'ALTER ROLE … NOBYPASSRLS.',
    *check(model) {
      const r = app(model)
      if (r === null || !r.bypassRls) return
      yield onRole(r.name, `the app role "${r.name}" has BYPASSRLS: policies do not apply to it`, `ALTER ROLE ${roleName(r.name)} NOBYPASSRLS;`)
    },
  },
  {
    id: 'app-role-member-of-bypass',
    severity: 'error',
    category: 'app role',
    scope: 'database',
    summary: 'The app role is a member of a role that is superuser or has BYPASSRLS.',
    why: 'A member can SET ROLE to it (attributes are not inherited, but SET ROLE is one statement away for any SQL injection).',
    fixHint: 'REVOKE the membership.',
    *check(model) {
      const r = app(model)
      if (r === null) return
      for (const name of r.memberOfTransitive) {
        const other = model.catalog.role(name)
        if (other === undefined || !(other.superuser || other.bypassRls)) continue
        const what = other.superuser ? 'a superuser' : 'BYPASSRLS'
        const direct = r.memberOf.some((m) => m.role === name)
        yield onRole(
          r.name,
          `the app role "${r.name}" is ${direct ? 'a member' : 'an indirect member'} of "${name}", which is ${what}: SET ROLE ${name} escapes row-level security`,
          direct ? `REVOKE ${roleName(name)} FROM ${roleName(r.name)};` : `-- find the chain with \\du and revoke the membership that leads to ${quoteIdent(name)}`,
        )
      }
    },
  },
  {
    id: 'app-role-createrole',
    severity: 'warn',
    category: 'app role',
    scope: 'database',
    summary: 'The app role has CREATEROLE.',
    why: 'CREATEROLE can create roles and grant memberships (before PostgreSQL 16, in almost any role, including table owners), so a compromised app can give itself the owner\'s way around RLS.',
    fixHint: 'ALTER ROLE … NOCREATEROLE.',
    *check(model) {
      const r = app(model)
      if (r === null || !r.createRole) return
      yield onRole(r.name, `the app role "${r.name}" has CREATEROLE`, `ALTER ROLE ${roleName(r.name)} NOCREATEROLE;`)
    },
  },
  {
    id: 'app-role-owns-schema',
    severity: 'warn',
    category: 'app role',
    scope: 'database',
    summary: 'The app role owns a schema that holds tenant tables.',
    why: 'A schema owner may drop or rename any object in it and create look-alike objects that policies or functions then resolve to.',
    fixHint: 'Transfer the schema to the owner role.',
    *check(model) {
      if (model.appRole === null) return
      const schemas = new Set(model.tenantTables().map((m) => m.table.schema))
      for (const s of model.catalog.schemas) {
        if (!schemas.has(s.name) || !model.appRoles.has(s.owner) || s.owner === 'public') continue
        yield { objectKind: 'schema', object: quoteIdent(s.name), table: null, message: `schema "${s.name}" holding tenant tables is owned by "${s.owner}", which the app role "${model.appRole}" is or belongs to`, fix: `ALTER SCHEMA ${quoteIdent(s.name)} OWNER TO ${quoteIdent('<owner role>')};` }
      }
    },
  },
]
