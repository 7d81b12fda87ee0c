import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { LINT_RULES } from '../src/verify/lints/index.js'
import { POOLER_CHECKS, PROBE_CHECKS, PROBE_META } from '../src/verify/probe/registry.js'
import { rulesMarkdown, withReportSchema } from '../src/verify/rules-doc.js'

test('docs/rules.md is generated from the rule registries (run npx tsx scripts/gen-rules-docs.ts after changing a rule)', async () => {
  assert.equal(await readFile('docs/rules.md', 'utf8'), rulesMarkdown())
})

test('docs/verify.md shows the current JSON Schema of the report', async () => {
  const doc = await readFile('docs/verify.md', 'utf8')
  assert.equal(withReportSchema(doc), doc)
})

test('every rule id a finding can carry has a heading in docs/rules.md, so its docs link resolves', async () => {
  const doc = await readFile('docs/rules.md', 'utf8')
  const ids = [
    ...LINT_RULES.map((r) => r.id),
    ...PROBE_CHECKS.map((c) => `probe-${c.id}`),
    ...PROBE_META.map((c) => c.id),
    ...POOLER_CHECKS.map((c) => `pooler-${c.id}`),
  ]
  assert.deepEqual(ids.filter((id) => !doc.includes(`### \`${id}\``)), [])
})

test('docs/verify.md documents every flag of tenantize verify', async () => {
  const doc = await readFile('docs/verify.md', 'utf8')
  for (const flag of ['--db', '--config', '--app-role', '--tenant-column', '--setting', '--format', '--out', '--fail-on', '--pooler-url', '--no-probe', '--statement-timeout']) {
    assert.ok(doc.includes(`\`${flag}`), flag)
  }
})
