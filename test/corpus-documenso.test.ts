import { test } from 'node:test'
import { corpusConversion } from './helpers/corpus.js'
import { testDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)

test('documenso (Prisma migrations; existing tenant table "Organisation" with text ids): converted while the old app writes, isolated, rolled back to what it was', (t) => corpusConversion(t, db, 'documenso', { verifyWithConfig: true }))
