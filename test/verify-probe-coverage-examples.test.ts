import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Generate } from '../examples/shared/generator.js'
import { generate as energyBilling } from '../examples/energy-billing/generate.js'
import { generate as impactCockpit } from '../examples/impact-cockpit/generate.js'
import { generate as inventory } from '../examples/inventory/generate.js'
import { generate as sellout } from '../examples/sellout/generate.js'
import { apply } from '../src/apply/index.js'
import { modelOptionsFrom } from '../src/cli/commands/verify.js'
import { exitCodeFor, verify } from '../src/verify/index.js'
import type { VerifyReport } from '../src/verify/types.js'
import { testDatabase } from './helpers/db.js'
import { exampleConfig, fast, loadExample } from './helpers/examples.js'

// Issue #11: after `tenantize apply`, verify probes every tenant table of every example — none is left
// unprobed (which would now fail verify) — and nothing apply built is reported at error level.

const EXAMPLES: Record<string, Generate> = { 'energy-billing': energyBilling, 'impact-cockpit': impactCockpit, inventory, sellout }
const db = await testDatabase(import.meta.url)

// Every example converted before any test is declared (the runner may end the file once declared tests are done).
const reports = new Map<string, VerifyReport>()
for (const [example, gen] of Object.entries(EXAMPLES)) {
  const t = await db.another(`cov-${example}`)
  await loadExample(t, example, gen)
  const config = await exampleConfig(t, example)
  await apply({ databaseUrl: t.url, config, phase: 'schema', timeouts: fast })
  await apply({ databaseUrl: t.url, config, phase: 'enforce', timeouts: fast })
  reports.set(example, await verify({ databaseUrl: t.url, ...modelOptionsFrom(config) }))
}

for (const example of Object.keys(EXAMPLES)) {
  test(`${example}: after apply every tenant table is probed with rows of both tenants, and verify passes`, () => {
    const report = reports.get(example)!
    const probe = report.probe!
    const tenantTables = report.model.tables.filter((t) => t.class !== 'global').length
    assert.ok(tenantTables >= 7, `${example} has ${tenantTables} tenant tables`)
    assert.deepEqual(probe.unprobed, [])
    assert.equal(report.summary.unprobed, 0)
    assert.equal(probe.seeded.filter((s) => s.rows >= 2).length, probe.seeded.length)
    assert.deepEqual(report.findings.filter((f) => f.severity === 'error').map((f) => `${f.rule} ${f.object}: ${f.message}`), [])
    assert.equal(exitCodeFor(report, 'error'), 0)
  })
}
