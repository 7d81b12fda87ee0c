import { test } from 'node:test'
import { corpusConversion } from './helpers/corpus.js'
import { testDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)

test('Lemmy (Rust, diesel migrations + replaceable schema r): converted while the old app writes, isolated, rolled back to what it was', (t) =>
  corpusConversion(t, db, 'lemmy'))
