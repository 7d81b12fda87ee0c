import { testDatabase } from './helpers/db.js'
import { createVerifyFixture, fixtureClient, registerLintCases } from './helpers/verify-fixture.js'

// Lint rules of the performance, function, relation, integrity, grant and server groups: one test where each fires, one where
// it does not. The other groups are in verify-lints-rls.test.ts (the files run in parallel).
const GROUPS = new Set(['performance', 'functions and triggers', 'views and other relations', 'keys and integrity', 'grants and sequences', 'server'])

const db = await testDatabase(import.meta.url)
const fx = await createVerifyFixture(db)
const client = await fixtureClient(db)

registerLintCases(client, fx, GROUPS)
