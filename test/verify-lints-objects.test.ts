import { test } from 'node:test'
import assert from 'node:assert/strict'
import { LINT_RULES } from '../src/verify/lints/index.js'
import { LINT_CASES } from './fixtures/verify/lint-cases.js'
import { testDatabase } from './helpers/db.js'
import { createVerifyFixture, findingsOf, fixtureClient } from './helpers/verify-fixture.js'

// Lint rules of the performance, function, relation, integrity, grant and server groups: one test where each fires, one where
// it does not. The other groups are in verify-lints-rls.test.ts (the files run in parallel).
const GROUPS = new Set(['performance', 'functions and triggers', 'views and other relations', 'keys and integrity', 'grants and sequences', 'server'])

const db = await testDatabase(import.meta.url)
const fx = await createVerifyFixture(db)
const client = await fixtureClient(db)

const rules = new Map(LINT_RULES.map((r) => [r.id, r]))
for (const c of LINT_CASES.filter((x) => GROUPS.has(rules.get(x.rule)!.category))) {
  test(`${c.rule} fires when ${c.fires.title}`, async () => {
    const found = await findingsOf(client, fx, c.rule, c.fires)
    assert.ok(found.length > 0, `${c.rule} did not fire`)
    for (const f of found) {
      assert.equal(f.source, 'lint')
      assert.equal(f.docs, `docs/rules.md#${c.rule}`)
      assert.ok(f.fix.trim().length > 0 && f.why.length > 0 && f.message.length > 0)
    }
  })
  test(`${c.rule} does not fire ${c.clean === undefined ? 'on the tenantized fixture' : `when ${c.clean.title}`}`, async () => {
    const found = await findingsOf(client, fx, c.rule, c.clean ?? { sql: () => '' })
    assert.deepEqual(found.map((f) => f.message), [])
  })
}
