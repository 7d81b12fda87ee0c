import type { Plan, Step } from './steps.js'

const bytes = (n: number): string => (n < 1024 * 1024 ? `${Math.max(1, Math.round(n / 1024))} kB` : n < 1024 ** 3 ? `${(n / 1024 ** 2).toFixed(1)} MB` : `${(n / 1024 ** 3).toFixed(1)} GB`)

/** What a step costs: its row estimate, "rows unknown (never analyzed …)" with the table's size on disk, or "catalog only". */
export function cost(s: Step): string {
  if (s.rowsUnknown === true) return `rows unknown (never analyzed${s.tableBytes === undefined || s.tableBytes === null ? '' : `; ${bytes(s.tableBytes)} on disk`}; run ANALYZE for an estimate)`
  return s.rows > 0 ? `~${s.rows.toLocaleString('en-US')} rows` : 'catalog only'
}

/** Whether the step reads every row of its table, for people. */
const scans = (s: Step): string => (s.lockHeld === 'scan without blocking writes' ? '; scans the table' : s.lockHeld === 'per batch' ? '; writes every row, in batches' : '')

/** Options of the text plan. */
export interface PlanTextOptions {
  /** Show each step's SQL under it (`plan --sql`). */
  readonly sql?: boolean
}

/** PURE: the plan as text for people, grouped by phase and table, with each step's lock and cost. */
export function renderPlanText(plan: Plan, options: PlanTextOptions = {}): string {
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
      out.push(`         lock ${s.lock === 'none' ? 'none' : `${s.lock} (${s.lockHeld})`}; ${cost(s)}${scans(s)}${s.transactional ? '' : '; outside a transaction'}`)
      if (options.sql === true) {
        const sql = s.backfill === undefined ? s.up.map((u) => `${u};`) : [`-- in batches of rows, each its own transaction:`, s.backfill.loopSql]
        for (const text of sql) out.push(...text.split('\n').map((l) => `         ${l}`))
      }
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
