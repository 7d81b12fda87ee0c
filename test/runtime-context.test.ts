import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { inspect } from 'node:util'
import {
  assertSameTenant,
  createTenantContext,
  currentTenant,
  InvalidTenantIdError,
  parseTenantId,
  requireTenant,
  SystemContextError,
  TenantAccessError,
  TenantContextConflictError,
  TenantContextMissingError,
  TenantRuntimeError,
  TenantRuntimeErrorCodes,
  isTenantRuntimeError,
  withTenant,
  type TenantIdType,
} from '../src/runtime/index.js'

const A = '6f1c2a4e-1b7d-4c3e-9a55-0d2f9e8b7a61'
const B = 'b0e5d9c8-3f2a-4e1b-8c7d-6a5b4c3d2e1f'

/** Everything a logger might print of an error. */
function printed(error: unknown): string {
  const e = error as Error
  return [e.message, String(e), e.stack ?? '', inspect(e, { depth: 5, showHidden: true }), JSON.stringify(e)].join('\n')
}

test('withTenant makes the tenant current across awaits and timers, and only inside', async () => {
  assert.equal(currentTenant(), undefined)
  const seen = await withTenant(A, async () => {
    const before = currentTenant()
    await sleep(1)
    const afterTimer = await new Promise<string | undefined>((resolve) => setTimeout(() => resolve(currentTenant()), 1))
    const inParallel = await Promise.all([1, 2, 3].map(async () => { await sleep(1); return requireTenant() }))
    return { before, afterTimer, inParallel }
  })
  assert.deepEqual(seen, { before: A, afterTimer: A, inParallel: [A, A, A] })
  assert.equal(currentTenant(), undefined)
})

test('withTenant returns what fn returns, synchronously for a synchronous fn', () => {
  assert.equal(withTenant(A, () => requireTenant().length), 36)
})

test('requireTenant outside any context throws TenantContextMissingError', () => {
  assert.throws(() => requireTenant(), (error: unknown) => {
    assert.ok(error instanceof TenantContextMissingError)
    assert.ok(error instanceof TenantRuntimeError)
    assert.equal(error.code, 'TZ_TENANT_CONTEXT_MISSING')
    return true
  })
})

test('concurrent flows each see only their own tenant', async () => {
  const ids = Array.from({ length: 20 }, () => randomUUID())
  const results = await Promise.all(
    Array.from({ length: 400 }, (_, i) => {
      const id = ids[i % ids.length]!
      return withTenant(id, async () => {
        const seen: (string | undefined)[] = []
        for (let step = 0; step < 3; step++) {
          await sleep((i * 7 + step) % 3)
          seen.push(currentTenant())
        }
        return { id, seen }
      })
    }),
  )
  for (const { id, seen } of results) assert.deepEqual(seen, [id, id, id])
})

test('nesting the same tenant is fine, in any uuid spelling', async () => {
  const inner = await withTenant(A, () => withTenant(A.toUpperCase(), async () => requireTenant()))
  assert.equal(inner, A)
})

test('nesting a different tenant throws TenantContextConflictError before fn runs', () => {
  let ran = false
  withTenant(A, () => {
    assert.throws(
      () => withTenant(B, () => { ran = true }),
      (error: unknown) => error instanceof TenantContextConflictError && error.code === 'TZ_TENANT_CONTEXT_CONFLICT',
    )
    assert.equal(currentTenant(), A)
  })
  assert.equal(ran, false)
})

test('allowNested switches tenant for the inner fn only', async () => {
  const seen = await withTenant(A, async () => {
    const inner = await withTenant(B, async () => { await sleep(1); return currentTenant() }, { allowNested: true })
    return { inner, outer: currentTenant() }
  })
  assert.deepEqual(seen, { inner: B, outer: A })
})

test('sequential contexts do not interfere', async () => {
  assert.equal(await withTenant(A, async () => currentTenant()), A)
  assert.equal(currentTenant(), undefined)
  assert.equal(await withTenant(B, async () => currentTenant()), B)
  assert.equal(currentTenant(), undefined)
})

test('assertSameTenant passes for the current tenant and throws TenantAccessError otherwise', () => {
  withTenant(A, () => {
    assertSameTenant(A)
    assertSameTenant(A.toUpperCase())
    for (const other of [B, 'not-a-uuid', '']) {
      assert.throws(() => assertSameTenant(other), (error: unknown) => error instanceof TenantAccessError && error.code === 'TZ_TENANT_ACCESS')
    }
    assert.throws(() => assertSameTenant(null as unknown as string), TenantAccessError)
  })
  assert.throws(() => assertSameTenant(A), TenantAccessError)
})

test('assertSameTenant compares bigint ids in canonical form', () => {
  const tenants = createTenantContext({ idType: 'bigint' })
  tenants.withTenant('0042', () => {
    assert.equal(tenants.currentTenant(), '42')
    tenants.assertSameTenant('42')
    assert.throws(() => tenants.assertSameTenant('43'), TenantAccessError)
  })
})

const VALID: Record<TenantIdType, [string, string][]> = {
  uuid: [
    [A, A],
    [A.toUpperCase(), A],
    ['00000000-0000-0000-0000-000000000000', '00000000-0000-0000-0000-000000000000'],
  ],
  bigint: [
    ['0', '0'],
    ['42', '42'],
    ['000123', '123'],
    ['9223372036854775807', '9223372036854775807'],
  ],
  text: [
    ['acme', 'acme'],
    ["x'); DROP TABLE items; --", "x'); DROP TABLE items; --"],
    ['ünïcödé 表 🚀', 'ünïcödé 表 🚀'],
    ['🚀'.repeat(256), '🚀'.repeat(256)],
  ],
}

const INVALID: Record<TenantIdType, unknown[]> = {
  uuid: [
    "x'); DROP TABLE items; --",
    '',
    'not-a-uuid',
    `{${A}}`,
    A.replaceAll('-', ''),
    `${A}\n`,
    ` ${A}`,
    `${A.slice(0, -1)}g`,
    42,
    null,
    undefined,
    { id: A },
  ],
  bigint: ['', '-1', '+1', ' 1', '1 ', '1e3', '0x10', '1.0', '9223372036854775808', '99999999999999999999', "1; DROP TABLE items; --", 42, 42n],
  text: ['', 'a'.repeat(257), 'a\0b', 'line\nbreak', 'tab\there', 'del\u007f', 'c1\u0085', 'lone\ud800surrogate', 7],
}

test('parseTenantId accepts valid ids of each type and returns the canonical form', () => {
  for (const [idType, cases] of Object.entries(VALID) as [TenantIdType, [string, string][]][]) {
    for (const [input, canonical] of cases) assert.equal(parseTenantId(input, idType), canonical, `${idType}: ${input}`)
  }
  assert.equal(parseTenantId(A), A, 'uuid is the default')
})

test('invalid ids throw InvalidTenantIdError, from parseTenantId and from withTenant before fn runs', () => {
  for (const [idType, cases] of Object.entries(INVALID) as [TenantIdType, unknown[]][]) {
    const tenants = createTenantContext({ idType })
    for (const input of cases) {
      const label = `${idType}: ${inspect(input)}`
      assert.throws(() => parseTenantId(input, idType), InvalidTenantIdError, label)
      let ran = false
      assert.throws(
        () => tenants.withTenant(input as string, () => { ran = true }),
        (error: unknown) => error instanceof InvalidTenantIdError && error.code === 'TZ_INVALID_TENANT_ID' && error.idType === idType,
        label,
      )
      assert.equal(ran, false, label)
    }
  }
})

test('error messages, toString, stack, inspect and JSON never contain the tenant id', () => {
  const secrets = [
    "x'); DROP TABLE items; --",
    'not-a-uuid-but-secret',
    '9223372036854775808',
    'secret\nwith newline',
    'a'.repeat(300),
  ]
  const tenants = { uuid: createTenantContext(), bigint: createTenantContext({ idType: 'bigint' }), text: createTenantContext({ idType: 'text' }) }
  let checked = 0
  for (const secret of secrets) {
    for (const context of Object.values(tenants)) {
      try {
        context.withTenant(secret, () => undefined)
        continue // valid for this type
      } catch (error) {
        assert.ok(error instanceof InvalidTenantIdError)
        assert.ok(!printed(error).includes(secret), `InvalidTenantIdError leaks ${JSON.stringify(secret)}`)
        checked++
      }
    }
  }
  assert.ok(checked >= secrets.length)

  const conflict = withTenant(A, () => {
    try {
      withTenant(B, () => undefined)
    } catch (error) {
      return error
    }
    return undefined
  })
  assert.ok(conflict instanceof TenantContextConflictError)
  const access = withTenant(A, () => {
    try {
      assertSameTenant(B)
    } catch (error) {
      return error
    }
    return undefined
  })
  assert.ok(access instanceof TenantAccessError)
  for (const error of [conflict, access]) {
    const text = printed(error)
    assert.ok(!text.includes(A) && !text.includes(B), `${(error as Error).name} leaks a tenant id`)
  }
})

test('contexts share one current tenant: nesting rules hold across id types', () => {
  const text = createTenantContext({ idType: 'text' })
  text.withTenant('acme', () => {
    assert.equal(currentTenant(), 'acme')
    assert.throws(() => withTenant(A, () => undefined), TenantContextConflictError)
    assert.equal(withTenant(A, () => currentTenant(), { allowNested: true }), A)
  })
})

test('createTenantContext rejects an unknown id type', () => {
  assert.throws(() => createTenantContext({ idType: 'int' as TenantIdType }), /unknown tenant id type "int"/)
})

test('every runtime error has its stable code and is a TenantRuntimeError', () => {
  const errors: [TenantRuntimeError, string][] = [
    [new TenantContextMissingError(), 'TZ_TENANT_CONTEXT_MISSING'],
    [new TenantContextConflictError(), 'TZ_TENANT_CONTEXT_CONFLICT'],
    [new TenantAccessError(), 'TZ_TENANT_ACCESS'],
    [new InvalidTenantIdError('uuid', 'bad'), 'TZ_INVALID_TENANT_ID'],
    [new SystemContextError('no system pool'), 'TZ_SYSTEM_CONTEXT'],
  ]
  for (const [error, code] of errors) {
    assert.equal(error.code, code)
    assert.ok(isTenantRuntimeError(error))
    assert.ok(error instanceof Error)
    assert.match(String(error), new RegExp(`^${error.name}: `))
    assert.deepEqual(error.toJSON(), { name: error.name, code, message: error.message })
  }
  assert.deepEqual(new Set(Object.values(TenantRuntimeErrorCodes)), new Set(errors.map(([, code]) => code)))
  assert.equal(isTenantRuntimeError(new Error('x')), false)
})
