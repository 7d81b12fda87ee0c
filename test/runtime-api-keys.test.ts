import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, createHmac, randomUUID } from 'node:crypto'
import { createApiKeyStore } from '../src/runtime/api-keys.js'
import { TenantContextMissingError, tenantPool, withTenant } from '../src/runtime/index.js'
import { blockDatabase } from './helpers/blocks.js'

const { db, appPool, systemPool, a: A, b: B } = await blockDatabase(import.meta.url, 'api-keys')

const keys = createApiKeyStore({ db: tenantPool(appPool), system: systemPool })

interface StoredKey {
  prefix: string
  secret_hash: Buffer
  usage_count: string
  last_used_at: Date | null
}
const stored = async (id: string): Promise<StoredKey> => (await db.sql<StoredKey>('SELECT prefix, secret_hash, usage_count::text, last_used_at FROM api_keys WHERE id = $1', [id]))[0]!

test('create shows the key once; the table keeps only its prefix and SHA-256 hash', async () => {
  const created = await withTenant(A, () => keys.create({ name: 'CI', scopes: ['reports:read'], createdBy: 'alice' }))
  assert.match(created.key, /^tz_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/)
  assert.equal(created.key.slice(3, 19), created.prefix)
  const row = await stored(created.id)
  assert.equal(row.prefix, created.prefix)
  assert.deepEqual(row.secret_hash, createHash('sha256').update(created.key).digest())
  const everything = JSON.stringify(await db.sql('SELECT * FROM api_keys'))
  assert.ok(!everything.includes(created.key.slice(20)), 'the secret is not stored')
  const listed = await withTenant(A, () => keys.list())
  assert.deepEqual(listed.map((k) => [k.id, k.name, k.prefix, k.scopes, k.createdBy, k.usageCount, k.revokedAt]), [[created.id, 'CI', created.prefix, ['reports:read'], 'alice', 0, null]])
  assert.ok(!JSON.stringify(listed).includes(created.key.slice(20)))
})

test('verify: a valid key names its tenant and scopes and records the use', async () => {
  const created = await withTenant(B, () => keys.create({ name: 'deploy', scopes: ['reports:*', 'dashboard:read'] }))
  assert.deepEqual(await keys.verify(created.key), { valid: true, keyId: created.id, tenantId: B, scopes: ['reports:*', 'dashboard:read'] })
  await keys.verify(created.key)
  const row = await stored(created.id)
  assert.equal(row.usage_count, '2')
  assert.ok(row.last_used_at instanceof Date)
})

test('verify: malformed, unknown and tampered keys are refused and nothing is written', async () => {
  const created = await withTenant(A, () => keys.create({ name: 'tampered' }))
  const tampered = created.key.slice(0, -1) + (created.key.endsWith('A') ? 'B' : 'A')
  assert.deepEqual(await keys.verify(tampered), { valid: false, reason: 'unknown' })
  assert.deepEqual(await keys.verify(`tz_${'0'.repeat(16)}_${'A'.repeat(43)}`), { valid: false, reason: 'unknown' })
  for (const bad of ['', 'tz_', `sk_${created.key.slice(3)}`, `${created.key} `, "tz_' OR 1=1 --", created.key.toUpperCase(), 42 as unknown as string]) {
    assert.deepEqual(await keys.verify(bad), { valid: false, reason: 'malformed' })
  }
  assert.equal((await stored(created.id)).usage_count, '0')
})

test('revoke: the tenant revokes its own key; verify refuses it without recording a use', async () => {
  const created = await withTenant(A, () => keys.create({ name: 'to revoke' }))
  assert.equal(await withTenant(B, () => keys.revoke(created.id)), false, "another tenant cannot revoke A's key")
  assert.equal((await keys.verify(created.key)).valid, true)
  assert.equal(await withTenant(A, () => keys.revoke(created.id, { revokedBy: 'alice' })), true)
  assert.equal(await withTenant(A, () => keys.revoke(created.id)), false, 'already revoked')
  assert.equal(await withTenant(A, () => keys.revoke("'; DROP TABLE api_keys; --")), false)
  assert.deepEqual(await keys.verify(created.key), { valid: false, reason: 'revoked' })
  assert.equal((await stored(created.id)).usage_count, '1')
})

test('expiry: an expired key is refused without recording a use', async () => {
  const created = await withTenant(A, () => keys.create({ name: 'short-lived', expiresAt: new Date(Date.now() + 60_000) }))
  assert.equal((await keys.verify(created.key)).valid, true)
  await db.sql(`UPDATE api_keys SET created_at = now() - interval '2 days', expires_at = now() - interval '1 day' WHERE id = $1`, [created.id])
  assert.deepEqual(await keys.verify(created.key), { valid: false, reason: 'expired' })
  assert.equal((await stored(created.id)).usage_count, '1')
})

test('tenants list only their own keys', async () => {
  const a = await withTenant(A, () => keys.list())
  const b = await withTenant(B, () => keys.list())
  assert.deepEqual(b.map((k) => k.name), ['deploy'])
  assert.ok(a.length >= 4 && !a.some((k) => k.name === 'deploy'))
})

test('create, list and revoke need a tenant; bad input is refused before any SQL', async () => {
  await assert.rejects(keys.create({ name: 'x' }), TenantContextMissingError)
  await assert.rejects(keys.list(), TenantContextMissingError)
  await assert.rejects(keys.revoke(randomUUID()), TenantContextMissingError)
  await withTenant(A, async () => {
    await assert.rejects(keys.create({ name: '' }), /name/)
    await assert.rejects(keys.create({ name: 'x', scopes: ['read everything'] }), /malformed scopes/)
    await assert.rejects(keys.create({ name: 'x', expiresAt: new Date(Date.now() - 1000) }), /future/)
  })
  assert.throws(() => createApiKeyStore({ db: systemPool, system: systemPool, label: 'Bad_Label' }), TypeError)
  assert.throws(() => createApiKeyStore({ db: systemPool, system: systemPool, pepper: '' }), TypeError)
})

test('with a pepper keys are HMAC-SHA-256 hashed, and only a store with the same pepper accepts them', async () => {
  const peppered = createApiKeyStore({ db: tenantPool(appPool), system: systemPool, pepper: 'server-side secret', label: 'acme' })
  const created = await withTenant(A, () => peppered.create({ name: 'peppered' }))
  assert.match(created.key, /^acme_[0-9a-f]{16}_/)
  assert.deepEqual((await stored(created.id)).secret_hash, createHmac('sha256', 'server-side secret').update(created.key).digest())
  assert.equal((await peppered.verify(created.key)).valid, true)
  assert.deepEqual(await createApiKeyStore({ db: tenantPool(appPool), system: systemPool, label: 'acme' }).verify(created.key), { valid: false, reason: 'unknown' })
})
