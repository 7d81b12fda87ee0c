import { SEVERITIES, type Finding, type ProbeCheck, type Severity, type VerifyReport } from '../types.js'

/** The text report: findings grouped by severity, then by rule; the probe per table; one summary line. */

export interface TextOptions {
  /** ANSI colors (on a TTY unless NO_COLOR is set). */
  readonly color: boolean
  /** The --fail-on threshold, for the summary line. */
  readonly failOn: 'error' | 'warn'
}

type Paint = (s: string) => string

function painter(color: boolean): Record<'red' | 'yellow' | 'cyan' | 'green' | 'dim' | 'bold', Paint> {
  const wrap = (code: string): Paint => (color ? (s) => `\x1b[${code}m${s}\x1b[0m` : (s) => s)
  return { red: wrap('31'), yellow: wrap('33'), cyan: wrap('36'), green: wrap('32'), dim: wrap('2'), bold: wrap('1') }
}

const MARK: Record<Severity, string> = { error: '✖', warn: '⚠', info: 'ℹ' }
const TITLE: Record<Severity, string> = { error: 'ERRORS', warn: 'WARNINGS', info: 'INFO' }

const indent = (text: string, by: string): string => text.split('\n').map((l) => `${by}${l}`).join('\n')

function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>()
  for (const item of items) {
    const k = key(item)
    const list = out.get(k)
    if (list === undefined) out.set(k, [item])
    else list.push(item)
  }
  return out
}

export function renderText(report: VerifyReport, options: TextOptions): string {
  const p = painter(options.color)
  const tone: Record<Severity, Paint> = { error: p.red, warn: p.yellow, info: p.cyan }
  const out: string[] = []
  const m = report.model
  out.push(p.bold(`tenantize verify — database ${report.database.name} (PostgreSQL ${report.database.serverVersion})`))
  const from = (source: string): string => (source === 'option' ? 'given' : source === 'none' ? 'not found' : `from ${source}`)
  out.push(`tenant column ${m.tenantColumn === null ? '—' : `"${m.tenantColumn}"`} (${from(m.tenantColumnSource)}), setting "${m.setting}" (${from(m.settingSource)}), app role ${m.appRole === null ? '—' : `"${m.appRole}"`} (${from(m.appRoleSource)}), tenant table ${m.rootTable ?? '—'}`)
  const classes = ['root', 'direct', 'child', 'policy', 'global'].map((c) => `${m.tables.filter((t) => t.class === c).length} ${c === 'policy' ? 'policy-scoped' : c}`)
  out.push(`tables: ${classes.join(', ')}`)
  for (const note of m.notes) out.push(p.dim(`  note: ${note}`))

  for (const severity of SEVERITIES) {
    const findings = report.findings.filter((f) => f.severity === severity)
    if (findings.length === 0) continue
    out.push('', tone[severity](p.bold(`${TITLE[severity]} (${findings.length})`)))
    for (const [rule, list] of groupBy(findings, (f) => f.rule)) out.push(...renderRule(rule, list, severity, tone[severity], p))
  }

  if (report.accepted.length > 0) {
    out.push('', p.bold(`ACCEPTED RISKS (${report.accepted.length}): not counted, listed so they stay deliberate`))
    for (const a of report.accepted) out.push(`  ${p.dim('✓')} ${a.rule} ${a.object} (would be ${a.severity})`, p.dim(`      reason: ${a.reason} — ${a.source}`))
  }

  if (report.probe !== null) {
    const probe = report.probe
    const counts = report.summary.checks
    const notProbed = probe.unprobed.length > 0 ? `, ${probe.unprobed.length} tenant table(s) not probed` : ''
    out.push('', p.bold(`PROBE as "${probe.appRole}" (SET ROLE from "${probe.sessionUser}", context ${probe.setting}, rolled back): ${counts.pass} passed, ${counts.fail} failed, ${counts.skip} skipped${counts.error > 0 ? `, ${counts.error} could not run` : ''}${notProbed}`))
    const unprobed = new Map(probe.unprobed.map((u) => [u.table, u.reason]))
    for (const [table, checks] of groupBy(probe.checks, (c) => c.table)) out.push(renderProbeTable(table, checks, p, unprobed.get(table)))
  }
  if (report.pooler !== null) {
    const pl = report.pooler
    out.push('', p.bold(`POOLER ${pl.url} (context ${pl.setting}; backends ${pl.backends.join(', ')})`))
    for (const [label, obs] of [['session-scope context', pl.sessionScope], ['transaction-local context', pl.transactionScope]] as const) {
      const mark = obs.status === 'fail' ? p.red('✖ leaks') : obs.status === 'pass' ? p.green('✔ no leak') : p.dim('· unknown')
      out.push(`  ${mark}  ${label}: ${obs.detail}`)
    }
    if (!pl.cleaned) out.push(p.yellow('  ⚠ the session-scope marker may still be set on a server connection of the pool (it is no tenant id)'))
  }

  const s = report.summary
  const failing = options.failOn === 'error' ? s.error : s.error + s.warn
  const unprobedNote = s.unprobed > 0 ? ` (${s.unprobed} tenant table(s) not probed)` : ''
  out.push('', `${failing > 0 ? p.red('✖') : p.green('✔')} ${s.error} error(s), ${s.warn} warning(s), ${s.info} info${unprobedNote} — ${failing > 0 ? `fails --fail-on ${options.failOn}` : `passes --fail-on ${options.failOn}`}`)
  return `${out.join('\n')}\n`
}

function renderRule(rule: string, findings: readonly Finding[], severity: Severity, tone: Paint, p: ReturnType<typeof painter>): string[] {
  const first = findings[0]!
  const out = ['', `${tone(MARK[severity])} ${p.bold(rule)} ${p.dim(`(${findings.length}) ${first.docs}`)}`, p.dim(indent(`why: ${first.why}`, '  '))]
  if (first.source === 'probe') {
    for (const f of findings) out.push(`  • ${rule === 'probe-unprobed' ? `${f.table ?? f.object} ${f.message}` : f.message}`)
    out.push(p.dim('  fix: see the lint findings on these tables, or the JSON/HTML report for the SQL'))
    return out
  }
  for (const f of findings) {
    out.push(`  • ${f.message}`)
    out.push(p.dim(indent(f.fix, '      ')))
  }
  return out
}

/** One line per table; a table the probe could not seed says so first (its passes would prove nothing). */
function renderProbeTable(table: string, checks: readonly ProbeCheck[], p: ReturnType<typeof painter>, unprobed: string | undefined): string {
  const failed = checks.filter((c) => c.status === 'fail').map((c) => c.check)
  const errors = checks.filter((c) => c.status === 'error').map((c) => c.check)
  const skipped = checks.filter((c) => c.status === 'skip').length
  const passed = checks.filter((c) => c.status === 'pass').length
  const head = failed.length > 0 || unprobed !== undefined ? p.red('  ✖') : errors.length > 0 ? p.yellow('  ⚠') : p.green('  ✔')
  const parts = [`${passed} passed`]
  if (unprobed !== undefined) parts.unshift(p.red(`NOT PROBED: ${unprobed}`))
  if (failed.length > 0) parts.push(p.red(`${failed.length} failed: ${failed.join(', ')}`))
  if (errors.length > 0) parts.push(p.yellow(`${errors.length} could not run: ${errors.join(', ')}`))
  if (skipped > 0) parts.push(p.dim(`${skipped} skipped`))
  return `${head} ${table}  ${parts.join(' · ')}`
}
