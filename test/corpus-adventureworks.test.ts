import { test } from 'node:test'
import { corpusConversion } from './helpers/corpus.js'
import { testDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)

// npm test: the 32 tables of test/fixtures/corpus/adventureworks/core.sql (a subset closed under foreign keys:
// 22 s at load 12, 2.5 minutes at load 19). TENANTIZE_TEST_SOAK=1: all 68 tables (16 s at load 10, 3.5 minutes at
// load 19).
const soak = process.env['TENANTIZE_TEST_SOAK'] === '1'

test(`AdventureWorks for PostgreSQL${soak ? '' : ' (core: 32 of 68 tables)'} (classic sample, psql install script; five schemas, domains, 87 views, 2 materialized views): converted while the old app writes, isolated, rolled back to what it was`, (t) =>
  corpusConversion(t, db, 'adventureworks', soak ? {} : { cut: 'core.sql' }))
