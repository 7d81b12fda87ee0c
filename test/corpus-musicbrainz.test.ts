import { test } from 'node:test'
import { corpusConversion } from './helpers/corpus.js'
import { testDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)

// npm test: the 161 tables of test/fixtures/corpus/musicbrainz/core.sql (a subset closed under foreign keys,
// one row per table: about a minute). npm run test:soak: all 375 tables (about three minutes).
const soak = process.env['TENANTIZE_TEST_SOAK'] === '1'

test(`musicbrainz${soak ? '' : ' (core: 161 of 375 tables)'} (Perl + hand-written SQL, admin/sql): converted while the old app writes, isolated, rolled back to what it was`, (t) =>
  corpusConversion(t, db, 'musicbrainz', { rows: 1, ...(soak ? {} : { cut: 'core.sql' }) }))
