/**
 * Lints: pure functions of the catalog (and the tenant model derived from it) → findings. No driver,
 * no I/O; the SQL parser they use is WebAssembly loaded once by {@link lintCatalog}.
 */
import type { Catalog } from '../../catalog/types.js'
import type { Finding } from '../types.js'
import { buildModel, type ModelOptions, type TenantModel } from './model.js'
import type { LintRule } from './rule.js'
import { functionRules } from './rules/functions.js'
import { grantRules, serverRules } from './rules/grants.js'
import { integrityRules } from './rules/integrity.js'
import { notifyRules } from './rules/notify.js'
import { performanceRules } from './rules/performance.js'
import { policyRules } from './rules/policies.js'
import { relationRules } from './rules/relations.js'
import { roleRules } from './rules/roles.js'
import { rlsRules } from './rules/rls.js'
import { loadSqlParser } from './sql-text.js'

export { buildModel, summarizeModel, DEFAULT_SETTING, TENANT_COLUMN_NAMES, EXCLUDED_SCHEMAS } from './model.js'
export type { ModelOptions, ModelTable, PolicyFacts, TenantModel } from './model.js'
export type { LintRule, RuleCategory, Hit } from './rule.js'
export { CATEGORIES } from './rule.js'
export { loadSqlParser } from './sql-text.js'
export { applyAcceptances, configAcceptances, sharedReferenceAcceptances, type Acceptance } from './accept.js'

/** Every lint rule, in documentation order. Ids are stable. */
export const LINT_RULES: readonly LintRule[] = Object.freeze([
  ...rlsRules,
  ...roleRules,
  ...policyRules,
  ...performanceRules,
  ...functionRules,
  ...notifyRules,
  ...relationRules,
  ...integrityRules,
  ...grantRules,
  ...serverRules,
])

export const RULES_DOC = 'docs/rules.md'

/**
 * Run every rule over a model. Synchronous and pure; the SQL parser must be loaded
 * (`await loadSqlParser()`), which {@link lintCatalog} does.
 */
export function runLints(model: TenantModel, rules: readonly LintRule[] = LINT_RULES): Finding[] {
  const findings: Finding[] = []
  for (const rule of rules) {
    for (const hit of rule.check(model)) {
      findings.push(Object.freeze({
        rule: rule.id,
        severity: hit.severity ?? rule.severity,
        source: 'lint' as const,
        objectKind: hit.objectKind,
        object: hit.object,
        table: hit.table === null ? null : `${hit.table.schema}.${hit.table.name}`,
        message: hit.message,
        why: rule.why,
        fix: hit.fix,
        docs: `${RULES_DOC}#${rule.id}`,
      }))
    }
  }
  return findings
}

/** Load the parser, build the model and lint: the pure core of `verify` (no probe). */
export async function lintCatalog(catalog: Catalog, options: ModelOptions = {}): Promise<{ model: TenantModel; findings: Finding[] }> {
  await loadSqlParser()
  const model = buildModel(catalog, options)
  return { model, findings: runLints(model) }
}
