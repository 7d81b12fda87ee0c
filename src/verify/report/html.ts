import { LINT_RULES } from '../lints/index.js'
import { POOLER_CHECKS, PROBE_CHECKS, PROBE_META } from '../probe/registry.js'
import { SEVERITIES, type Finding, type ProbeCheck, type Severity, type VerifyReport } from '../types.js'

/**
 * One self-contained HTML file: inline CSS, no scripts, no external assets (fonts, images, links to
 * CDNs). Sections: summary, model, per-table matrix (lints + every probe check), findings with fix SQL,
 * accepted risks, probe details (skips with their reasons), pooler, and the rules the page names — every
 * rule name links to its explanation there.
 */

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;')

const CSS = `
:root { color-scheme: light; --err: #b42318; --warn: #b54708; --info: #175cd3; --ok: #067647; --muted: #667085; --line: #e4e7ec; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #101828; background: #fff; }
header, main { max-width: 1200px; margin: 0 auto; padding: 16px 24px; }
header { border-bottom: 1px solid var(--line); }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; }
.muted { color: var(--muted); }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin-top: 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; min-width: 120px; }
.card b { display: block; font-size: 22px; }
.error { color: var(--err); } .warn { color: var(--warn); } .info { color: var(--info); } .pass { color: var(--ok); } .skip { color: var(--muted); }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 6px; text-align: left; vertical-align: top; }
table.matrix th.check { writing-mode: vertical-rl; transform: rotate(180deg); font-weight: normal; font-size: 12px; white-space: nowrap; }
table.matrix td.cell { text-align: center; font-weight: bold; }
pre { background: #f8f9fb; border: 1px solid var(--line); border-radius: 6px; padding: 8px; overflow-x: auto; font-size: 12px; }
.finding { border-left: 4px solid var(--line); padding: 4px 12px; margin: 10px 0; }
.finding.error { border-color: var(--err); } .finding.warn { border-color: var(--warn); } .finding.info { border-color: var(--info); }
.finding p { margin: 4px 0; color: #101828; }
code { font-size: 12px; }
details summary { cursor: pointer; }
`

const MARK: Record<string, string> = { pass: '✔', fail: '✖', skip: '·', error: '!' }

function worst(findings: readonly Finding[]): Severity | null {
  for (const s of SEVERITIES) if (findings.some((f) => f.severity === s)) return s
  return null
}

function matrix(report: VerifyReport): string {
  const checks = PROBE_CHECKS.map((c) => c.id).filter((id) => report.probe?.checks.some((c) => c.check === id) ?? false)
  const tables = report.model.tables.filter((t) => t.class !== 'global').map((t) => t.table)
  for (const c of report.probe?.checks ?? []) if (!tables.includes(c.table)) tables.push(c.table)
  const byCell = new Map<string, ProbeCheck>()
  for (const c of report.probe?.checks ?? []) byCell.set(`${c.table}\u0000${c.check}`, c)
  const head = `<tr><th>table</th><th>class</th><th>lint findings</th>${checks.map((c) => `<th class="check">${esc(c)}</th>`).join('')}</tr>`
  const rows = tables.map((table) => {
    const cls = report.model.tables.find((t) => t.table === table)?.class ?? 'view'
    const lint = report.findings.filter((f) => f.source === 'lint' && f.table === table)
    const w = worst(lint)
    const lintCell = lint.length === 0 ? '<span class="pass">✔ none</span>' : `<span class="${w}">${lint.length} (${SEVERITIES.map((s) => `${lint.filter((f) => f.severity === s).length} ${s}`).join(', ')})</span>`
    const cells = checks.map((check) => {
      const c = byCell.get(`${table}\u0000${check}`)
      return c === undefined ? '<td class="cell skip"></td>' : `<td class="cell ${c.status}" title="${esc(`${check}: ${c.detail}`)}">${MARK[c.status]}</td>`
    })
    const unprobed = report.probe?.unprobed.find((u) => u.table === table)
    const name = unprobed === undefined ? `<code>${esc(table)}</code>` : `<code>${esc(table)}</code> <b class="error unprobed" title="${esc(unprobed.reason)}">not probed</b>`
    return `<tr><td>${name}</td><td>${esc(cls)}</td><td>${lintCell}</td>${cells.join('')}</tr>`
  })
  return `<table class="matrix" id="matrix">${head}${rows.join('')}</table><p class="muted">✔ passed · ✖ failed (isolation broken) · “·” skipped · ! could not run · <b class="error">not probed</b>: the probe could not put rows of both tenants into the table, so its checks prove nothing. Hover a cell for details.</p>`
}

/** An anchor id for a rule (ids are kebab-case already). */
const ruleAnchor = (rule: string): string => `rule-${rule.replace(/[^a-z0-9-]/gi, '-')}`
const ruleLink = (rule: string): string => `<a href="#${ruleAnchor(rule)}"><code>${esc(rule)}</code></a>`

/** What a rule checks, why it matters and how to fix it, for every rule the page names. */
function ruleExplanations(ids: readonly string[]): string {
  const live = [...PROBE_CHECKS.map((c) => ({ ...c, id: `probe-${c.id}` })), ...PROBE_META, ...POOLER_CHECKS.map((c) => ({ ...c, id: `pooler-${c.id}` }))]
  const known = new Map<string, { summary: string; why: string; fixHint: string }>([...LINT_RULES.map((r) => [r.id, r] as const), ...live.map((c) => [c.id, c] as const)])
  const items = [...new Set(ids)].sort().map((id) => {
    const r = known.get(id)
    return `<dt id="${ruleAnchor(id)}"><code>${esc(id)}</code></dt><dd>${r === undefined ? '' : `${esc(r.summary)}<br><span class="muted">Why: ${esc(r.why)}</span><br><span class="muted">Fix: ${esc(r.fixHint)}</span>`}</dd>`
  })
  return items.length === 0 ? '<p class="muted">No rule was reported.</p>' : `<dl>${items.join('')}</dl>`
}

function findingHtml(f: Finding): string {
  return `<div class="finding ${f.severity}" data-rule="${esc(f.rule)}">
<div><b class="${f.severity}">${esc(f.severity.toUpperCase())}</b> ${ruleLink(f.rule)} · ${esc(f.object)} <span class="muted">(${esc(f.source)})</span></div>
<p>${esc(f.message)}</p>
<p class="muted">Why: ${esc(f.why)}</p>
<pre>${esc(f.fix)}</pre>
<p class="muted">${esc(f.docs)}</p>
</div>`
}

/** Skipped checks grouped by reason: a skip is not a failure, and the page says why each one was skipped. */
function skipped(checks: readonly ProbeCheck[]): string {
  const skips = checks.filter((c) => c.status === 'skip')
  if (skips.length === 0) return '<p id="skipped" class="pass">No check was skipped.</p>'
  const byReason = new Map<string, ProbeCheck[]>()
  for (const c of skips) byReason.set(c.detail, [...(byReason.get(c.detail) ?? []), c])
  const items = [...byReason].map(([reason, list]) => `<li>${esc(reason)} <span class="muted">(${list.length}: ${list.map((c) => `${esc(c.check)} on <code>${esc(c.table)}</code>`).join(', ')})</span></li>`)
  return `<h3 id="skipped">Skipped checks (${skips.length}) — not failures: each does not apply to its table, or to this server</h3><ul>${items.join('')}</ul>`
}

function acceptedHtml(report: VerifyReport): string {
  if (report.accepted.length === 0) return '<p class="muted">None: the configuration accepts no risk (<code>verify.accept</code>, <code>sharedReferences</code>).</p>'
  const rows = report.accepted.map((a) => `<tr><td>${ruleLink(a.rule)}</td><td>${esc(a.object)}</td><td class="${a.severity}">${esc(a.severity)}</td><td>${esc(a.reason)}<br><span class="muted">${esc(a.source)} · ${esc(a.message)}</span></td></tr>`)
  return `<table id="accepted"><tr><th>rule</th><th>object</th><th>would be</th><th>why it is accepted</th></tr>${rows.join('')}</table>`
}

export function renderHtml(report: VerifyReport): string {
  const s = report.summary
  const m = report.model
  const probe = report.probe
  const cards = [
    `<div class="card"><b class="error">${s.error}</b>errors</div>`,
    `<div class="card"><b class="warn">${s.warn}</b>warnings</div>`,
    `<div class="card"><b class="info">${s.info}</b>info</div>`,
    ...(probe === null
      ? ['<div class="card"><b class="skip">—</b>probe not run</div>']
      : [
          `<div class="card" id="probe-passed"><b class="pass">${s.checks.pass}</b>probe checks passed</div>`,
          `<div class="card" id="probe-failed"><b class="${s.checks.fail > 0 ? 'error' : 'pass'}">${s.checks.fail}</b>failed</div>`,
          `<div class="card" id="probe-skipped"><b class="skip">${s.checks.skip}</b><a href="#skipped">skipped</a> (not applicable)</div>`,
          ...(s.checks.error > 0 ? [`<div class="card"><b class="error">${s.checks.error}</b>could not run</div>`] : []),
        ]),
    probe === null ? '' : `<div class="card" id="unprobed"><b class="${s.unprobed > 0 ? 'error' : 'pass'}">${s.unprobed}</b>tenant tables not probed</div>`,
  ]
  const model = `<table>
<tr><th>tenant column</th><td>${esc(m.tenantColumn ?? '—')} <span class="muted">(${esc(m.tenantColumnSource)})</span></td></tr>
<tr><th>context setting</th><td>${esc(m.setting)} <span class="muted">(${esc(m.settingSource)})</span></td></tr>
<tr><th>app role</th><td>${esc(m.appRole ?? '—')} <span class="muted">(${esc(m.appRoleSource)})</span></td></tr>
<tr><th>tenant table</th><td>${esc(m.rootTable ?? '—')} <span class="muted">(${esc(m.rootSource)})</span></td></tr>
</table>${m.notes.length === 0 ? '' : `<ul>${m.notes.map((n) => `<li class="muted">${esc(n)}</li>`).join('')}</ul>`}`
  const findings = SEVERITIES.map((sev) => {
    const list = report.findings.filter((f) => f.severity === sev)
    return list.length === 0 ? '' : `<h3 class="${sev}">${esc(sev.toUpperCase())} (${list.length})</h3>${list.map(findingHtml).join('\n')}`
  }).join('\n')
  const probeDetails = probe === null ? '<p class="muted">The probe was not run.</p>' : `<p>As <code>${esc(probe.appRole)}</code> (SET ROLE from <code>${esc(probe.sessionUser)}</code>), context <code>${esc(probe.setting)}</code>; everything was rolled back.</p>
${probe.unprobed.length === 0 ? '<p class="pass">Every tenant table was probed with rows of both tenants.</p>' : `<p class="error">Not probed (no rows of both tenants, so their isolation is not proven):</p><ul>${probe.unprobed.map((u) => `<li><code>${esc(u.table)}</code>: ${esc(u.reason)}</li>`).join('')}</ul>`}
${skipped(probe.checks)}
<details><summary>All ${probe.checks.length} checks</summary><table><tr><th>table</th><th>check</th><th>result</th><th>detail</th></tr>${probe.checks.map((c) => `<tr><td><code>${esc(c.table)}</code></td><td>${esc(c.check)}</td><td class="${c.status}">${esc(c.status)}</td><td>${esc(c.detail)}</td></tr>`).join('')}</table></details>`
  const pooler = report.pooler === null ? '' : `<h2>Pooler</h2><table>
<tr><th>pooler</th><td><code>${esc(report.pooler.url)}</code></td></tr>
<tr><th>session-scope context</th><td class="${report.pooler.sessionScope.status}">${esc(report.pooler.sessionScope.status)}: ${esc(report.pooler.sessionScope.detail)}</td></tr>
<tr><th>transaction-local context</th><td class="${report.pooler.transactionScope.status}">${esc(report.pooler.transactionScope.status)}: ${esc(report.pooler.transactionScope.detail)}</td></tr>
</table>`
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tenantize verify — ${esc(report.database.name)}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>tenantize verify — <code>${esc(report.database.name)}</code></h1>
<div class="muted">PostgreSQL ${esc(report.database.serverVersion)} · ${esc(report.generatedAt)} · tenantize ${esc(report.tool.version)} · report schema v${report.schemaVersion}</div>
<div class="cards" id="summary">${cards.join('')}</div>
</header>
<main>
<h2>Tenant model</h2>
${model}
<h2>Tables</h2>
${matrix(report)}
<h2>Findings</h2>
${report.findings.length === 0 ? '<p class="pass">No findings.</p>' : findings}
<h2>Accepted risks</h2>
${acceptedHtml(report)}
<h2>Probe</h2>
${probeDetails}
${pooler}
<h2 id="rules">Rules</h2>
${ruleExplanations([...report.findings.map((f) => f.rule), ...report.accepted.map((a) => a.rule)])}
</main>
</body>
</html>
`
}
