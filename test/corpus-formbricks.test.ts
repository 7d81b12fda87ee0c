import { test } from 'node:test'
import { corpusConversion } from './helpers/corpus.js'
import { testDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)

test('formbricks (Prisma migrations; existing tenant table "Organization" with text ids, workspaces under it): converted while the old app writes, isolated, rolled back to what it was', (t) =>
  corpusConversion(t, db, 'formbricks', { verifyWithConfig: true }))
