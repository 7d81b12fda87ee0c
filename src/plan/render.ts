import type { Plan, Step } from './steps.js'

export const cost = (s: Step): string => (s.rows > 0 ? `~${s.rows.toLocaleString('en-US')} rows` : 'catalog only')

/** PURE: the plan as text for people, grouped by phase and table, with each step's lock and cost. */
export function renderPlanText(plan: Plan): string {
  const out: string[] = []
  for (const phase of ['schema', 'enforce'] as const) {
    const steps = plan.steps.map((s, i) => ({ s, i })).filter(({ s }) => s.phase === phase)
    if (steps.length === 0) continue
    out.push(`Phase ${phase}${phase === 'schema' ? ' (the application keeps working unchanged)' : ' (row-level security on: the application must set the tenant context)'}`)
    let current: string | null | undefined
    for (const { s, i } of steps) {
      if (s.table !== current) {
        current = s.table
        out.push(`  ${s.table ?? 'database'}`)
      }
      out.push(`    ${String(i + 1).padStart(3)}. ${s.title}`)
      out.push(`         lock ${s.lock === 'none' ? 'none' : `${s.lock} (${s.lockHeld})`}; ${cost(s)}${s.transactional ? '' : '; outside a transaction'}`)
    }
    out.push('')
  }
  if (plan.manual.length > 0) {
    out.push(`Manual steps (${plan.manual.length}): the plan does not do these; each says why and how`)
    for (const m of plan.manual) out.push(`  - ${m.object}: ${m.reason}\n    fix: ${m.fix}`)
    out.push('')
  }
  if (plan.enforceBlockers.length > 0) {
    out.push('The enforce phase will refuse to run until these are fixed:')
    for (const b of plan.enforceBlockers) out.push(`  - ${b.object}: ${b.reason}\n    fix: ${b.fix}`)
    out.push('')
  }
  const schema = plan.steps.filter((s) => s.phase === 'schema').length
  out.push(`${plan.steps.length} steps (${schema} schema, ${plan.steps.length - schema} enforce), ${plan.manual.length} manual.`)
  return out.join('\n')
}
