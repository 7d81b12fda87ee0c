import { test } from 'node:test'
import { corpusConversion } from './helpers/corpus.js'
import { testDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)

test('roundcube (PHP webmail, hand-written SQL/postgres.initial.sql; existing tenant table users, integer user_id columns): converted while the old app writes, isolated, rolled back to what it was', (t) =>
  corpusConversion(t, db, 'roundcube'))
