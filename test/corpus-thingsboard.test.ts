import { test } from 'node:test'
import { corpusConversion } from './helpers/corpus.js'
import { testDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)

test('thingsboard (Java/Spring, installer SQL; existing tenant table and tenant_id columns): converted while the old app writes, isolated, rolled back to what it was', (t) => corpusConversion(t, db, 'thingsboard'))
