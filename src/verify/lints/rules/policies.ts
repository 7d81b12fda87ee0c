import type { Policy, Routine } from '../../../catalog/types.js'
import { qualifiedName, quoteIdent, roleName } from '../../../sql/quote.js'
import type { ExpressionFacts } from '../expressions.js'
import type { ModelTable, PolicyFacts, TenantModel } from '../model.js'
import { appGrants, appliesToApp, appRoleSql, contextSql, display, onPolicy, onTable, tableSql, tenantPolicySql, type LintRule } from '../rule.js'
import { rolesText } from './rls.js'
import { swapPolicy } from '../fix-sql.js'

/** Tenant tables with their analysed policies. */
function* tenantPolicies(model: TenantModel): Generator<[ModelTable, PolicyFacts]> {
  for (const m of model.tenantTables()) for (const f of model.policies.get(m.table.oid) ?? []) yield [m, f]
}

/** Policies that apply to the app role and are permissive: those OR-ed together. */
function* permissiveForApp(model: TenantModel): Generator<[ModelTable, PolicyFacts]> {
  for (const [m, f] of tenantPolicies(model)) if (f.policy.mode === 'permissive' && appliesToApp(model, f.policy)) yield [m, f]
}

const exprs = (f: PolicyFacts): ExpressionFacts[] => [f.using, f.withCheck].filter((e): e is ExpressionFacts => e !== null)

/**
 * Drop and create the policy as the tenant policy. With its facts, a policy that compares the tenant column
 * with another setting keeps reading that one (unless the setting was given): which setting is right is
 * policy-context-setting-mismatch's question, not a side effect of another rule's fix.
 */
function recreate(model: TenantModel, m: ModelTable, p: Policy, f?: PolicyFacts): string {
  const own = f === undefined || model.settingSource === 'option' ? undefined : exprs(f).flatMap((e) => e.comparedSettings).find((s) => s !== model.setting)
  const scoped = own === undefined ? model : { ...model, setting: own }
  // Without a tenant column there is no policy to write yet: say so, and leave the old one in place.
  if (m.tenantColumn === null) return tenantPolicySql(scoped, m, p.name)
  return swapPolicy(p, (name) => tenantPolicySql(scoped, m, name))
}

function readsContext(e: ExpressionFacts): boolean {
  return e.contextReads.length > 0
}

/**
 * A LANGUAGE sql function with a SQL-standard body (PostgreSQL 14+): the catalog holds the deparsed
 * `pg_get_function_sqlbody`, which starts with `RETURN` or `BEGIN ATOMIC`. Its names were bound when it
 * was created; nothing in it is looked up in the caller's search_path.
 */
const standardBody = (r: Routine): boolean => r.language === 'sql' && /^\s*(RETURN\b|BEGIN\s+ATOMIC\b)/i.test(r.body)

const quotedList = (names: readonly string[]): string => names.map((n) => `"${n}"`).join(', ')

/** `<tenant column> = <current tenant>` for fixes, or a placeholder for a table without a tenant column. */
function tenantPredicate(model: TenantModel, m: ModelTable): string {
  return m.tenantColumn === null ? '<tenant predicate>' : `${quoteIdent(m.tenantColumn)} = ${contextSql(model, m)}`
}

/**
 * Another permissive policy of the app role on the table that filters by tenant in every branch and
 * covers `p`'s command: with it in place, `p` adds nothing but rows of other tenants.
 */
function tenantPolicyBeside(model: TenantModel, m: ModelTable, p: Policy): Policy | undefined {
  return model.policies.get(m.table.oid)?.find((f) => f.policy !== p && f.policy.mode === 'permissive' && appliesToApp(model, f.policy) && f.using?.tenantConstrained === true && (f.policy.command === 'all' || f.policy.command === p.command))?.policy
}

/** `ALTER POLICY … USING (<tenant predicate>)`, with WITH CHECK where the command has one. */
function alterToTenant(model: TenantModel, m: ModelTable, p: Policy): string {
  const pred = tenantPredicate(model, m)
  return `ALTER POLICY ${quoteIdent(p.name)} ON ${tableSql(p.table)} USING (${pred})${p.command === 'all' || p.command === 'update' ? ` WITH CHECK (${pred})` : ''};`
}

export interface Bypass {
  readonly message: string
  readonly fix: string
}

/**
 * How a permissive policy of the app role lets rows past the tenant predicate (it is OR-ed with it), or
 * null: no context read at all (`USING (is_public)`), an OR branch beside the tenant comparison, or another
 * setting — one any session can set with set_config() — as a switch (`app.bypass = 'on'`) or as a second
 * tenant id beside the tenant policy. A tenant filter on another setting alone on its table is a setting
 * mismatch instead; constant policies are policy-permissive-true's.
 */
export function bypassOf(model: TenantModel, m: ModelTable, f: PolicyFacts): Bypass | null {
  const using = f.using
  const p = f.policy
  if (using === null || !using.parsed || using.constant !== null) return null
  const name = `permissive policy ${quoteIdent(p.name)} on ${display(p.table)}`
  const keepOrRestrict = `-- OR-ed with the tenant policy, this opens the rows it matches to every tenant. Either:
ALTER POLICY ${quoteIdent(p.name)} ON ${tableSql(p.table)} USING ((${using.text}) AND ${tenantPredicate(model, m)});
-- or recreate it AS RESTRICTIVE.`
  if (m.tenantColumn === null) {
    // Without a tenant column the comparison cannot be checked: only a policy that reads no context at all is known to be open.
    if (readsContext(using) || using.otherSettings.length > 0) return null
    return { message: `${name} admits rows without reading the tenant context: USING ${using.text}`, fix: keepOrRestrict }
  }
  if (using.tenantConstrained) return null
  const beside = tenantPolicyBeside(model, m, p)
  if (!readsContext(using) && using.comparedSettings.length > 0 && beside === undefined) return null
  const column = `"${m.tenantColumn}"`
  const message =
    using.otherSettings.length > 0
      ? `${name} reads ${quotedList(using.otherSettings)} — settable by any session with set_config() — where it does not compare ${column} with the tenant setting "${model.setting}": USING ${using.text}`
      : readsContext(using)
        ? `${name} has an OR branch that does not compare ${column} with the tenant context: USING ${using.text}`
        : `${name} admits rows without comparing ${column} with the tenant context: USING ${using.text}`
  let fix: string
  if (readsContext(using)) fix = `-- keep the tenant comparison only:
${alterToTenant(model, m, p)}`
  else if (beside !== undefined) fix = `-- ${quoteIdent(beside.name)} keeps isolating ${display(p.table)}; this policy only adds other tenants' rows:
DROP POLICY ${quoteIdent(p.name)} ON ${tableSql(p.table)};`
  else if (using.otherSettings.length > 0) fix = `-- make it the tenant policy:
${alterToTenant(model, m, p)}`
  else fix = keepOrRestrict
  return { message, fix }
}

export const policyRules: readonly LintRule[] = [
  {
    id: 'policy-to-public',
    severity: 'warn',
    category: 'policies',
    scope: 'table',
    summary: 'A policy on a tenant table applies TO PUBLIC.',
    why: 'PUBLIC is every role, including roles created later for reporting or support; a policy should name the app role so access is deliberate.',
    fixHint: 'ALTER POLICY … TO the app role.',
    *check(model) {
      for (const [, f] of tenantPolicies(model)) {
        if (!f.policy.roles.includes('public')) continue
        yield onPolicy(f.policy, `${quoteIdent(f.policy.name)} on ${display(f.policy.table)} applies to PUBLIC`, `ALTER POLICY ${quoteIdent(f.policy.name)} ON ${tableSql(f.policy.table)} TO ${appRoleSql(model)};`)
      }
    },
  },
  {
    id: 'policy-wrong-role',
    severity: 'warn',
    category: 'policies',
    scope: 'table',
    summary: 'A tenant table has policies, but none applies to the app role.',
    why: 'Policies for other roles do not reach the application; with none left it is denied every row (fail closed, but broken), and the intended policy is probably on the wrong role.',
    fixHint: 'ALTER POLICY … TO the app role.',
    *check(model) {
      if (model.appRole === null) return
      for (const m of model.tenantTables()) {
        const ps = m.table.policies
        if (ps.length === 0 || !m.table.rowSecurity || ps.some((p) => appliesToApp(model, p))) continue
        const roles = [...new Set(ps.flatMap((p) => p.roles))]
        yield onTable(m.table, `the policies on ${display(m.table)} apply to ${rolesText(roles)}, not to the app role "${model.appRole}"`, ps.map((p) => `ALTER POLICY ${quoteIdent(p.name)} ON ${tableSql(m.table)} TO ${roleName(model.appRole!)};`).join('\n'))
      }
    },
  },
  {
    id: 'policy-permissive-true',
    severity: 'error',
    category: 'policies',
    scope: 'table',
    summary: 'A permissive policy for the app role is USING (true).',
    why: 'Permissive policies are OR-ed: one that is always true makes every other policy on the table irrelevant.',
    fixHint: 'Drop it, or make it the tenant policy.',
    *check(model) {
      for (const [, f] of permissiveForApp(model)) {
        const always = f.using?.constant === true || (f.policy.command === 'insert' && f.withCheck?.constant === true)
        if (!always) continue
        yield onPolicy(f.policy, `permissive ${f.policy.command.toUpperCase()} policy ${quoteIdent(f.policy.name)} on ${display(f.policy.table)} is always true: every row of every tenant passes`, `DROP POLICY ${quoteIdent(f.policy.name)} ON ${tableSql(f.policy.table)};`)
      }
    },
  },
  {
    id: 'policy-permissive-without-tenant-filter',
    severity: 'error',
    category: 'policies',
    scope: 'table',
    summary: 'A permissive policy for the app role (or PUBLIC) lets rows past the tenant predicate: it does not compare the tenant column with the tenant setting, has an OR branch that does not, or reads another setting (app.bypass = \'on\', a second tenant setting).',
    why: 'Permissive policies are OR-ed: any row it admits is visible to every tenant, whatever the tenant policy says. A custom setting is no gate: any session may set it with set_config().',
    fixHint: 'Drop it when the tenant policy covers the table, else make its condition the tenant predicate (or the policy RESTRICTIVE if it is meant as an extra condition).',
    *check(model) {
      for (const [m, f] of permissiveForApp(model)) {
        const bypass = bypassOf(model, m, f)
        if (bypass !== null) yield onPolicy(f.policy, bypass.message, bypass.fix)
      }
    },
  },
  {
    id: 'policy-restrictive-only',
    severity: 'warn',
    category: 'policies',
    scope: 'table',
    summary: 'Only RESTRICTIVE policies apply to the app role on a tenant table.',
    why: 'Restrictive policies only narrow what permissive ones allow; with no permissive policy the app is denied every row.',
    fixHint: 'Add the permissive tenant policy.',
    *check(model) {
      for (const m of model.tenantTables()) {
        const forApp = m.table.policies.filter((p) => appliesToApp(model, p))
        if (!m.table.rowSecurity || forApp.length === 0 || forApp.some((p) => p.mode === 'permissive')) continue
        yield onTable(m.table, `only restrictive policies apply to the app role on ${display(m.table)}: it sees no rows`, tenantPolicySql(model, m))
      }
    },
  },
  {
    id: 'policy-missing-with-check',
    severity: 'warn',
    category: 'policies',
    scope: 'table',
    summary: 'A permissive ALL, UPDATE or INSERT policy for the app role has no WITH CHECK.',
    why: 'For ALL/UPDATE PostgreSQL reuses USING to check new rows: correct only while USING stays a pure tenant filter (widen it for shared reads and writes widen too). An INSERT policy without WITH CHECK admits no row at all.',
    fixHint: 'Write the check out: WITH CHECK (<tenant column> = <current tenant>).',
    *check(model) {
      for (const [m, f] of tenantPolicies(model)) {
        const p = f.policy
        if (p.mode !== 'permissive' || !appliesToApp(model, p) || f.withCheck !== null || !['all', 'update', 'insert'].includes(p.command)) continue
        const pred = m.tenantColumn === null ? (f.using?.text ?? '<tenant predicate>') : `${quoteIdent(m.tenantColumn)} = ${contextSql(model, m)}`
        const what = p.command === 'insert' ? 'so no row can be inserted through it' : 'PostgreSQL checks new rows with USING'
        yield onPolicy(p, `${p.command.toUpperCase()} policy ${quoteIdent(p.name)} on ${display(p.table)} has no WITH CHECK: ${what}`, `ALTER POLICY ${quoteIdent(p.name)} ON ${tableSql(p.table)} WITH CHECK (${pred});`)
      }
    },
  },
  {
    id: 'policy-with-check-without-tenant-filter',
    severity: 'error',
    category: 'policies',
    scope: 'table',
    summary: 'A permissive policy\'s WITH CHECK does not restrict new rows to the current tenant.',
    why: 'The app could insert rows for another tenant, or move its rows to another tenant with UPDATE.',
    fixHint: 'WITH CHECK (<tenant column> = <current tenant>).',
    *check(model) {
      for (const [m, f] of permissiveForApp(model)) {
        const check = f.withCheck
        if (check === null || !check.parsed || check.constant === false) continue
        // With a tenant column every branch must compare it; without one, reading the context is all that can be checked.
        if (check.constant !== true && (m.tenantColumn === null ? readsContext(check) : check.tenantConstrained)) continue
        if (f.policy.command === 'insert' && check.constant === true) continue // reported by policy-permissive-true
        const what = readsContext(check) ? 'has a branch that does not compare the tenant column with the tenant context' : 'does not read the tenant context'
        yield onPolicy(f.policy, `WITH CHECK of ${quoteIdent(f.policy.name)} on ${display(f.policy.table)} ${what} (${check.text}): rows can be written for any tenant`, `ALTER POLICY ${quoteIdent(f.policy.name)} ON ${tableSql(f.policy.table)} WITH CHECK (${tenantPredicate(model, m)});`)
      }
    },
  },
  {
    id: 'policy-open-without-context',
    severity: 'error',
    category: 'policies',
    scope: 'table',
    summary: 'A permissive policy admits rows when the tenant context is missing or empty (IS NULL OR …, coalesce to the row\'s own value or a wildcard).',
    why: 'Any code path that forgets to set the tenant — a background job, a new endpoint, a pooled connection after RESET — then sees every tenant. Missing context must mean no rows.',
    fixHint: 'Compare the tenant column with the context and nothing else; let NULL match nothing.',
    *check(model) {
      for (const [m, f] of permissiveForApp(model)) {
        const open = exprs(f).find((e) => e.openWhenNoContext !== null)
        if (open === undefined) continue
        yield onPolicy(f.policy, `${quoteIdent(f.policy.name)} on ${display(f.policy.table)}: ${open.openWhenNoContext}`, recreate(model, m, f.policy, f))
      }
    },
  },
  {
    id: 'policy-context-from-editable-table',
    severity: 'error',
    category: 'policies',
    scope: 'table',
    summary: 'A policy takes the tenant id from a table the app role can write.',
    why: 'If the application can INSERT or UPDATE the row the tenant is read from (a users or memberships table), a user can point themselves at another tenant.',
    fixHint: 'Take the tenant from the context setting the server side sets, or revoke the write privilege on that table.',
    *check(model) {
      for (const [m, f] of tenantPolicies(model)) {
        if (!appliesToApp(model, f.policy)) continue
        const seen = new Set<string>()
        for (const e of exprs(f)) {
          for (const s of e.subqueries) {
            if (!s.feedsTenantColumn) continue
            for (const [schema, name] of s.relations) {
              const t = schema === null ? model.catalog.tables.find((x) => x.name === name) : model.catalog.table(schema, name)
              if (t === undefined || t.oid === m.table.oid || seen.has(`${t.oid}`)) continue
              const writes = appGrants(model, t.grants, t.owner).filter((g) => g.privilege === 'UPDATE' || g.privilege === 'INSERT').map((g) => g.privilege)
              if (writes.length === 0) continue
              seen.add(`${t.oid}`)
              yield onPolicy(f.policy, `${quoteIdent(f.policy.name)} on ${display(m.table)} reads the tenant from ${display(t)}, which the app role may ${[...new Set(writes)].join(' and ')}`, `REVOKE INSERT, UPDATE ON ${qualifiedName({ schema: t.schema, name: t.name })} FROM ${appRoleSql(model)};\n-- or compare ${m.tenantColumn === null ? 'the tenant column' : quoteIdent(m.tenantColumn)} with ${contextSql(model, m)} instead`)
            }
          }
        }
      }
    },
  },
  {
    id: 'policy-context-setting-mismatch',
    severity: 'warn',
    category: 'policies',
    scope: 'table',
    summary: 'A permissive policy reads a different setting than the tenant context setting.',
    why: 'The runtime sets one setting; a policy reading another one sees it unset (no rows, or every row if it fails open), and two settings can disagree.',
    fixHint: 'Read the tenant setting (or Tenantize\'s helper function).',
    *check(model) {
      // Restrictive policies may read other settings: they narrow what the tenant policy allows (sub-tenant scopes).
      for (const [m, f] of permissiveForApp(model)) {
        // A bypass beside the tenant policy is policy-permissive-without-tenant-filter's (an error).
        if (bypassOf(model, m, f) !== null) continue
        // USING and WITH CHECK each: one may have been changed without the other.
        const stray = exprs(f).filter((e) => !readsContext(e) && e.otherSettings.length > 0)
        if (stray.length === 0) continue
        const others = [...new Set(stray.flatMap((e) => e.otherSettings))]
        const message = `${quoteIdent(f.policy.name)} on ${display(m.table)} reads ${quotedList(others)}, not the tenant setting "${model.setting}"`
        const compared = [...new Set(stray.flatMap((e) => e.comparedSettings))]
        if (compared.length === 0 || model.settingSource === 'option') {
          yield onPolicy(f.policy, message, recreate(model, m, f.policy))
          continue
        }
        // The policy is a tenant filter in its own right, on another setting: which one is right is the runtime's to say.
        const why = model.settingSource === 'policies' ? `more policies compare a column with "${model.setting}"` : `no policy compares a column with a setting, so verify assumed "${model.setting}"`
        const commented = recreate(model, m, f.policy).split('\n').map((l) => `--   ${l}`).join('\n')
        yield onPolicy(
          f.policy,
          `${message} (it compares ${m.tenantColumn === null ? 'a column' : `"${m.tenantColumn}"`} with ${quotedList(compared)}; verify took "${model.setting}" because ${why})`,
          `-- This policy compares the tenant with ${quotedList(compared)}; verify took "${model.setting}" as the tenant setting because ${why}.\n-- If your runtime sets ${quotedList(compared)}, run verify with --setting ${compared[0]} instead: this policy is right.\n-- If it sets "${model.setting}", rewrite this policy:\n${commented}`,
        )
      }
    },
  },
  {
    id: 'policy-context-errors-when-missing',
    severity: 'info',
    category: 'policies',
    scope: 'table',
    summary: 'A policy calls current_setting(name) without missing_ok, so a missing context raises an error.',
    why: 'Failing closed is right, but an error instead of an empty result breaks code paths that legitimately run without a tenant (health checks, migrations through the app role).',
    fixHint: 'current_setting(name, true), with nullif(…, \'\') before the cast.',
    *check(model) {
      for (const [m, f] of tenantPolicies(model)) {
        if (!exprs(f).some((e) => e.strictSettingReads > 0)) continue
        // A bypass is to be dropped or rewritten (policy-permissive-without-tenant-filter), not made to read its setting safely.
        if (f.policy.mode === 'permissive' && appliesToApp(model, f.policy) && bypassOf(model, m, f) !== null) continue
        yield onPolicy(f.policy, `${quoteIdent(f.policy.name)} on ${display(m.table)} calls current_setting() without missing_ok`, recreate(model, m, f.policy, f))
      }
    },
  },
  {
    id: 'policy-security-definer-function',
    severity: 'warn',
    category: 'policies',
    scope: 'table',
    summary: 'A policy calls a SECURITY DEFINER function.',
    why: 'The function runs as its owner, so any table it reads is read without the caller\'s row-level security; whatever it returns about other tenants decides what the policy admits.',
    fixHint: 'Make the function SECURITY INVOKER, or keep it tiny, STABLE, with a pinned search_path and no table reads.',
    *check(model) {
      for (const [m, f] of tenantPolicies(model)) {
        const definers = [...new Map(exprs(f).flatMap((e) => e.calls).filter((r) => r.securityDefiner).map((r) => [r.oid, r])).values()]
        for (const r of definers) {
          yield onPolicy(f.policy, `${quoteIdent(f.policy.name)} on ${display(m.table)} calls SECURITY DEFINER function ${r.schema}.${r.name}(${r.identityArguments}) owned by "${r.owner}"`, `ALTER FUNCTION ${qualifiedName({ schema: r.schema, name: r.name })}(${r.identityArguments}) SECURITY INVOKER;`)
        }
      }
    },
  },
  {
    id: 'policy-function-search-path',
    severity: 'warn',
    category: 'policies',
    scope: 'table',
    summary: 'A policy calls a user function that has no pinned search_path (a SQL-standard body, RETURN … or BEGIN ATOMIC, needs none).',
    why: 'The function resolves unqualified names with the caller\'s search_path: a role that can create objects (or temp tables, which are searched first) can substitute what the policy reads. A SQL-standard body is resolved once, when the function is created, and is safe without one — and, without a SET clause, inlined into the policy.',
    fixHint: 'ALTER FUNCTION … SET search_path = pg_catalog (and schema-qualify what it uses), or recreate it with a SQL-standard body whose names are schema-qualified.',
    *check(model) {
      for (const [m, f] of tenantPolicies(model)) {
        const unpinned = [...new Map(exprs(f).flatMap((e) => e.calls).filter((r) => r.searchPath === null && (r.language === 'sql' || r.language === 'plpgsql') && !standardBody(r)).map((r) => [r.oid, r])).values()]
        for (const r of unpinned) {
          yield onPolicy(f.policy, `${quoteIdent(f.policy.name)} on ${display(m.table)} calls ${r.schema}.${r.name}(${r.identityArguments}), which has no pinned search_path`, `ALTER FUNCTION ${qualifiedName({ schema: r.schema, name: r.name })}(${r.identityArguments}) SET search_path = pg_catalog;`)
        }
      }
    },
  },
  {
    id: 'policy-leaky-function',
    severity: 'warn',
    category: 'policies',
    scope: 'table',
    summary: 'A policy passes row columns to a user function (or operator) that is not LEAKPROOF.',
    why: 'Policy expressions run on every candidate row, other tenants\' included: a function that raises an error, a notice or writes a log line with its argument shows those rows to the caller.',
    fixHint: 'Compare columns with built-in operators only, or make sure the function cannot reveal its arguments (then a superuser may mark it LEAKPROOF).',
    *check(model) {
      for (const [m, f] of tenantPolicies(model)) {
        const leaky = [...new Set(exprs(f).flatMap((e) => [...e.leakyCalls, ...e.userOperators.map((o) => `operator ${o}`)]))]
        if (leaky.length === 0) continue
        yield onPolicy(f.policy, `${quoteIdent(f.policy.name)} on ${display(m.table)} passes row values to ${leaky.join(', ')}, not LEAKPROOF`, `-- rewrite the policy to compare ${m.tenantColumn === null ? 'columns' : quoteIdent(m.tenantColumn)} with built-in operators, e.g.\n${recreate(model, m, f.policy, f)}`)
      }
    },
  },
]

