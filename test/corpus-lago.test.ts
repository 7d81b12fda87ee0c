import { test } from 'node:test'
import { corpusConversion } from './helpers/corpus.js'
import { testDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)

// Every phase must pass: F17 (test/fixtures/corpus/FINDINGS.md) is fixed, and the generator writes the second
// tenant's public.roles rows (permissions, a varchar array that CHECK custom_role_should_have_permissions wants non-empty).
test('lago (Rails, db/structure.sql; existing tenant table organizations, organization_id columns): converted while the old app writes, isolated, rolled back to what it was', (t) =>
  corpusConversion(t, db, 'lago'))
