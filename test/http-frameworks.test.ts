import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import express from 'express'
import Fastify from 'fastify'
import { Hono } from 'hono'
import { createAdaptorServer } from '@hono/node-server'
import { SignJWT } from 'jose'
import pg from 'pg'
import { addBlock } from '../src/blocks/index.js'
import { migrateUp } from '../src/migrate/index.js'
import { createApiKeyStore } from '../src/runtime/api-keys.js'
import * as expressAdapter from '../src/runtime/express.js'
import * as fastifyAdapter from '../src/runtime/fastify.js'
import * as honoAdapter from '../src/runtime/hono.js'
import { currentAuth, notFound, sqlMembership, type HttpLogger, type TenantHttpOptions } from '../src/runtime/http/index.js'
import { assertSameTenant, currentTenant, tenantPool, withTenant } from '../src/runtime/index.js'
import { createRbac } from '../src/runtime/rbac.js'
import { quoteIdent } from '../src/sql/index.js'
import { withClient } from '../src/db/connect.js'
import { testDatabase } from './helpers/db.js'

// One application — list/create/read items, a guarded export, a loader that checks the tenant — served
// by Express 5, Fastify 5 and Hono 4 over real HTTP on 127.0.0.1, and the same requests against each.

const db = await testDatabase(import.meta.url)
const APP = `${db.name}_app`
const dir = await mkdtemp(join(tmpdir(), 'tz-http-'))
const appPool = new pg.Pool({ connectionString: db.url, max: 4, options: `-c role=${APP}` })
const systemPool = new pg.Pool({ connectionString: db.url, max: 4 })
for (const pool of [appPool, systemPool]) pool.on('error', () => undefined)
const servers: http.Server[] = []
after(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
  await appPool.end()
  await systemPool.end()
  await rm(dir, { recursive: true, force: true })
  await db.drop()
  await withClient(db.adminUrl, (c) => c.query(`DROP ROLE IF EXISTS ${quoteIdent(APP)}`))
})

const [A, B] = [randomUUID(), randomUUID()]
await db.sql(`CREATE ROLE ${quoteIdent(APP)} NOLOGIN; CREATE TABLE organizations (id uuid PRIMARY KEY, slug text NOT NULL UNIQUE)`)
await db.sql(`INSERT INTO organizations VALUES ($1, 'alpha'), ($2, 'beta')`, [A, B])
for (const block of ['rbac', 'api-keys'] as const) await addBlock({ block, dir, appRole: APP })
await migrateUp({ databaseUrl: db.url, dir })
await db.sql(`
  CREATE TABLE items (org_id uuid NOT NULL DEFAULT tenantize.current_tenant_id() REFERENCES organizations (id), id text PRIMARY KEY, body text NOT NULL);
  ALTER TABLE items ENABLE ROW LEVEL SECURITY;
  ALTER TABLE items FORCE ROW LEVEL SECURITY;
  CREATE POLICY items_tenant ON items TO ${quoteIdent(APP)}
    USING (org_id = (SELECT tenantize.current_tenant_id())) WITH CHECK (org_id = (SELECT tenantize.current_tenant_id()));
  GRANT SELECT, INSERT ON items TO ${quoteIdent(APP)};
`)
await db.sql(`INSERT INTO items VALUES ($1, 'a-1', 'first of A'), ($1, 'a-2', 'second of A'), ($2, 'b-1', 'first of B')`, [A, B])
await db.sql(`INSERT INTO memberships VALUES ($1, 'alice', 'viewer'), ($1, 'mary', 'manager'), ($2, 'bob', 'admin')`, [A, B])

const SECRET = 'a test secret that is at least 32 bytes long'
const secretKey = new TextEncoder().encode(SECRET)
async function token(claims: Record<string, unknown>, options: { expiresIn?: string | number; secret?: Uint8Array } = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(options.expiresIn ?? '5m').sign(options.secret ?? secretKey)
}

const tenantDb = tenantPool(appPool)
const keys = createApiKeyStore({ db: tenantDb, system: systemPool })
const rbac = createRbac()
const keyA = await withTenant(A, () => keys.create({ name: 'exporter', scopes: ['reports:export'] }))
const keyB = await withTenant(B, () => keys.create({ name: 'reader', scopes: ['reports:read'] }))
const revokedKey = await withTenant(A, () => keys.create({ name: 'revoked' }))
await withTenant(A, () => keys.revoke(revokedKey.id))
const expiredKey = await withTenant(A, () => keys.create({ name: 'expired', expiresAt: new Date(Date.now() + 60_000) }))
await db.sql(`UPDATE api_keys SET created_at = now() - interval '2 days', expires_at = now() - interval '1 day' WHERE id = $1`, [expiredKey.id])

/** Every line any middleware logged, to prove no tenant id, slug, token or key ever reaches a log. */
const logged: string[] = []
const logger: HttpLogger = {
  warn: (fields, message) => logged.push(`${message} ${JSON.stringify(fields)}`),
  error: (fields, message) => logged.push(`${message} ${JSON.stringify(fields)}`),
}

const options: TenantHttpOptions = {
  jwt: { secret: SECRET },
  apiKeys: keys,
  isMember: sqlMembership({ pool: systemPool }),
  slug: {
    baseDomain: 'example.test',
    resolve: async (slug) => (await systemPool.query<{ id: string }>('SELECT id FROM organizations WHERE slug = $1', [slug])).rows[0]?.id,
  },
  logger,
}

// The application, framework-independent: what the handlers do once the middleware has run.
const handlers = {
  async list(): Promise<unknown> {
    return { items: (await tenantDb.query<{ id: string }>('SELECT id FROM items ORDER BY id')).rows.map((r) => r.id) }
  },
  async create(body: unknown): Promise<unknown> {
    const { id, text } = body as { id: string; text: string }
    await tenantDb.query('INSERT INTO items (id, body) VALUES ($1, $2)', [id, text])
    return { created: id }
  },
  async read(id: string): Promise<unknown> {
    const row = (await tenantDb.query('SELECT id, body FROM items WHERE id = $1', [id])).rows[0]
    if (row === undefined) throw notFound()
    return row
  },
  /** A loader that does not go through RLS (a cache, a search index) and checks the tenant itself. */
  async document(id: string): Promise<unknown> {
    const row = (await systemPool.query<{ org_id: string; id: string }>('SELECT org_id, id FROM items WHERE id = $1', [id])).rows[0]
    if (row === undefined) throw notFound()
    assertSameTenant(row.org_id)
    return { id: row.id }
  },
  whoami(): unknown {
    const auth = currentAuth()
    return { tenant: currentTenant(), source: auth?.source, kind: auth?.principal.kind, role: auth?.principal.kind === 'user' ? auth.principal.role : undefined }
  },
}

async function listen(server: http.Server): Promise<number> {
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

async function startExpress(middlewareOptions: TenantHttpOptions): Promise<number> {
  const app = express()
  app.use(express.json()) // body parsers go before the tenant middleware (see docs/http.md)
  app.use(expressAdapter.tenantMiddleware(middlewareOptions))
  app.get('/items', async (_req, res) => void res.json(await handlers.list()))
  app.post('/items', async (req, res) => void res.status(201).json(await handlers.create(req.body)))
  app.get('/items/:id', async (req, res) => void res.json(await handlers.read(req.params['id']!)))
  app.get('/documents/:id', async (req, res) => void res.json(await handlers.document(req.params['id']!)))
  app.get('/whoami', (_req, res) => void res.json(handlers.whoami()))
  app.get('/reports/export', expressAdapter.requirePermission(rbac, 'reports:export'), (_req, res) => void res.json({ exported: currentTenant() }))
  app.use(expressAdapter.problemErrorHandler({ logger }))
  return listen(http.createServer(app))
}

async function startFastify(middlewareOptions: TenantHttpOptions): Promise<number> {
  const app = Fastify()
  await app.register(fastifyAdapter.tenantPlugin, middlewareOptions)
  app.setErrorHandler(fastifyAdapter.problemErrorHandler({ logger }))
  app.get('/items', () => handlers.list())
  app.post('/items', async (request, reply) => reply.code(201).send(await handlers.create(request.body)))
  app.get<{ Params: { id: string } }>('/items/:id', (request) => handlers.read(request.params.id))
  app.get<{ Params: { id: string } }>('/documents/:id', (request) => handlers.document(request.params.id))
  app.get('/whoami', async () => handlers.whoami())
  app.get('/reports/export', { preHandler: fastifyAdapter.requirePermission(rbac, 'reports:export') }, async () => ({ exported: currentTenant() }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  servers.push(app.server)
  return (app.server.address() as AddressInfo).port
}

async function startHono(middlewareOptions: TenantHttpOptions): Promise<number> {
  const app = new Hono<honoAdapter.TenantEnv>()
  app.use(honoAdapter.tenantMiddleware(middlewareOptions))
  app.onError(honoAdapter.problemErrorHandler({ logger }))
  app.get('/items', async (c) => c.json(await handlers.list()))
  app.post('/items', async (c) => c.json(await handlers.create(await c.req.json()), 201))
  app.get('/items/:id', async (c) => c.json(await handlers.read(c.req.param('id'))))
  app.get('/documents/:id', async (c) => c.json(await handlers.document(c.req.param('id'))))
  app.get('/whoami', (c) => c.json(handlers.whoami()))
  app.get('/reports/export', honoAdapter.requirePermission(rbac, 'reports:export'), (c) => c.json({ exported: currentTenant() }))
  return listen(createAdaptorServer({ fetch: app.fetch }) as http.Server)
}

interface Reply {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: unknown
}

function call(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: unknown): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = http.request(
      { host: '127.0.0.1', port, method, path, headers: { ...(payload === undefined ? {} : { 'content-type': 'application/json' }), ...headers } },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (text += chunk))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text === '' ? undefined : JSON.parse(text) }))
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
}

const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` })
const itemCount = async (): Promise<number> => (await db.sql<{ n: number }>('SELECT count(*)::int AS n FROM items'))[0]!.n

function assertProblem(reply: Reply, status: number, code: string): void {
  assert.equal(reply.status, status, JSON.stringify(reply.body))
  assert.match(String(reply.headers['content-type']), /^application\/problem\+json/)
  const body = reply.body as Record<string, unknown>
  assert.equal(body['status'], status)
  assert.equal(body['code'], code)
  assert.equal(body['type'], 'about:blank')
  assert.equal(typeof body['title'], 'string')
}

const frameworks = [
  { name: 'Express 5', start: startExpress },
  { name: 'Fastify 5', start: startFastify },
  { name: 'Hono 4', start: startHono },
] as const

const secrets: string[] = [A, B, keyA.key, keyB.key, revokedKey.key, expiredKey.key, 'alpha', 'beta']

for (const framework of frameworks) {
  const port = await framework.start(options)

  describe(framework.name, () => {
    test('a member with a token sees only their tenant, inside withTenant', async () => {
      const alice = await token({ sub: 'alice', org_id: A })
      assert.deepEqual((await call(port, 'GET', '/items', bearer(alice))).body, { items: ['a-1', 'a-2'] })
      assert.deepEqual((await call(port, 'GET', '/whoami', bearer(alice))).body, { tenant: A, source: 'token', kind: 'user', role: 'viewer' })
      const bob = await token({ sub: 'bob', org_id: B.toUpperCase() })
      const ofB = (await db.sql<{ id: string }>('SELECT id FROM items WHERE org_id = $1 ORDER BY id', [B])).map((r) => r.id)
      assert.ok(ofB.includes('b-1') && !ofB.includes('a-1'))
      assert.deepEqual((await call(port, 'GET', '/items', bearer(bob))).body, { items: ofB })
    })

    test('a POST runs inside the tenant context and writes with its tenant', async () => {
      const id = `${framework.name.split(' ')[0]!.toLowerCase()}-post`
      const reply = await call(port, 'POST', '/items', bearer(await token({ sub: 'bob', org_id: B })), { id, text: 'posted' })
      assert.equal(reply.status, 201, JSON.stringify(reply.body))
      assert.deepEqual(await db.sql('SELECT org_id FROM items WHERE id = $1', [id]), [{ org_id: B }])
    })

    test('401: no credentials, a malformed, forged or expired token, a revoked or expired key', async () => {
      const before = await itemCount()
      const post = (headers: Record<string, string>): Promise<Reply> => call(port, 'POST', '/items', headers, { id: `x-${randomUUID()}`, text: 'x' })
      const none = await post({})
      assertProblem(none, 401, 'TZ_HTTP_UNAUTHENTICATED')
      assert.equal(none.headers['www-authenticate'], 'Bearer realm="api"')
      assertProblem(await post({ authorization: 'Basic YWxpY2U6c2VjcmV0' }), 401, 'TZ_HTTP_UNAUTHENTICATED')
      for (const bad of ['not-a-jwt', 'eyJhbGciOiJIUzI1NiJ9.e30.', 'a.b.c', '']) {
        const reply = await post(bearer(bad))
        assertProblem(reply, 401, 'TZ_HTTP_INVALID_TOKEN')
        assert.match(String(reply.headers['www-authenticate']), /error="invalid_token"/)
      }
      assertProblem(await post(bearer(await token({ sub: 'alice', org_id: A }, { secret: new TextEncoder().encode('x'.repeat(32)) }))), 401, 'TZ_HTTP_INVALID_TOKEN')
      assertProblem(await post(bearer(await token({ org_id: A }))), 401, 'TZ_HTTP_INVALID_TOKEN')
      assertProblem(await post(bearer(await token({ sub: 'alice', org_id: A }, { expiresIn: Math.floor(Date.now() / 1000) - 60 }))), 401, 'TZ_HTTP_TOKEN_EXPIRED')
      for (const key of [revokedKey.key, expiredKey.key, `${keyA.key.slice(0, -2)}xx`, 'tz_garbage']) assertProblem(await post({ 'x-api-key': key }), 401, 'TZ_HTTP_INVALID_API_KEY')
      assert.equal(await itemCount(), before, 'nothing was written')
      assert.deepEqual(await db.sql('SELECT usage_count::int AS n FROM api_keys WHERE id = ANY ($1) ORDER BY n', [[revokedKey.id, expiredKey.id]]), [{ n: 0 }, { n: 0 }])
    })

    test('400: a tenant id of the wrong type or with SQL in it; both a token and a key', async () => {
      const before = await itemCount()
      for (const orgId of [`${A}'; DROP TABLE items; --`, "' OR 1=1 --", 42, 'not-a-uuid', [A], '']) {
        const reply = await call(port, 'POST', '/items', bearer(await token({ sub: 'alice', org_id: orgId })), { id: `x-${randomUUID()}`, text: 'x' })
        assertProblem(reply, 400, 'TZ_HTTP_INVALID_TENANT_ID')
      }
      assertProblem(await call(port, 'GET', '/items', { ...bearer(await token({ sub: 'alice', org_id: A })), 'x-api-key': keyA.key }), 400, 'TZ_HTTP_AMBIGUOUS_CREDENTIALS')
      assert.equal(await itemCount(), before)
      assert.deepEqual(await db.sql(`SELECT to_regclass('items') IS NOT NULL AS exists`), [{ exists: true }])
    })

    test('403: not a member, a token without a tenant, a missing permission', async () => {
      assertProblem(await call(port, 'GET', '/items', bearer(await token({ sub: 'alice', org_id: B }))), 403, 'TZ_HTTP_NOT_A_MEMBER')
      assertProblem(await call(port, 'GET', '/items', bearer(await token({ sub: 'carol', org_id: A }))), 403, 'TZ_HTTP_NOT_A_MEMBER')
      assertProblem(await call(port, 'GET', '/items', bearer(await token({ sub: 'alice' }))), 403, 'TZ_HTTP_NO_TENANT')
      const viewer = await call(port, 'GET', '/reports/export', bearer(await token({ sub: 'alice', org_id: A })))
      assertProblem(viewer, 403, 'TZ_HTTP_FORBIDDEN')
      assert.equal((viewer.body as { detail: string }).detail, 'missing permission reports:export')
      assert.deepEqual((await call(port, 'GET', '/reports/export', bearer(await token({ sub: 'mary', org_id: A })))).body, { exported: A })
      assert.deepEqual((await call(port, 'GET', '/reports/export', { 'x-api-key': keyA.key })).body, { exported: A })
      assertProblem(await call(port, 'GET', '/reports/export', { 'x-api-key': keyB.key }), 403, 'TZ_HTTP_FORBIDDEN')
    })

    test("404 for another tenant's resource is the same answer as for a missing one", async () => {
      const alice = bearer(await token({ sub: 'alice', org_id: A }))
      const missing = await call(port, 'GET', '/documents/no-such-item', alice)
      const foreign = await call(port, 'GET', '/documents/b-1', alice)
      assertProblem(missing, 404, 'TZ_HTTP_NOT_FOUND')
      assert.equal(foreign.status, missing.status)
      assert.deepEqual(foreign.body, missing.body)
      assert.equal(foreign.headers['content-type'], missing.headers['content-type'])
      assert.deepEqual((await call(port, 'GET', '/documents/a-1', alice)).body, { id: 'a-1' })
      // through RLS the row is simply not there
      assert.deepEqual((await call(port, 'GET', '/items/b-1', alice)).body, missing.body)
    })

    test('an API key runs as its own tenant with its scopes', async () => {
      const ofB = (await db.sql<{ id: string }>('SELECT id FROM items WHERE org_id = $1 ORDER BY id', [B])).map((r) => r.id)
      assert.deepEqual((await call(port, 'GET', '/items', { 'x-api-key': keyB.key })).body, { items: ofB })
      assert.deepEqual((await call(port, 'GET', '/whoami', { 'x-api-key': keyB.key })).body, { tenant: B, source: 'api-key', kind: 'api-key' })
    })

    test('slug routing: the subdomain selects the tenant; unknown slug 404, non-member 403', async () => {
      const bob = bearer(await token({ sub: 'bob' }))
      assert.deepEqual((await call(port, 'GET', '/whoami', { ...bob, host: 'beta.example.test' })).body, { tenant: B, source: 'slug', kind: 'user', role: 'admin' })
      assertProblem(await call(port, 'GET', '/items', { ...bob, host: 'alpha.example.test' }), 403, 'TZ_HTTP_NOT_A_MEMBER')
      assertProblem(await call(port, 'GET', '/items', { ...bob, host: 'gamma.example.test' }), 404, 'TZ_HTTP_NOT_FOUND')
      assertProblem(await call(port, 'GET', '/items', { ...bob, host: 'a.b.example.test' }), 404, 'TZ_HTTP_NOT_FOUND')
      assertProblem(await call(port, 'GET', '/items', { host: 'gamma.example.test' }), 401, 'TZ_HTTP_UNAUTHENTICATED')
      // a key only works on its own tenant's subdomain
      assert.deepEqual((await call(port, 'GET', '/whoami', { 'x-api-key': keyA.key, host: 'alpha.example.test' })).body, { tenant: A, source: 'slug', kind: 'api-key' })
      assertProblem(await call(port, 'GET', '/items', { 'x-api-key': keyA.key, host: 'beta.example.test' }), 403, 'TZ_HTTP_NOT_A_MEMBER')
    })

    test('X-Tenant-Id is ignored unless the development header is enabled', async () => {
      const alice = bearer(await token({ sub: 'alice', org_id: A }))
      assert.deepEqual((await call(port, 'GET', '/whoami', { ...alice, 'x-tenant-id': B })).body, { tenant: A, source: 'token', kind: 'user', role: 'viewer' })
      assertProblem(await call(port, 'GET', '/items', { 'x-tenant-id': B }), 401, 'TZ_HTTP_UNAUTHENTICATED')
    })
  })
}

test('with the development header enabled, X-Tenant-Id selects the tenant (checked like any id)', async () => {
  for (const framework of frameworks) {
    const port = await framework.start({ jwt: { secret: SECRET }, tenantHeader: true, logger })
    assert.deepEqual((await call(port, 'GET', '/whoami', { 'x-tenant-id': B })).body, { tenant: B, source: 'header', kind: 'anonymous' }, framework.name)
    assert.deepEqual((await call(port, 'GET', '/items', { 'x-tenant-id': A })).body, { items: ['a-1', 'a-2'] })
    assertProblem(await call(port, 'GET', '/items', { 'x-tenant-id': "x'; DROP TABLE items; --" }), 400, 'TZ_HTTP_INVALID_TENANT_ID')
  }
})

test('Fastify: errors that are not tenantize\'s go to Fastify\'s own handler', async () => {
  const app = Fastify()
  await app.register(fastifyAdapter.tenantPlugin, options)
  app.setErrorHandler(fastifyAdapter.problemErrorHandler())
  app.get('/boom', async () => {
    throw Object.assign(new Error('teapot'), { statusCode: 418 })
  })
  const reply = await app.inject({ method: 'GET', url: '/boom', headers: bearer(await token({ sub: 'alice', org_id: A })) })
  assert.equal(reply.statusCode, 418)
  assert.match(String(reply.headers['content-type']), /^application\/json/)
  const rejected = await app.inject({ method: 'GET', url: '/boom' })
  assert.equal(rejected.statusCode, 401)
  await app.close()
})

test('Hono: unknown errors become a bare 500 problem without their message; app.request works too', async () => {
  const app = new Hono<honoAdapter.TenantEnv>()
  app.use(honoAdapter.tenantMiddleware(options))
  app.onError(honoAdapter.problemErrorHandler({ logger }))
  app.get('/boom', () => {
    throw new Error(`failed for tenant ${A}`)
  })
  app.get('/tenant', (c) => c.json({ tenant: currentTenant(), auth: c.get('tenantize').tenantId }))
  const headers = bearer(await token({ sub: 'alice', org_id: A }))
  const boom = await app.request('/boom', { headers })
  assert.equal(boom.status, 500)
  const text = await boom.text()
  assert.ok(!text.includes(A))
  assert.equal(JSON.parse(text).code, 'TZ_HTTP_INTERNAL')
  assert.deepEqual(await (await app.request('/tenant', { headers })).json(), { tenant: A, auth: A })
  assert.equal((await app.request('http://gamma.example.test/tenant', { headers: bearer(await token({ sub: 'bob' })) })).status, 404)
})

test('unsafe options are refused when the app is built', async () => {
  assert.throws(() => expressAdapter.tenantMiddleware({}), /at least one way to authenticate/)
  assert.throws(() => honoAdapter.tenantMiddleware({ jwt: { secret: SECRET }, slug: { baseDomain: 'example.test', resolve: async () => undefined } }), /needs isMember/)
  for (const adapter of [expressAdapter, fastifyAdapter, honoAdapter]) assert.throws(() => adapter.requirePermission(rbac, 'reports'), /not a permission name/)
  await assert.rejects(async () => {
    const app = Fastify()
    void app.register(fastifyAdapter.tenantPlugin, { jwt: { secret: 'short' } })
    await app.ready()
  }, /at least 32 bytes/)
})

test('no log line contains a tenant id, slug, token or API key', async () => {
  assert.ok(logged.length > 50, `the middleware logged the rejections (${logged.length})`)
  for (const line of logged) {
    for (const secret of secrets) assert.ok(!line.includes(secret), `log line leaks a value: ${line}`)
    assert.ok(!/eyJ/.test(line), `log line leaks a token: ${line}`)
    assert.ok(!line.includes('DROP TABLE'), line)
  }
  assert.ok(logged.some((l) => l.includes('"code":"TZ_HTTP_INVALID_API_KEY"') && l.includes('"reason":"revoked"')))
  assert.ok(logged.some((l) => l.includes('"code":"TZ_HTTP_TOKEN_EXPIRED"')))
})
