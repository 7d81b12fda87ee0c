import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Generate } from '../examples/shared/generator.js'
import { generate as energyBilling } from '../examples/energy-billing/generate.js'
import { generate as impactCockpit } from '../examples/impact-cockpit/generate.js'
import { generate as inventory } from '../examples/inventory/generate.js'
import { generate as sellout } from '../examples/sellout/generate.js'
import { apply, rollback } from '../src/apply/index.js'
import { testDatabase } from './helpers/db.js'
import { dataChecksums, schemaFingerprint } from './helpers/conversion.js'
import { SOAK, assertClean } from './helpers/crash.js'
import { exampleConfig, existingTables, fast, loadExample } from './helpers/examples.js'

/** apply → rollback → apply → rollback on every example: each apply ends the same, each rollback where it began (issue #12). */
const db = await testDatabase(import.meta.url)
const CYCLES = SOAK ? 5 : 2
const examples: Record<string, Generate> = { 'energy-billing': energyBilling, sellout, 'impact-cockpit': impactCockpit, inventory }

for (const [example, generate] of Object.entries(examples)) {
  test(`${example}: ${CYCLES} times apply then rollback, schema and data identical each time`, async () => {
    const t = await db.another(`rt_${example}`)
    await loadExample(t, example, generate)
    const config = await exampleConfig(t, example)
    const tables = existingTables(config)
    const start = { schema: await schemaFingerprint(t.url), data: await dataChecksums(t.url, tables) }
    let applied: { schema: string; data: Record<string, string> } | undefined
    for (let cycle = 1; cycle <= CYCLES; cycle++) {
      await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
      await assertClean(t)
      // A column dropped by rollback keeps its number: the tenant column comes back one position further each time.
      const now = { schema: (await schemaFingerprint(t.url)).replace(/\n *"position": \d+,/g, ''), data: await dataChecksums(t.url, tables) }
      assert.notEqual(now.schema, start.schema, 'apply changed the schema')
      if (applied === undefined) applied = now
      else assert.deepEqual(now, applied, `apply #${cycle} ends exactly as apply #1 did`)
      await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
      await assertClean(t)
      assert.equal(await schemaFingerprint(t.url), start.schema, `rollback #${cycle}: the schema as at the start`)
      assert.deepEqual(await dataChecksums(t.url, tables), start.data, `rollback #${cycle}: every row as at the start`)
    }
  })
}
