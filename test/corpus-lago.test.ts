import { test } from 'node:test'
import { corpusConversion } from './helpers/corpus.js'
import { testDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)

// Open: F17 (test/fixtures/corpus/FINDINGS.md) — the probe cannot seed 7 tables whose CHECK asks for exactly one
// of two parent keys (`(plan_id IS NOT NULL) <> (subscription_id IS NOT NULL)`), so verify reports them unprobed (exit 1, as it must). Until the
// seeder fills such CHECKs, the run is a todo: it runs and reports, and does not fail the suite.
test('lago (Rails, db/structure.sql; existing tenant table organizations, organization_id columns): converted while the old app writes, isolated, rolled back to what it was', { todo: 'F17: verify cannot seed tables with an exactly-one-parent CHECK' }, (t) => corpusConversion(t, db, 'lago'))
