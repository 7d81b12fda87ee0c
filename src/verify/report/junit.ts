import type { Finding, VerifyReport } from '../types.js'

/**
 * JUnit XML for CI dashboards: one testcase per table × lint rule (table rules), per database rule, per
 * table × probe check, and per pooler check. Errors and warnings fail a testcase; info findings are
 * attached to a passing one as system-out.
 */

// eslint-disable-next-line no-control-regex -- matching the characters XML cannot carry is the point
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g

const escape = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;')
    // XML 1.0 forbids most control characters, even escaped.
    .replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)

interface Case {
  classname: string
  name: string
  failure?: { type: string; message: string; body: string }
  error?: { message: string; body: string }
  skipped?: string
  out?: string
}

function caseXml(c: Case): string {
  const open = `    <testcase classname="${escape(c.classname)}" name="${escape(c.name)}"`
  const inner: string[] = []
  if (c.failure !== undefined) inner.push(`      <failure type="${escape(c.failure.type)}" message="${escape(c.failure.message)}">${escape(c.failure.body)}</failure>`)
  if (c.error !== undefined) inner.push(`      <error message="${escape(c.error.message)}">${escape(c.error.body)}</error>`)
  if (c.skipped !== undefined) inner.push(`      <skipped message="${escape(c.skipped)}"/>`)
  if (c.out !== undefined) inner.push(`      <system-out>${escape(c.out)}</system-out>`)
  return inner.length === 0 ? `${open}/>` : `${open}>\n${inner.join('\n')}\n    </testcase>`
}

function suiteXml(name: string, cases: readonly Case[]): string {
  const failures = cases.filter((c) => c.failure !== undefined).length
  const errors = cases.filter((c) => c.error !== undefined).length
  const skipped = cases.filter((c) => c.skipped !== undefined).length
  return [`  <testsuite name="${escape(name)}" tests="${cases.length}" failures="${failures}" errors="${errors}" skipped="${skipped}">`, ...cases.map(caseXml), '  </testsuite>'].join('\n')
}

function fromFindings(classname: string, name: string, findings: readonly Finding[]): Case {
  const failing = findings.filter((f) => f.severity !== 'info')
  const info = findings.filter((f) => f.severity === 'info')
  const body = (list: readonly Finding[]): string => list.map((f) => `${f.severity}: ${f.message}\nwhy: ${f.why}\nfix:\n${f.fix}\n${f.docs}`).join('\n\n')
  const c: Case = { classname, name }
  if (failing.length > 0) c.failure = { type: failing.some((f) => f.severity === 'error') ? 'error' : 'warn', message: failing.map((f) => f.message).join('; '), body: body(failing) }
  if (info.length > 0) c.out = body(info)
  return c
}

/** One testcase per tenant table the probe should have filled: failing (as the finding's severity) when it could not. */
function coverageCases(report: VerifyReport): Case[] {
  const probe = report.probe!
  const tables = [...new Set([...probe.seeded.map((s) => s.table), ...probe.unprobed.map((u) => u.table)])].sort()
  return tables.map((table): Case => {
    const base = { classname: `coverage.${table}`, name: 'probed' }
    const unprobed = probe.unprobed.find((u) => u.table === table)
    if (unprobed === undefined) return { ...base, out: `rows of tenants A and B: ${probe.seeded.find((s) => s.table === table)?.rows ?? 0}` }
    const finding = report.findings.find((f) => f.rule === 'probe-unprobed' && f.table === table)
    const message = `not probed: ${unprobed.reason}`
    return { ...base, failure: { type: finding?.severity ?? 'error', message, body: `${message}\nwhy: ${finding?.why ?? ''}\n${finding?.docs ?? ''}` } }
  })
}

export function renderJunit(report: VerifyReport): string {
  const suites: string[] = []
  const tableRules = report.rules.filter((r) => r.scope === 'table').map((r) => r.id)
  const databaseRules = report.rules.filter((r) => r.scope === 'database').map((r) => r.id)
  const lintFindings = report.findings.filter((f) => f.source === 'lint')
  const tables = new Set(report.model.tables.filter((t) => t.class !== 'global').map((t) => t.table))
  for (const f of lintFindings) if (f.table !== null) tables.add(f.table)

  const lintCases: Case[] = []
  for (const table of [...tables].sort()) {
    for (const rule of tableRules) lintCases.push(fromFindings(`lint.${table}`, rule, lintFindings.filter((f) => f.rule === rule && f.table === table)))
  }
  for (const rule of databaseRules) lintCases.push(fromFindings('lint.database', rule, lintFindings.filter((f) => f.rule === rule && f.table === null)))
  suites.push(suiteXml('lints', lintCases))

  if (report.probe !== null) {
    const probeCases = report.probe.checks.map((c): Case => {
      const base = { classname: `probe.${c.table}`, name: c.check }
      if (c.status === 'fail') return { ...base, failure: { type: 'error', message: c.detail, body: `${c.detail}${c.sqlstate === null ? '' : `\nSQLSTATE ${c.sqlstate}`}` } }
      if (c.status === 'error') return { ...base, error: { message: c.detail, body: c.detail } }
      if (c.status === 'skip') return { ...base, skipped: c.detail }
      return { ...base, out: c.detail }
    })
    suites.push(suiteXml('probe', probeCases))
    suites.push(suiteXml('probe coverage', coverageCases(report)))
  } else {
    const notRun = report.findings.filter((f) => f.rule === 'probe-not-run')
    suites.push(suiteXml('probe', [notRun.length > 0 ? fromFindings('probe', 'probe-not-run', notRun) : { classname: 'probe', name: 'probe', skipped: 'the probe was not run (--no-probe)' }]))
  }

  if (report.pooler !== null) {
    const pl = report.pooler
    const cases = ([['session-context-leaks', pl.sessionScope], ['transaction-context-leaks', pl.transactionScope]] as const).map(([name, o]): Case => {
      const base = { classname: `pooler.${pl.url}`, name }
      if (o.status === 'fail') return { ...base, failure: { type: name === 'transaction-context-leaks' ? 'error' : 'warn', message: o.detail, body: o.detail } }
      if (o.status === 'skip') return { ...base, skipped: o.detail }
      return { ...base, out: o.detail }
    })
    suites.push(suiteXml('pooler', cases))
  }

  const all = suites.join('\n')
  const count = (re: RegExp): number => (all.match(re) ?? []).length
  const header = `<testsuites name="tenantize verify" tests="${count(/<testcase /g)}" failures="${count(/<failure /g)}" errors="${count(/<error /g)}" skipped="${count(/<skipped /g)}">`
  return `<?xml version="1.0" encoding="UTF-8"?>\n${header}\n${all}\n</testsuites>\n`
}
