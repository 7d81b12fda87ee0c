import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { renderReport, reportJsonSchema, reportSchema } from '../src/verify/report/index.js'
import type { VerifyReport } from '../src/verify/types.js'
import { testDatabase } from './helpers/db.js'
import { createVerifyFixture, verifyAfter } from './helpers/verify-fixture.js'

const run = promisify(execFile)
/** The ANSI escape character. */
const ESC = '\u001b'
const db = await testDatabase(import.meta.url)
const fx = await createVerifyFixture(db)

// One report with findings of every severity and failed probe checks: RLS off on app.invoices (errors),
// the policy of app.projects TO PUBLIC (a warning), and the fixture's own info findings.
const report: VerifyReport = await verifyAfter(
  fx,
  'DROP POLICY tenant_isolation ON app.invoices; ALTER TABLE app.invoices DISABLE ROW LEVEL SECURITY; ALTER POLICY tenant_isolation ON app.projects TO PUBLIC;',
)
const clean: VerifyReport = await verifyAfter(fx, '')

test('the report under test has errors, warnings, info and failed probe checks', () => {
  assert.ok(report.summary.error > 0 && report.summary.warn > 0 && report.summary.info > 0 && report.summary.checks.fail > 0)
})

test('text: grouped by severity (errors, then warnings, then info), each rule with why and fix SQL, then the probe per table', () => {
  const text = renderReport(report, 'text', { color: false, failOn: 'error' })
  assert.ok(!text.includes(ESC))
  const [e, w, i] = [text.indexOf('\nERRORS ('), text.indexOf('\nWARNINGS ('), text.indexOf('\nINFO (')]
  assert.ok(e > 0 && e < w && w < i, 'severity groups out of order')
  assert.match(text, /✖ rls-disabled \(1\) docs\/rules\.md#rls-disabled\n {2}why: .+\n {2}• row-level security is disabled on direct table app\.invoices\n {6}ALTER TABLE "app"\."invoices" ENABLE ROW LEVEL SECURITY;/)
  assert.match(text, /⚠ policy-to-public \(1\)/)
  assert.match(text, /PROBE as "[^"]+" \(SET ROLE from "[^"]+", context tenantize\.tenant_id, rolled back\): \d+ passed, \d+ failed, \d+ skipped/)
  assert.match(text, /✖ app\.invoices {2}\d+ passed · \d+ failed: .*read-other/)
  assert.match(text, /✔ app\.projects {2}\d+ passed/)
  assert.match(text, /✖ \d+ error\(s\), \d+ warning\(s\), \d+ info — fails --fail-on error\n$/)
  assert.match(renderReport(clean, 'text', { color: false, failOn: 'error' }), /✔ 0 error\(s\), 0 warning\(s\), \d+ info — passes --fail-on error\n$/)
})

test('text on a TTY is colored: errors red, warnings yellow, passes green', () => {
  const text = renderReport(report, 'text', { color: true, failOn: 'error' })
  assert.ok(text.includes(`${ESC}[31m${ESC}[1mERRORS`))
  assert.ok(text.includes(`${ESC}[33m${ESC}[1mWARNINGS`))
  assert.ok(text.includes(`${ESC}[32m  ✔${ESC}[0m app.projects`))
})

test('json: version 1 of the documented schema, with every finding\'s rule, object, why, fix and docs', () => {
  const parsed: unknown = JSON.parse(renderReport(report, 'json'))
  const checked = reportSchema.parse(parsed)
  assert.equal(checked.kind, 'tenantize.verify')
  assert.equal(checked.schemaVersion, 1)
  assert.deepEqual(checked, JSON.parse(JSON.stringify(report)))
  assert.ok(checked.findings.every((f) => f.docs.startsWith('docs/rules.md#') && f.fix.length > 0))
  const schema = reportJsonSchema()
  assert.equal(schema['$schema'], 'https://json-schema.org/draft/2020-12/schema')
  assert.deepEqual(Object.keys(schema['properties'] as object).sort(), Object.keys(report).sort())
})

/** Minimal well-formedness: every tag closes in order. */
function assertWellFormed(xml: string): void {
  const stack: string[] = []
  for (const m of xml.replace(/<\?xml[^>]*\?>/, '').matchAll(/<(\/?)([a-z-]+)[^>]*?(\/?)>/g)) {
    if (m[3] === '/') continue
    if (m[1] === '/') assert.equal(stack.pop(), m[2], `unbalanced </${m[2]}>`)
    else stack.push(m[2]!)
  }
  assert.deepEqual(stack, [])
}

test('junit: one testcase per table × probe check and per tenant table × table rule, failures where verify failed', () => {
  const xml = renderReport(report, 'junit')
  assertWellFormed(xml)
  const probe = report.probe!
  const probeCases = [...xml.matchAll(/<testcase classname="probe\.([^"]+)" name="([^"]+)"/g)].map((m) => `${m[1]} ${m[2]}`)
  assert.deepEqual(probeCases.sort(), probe.checks.map((c) => `${c.table} ${c.check}`).sort())
  const tableRules = report.rules.filter((r) => r.scope === 'table').length
  const tenantTables = report.model.tables.filter((t) => t.class !== 'global').length
  assert.equal((xml.match(/<testcase classname="lint\.app\.[^"]+"/g) ?? []).length, tenantTables * tableRules)
  assert.match(xml, /<testcase classname="lint\.app\.invoices" name="rls-disabled">\s*<failure type="error" message="row-level security is disabled on direct table app\.invoices">/)
  assert.match(xml, /<testcase classname="probe\.app\.invoices" name="read-other">\s*<failure type="error"/)
  assert.match(xml, /<testcase classname="probe\.app\.organizations" name="join">\s*<skipped message="/)
  const failures = Number(/<testsuites [^>]*failures="(\d+)"/.exec(xml)![1])
  assert.equal(failures, (xml.match(/<failure /g) ?? []).length)
  assert.ok(failures >= probe.checks.filter((c) => c.status === 'fail').length)
})

test('html: self-contained (no scripts, no external assets) and rendered by headless Chromium with summary, matrix and fixes', async () => {
  const html = renderReport(report, 'html')
  assert.doesNotMatch(html, /<script|<link|\bsrc=|@import|url\(|https?:\/\//i)
  const dir = await mkdtemp(join(tmpdir(), 'tz-verify-html-'))
  after(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'report.html')
  await writeFile(file, html)
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', `--user-data-dir=${join(dir, 'profile')}`, '--dump-dom', pathToFileURL(file).href]
  const { stdout } = await run('/usr/bin/chromium', args, { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 }).catch((error: Error) => {
    throw new Error(`headless Chromium failed (Debian package "chromium": apt-get install -y chromium): ${error.message}`)
  })
  const dom = stdout
  assert.match(dom, new RegExp(`<title>tenantize verify — ${db.name}</title>`))
  assert.match(dom, new RegExp(`<div class="card"><b class="error">${report.summary.error}</b>errors</div>`))
  assert.match(dom, /<table class="matrix" id="matrix">/)
  for (const t of report.model.tables.filter((x) => x.class !== 'global')) assert.ok(dom.includes(`<td><code>${t.table}</code></td>`), t.table)
  assert.match(dom, /<td class="cell fail" title="read-other: tenant A reads 1 of tenant B's rows in app\.invoices">✖<\/td>/)
  assert.match(dom, /data-rule="rls-disabled"/)
  assert.match(dom, /<pre>ALTER TABLE "app"\."invoices" ENABLE ROW LEVEL SECURITY;/)
  assert.match(dom, /data-rule="probe-read-other"/)
})
