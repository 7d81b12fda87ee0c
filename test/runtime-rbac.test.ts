import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRbac, DEFAULT_ROLES, isPermissionGrant, assertCurrentCan } from '../src/runtime/rbac.js'
import { HttpProblemError, runWithAuth, type TenantAuth } from '../src/runtime/http/index.js'

const rbac = createRbac()

test('the default matrix has the four roles of seed 003, each including the one below', () => {
  assert.deepEqual(rbac.roles, ['viewer', 'manager', 'admin', 'super_admin'])
  assert.deepEqual(rbac.permissionsOf('viewer'), ['dashboard:read', 'reports:read'])
  assert.deepEqual(rbac.permissionsOf('manager'), ['dashboard:read', 'reports:export', 'reports:generate', 'reports:read'])
  assert.deepEqual(rbac.permissionsOf('admin'), [
    'api-keys:manage',
    'audit:read',
    'dashboard:read',
    'members:manage',
    'members:read',
    'reports:export',
    'reports:generate',
    'reports:read',
    'settings:manage',
  ])
  assert.ok(rbac.permissionsOf('super_admin').includes('*'))
  assert.deepEqual(rbac.permissionsOf('owner'), [])
  assert.ok(Object.isFrozen(DEFAULT_ROLES))
})

test('can: users by role, API keys by scopes, nobody without either', () => {
  assert.equal(rbac.can({ role: 'viewer' }, 'reports:read'), true)
  assert.equal(rbac.can({ role: 'viewer' }, 'reports:export'), false)
  assert.equal(rbac.can({ role: 'manager' }, 'reports:export'), true)
  assert.equal(rbac.can({ role: 'manager' }, 'members:manage'), false)
  assert.equal(rbac.can({ role: 'admin' }, 'members:manage'), true)
  assert.equal(rbac.can({ role: 'super_admin' }, 'billing:refund'), true)
  assert.equal(rbac.can({ role: 'owner' }, 'reports:read'), false)
  assert.equal(rbac.can({ role: 'toString' }, 'reports:read'), false)
  assert.equal(rbac.can({}, 'reports:read'), false)
  assert.equal(rbac.can(undefined, 'reports:read'), false)
  // an API key: only its scopes count, whatever the matrix says
  assert.equal(rbac.can({ kind: 'api-key', keyId: 'k', scopes: ['reports:*'] }, 'reports:export'), true)
  assert.equal(rbac.can({ kind: 'api-key', keyId: 'k', scopes: ['reports:read'] }, 'reports:export'), false)
  assert.equal(rbac.can({ kind: 'api-key', keyId: 'k', scopes: [] }, 'dashboard:read'), false)
  assert.equal(rbac.can({ kind: 'anonymous' }, 'dashboard:read'), false)
  assert.equal(rbac.can({ kind: 'user', userId: 'u', role: 'viewer', claims: {} }, 'dashboard:read'), true)
})

test('a custom matrix with resource wildcards and several parents', () => {
  const custom = createRbac({
    reader: { permissions: ['invoice:read'] },
    clerk: { permissions: ['invoice:create'] },
    accountant: { inherits: ['reader', 'clerk'], permissions: ['ledger:*'] },
  })
  assert.equal(custom.can({ role: 'accountant' }, 'invoice:create'), true)
  assert.equal(custom.can({ role: 'accountant' }, 'ledger:close'), true)
  assert.equal(custom.can({ role: 'accountant' }, 'invoice:delete'), false)
  assert.equal(custom.can({ role: 'clerk' }, 'invoice:read'), false)
})

test('a malformed matrix or permission is a TypeError when it is built or asked', () => {
  assert.throws(() => createRbac({}), TypeError)
  assert.throws(() => createRbac({ a: { permissions: ['read'] } }), /malformed permissions/)
  assert.throws(() => createRbac({ a: { permissions: ['x:y'], inherits: 'b' } }), /unknown role "b"/)
  assert.throws(() => createRbac({ a: { permissions: [], inherits: 'b' }, b: { permissions: [], inherits: 'a' } }), /inherits itself/)
  assert.throws(() => rbac.can({ role: 'admin' }, 'reports:*'), /not a permission name/)
  assert.throws(() => rbac.can({ role: 'admin' }, "x'; DROP TABLE y"), TypeError)
  assert.equal(isPermissionGrant('*'), true)
  assert.equal(isPermissionGrant('a:*'), true)
  assert.equal(isPermissionGrant('*:a'), false)
})

test('assertCan: 401 without a subject, 403 naming the missing permission', () => {
  assert.doesNotThrow(() => rbac.assertCan({ role: 'admin' }, 'audit:read'))
  assert.throws(() => rbac.assertCan(undefined, 'audit:read'), (e: unknown) => e instanceof HttpProblemError && e.status === 401 && e.code === 'TZ_HTTP_UNAUTHENTICATED')
  assert.throws(
    () => rbac.assertCan({ role: 'viewer' }, 'audit:read'),
    (e: unknown) => e instanceof HttpProblemError && e.status === 403 && e.code === 'TZ_HTTP_FORBIDDEN' && e.message === 'missing permission audit:read',
  )
})

test('assertCurrentCan reads the principal of the current request', () => {
  const auth: TenantAuth = { tenantId: '00000000-0000-4000-8000-000000000001', principal: { kind: 'user', userId: 'u', role: 'manager', claims: {} }, source: 'token', requestId: 'r' }
  runWithAuth(auth, () => {
    assert.doesNotThrow(() => assertCurrentCan(rbac, 'reports:export'))
    assert.throws(() => assertCurrentCan(rbac, 'members:manage'), HttpProblemError)
  })
  assert.throws(() => assertCurrentCan(rbac, 'reports:read'), (e: unknown) => e instanceof HttpProblemError && e.status === 401)
})
