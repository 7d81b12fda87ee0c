import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { MUTATIONS } from './fixtures/verify/mutations.js'
import { testDatabase } from './helpers/db.js'
import { caseRoles, createVerifyFixture, verifyAfter } from './helpers/verify-fixture.js'

// The mutation suite, part 3 of 3 (every third mutation, so the parts run in parallel): break one
// protection of the tenantized fixture at a time; verify must report it. Prints this part's score.
const PART = 2
const PARTS = 3

const db = await testDatabase(import.meta.url)
const fx = await createVerifyFixture(db)
const mine = MUTATIONS.filter((_, i) => i % PARTS === PART)
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

test(`mutation score (part ${PART + 1} of ${PARTS}) is 100%`, (t) => {
  const line = `mutation score, part ${PART + 1} of ${PARTS}: ${killed.length}/${mine.length} killed (${Math.round((100 * killed.length) / mine.length)}%), ${MUTATIONS.length} mutations in all`
  t.diagnostic(line)
  assert.equal(killed.length, mine.length, line)
})

after(() => console.log(`# mutation score, part ${PART + 1} of ${PARTS}: ${killed.length}/${mine.length}`))
