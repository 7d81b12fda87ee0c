import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { MUTATIONS } from '../fixtures/verify/mutations.js'
import { testDatabase } from './db.js'
import { caseRoles, createVerifyFixture, verifyAfter, type VerifyFixture } from './verify-fixture.js'

/**
 * One part of the mutation suite (every `parts`-th mutation, so the parts run in parallel as separate
 * files): break one protection of the tenantized fixture at a time; verify must report it. Registers a
 * test per mutation and one for this part's score, which must be 100%.
 */
export async function runMutationPart(fileUrl: string, part: number, parts: number): Promise<VerifyFixture> {
  const db = await testDatabase(fileUrl)
  const fx = await createVerifyFixture(db)
  const mine = MUTATIONS.filter((_, i) => i % parts === part)
  const killed: string[] = []
  for (const m of mine) {
    test(`mutation ${m.id}: breaking ${m.breaks} is reported as ${m.expect.join(', ')}`, async () => {
      const report = await verifyAfter(fx, m.sql(caseRoles(fx)))
      const reported = new Set(report.findings.map((f) => f.rule))
      const missing = m.expect.filter((rule) => !reported.has(rule))
      assert.deepEqual(missing, [], `not reported: ${missing.join(', ')}; reported: ${[...reported].sort().join(', ')}`)
      killed.push(m.id)
    })
  }
  test(`mutation score (part ${part + 1} of ${parts}) is 100%`, (t) => {
    const line = `mutation score, part ${part + 1} of ${parts}: ${killed.length}/${mine.length} killed (${Math.round((100 * killed.length) / mine.length)}%), ${MUTATIONS.length} mutations in all`
    t.diagnostic(line)
    assert.equal(killed.length, mine.length, line)
  })
  after(() => console.log(`# mutation score, part ${part + 1} of ${parts}: ${killed.length}/${mine.length}`))
  return fx
}
