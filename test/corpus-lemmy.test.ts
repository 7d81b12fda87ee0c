import { test } from 'node:test'
import { corpusConversion } from './helpers/corpus.js'
import { testDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)

test('Lemmy (Rust, diesel migrations + replaceable schema r): converted while the old app writes, isolated, rolled back to what it was', (t) =>
  corpusConversion(t, db, 'lemmy', {
    lifecycleTodo: 'FINDINGS F27: Lemmy\'s triggers write the *_combined rows themselves, so the import\'s copies of them collide; F28: its require_uplete trigger refuses the plain DELETE a tenant delete runs on the *_actions tables',
  }))
