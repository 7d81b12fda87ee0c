import type { Table, View } from '../../../catalog/types.js'
import { quoteIdent } from '../../../sql/quote.js'
import type { TenantModel } from '../model.js'
import { appHas, appRoleSql, bypassesRls, display, onTable, tableSql, tablesBehind, type Hit, type LintRule } from '../rule.js'

/** Views (of one kind) over tenant tables, with those tables. */
function viewsOverTenants(model: TenantModel, kind: View['kind']): [View, Table[]][] {
  const out: [View, Table[]][] = []
  for (const v of model.catalog.views) {
    if (v.kind !== kind || v.extension !== null || v.schema === 'tenantize') continue
    const tables = [...new Map(tablesBehind(model.catalog, v.oid).filter((t) => model.isTenantTable(t.oid)).map((t) => [t.oid, model.catalog.tableByOid(t.oid)!])).values()]
    if (tables.length > 0) out.push([v, tables])
  }
  return out
}

function onView(v: View, message: string, fix: string, severity?: Hit['severity']): Hit {
  return { objectKind: v.kind, object: tableSql(v), table: null, message, fix, ...(severity === undefined ? {} : { severity }) }
}

export const relationRules: readonly LintRule[] = [
  {
    id: 'view-not-security-invoker',
    severity: 'warn',
    category: 'views and other relations',
    scope: 'database',
    summary: 'A view over tenant tables is not security_invoker.',
    why: 'A view reads its tables with its owner\'s rights and row-level security: when the owner bypasses RLS (superuser, BYPASSRLS, or table owner without FORCE) the view shows every tenant to anyone who may select from it.',
    fixHint: 'ALTER VIEW … SET (security_invoker = true) (PostgreSQL 15+).',
    *check(model) {
      if (model.catalog.server.major < 15) return
      for (const [v, tables] of viewsOverTenants(model, 'view')) {
        if (v.securityInvoker) continue
        const open = tables.filter((t) => bypassesRls(model.catalog, v.owner, t))
        const detail = open.length > 0 ? `; its owner "${v.owner}" bypasses row-level security on ${open.map(display).join(', ')}, so it shows every tenant` : `; it applies the policies of its owner "${v.owner}", not the caller's`
        yield onView(v, `view ${display(v)} over ${tables.map(display).join(', ')} is not security_invoker${detail}`, `ALTER VIEW ${tableSql(v)} SET (security_invoker = true);`, open.length > 0 ? 'error' : 'warn')
      }
    },
  },
  {
    id: 'view-security-invoker-unavailable',
    severity: 'warn',
    category: 'views and other relations',
    scope: 'database',
    summary: 'A view reads tenant tables on a server older than PostgreSQL 15, which has no security_invoker views.',
    why: 'Before 15 every view runs as its owner; tenant isolation through such a view depends on the owner being subject to the same policies.',
    fixHint: 'Upgrade to PostgreSQL 15+, or replace the view with a SECURITY INVOKER function, or make its owner a non-owner role subject to the policies.',
    *check(model) {
      if (model.catalog.server.major >= 15) return
      for (const [v, tables] of viewsOverTenants(model, 'view')) {
        yield onView(v, `view ${display(v)} over ${tables.map(display).join(', ')} runs as its owner "${v.owner}" (no security_invoker before PostgreSQL 15)`, `-- upgrade to PostgreSQL 15+, then:\nALTER VIEW ${tableSql(v)} SET (security_invoker = true);`)
      }
    },
  },
  {
    id: 'matview-over-tenant-table',
    severity: 'warn',
    category: 'views and other relations',
    scope: 'database',
    summary: 'A materialized view stores rows of tenant tables.',
    why: 'Materialized views cannot have row-level security: whoever may SELECT it sees the rows of every tenant it was refreshed with.',
    fixHint: 'Revoke SELECT from the app role and serve it through a security_invoker view filtered by tenant, or replace it with a per-tenant table.',
    *check(model) {
      for (const [v, tables] of viewsOverTenants(model, 'materialized view')) {
        const readable = appHas(model, v.grants, v.owner, 'SELECT')
        yield onView(v, `materialized view ${display(v)} holds rows of ${tables.map(display).join(', ')}${readable ? ' and the app role may read it' : ''}`, `REVOKE ALL ON ${tableSql(v)} FROM ${appRoleSql(model)};`, readable ? 'error' : 'warn')
      }
    },
  },
  {
    id: 'foreign-table-tenant-data',
    severity: 'warn',
    category: 'views and other relations',
    scope: 'table',
    summary: 'A foreign table holds tenant data.',
    why: 'Foreign tables cannot have row-level security: the app role sees every tenant\'s remote rows unless the remote side filters.',
    fixHint: 'Revoke the app role\'s access, or filter on the remote server by a user mapping per tenant.',
    *check(model) {
      for (const m of model.tenantTables()) {
        if (!m.table.foreign) continue
        const readable = appHas(model, m.table.grants, m.table.owner, 'SELECT')
        yield onTable(m.table, `foreign table ${display(m.table)} (server ${quoteIdent(m.table.foreignServer ?? '?')}) has tenant data and cannot have row-level security${readable ? '; the app role may read it' : ''}`, `REVOKE ALL ON ${tableSql(m.table)} FROM ${appRoleSql(model)};`, readable ? 'error' : 'warn')
      }
    },
  },
]
