import { test } from 'node:test'
import assert from 'node:assert/strict'
import { LINT_RULES } from '../src/verify/lints/index.js'
import { LINT_CASES } from './fixtures/verify/lint-cases.js'
import { testDatabase } from './helpers/db.js'
import { createVerifyFixture, fixtureClient, registerLintCases } from './helpers/verify-fixture.js'

// Lint rules of the row-level security, app role and policy groups: one test where each fires, one where
// it does not. The other groups are in verify-lints-objects.test.ts (the files run in parallel).
const GROUPS = new Set(['row-level security', 'app role', 'policies'])

const db = await testDatabase(import.meta.url)
const fx = await createVerifyFixture(db)
const client = await fixtureClient(db)

test('there are at least 40 lint rules, each with a unique kebab-case id, docs line, reason and fix hint', () => {
  assert.ok(LINT_RULES.length >= 40, `only ${LINT_RULES.length} rules`)
  assert.equal(new Set(LINT_RULES.map((r) => r.id)).size, LINT_RULES.length)
  for (const r of LINT_RULES) {
    assert.match(r.id, /^[a-z]+(-[a-z0-9]+)*$/, r.id)
    assert.ok(r.summary.length > 10 && r.why.length > 10 && r.fixHint.length > 5, r.id)
  }
})

test('every lint rule has a fixture case that makes it fire', () => {
  const covered = new Set(LINT_CASES.map((c) => c.rule))
  assert.deepEqual(LINT_RULES.map((r) => r.id).filter((id) => !covered.has(id)), [])
  assert.deepEqual(LINT_CASES.map((c) => c.rule).filter((id) => !LINT_RULES.some((r) => r.id === id)), [])
})

registerLintCases(client, fx, GROUPS)
