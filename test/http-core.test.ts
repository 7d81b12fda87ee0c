import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { execFile } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose'
import pg from 'pg'
import {
  createTenantHttp,
  currentAuth,
  HttpErrorCodes,
  HttpProblemError,
  notFound,
  problemFromError,
  sqlMembership,
  toHttpProblem,
  type ApiKeyVerifier,
  type HttpRequestLike,
  type IsMember,
  type TenantHttpOptions,
} from '../src/runtime/http/index.js'
import { currentTenant, InvalidTenantIdError, TenantAccessError, TenantContextMissingError } from '../src/runtime/index.js'
import { testDatabase } from './helpers/db.js'

// The framework-independent core: credentials, tenant selection, membership, problems, logging.

const db = await testDatabase(import.meta.url)
const system = new pg.Pool({ connectionString: db.url, max: 2 })
system.on('error', () => undefined)
after(() => system.end())

const [A, B] = [randomUUID(), randomUUID()]
const SECRET = 'another test secret, 32 bytes or more'
const secretKey = new TextEncoder().encode(SECRET)

function req(headers: Record<string, string> = {}, hostname?: string): HttpRequestLike {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]))
  return { method: 'GET', hostname, header: (name) => lower[name] }
}

async function hs256(claims: Record<string, unknown>, setup: (jwt: SignJWT) => SignJWT = (j) => j.setExpirationTime('5m')): Promise<string> {
  return setup(new SignJWT(claims).setProtectedHeader({ alg: 'HS256' })).sign(secretKey)
}

async function problem(promise: Promise<unknown>): Promise<HttpProblemError> {
  try {
    await promise
  } catch (error) {
    assert.ok(error instanceof HttpProblemError, String(error))
    return error
  }
  assert.fail('expected an HttpProblemError')
}

const member = (...pairs: [string, string][]): IsMember => async (user, tenant) => pairs.some(([u, t]) => u === user && t === tenant)

test('a token names the user and the tenant; uuids come out in canonical form', async () => {
  const core = createTenantHttp({ jwt: { secret: SECRET } })
  const auth = await core.resolve(req({ authorization: `Bearer ${await hs256({ sub: 'alice', org_id: A.toUpperCase() })}`, 'x-request-id': 'req-42' }))
  assert.equal(auth.tenantId, A)
  assert.equal(auth.source, 'token')
  assert.equal(auth.requestId, 'req-42')
  assert.deepEqual(auth.principal.kind === 'user' && [auth.principal.userId, auth.principal.role], ['alice', undefined])
  assert.ok(Object.isFrozen(auth))
  // run: withTenant + currentAuth for everything fn starts
  const seen = await core.run(auth, async () => {
    await new Promise((resolve) => setImmediate(resolve))
    return [currentTenant(), currentAuth()?.requestId]
  })
  assert.deepEqual(seen, [A, 'req-42'])
  assert.equal(currentTenant(), undefined)
})

test('claims: a custom tenant and user claim, issuer and audience, required exp, clock tolerance', async () => {
  const core = createTenantHttp({ jwt: { secret: SECRET, tenantClaim: 'https://example.test/org', userClaim: 'email', issuer: 'https://idp.test', audience: 'api' } })
  const good = await hs256({ email: 'a@example.test', 'https://example.test/org': A }, (j) => j.setIssuer('https://idp.test').setAudience('api').setExpirationTime('1m'))
  assert.equal((await core.resolve(req({ authorization: `bearer ${good}` }))).tenantId, A)
  const wrongAudience = await hs256({ email: 'a@example.test', 'https://example.test/org': A }, (j) => j.setIssuer('https://idp.test').setAudience('other').setExpirationTime('1m'))
  assert.equal((await problem(core.resolve(req({ authorization: `Bearer ${wrongAudience}` })))).code, HttpErrorCodes.INVALID_TOKEN)
  const noExp = await hs256({ sub: 'alice', org_id: A }, (j) => j)
  assert.equal((await problem(createTenantHttp({ jwt: { secret: SECRET } }).resolve(req({ authorization: `Bearer ${noExp}` })))).code, HttpErrorCodes.INVALID_TOKEN)
  assert.equal((await createTenantHttp({ jwt: { secret: SECRET, requireExpiration: false } }).resolve(req({ authorization: `Bearer ${noExp}` }))).tenantId, A)
  const justExpired = await hs256({ sub: 'alice', org_id: A }, (j) => j.setExpirationTime(Math.floor(Date.now() / 1000) - 5))
  assert.equal((await problem(createTenantHttp({ jwt: { secret: SECRET } }).resolve(req({ authorization: `Bearer ${justExpired}` })))).code, HttpErrorCodes.TOKEN_EXPIRED)
  assert.equal((await createTenantHttp({ jwt: { secret: SECRET, clockTolerance: 60 } }).resolve(req({ authorization: `Bearer ${justExpired}` }))).tenantId, A)
  // an HS256 token is not accepted where asymmetric keys are expected (algorithm confusion)
  const { publicKey } = await generateKeyPair('RS256')
  const jwks = createLocalJWKSet({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256' }] })
  assert.equal((await problem(createTenantHttp({ jwt: { jwks } }).resolve(req({ authorization: `Bearer ${good}` })))).code, HttpErrorCodes.INVALID_TOKEN)
})

test('JWKS: tokens are verified against keys served over HTTP on 127.0.0.1, and a local JWK set', async () => {
  const { publicKey, privateKey } = await generateKeyPair('ES256')
  const other = await generateKeyPair('ES256')
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'current', alg: 'ES256', use: 'sig' }
  let fetches = 0
  const server = http.createServer((_req, res) => {
    fetches++
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  after(() => new Promise((resolve) => server.close(resolve)))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`
  const sign = (key: CryptoKey, kid: string, claims: Record<string, unknown>): Promise<string> =>
    new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid }).setExpirationTime('5m').sign(key)

  const remote = createTenantHttp({ jwt: { jwksUrl: url } })
  assert.equal((await remote.resolve(req({ authorization: `Bearer ${await sign(privateKey, 'current', { sub: 'alice', org_id: A })}` }))).tenantId, A)
  assert.equal((await remote.resolve(req({ authorization: `Bearer ${await sign(privateKey, 'current', { sub: 'bob', org_id: B })}` }))).tenantId, B)
  assert.equal(fetches, 1, 'the key set is fetched once and cached')
  const forged = await sign(other.privateKey, 'current', { sub: 'alice', org_id: A })
  assert.equal((await problem(remote.resolve(req({ authorization: `Bearer ${forged}` })))).code, HttpErrorCodes.INVALID_TOKEN)
  const unknownKid = await sign(other.privateKey, 'rotated-away', { sub: 'alice', org_id: A })
  assert.equal((await problem(remote.resolve(req({ authorization: `Bearer ${unknownKid}` })))).code, HttpErrorCodes.INVALID_TOKEN)

  const local = createTenantHttp({ jwt: { jwks: createLocalJWKSet({ keys: [jwk] }) } })
  assert.equal((await local.resolve(req({ authorization: `Bearer ${await sign(privateKey, 'current', { sub: 'alice', org_id: A })}` }))).tenantId, A)

  // a JWKS endpoint that is down is a 500 for the client, not a 401
  const down = createTenantHttp({ jwt: { jwksUrl: 'http://127.0.0.1:1/jwks.json' } })
  assert.equal((await problem(down.resolve(req({ authorization: `Bearer ${await sign(privateKey, 'current', { sub: 'alice', org_id: A })}` })))).code, HttpErrorCodes.INTERNAL)
})

test('sqlMembership: one parameterized lookup through the system pool, with the role', async () => {
  await db.sql(`CREATE TABLE "Team Members" ("Org" uuid NOT NULL, "User" uuid NOT NULL, PRIMARY KEY ("Org", "User"))`)
  await db.sql(`CREATE TABLE memberships (org_id uuid NOT NULL, user_id text NOT NULL, role text NOT NULL, PRIMARY KEY (org_id, user_id))`)
  const alice = randomUUID()
  await db.sql(`INSERT INTO "Team Members" VALUES ($1, $2)`, [A, alice])
  await db.sql(`INSERT INTO memberships VALUES ($1, 'alice', 'manager')`, [A])
  const isMember = sqlMembership({ pool: system })
  assert.deepEqual(await isMember('alice', A), { role: 'manager' })
  assert.equal(await isMember('alice', B), false)
  assert.equal(await isMember("alice' OR '1'='1", A), false)
  const custom = sqlMembership({ pool: system, table: 'Team Members', userColumn: 'User', tenantColumn: 'Org', roleColumn: null })
  assert.deepEqual(await custom(alice, A), { role: undefined })
  assert.equal(await custom('not-a-uuid', A), false, 'a subject that cannot be a uuid is not a member')
  await assert.rejects(sqlMembership({ pool: system, table: 'no_such_table' })('alice', A), { code: '42P01' })

  const core = createTenantHttp({ jwt: { secret: SECRET }, isMember })
  const auth = await core.resolve(req({ authorization: `Bearer ${await hs256({ sub: 'alice', org_id: A })}` }))
  assert.deepEqual(auth.principal.kind === 'user' && auth.principal.role, 'manager')
  assert.equal((await problem(core.resolve(req({ authorization: `Bearer ${await hs256({ sub: 'alice', org_id: B })}` })))).code, HttpErrorCodes.NOT_A_MEMBER)
})

test('slug routing: subdomains under the base domain, reserved names, a custom extractor, malformed slugs', async () => {
  const slugs = new Map([['acme', A], ['globex', B]])
  const options: TenantHttpOptions = { jwt: { secret: SECRET }, isMember: member(['alice', A]), slug: { baseDomain: 'Example.Test.', resolve: async (s) => slugs.get(s) } }
  const core = createTenantHttp(options)
  const alice = { authorization: `Bearer ${await hs256({ sub: 'alice', org_id: B })}` }
  assert.equal((await core.resolve(req(alice, 'ACME.example.test'))).source, 'slug')
  assert.equal((await core.resolve(req(alice, 'acme.example.test.'))).tenantId, A)
  // no slug (apex, www, another host): the token's claim decides, and membership is still checked
  for (const host of ['example.test', 'www.example.test', 'localhost', undefined]) {
    assert.equal((await problem(core.resolve(req(alice, host)))).code, HttpErrorCodes.NOT_A_MEMBER)
  }
  for (const host of ['-acme.example.test', 'ac_me.example.test', 'x.acme.example.test', `${'a'.repeat(64)}.example.test`]) {
    assert.equal((await problem(core.resolve(req(alice, host)))).code, HttpErrorCodes.NOT_FOUND, host)
  }
  const byPath = createTenantHttp({ ...options, slug: { extract: (r) => r.header('x-org-slug'), resolve: async (s) => slugs.get(s) } })
  assert.equal((await byPath.resolve(req({ ...alice, 'x-org-slug': 'acme' }))).tenantId, A)
  assert.equal((await problem(byPath.resolve(req({ ...alice, 'x-org-slug': 'initech' })))).code, HttpErrorCodes.NOT_FOUND)
})

test('API keys: the key decides the tenant; a verifier that returns a bad id is a 500', async () => {
  const verifier: ApiKeyVerifier = {
    verify: async (key) =>
      key === 'good' ? { valid: true, keyId: 'k1', tenantId: A, scopes: ['reports:read'] } : key === 'broken' ? { valid: true, keyId: 'k2', tenantId: "'; DROP", scopes: [] } : { valid: false, reason: 'unknown' },
  }
  const core = createTenantHttp({ apiKeys: verifier, apiKeyHeader: 'X-Acme-Key' })
  const auth = await core.resolve(req({ 'x-acme-key': 'good' }))
  assert.deepEqual([auth.tenantId, auth.source, auth.principal], [A, 'api-key', { kind: 'api-key', keyId: 'k1', scopes: ['reports:read'] }])
  assert.equal((await problem(core.resolve(req({ 'x-acme-key': 'bad' })))).code, HttpErrorCodes.INVALID_API_KEY)
  assert.equal((await problem(core.resolve(req({ 'x-api-key': 'good' })))).code, HttpErrorCodes.UNAUTHENTICATED)
  assert.equal((await problem(core.resolve(req({ 'x-acme-key': 'broken' })))).code, HttpErrorCodes.INTERNAL)
  // a bearer token is not looked at when only keys are configured
  assert.equal((await problem(core.resolve(req({ authorization: 'Bearer whatever' })))).code, HttpErrorCodes.UNAUTHENTICATED)
})

test('the development tenant header: off by default, refused in production, checked when on', async () => {
  const off = createTenantHttp({ jwt: { secret: SECRET } })
  assert.equal((await problem(off.resolve(req({ 'x-tenant-id': A })))).code, HttpErrorCodes.UNAUTHENTICATED)
  const on = createTenantHttp({ jwt: { secret: SECRET }, tenantHeader: { name: 'X-Dev-Tenant' }, isMember: member(['alice', A]) })
  assert.deepEqual(await on.resolve(req({ 'x-dev-tenant': A, 'x-request-id': 'r1' })), { tenantId: A, principal: { kind: 'anonymous' }, source: 'header', requestId: 'r1' })
  // with a token the header picks the tenant, and membership is checked
  const alice = { authorization: `Bearer ${await hs256({ sub: 'alice', org_id: B })}` }
  assert.equal((await on.resolve(req({ ...alice, 'x-dev-tenant': A }))).tenantId, A)
  assert.equal((await problem(on.resolve(req({ ...alice, 'x-dev-tenant': B })))).code, HttpErrorCodes.NOT_A_MEMBER)
  assert.equal((await problem(on.resolve(req({ 'x-dev-tenant': `${A}' OR 1=1` })))).code, HttpErrorCodes.INVALID_TENANT_ID)
  const previous = process.env['NODE_ENV']
  process.env['NODE_ENV'] = 'production'
  try {
    assert.throws(() => createTenantHttp({ jwt: { secret: SECRET }, tenantHeader: true }), /development only/)
  } finally {
    if (previous === undefined) delete process.env['NODE_ENV']
    else process.env['NODE_ENV'] = previous
  }
})

test('request ids: a well-formed X-Request-Id is kept, anything else replaced by a uuid', async () => {
  const core = createTenantHttp({ jwt: { secret: SECRET } })
  const authorization = `Bearer ${await hs256({ sub: 'alice', org_id: A })}`
  for (const sent of ['x'.repeat(129), 'a b', '<script>', `${A}\n`]) {
    assert.match((await core.resolve(req({ authorization, 'x-request-id': sent }))).requestId, /^[0-9a-f-]{36}$/)
  }
  assert.match((await createTenantHttp({ jwt: { secret: SECRET }, requestIdHeader: false }).resolve(req({ authorization, 'x-request-id': 'kept?' }))).requestId, /^[0-9a-f-]{36}$/)
})

test('failures of user code are 500s, logged by class and SQLSTATE but never by message', async () => {
  const lines: string[] = []
  const logger = { warn: (f: Record<string, unknown>, m: string) => lines.push(`warn ${m} ${JSON.stringify(f)}`), error: (f: Record<string, unknown>, m: string) => lines.push(`error ${m} ${JSON.stringify(f)}`) }
  const core = createTenantHttp({
    jwt: { secret: SECRET },
    isMember: async (_user, tenant) => {
      throw Object.assign(new Error(`invalid input syntax for type uuid: "${tenant}"`), { code: '22P02' })
    },
    logger,
  })
  const error = await problem(core.resolve(req({ authorization: `Bearer ${await hs256({ sub: 'alice', org_id: A })}`, 'x-request-id': 'r-500' })))
  assert.equal(error.status, 500)
  assert.equal(error.toResponse().body.detail, 'the request could not be completed')
  assert.deepEqual(lines, [`error tenantize: request failed {"event":"tenantize.http.rejected","status":500,"code":"TZ_HTTP_INTERNAL","reason":"resolver-failed","method":"GET","requestId":"r-500","cause":"Error","sqlstate":"22P02"}`])
  await problem(core.resolve(req({})))
  assert.ok(lines[1]!.startsWith('warn tenantize: request rejected {'))
  const { requestId, ...fields } = JSON.parse(lines[1]!.slice(lines[1]!.indexOf('{'))) as Record<string, unknown>
  assert.deepEqual(fields, { event: 'tenantize.http.rejected', status: 401, code: 'TZ_HTTP_UNAUTHENTICATED', reason: 'none', method: 'GET' })
  assert.match(String(requestId), /^[0-9a-f-]{36}$/)
  assert.ok(!lines.join('\n').includes(A))
})

test('problem documents: RFC 9457 members, 401 challenges, and the mapping of tenant errors', () => {
  const response = new HttpProblemError(HttpErrorCodes.TOKEN_EXPIRED, undefined, { reason: 'expired' }).toResponse()
  assert.deepEqual(response, {
    status: 401,
    headers: { 'content-type': 'application/problem+json', 'cache-control': 'no-store', 'www-authenticate': 'Bearer realm="api", error="invalid_token"' },
    body: { type: 'about:blank', title: 'Unauthorized', status: 401, detail: 'the bearer token has expired', code: 'TZ_HTTP_TOKEN_EXPIRED' },
  })
  assert.deepEqual(problemFromError(new TenantAccessError()), notFound().toResponse())
  assert.deepEqual(problemFromError(new TenantAccessError('the resource has no valid tenant id')), notFound().toResponse())
  assert.equal(problemFromError(new InvalidTenantIdError('uuid', 'expected 32 hex digits'))?.status, 400)
  assert.equal(problemFromError(new TenantContextMissingError()), undefined)
  assert.equal(problemFromError(new Error('boom')), undefined)
  assert.equal(toHttpProblem(notFound())?.code, 'TZ_HTTP_NOT_FOUND')
  assert.deepEqual(JSON.parse(JSON.stringify(new HttpProblemError(HttpErrorCodes.FORBIDDEN, 'missing permission a:b', { reason: 'permission' }))), {
    name: 'HttpProblemError',
    code: 'TZ_HTTP_FORBIDDEN',
    status: 403,
    reason: 'permission',
    message: 'missing permission a:b',
  })
  const statuses = Object.values(HttpErrorCodes).map((code) => new HttpProblemError(code).status)
  assert.deepEqual(statuses, [401, 401, 401, 401, 400, 400, 403, 403, 403, 403, 404, 500])
})

test('configuration mistakes are TypeErrors when the middleware is built', () => {
  assert.throws(() => createTenantHttp({}), /at least one way/)
  assert.throws(() => createTenantHttp({ jwt: {} }), /exactly one of/)
  assert.throws(() => createTenantHttp({ jwt: { secret: SECRET, jwksUrl: 'http://127.0.0.1/jwks' } }), /exactly one of/)
  assert.throws(() => createTenantHttp({ jwt: { secret: 'too short' } }), /32 bytes/)
  assert.throws(() => createTenantHttp({ jwt: { secret: SECRET }, slug: { resolve: async () => A }, isMember: member() }), /baseDomain or extract/)
  assert.throws(() => createTenantHttp({ jwt: { secret: SECRET }, slug: { baseDomain: 'x.test', resolve: async () => A } }), /needs isMember/)
  assert.throws(() => createTenantHttp({ jwt: { secret: SECRET }, apiKeyHeader: 'bad header' }), /not a valid header name/)
  assert.throws(() => createTenantHttp({ jwt: { secret: SECRET }, idType: 'int' as never }), /unknown tenant id type/)
})

test('bigint and text tenant ids are checked against their type', async () => {
  const big = createTenantHttp({ jwt: { secret: SECRET }, idType: 'bigint' })
  assert.equal((await big.resolve(req({ authorization: `Bearer ${await hs256({ sub: 'a', org_id: '0042' })}` }))).tenantId, '42')
  assert.equal((await problem(big.resolve(req({ authorization: `Bearer ${await hs256({ sub: 'a', org_id: 42 })}` })))).code, HttpErrorCodes.INVALID_TENANT_ID)
  assert.equal((await problem(big.resolve(req({ authorization: `Bearer ${await hs256({ sub: 'a', org_id: '42; DROP TABLE x' })}` })))).code, HttpErrorCodes.INVALID_TENANT_ID)
  const text = createTenantHttp({ jwt: { secret: SECRET }, idType: 'text' })
  assert.equal((await text.resolve(req({ authorization: `Bearer ${await hs256({ sub: 'a', org_id: "o'brien" })}` }))).tenantId, "o'brien")
  assert.equal((await problem(text.resolve(req({ authorization: `Bearer ${await hs256({ sub: 'a', org_id: 'a\nb' })}` })))).code, HttpErrorCodes.INVALID_TENANT_ID)
})

/** Import `modules` in a fresh node process and list the packages from node_modules it loaded. */
async function packagesLoadedBy(modules: readonly string[]): Promise<string[]> {
  const script = `
    import { register } from 'node:module'
    register('data:text/javascript,' + encodeURIComponent(\`
      const seen = new Set()
      export async function resolve(specifier, context, next) {
        if (specifier === 'tz-loaded:list') return { url: specifier, shortCircuit: true }
        const result = await next(specifier, context)
        seen.add(result.url)
        return result
      }
      export async function load(url, context, next) {
        if (url === 'tz-loaded:list') return { format: 'module', source: 'export default ' + JSON.stringify([...seen]), shortCircuit: true }
        return next(url, context)
      }\`))
    for (const m of process.argv.slice(1)) await import(m)
    const { default: seen } = await import('tz-loaded:list')
    console.log(JSON.stringify(seen))`
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, ...modules], (error, out) => (error === null ? resolve(out) : reject(error))),
  )
  const urls = JSON.parse(stdout.trim().split('\n').at(-1)!) as string[]
  return [...new Set(urls.filter((u) => u.includes('/node_modules/')).map((u) => u.replace(/^.*\/node_modules\//, '').split('/')[0]!))].sort()
}

test('the adapters, RBAC, API keys and audit load no framework, no jose and no pg until used', async () => {
  const ours = ['express', 'fastify', 'hono', 'rbac', 'api-keys', 'audit', 'http/index'].map((m) => `./src/runtime/${m}.ts`)
  assert.deepEqual(await packagesLoadedBy(ours), [])
  assert.deepEqual(await packagesLoadedBy(['express', 'jose']), ['express', 'jose'], 'the check sees packages that are loaded')
})
