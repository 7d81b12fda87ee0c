import { identList, quoteIdent } from '../../../sql/quote.js'
import type { ModelTable, PolicyFacts, TenantModel } from '../model.js'
import { display, onPolicy, onTable, tableSql, tenantPolicySql, type LintRule } from '../rule.js'
import { swapPolicy } from '../fix-sql.js'

function* tenantPolicies(model: TenantModel): Generator<[ModelTable, PolicyFacts]> {
  for (const m of model.tenantTables()) for (const f of model.policies.get(m.table.oid) ?? []) yield [m, f]
}

const exprs = (f: PolicyFacts) => [f.using, f.withCheck].filter((e) => e !== null)

/** Replace the policy by the tenant policy, swapped in one transaction (none when the table has no tenant column yet). */
const recreate = (model: TenantModel, m: ModelTable, f: PolicyFacts): string =>
  m.tenantColumn === null ? tenantPolicySql(model, m, f.policy.name) : swapPolicy(f.policy, (name) => tenantPolicySql(model, m, name))

export const performanceRules: readonly LintRule[] = [
  {
    id: 'policy-volatile-function',
    severity: 'warn',
    category: 'performance',
    scope: 'table',
    summary: 'A policy calls a VOLATILE function.',
    why: 'A VOLATILE function is called again for every row and blocks index use on the tenant column: every query on the table becomes a sequential scan.',
    fixHint: 'Declare the context function STABLE (it is, for one statement) and wrap its call in (SELECT …).',
    *check(model) {
      for (const [m, f] of tenantPolicies(model)) {
        const calls = [...new Set(exprs(f).flatMap((e) => e.volatileCalls))]
        if (calls.length === 0) continue
        const fixes = exprs(f).flatMap((e) => e.calls).filter((r) => r.volatility === 'volatile').map((r) => `ALTER FUNCTION ${tableSql(r)}(${r.identityArguments}) STABLE;`)
        yield onPolicy(f.policy, `${quoteIdent(f.policy.name)} on ${display(m.table)} calls VOLATILE ${calls.join(', ')}`, [...new Set(fixes)].join('\n') || recreate(model, m, f))
      }
    },
  },
  {
    id: 'policy-unwrapped-context',
    severity: 'warn',
    category: 'performance',
    scope: 'table',
    summary: 'A policy reads the context (current_setting or a helper) without wrapping it in a scalar sub-select.',
    why: '(SELECT current_tenant()) is evaluated once per statement as an InitPlan; a bare call may be evaluated for every row, and a VOLATILE one prevents index scans.',
    fixHint: 'Write org_id = (SELECT tenantize.current_tenant_id()).',
    *check(model) {
      for (const [m, f] of tenantPolicies(model)) {
        const bare = [...new Set(exprs(f).flatMap((e) => e.contextReads.filter((r) => !r.wrapped).map((r) => r.name)))]
        if (bare.length === 0) continue
        yield onPolicy(f.policy, `${quoteIdent(f.policy.name)} on ${display(m.table)} calls ${bare.join(', ')} unwrapped`, recreate(model, m, f))
      }
    },
  },
  {
    id: 'policy-in-subquery',
    severity: 'warn',
    category: 'performance',
    scope: 'table',
    summary: 'A policy uses IN (SELECT …), EXISTS or a sub-select that reads tables.',
    why: 'Every query on the table then runs the sub-select (often per row); deep join chains in policies are the usual cause of RLS slowdowns. A denormalized tenant column makes the policy a plain equality.',
    fixHint: 'Give the table its own tenant column, filled from its parent, and compare it with the context.',
    *check(model) {
      for (const [m, f] of tenantPolicies(model)) {
        const heavy = exprs(f).flatMap((e) => e.subqueries).filter((s) => s.kind !== 'scalar' || s.relations.length > 0)
        if (heavy.length === 0) continue
        const kinds = [...new Set(heavy.map((s) => (s.kind === 'in' ? 'IN (SELECT …)' : s.kind === 'exists' ? 'EXISTS (…)' : 'a sub-select over tables')))]
        yield onPolicy(f.policy, `${quoteIdent(f.policy.name)} on ${display(m.table)} uses ${kinds.join(' and ')}`, recreate(model, m, f))
      }
    },
  },
  {
    id: 'index-no-tenant-leading',
    severity: 'warn',
    category: 'performance',
    scope: 'table',
    summary: 'A tenant table has no index whose first column is the tenant column.',
    why: 'Every query is filtered by the tenant: without an index leading with the tenant column each one scans the table.',
    fixHint: 'CREATE INDEX CONCURRENTLY … (<tenant column>, …).',
    *check(model) {
      for (const m of model.tenantTables()) {
        const tc = m.tenantColumn
        if (tc === null || m.table.foreign || m.table.partitioned) continue
        if (m.table.indexes.some((i) => i.valid && i.columns[0] === tc && i.predicate === null)) continue
        const name = `${m.table.name}_${tc}_idx`.slice(0, 63)
        yield onTable(m.table, `no index on ${display(m.table)} starts with "${tc}"`, `CREATE INDEX CONCURRENTLY ${quoteIdent(name)} ON ${tableSql(m.table)} (${identList([tc])});`)
      }
    },
  },
]
