import type { Routine } from '../../../catalog/types.js'
import { quoteIdent } from '../../../sql/quote.js'
import type { TenantModel } from '../model.js'
import { mentionsTable } from '../routines.js'
import { bypassesRls, display, onTable, routineSql, type Hit, type LintRule } from '../rule.js'

function onRoutine(r: Routine, message: string, fix: string, severity?: Hit['severity']): Hit {
  return { objectKind: 'function', object: routineSql(r), table: null, message, fix, ...(severity === undefined ? {} : { severity }) }
}

/** Routines users wrote (not those of extensions). */
const userRoutines = (model: TenantModel): Routine[] => model.catalog.routines.filter((r) => r.extension === null)

/** search_path entries as PostgreSQL lists them (quotes removed). */
function pathEntries(path: string): string[] {
  return path.split(',').map((s) => s.trim().replace(/^"(.*)"$/, '$1')).filter((s) => s !== '')
}

function unsafePath(r: Routine, model: TenantModel): string | null {
  if (r.searchPath === null) return null
  const entries = pathEntries(r.searchPath)
  const writable = entries.filter((e) => e === 'public' || e === '$user')
  if (writable.length > 0) return `its search_path includes ${writable.map((w) => `"${w}"`).join(' and ')}, where other roles may create objects`
  const facts = model.routines.get(r.oid)
  const unqualifiedTable = facts?.names.some(([s, n]) => s === null && model.catalog.tables.some((t) => t.name === n)) ?? false
  const tempAt = entries.indexOf('pg_temp')
  if (unqualifiedTable && tempAt !== entries.length - 1) return 'it names tables without a schema and pg_temp is not last in its search_path (temporary tables are searched first)'
  return null
}

/** Tenant tables a routine's body mentions. */
function tenantTablesRead(model: TenantModel, r: Routine) {
  const facts = model.routines.get(r.oid)
  if (facts === undefined || !facts.scanned) return []
  return model.tenantTables().filter((m) => mentionsTable(facts, m.table.schema, m.table.name)).map((m) => m.table)
}

export const functionRules: readonly LintRule[] = [
  {
    id: 'function-security-definer-no-search-path',
    severity: 'error',
    category: 'functions and triggers',
    scope: 'database',
    summary: 'A SECURITY DEFINER function has no pinned search_path.',
    why: 'It runs with its owner\'s rights but resolves names through the caller\'s search_path: the caller can make it call their own functions or read their own tables (CVE-2007-2138 class).',
    fixHint: 'ALTER FUNCTION … SET search_path = pg_catalog, pg_temp (and schema-qualify every name in the body).',
    *check(model) {
      for (const r of userRoutines(model)) {
        if (!r.securityDefiner || r.searchPath !== null) continue
        yield onRoutine(r, `SECURITY DEFINER function ${r.schema}.${r.name}(${r.identityArguments}) owned by "${r.owner}" runs with the caller's search_path`, `ALTER FUNCTION ${routineSql(r)} SET search_path = pg_catalog, pg_temp;`)
      }
    },
  },
  {
    id: 'function-security-definer-unsafe-search-path',
    severity: 'warn',
    category: 'functions and triggers',
    scope: 'database',
    summary: 'A SECURITY DEFINER function pins a search_path that other roles can write to.',
    why: 'Objects created in public, in a schema named after the caller, or as temporary tables can shadow what the function means to use.',
    fixHint: 'SET search_path = pg_catalog, pg_temp and schema-qualify the body.',
    *check(model) {
      for (const r of userRoutines(model)) {
        if (!r.securityDefiner) continue
        const why = unsafePath(r, model)
        if (why === null) continue
        yield onRoutine(r, `SECURITY DEFINER function ${r.schema}.${r.name}(${r.identityArguments}): ${why}`, `ALTER FUNCTION ${routineSql(r)} SET search_path = pg_catalog, pg_temp;`)
      }
    },
  },
  {
    id: 'function-security-definer-tenant-table',
    severity: 'warn',
    category: 'functions and triggers',
    scope: 'database',
    summary: 'A SECURITY DEFINER function reads or writes tenant tables.',
    why: 'It runs as its owner: when the owner bypasses row-level security (superuser, BYPASSRLS, or the table owner without FORCE) the function sees and changes every tenant\'s rows, whatever the caller\'s context.',
    fixHint: 'Make it SECURITY INVOKER, or filter explicitly by the current tenant inside it and make its owner subject to RLS.',
    *check(model) {
      for (const r of userRoutines(model)) {
        if (!r.securityDefiner) continue
        const tables = tenantTablesRead(model, r)
        if (tables.length === 0) continue
        const open = tables.filter((t) => bypassesRls(model.catalog, r.owner, t))
        const names = tables.map(display).join(', ')
        yield onRoutine(
          r,
          `SECURITY DEFINER function ${r.schema}.${r.name}(${r.identityArguments}) uses ${names}${open.length > 0 ? `; its owner "${r.owner}" bypasses row-level security on ${open.map(display).join(', ')}` : ''}`,
          `ALTER FUNCTION ${routineSql(r)} SECURITY INVOKER;`,
          open.length > 0 ? 'error' : 'warn',
        )
      }
    },
  },
  {
    id: 'function-leakproof',
    severity: 'warn',
    category: 'functions and triggers',
    scope: 'database',
    summary: 'A user-defined function (or the function behind an operator) is marked LEAKPROOF.',
    why: 'PostgreSQL evaluates LEAKPROOF functions in a user\'s WHERE clause before the policies, on other tenants\' rows too: if it can raise an error or a notice mentioning its argument, those rows leak.',
    fixHint: 'ALTER FUNCTION … NOT LEAKPROOF unless it provably reveals nothing about its arguments.',
    *check(model) {
      for (const r of userRoutines(model)) {
        if (!r.leakproof) continue
        yield onRoutine(r, `${r.schema}.${r.name}(${r.identityArguments}) is marked LEAKPROOF`, `ALTER FUNCTION ${routineSql(r)} NOT LEAKPROOF;`)
      }
    },
  },
  {
    id: 'trigger-security-definer',
    severity: 'warn',
    category: 'functions and triggers',
    scope: 'table',
    summary: 'A trigger on a tenant table runs a SECURITY DEFINER function.',
    why: 'Every write by any tenant runs the function as its owner; if it reads or writes tenant tables it does so without the writer\'s row-level security.',
    fixHint: 'Make the trigger function SECURITY INVOKER.',
    *check(model) {
      for (const m of model.tenantTables()) {
        for (const tg of m.table.triggers) {
          if (tg.parentOid !== null) continue
          const r = model.catalog.routineByOid(tg.function.oid)
          if (r === undefined || !r.securityDefiner) continue
          yield { ...onTable(m.table, `trigger ${quoteIdent(tg.name)} on ${display(m.table)} runs SECURITY DEFINER ${r.schema}.${r.name}() as "${r.owner}"`, `ALTER FUNCTION ${routineSql(r)} SECURITY INVOKER;`), objectKind: 'trigger', object: `trigger ${quoteIdent(tg.name)} on ${display(m.table)}` }
        }
      }
    },
  },
  {
    id: 'trigger-function-no-search-path',
    severity: 'warn',
    category: 'functions and triggers',
    scope: 'table',
    summary: 'A trigger on a tenant table runs a function without a pinned search_path.',
    why: 'The function runs for every tenant\'s writes and resolves unqualified names through the writer\'s search_path, where temporary objects come first.',
    fixHint: 'ALTER FUNCTION … SET search_path = pg_catalog, pg_temp.',
    *check(model) {
      for (const m of model.tenantTables()) {
        for (const tg of m.table.triggers) {
          if (tg.parentOid !== null) continue
          const r = model.catalog.routineByOid(tg.function.oid)
          if (r === undefined || r.searchPath !== null || r.extension !== null || (r.language !== 'plpgsql' && r.language !== 'sql')) continue
          yield { ...onTable(m.table, `trigger ${quoteIdent(tg.name)} on ${display(m.table)} runs ${r.schema}.${r.name}() without a pinned search_path`, `ALTER FUNCTION ${routineSql(r)} SET search_path = pg_catalog, pg_temp;`), objectKind: 'trigger', object: `trigger ${quoteIdent(tg.name)} on ${display(m.table)}` }
        }
      }
    },
  },
]
