import { test } from 'node:test'
import assert from 'node:assert/strict'
import { verifyAfter } from './helpers/verify-fixture.js'
import { runMutationPart } from './helpers/verify-mutations.js'

// The mutation suite, part 1 of 3 (see test/helpers/verify-mutations.ts), and the fixture it breaks.
const fx = await runMutationPart(import.meta.url, 0, 3)

test('the tenantized fixture itself: verify reports nothing at error level and every probe check passes or is skipped with a reason', async () => {
  const report = await verifyAfter(fx, '')
  assert.deepEqual(report.findings.filter((f) => f.severity === 'error').map((f) => `${f.rule} ${f.object}`), [])
  assert.deepEqual(report.probe?.checks.filter((c) => c.status === 'fail' || c.status === 'error').map((c) => `${c.table} ${c.check}: ${c.detail}`), [])
})
