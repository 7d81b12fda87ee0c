import { ErrorCodes, TenantizeError } from '../errors.js'

/**
 * One thing the data check found that would stop the conversion part-way: rows a step would fail on, a
 * privilege the run lacks, an invalid index. Plain data: `plan` prints it, `apply` refuses on any.
 */
export interface Finding {
  /** The precondition's id (e.g. `orphans:public.tasks`) or the fact's (e.g. `owner:public.tasks`). */
  readonly id: string
  /** `rows`: rows break a step's precondition; `privilege`: the run may not do something; `index`: an invalid index; `unchecked`: the check itself failed. */
  readonly kind: 'rows' | 'privilege' | 'index' | 'unchecked'
  /** `schema.table` concerned, or null for database-wide facts. */
  readonly table: string | null
  /** What must hold, for people. */
  readonly title: string
  /** Rows (or objects) that break it; 0 when the check could not run (see `samples`). */
  readonly count: number
  /** Up to 5 offending rows' keys (or objects), as text; for `unchecked`, the error. */
  readonly samples: readonly string[]
  /** The ways out, for people; SQL is shown, never run. */
  readonly fixes: readonly string[]
}

/** Progress of a data check: one event as each check starts and ends. */
export type DataCheckEvent =
  | { readonly event: 'data-check-start'; readonly id: string; readonly table: string | null; readonly index: number; readonly total: number }
  | { readonly event: 'data-check-done'; readonly id: string; readonly table: string | null; readonly index: number; readonly total: number; readonly count: number; readonly durationMs: number }

/** One line for a finding: what, how many, which rows. */
export function describeFinding(f: Finding): string {
  const samples = f.samples.length === 0 ? '' : ` (${f.kind === 'unchecked' ? '' : 'e.g. '}${f.samples.join('; ')}${f.count > f.samples.length && f.kind === 'rows' ? '; …' : ''})`
  switch (f.kind) {
    case 'rows':
      return `${f.count} row(s) break: ${f.title}${samples}`
    case 'unchecked':
      return `could not be checked: ${f.title}${samples}`
    default:
      return `${f.title}${samples}`
  }
}

/** Text lines for people: each finding with its table, count, samples and fixes. */
export function renderFindings(findings: readonly Finding[]): string[] {
  if (findings.length === 0) return ['Data check: no problem found; apply can run every step.']
  const out = [`Data check: ${findings.length} problem(s) would stop apply part-way; it refuses to start until they are fixed:`]
  for (const f of findings) {
    out.push(`  ✖ ${f.table ?? 'database'}: ${describeFinding(f)}`)
    for (const fix of f.fixes) out.push(`      fix: ${fix}`)
  }
  return out
}

/** apply refuses to start: every finding at once, nothing changed. The CLI exits 1. */
export class DataCheckError extends TenantizeError {
  readonly findings: readonly Finding[]

  constructor(findings: readonly Finding[]) {
    super(ErrorCodes.PREFLIGHT, `the data check found ${findings.length} problem(s) that would stop the conversion part-way; nothing was changed`, {
      object: 'data check',
      fix: 'fix each one (or change the config as shown), then run apply again; tenantize plan shows them too',
      problems: findings.map((f) => ({ object: f.table ?? 'database', message: describeFinding(f), fix: f.fixes.join(' | ') })),
      details: { findings },
    })
    this.name = 'DataCheckError'
    this.findings = findings
  }
}
