import { randomUUID } from 'node:crypto'
import { createTenantContext, type TenantContext } from '../context.js'
import { InvalidTenantIdError } from '../errors.js'
import { parseTenantId, type TenantIdType } from '../tenant-id.js'
import { runWithAuth, type Principal, type TenantAuth, type TenantSource } from './auth-context.js'
import { jwtVerifier, type JwtOptions, type VerifiedToken } from './jwt.js'
import type { IsMember } from './membership.js'
import { HttpErrorCodes, HttpProblemError } from './problem.js'

/** The little the core needs from a framework's request. */
export interface HttpRequestLike {
  readonly method: string
  /** The host name without port (as the framework reports it), or `undefined`. */
  readonly hostname: string | undefined
  /** A header's value by lower-case name; the first one when repeated. */
  header(name: string): string | undefined
}

/** The outcome of checking an API key; see `createApiKeyStore` in `tenantize/runtime/api-keys`. */
export type ApiKeyVerification =
  | { readonly valid: true; readonly keyId: string; readonly tenantId: string; readonly scopes: readonly string[] }
  | { readonly valid: false; readonly reason: 'malformed' | 'unknown' | 'revoked' | 'expired' }

/** Checks an API key (in constant time) and says which tenant it belongs to. */
export interface ApiKeyVerifier {
  verify(key: string): Promise<ApiKeyVerification>
}

/** Tenant routing by slug (seed 003): the subdomain, or whatever `extract` returns, names the tenant. */
export interface SlugOptions {
  /** `example.com`: a request to `acme.example.com` has slug `acme`; `example.com` itself has none. */
  readonly baseDomain?: string
  /** Subdomains that are not tenants. Default `['www']`. */
  readonly reserved?: readonly string[]
  /** Take the slug from elsewhere (a path prefix, a header); return `undefined` for "no slug". Compared in lower case. */
  readonly extract?: (request: HttpRequestLike) => string | undefined
  /** Slug → tenant id, or `undefined` when there is no such tenant (answered with 404). */
  readonly resolve: (slug: string) => Promise<string | undefined>
}

/**
 * Where the middleware logs rejected requests: one `warn` per 4xx and one `error` per 500, with the
 * fields `event`, `status`, `code`, `reason`, `method`, `requestId` — never a tenant id, slug, token or
 * key. Fits pino (`request.log`) and `console`.
 */
export interface HttpLogger {
  warn(fields: Record<string, unknown>, message: string): void
  error?(fields: Record<string, unknown>, message: string): void
}

export interface TenantHttpOptions {
  /** The type of tenant ids. Default `uuid`. */
  readonly idType?: TenantIdType
  /** Accept bearer tokens (`Authorization: Bearer …`). */
  readonly jwt?: JwtOptions
  /** Accept API keys in {@link apiKeyHeader}. */
  readonly apiKeys?: ApiKeyVerifier
  /** Default `x-api-key`. */
  readonly apiKeyHeader?: string
  /** Select the tenant by slug. Needs {@link isMember} when tokens are accepted. */
  readonly slug?: SlugOptions
  /**
   * Is the token's user a member of the tenant? Required with slug routing; optional when the tenant
   * comes from the token's claim (then it also catches revoked memberships). See `sqlMembership`.
   */
  readonly isMember?: IsMember
  /**
   * DEVELOPMENT ONLY: take the tenant from a request header (`true` → `x-tenant-id`). Off by default;
   * refused when `NODE_ENV` is `production`. A request with only this header runs anonymously.
   */
  readonly tenantHeader?: boolean | { readonly name?: string }
  /** The header carrying a caller's request id. Default `x-request-id`; `false` always generates one. */
  readonly requestIdHeader?: string | false
  readonly logger?: HttpLogger
  /**
   * The tenant's lifecycle status (see `sqlTenantStatus`, which reads `tenantize.tenant_status`): a
   * `suspended` tenant is answered 403 `TZ_HTTP_TENANT_SUSPENDED` (after the membership check, so only its
   * members learn it); an `importing` or `deleting` one 404, exactly like an unknown tenant; `active` or
   * `undefined` (no status recorded) pass; any other value 403.
   */
  readonly tenantStatus?: TenantStatusLookup
}

/** `tenantStatus(tenantId)`: the tenant's lifecycle status, or `undefined` when none is recorded (active). */
export type TenantStatusLookup = (tenantId: string) => Promise<string | undefined>

/** The framework-independent core every adapter uses. */
export interface TenantHttp {
  readonly idType: TenantIdType
  /**
   * Authenticate the request and find its tenant.
   * @throws {HttpProblemError} always, and only, this: 4xx for the client, 500 for internal failures.
   */
  resolve(request: HttpRequestLike): Promise<TenantAuth>
  /** Run `fn` as `auth`'s tenant (`withTenant`) with `auth` as `currentAuth()`. */
  run<T>(auth: TenantAuth, fn: () => T): T
}

const SLUG = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/
const BEARER = /^bearer(?:[ \t]+(\S*))?[ \t]*$/i
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/

function headerName(name: string, what: string): string {
  const lower = name.toLowerCase()
  if (!HEADER_NAME.test(lower)) throw new TypeError(`${what}: ${JSON.stringify(name)} is not a valid header name`)
  return lower
}

/**
 * Check the options once and build the core: credentials → tenant → membership, then `run`.
 *
 * Order of checks (and answers): both a token and a key → 400; no credentials → 401; a bad, expired or
 * revoked credential → 401; an unknown slug → 404; a tenant id of the wrong type → 400; no tenant →
 * 403; a tenant being imported or deleted (`tenantStatus`) → 404; not a member (or a key of another tenant) →
 * 403; a suspended tenant → 403. The handler never runs on any of them.
 *
 * @throws {TypeError} for options that would let requests through unchecked (slug routing of users
 *   without `isMember`; the tenant header in production; no credential source at all).
 */
export function createTenantHttp(options: TenantHttpOptions): TenantHttp {
  const idType = options.idType ?? 'uuid'
  const context: TenantContext = createTenantContext({ idType })
  const verifyToken = options.jwt === undefined ? undefined : jwtVerifier(options.jwt)
  const apiKeyHeader = headerName(options.apiKeyHeader ?? 'x-api-key', 'apiKeyHeader')
  const tenantHeader =
    options.tenantHeader === undefined || options.tenantHeader === false
      ? undefined
      : headerName(options.tenantHeader === true ? 'x-tenant-id' : (options.tenantHeader.name ?? 'x-tenant-id'), 'tenantHeader')
  if (tenantHeader !== undefined && process.env['NODE_ENV'] === 'production') {
    throw new TypeError('tenantHeader is for development only and is refused when NODE_ENV=production: clients could pick any tenant')
  }
  if (verifyToken === undefined && options.apiKeys === undefined && tenantHeader === undefined) {
    throw new TypeError('give at least one way to authenticate: jwt or apiKeys')
  }
  const slug = options.slug
  if (slug !== undefined) {
    if (slug.baseDomain === undefined && slug.extract === undefined) throw new TypeError('slug: give baseDomain or extract')
    if (verifyToken !== undefined && options.isMember === undefined) {
      throw new TypeError('slug routing needs isMember: without it any signed-in user could enter any tenant by its subdomain')
    }
  }
  const baseDomain = slug?.baseDomain?.toLowerCase().replace(/\.$/, '')
  const reserved = new Set((slug?.reserved ?? ['www']).map((name) => name.toLowerCase()))
  const requestIdHeader = options.requestIdHeader === false ? undefined : headerName(options.requestIdHeader ?? 'x-request-id', 'requestIdHeader')
  const logger = options.logger

  function slugOf(request: HttpRequestLike): string | undefined {
    if (slug?.extract !== undefined) return slug.extract(request)?.toLowerCase()
    const host = request.hostname?.toLowerCase().replace(/\.$/, '')
    if (host === undefined || baseDomain === undefined || !host.endsWith(`.${baseDomain}`)) return undefined
    const label = host.slice(0, -baseDomain.length - 1)
    return reserved.has(label) ? undefined : label
  }

  function canonical(value: unknown): string {
    try {
      return parseTenantId(value, idType)
    } catch (error) {
      if (error instanceof InvalidTenantIdError) throw new HttpProblemError(HttpErrorCodes.INVALID_TENANT_ID, undefined, { reason: 'tenant-id', cause: error })
      throw error
    }
  }

  /** A tenant id that came from the server side (key store, slug resolver): invalid means a server bug. */
  function trusted(value: string, what: string): string {
    try {
      return parseTenantId(value, idType)
    } catch (error) {
      throw new HttpProblemError(HttpErrorCodes.INTERNAL, undefined, { reason: `${what}-returned-invalid-id`, cause: error })
    }
  }

  async function authenticate(request: HttpRequestLike): Promise<{ principal: Principal; token?: VerifiedToken; keyTenant?: string }> {
    const authorization = verifyToken === undefined ? undefined : request.header('authorization')
    const match = authorization === undefined ? null : BEARER.exec(authorization)
    const bearer = match === null ? undefined : (match[1] ?? '')
    const key = options.apiKeys === undefined ? undefined : request.header(apiKeyHeader)
    if (bearer !== undefined && key !== undefined) throw new HttpProblemError(HttpErrorCodes.AMBIGUOUS_CREDENTIALS)
    if (key !== undefined) {
      const result = await options.apiKeys!.verify(key)
      if (!result.valid) throw new HttpProblemError(HttpErrorCodes.INVALID_API_KEY, undefined, { reason: result.reason })
      return {
        principal: Object.freeze({ kind: 'api-key', keyId: result.keyId, scopes: Object.freeze([...result.scopes]) }),
        keyTenant: trusted(result.tenantId, 'api-key-store'),
      }
    }
    if (bearer !== undefined) {
      if (bearer === '') throw new HttpProblemError(HttpErrorCodes.INVALID_TOKEN, undefined, { reason: 'empty' })
      const token = await verifyToken!(bearer)
      return { principal: Object.freeze({ kind: 'user', userId: token.userId, role: undefined, claims: token.claims }), token }
    }
    if (tenantHeader !== undefined && request.header(tenantHeader) !== undefined) return { principal: Object.freeze({ kind: 'anonymous' }) }
    throw new HttpProblemError(HttpErrorCodes.UNAUTHENTICATED, undefined, { reason: authorization === undefined ? 'none' : 'not-bearer' })
  }

  async function selectTenant(request: HttpRequestLike, token: VerifiedToken | undefined, keyTenant: string | undefined): Promise<{ tenantId: string; source: TenantSource }> {
    const requested = slug === undefined ? undefined : slugOf(request)
    if (requested !== undefined) {
      if (!SLUG.test(requested)) throw new HttpProblemError(HttpErrorCodes.NOT_FOUND, undefined, { reason: 'bad-slug' })
      const id = await slug!.resolve(requested)
      if (id === undefined) throw new HttpProblemError(HttpErrorCodes.NOT_FOUND, undefined, { reason: 'unknown-slug' })
      return { tenantId: trusted(id, 'slug-resolver'), source: 'slug' }
    }
    const header = tenantHeader === undefined ? undefined : request.header(tenantHeader)
    if (header !== undefined) return { tenantId: canonical(header), source: 'header' }
    if (keyTenant !== undefined) return { tenantId: keyTenant, source: 'api-key' }
    if (token !== undefined && token.tenantClaim !== undefined) return { tenantId: canonical(token.tenantClaim), source: 'token' }
    throw new HttpProblemError(HttpErrorCodes.NO_TENANT, undefined, { reason: 'no-tenant' })
  }

  function requestIdOf(request: HttpRequestLike): string {
    const sent = requestIdHeader === undefined ? undefined : request.header(requestIdHeader)
    return sent !== undefined && REQUEST_ID.test(sent) ? sent : randomUUID()
  }

  async function resolve(request: HttpRequestLike): Promise<TenantAuth> {
    const requestId = requestIdOf(request)
    try {
      const { principal, token, keyTenant } = await authenticate(request)
      const { tenantId, source } = await selectTenant(request, token, keyTenant)
      const status = options.tenantStatus === undefined ? undefined : await options.tenantStatus(tenantId)
      // A tenant still being imported (or being deleted) does not exist for the app yet (or any more).
      if (status === 'importing' || status === 'deleting') throw new HttpProblemError(HttpErrorCodes.NOT_FOUND, undefined, { reason: `tenant-${status}` })
      let finalPrincipal = principal
      if (principal.kind === 'api-key') {
        if (tenantId !== keyTenant) throw new HttpProblemError(HttpErrorCodes.NOT_A_MEMBER, undefined, { reason: 'key-of-another-tenant' })
      } else if (principal.kind === 'user' && options.isMember !== undefined) {
        const member = await options.isMember(principal.userId, tenantId)
        if (member === false) throw new HttpProblemError(HttpErrorCodes.NOT_A_MEMBER, undefined, { reason: 'not-a-member' })
        if (member !== true) finalPrincipal = Object.freeze({ ...principal, role: member.role })
      }
      if (status === 'suspended') throw new HttpProblemError(HttpErrorCodes.TENANT_SUSPENDED, undefined, { reason: 'tenant-suspended' })
      if (status !== undefined && status !== 'active') throw new HttpProblemError(HttpErrorCodes.TENANT_SUSPENDED, undefined, { reason: 'tenant-status-unknown' })
      return Object.freeze({ tenantId, principal: finalPrincipal, source, requestId })
    } catch (error) {
      const problem = error instanceof HttpProblemError ? error : new HttpProblemError(HttpErrorCodes.INTERNAL, undefined, { reason: 'resolver-failed', cause: error })
      logProblem(logger, problem, request.method, requestId)
      throw problem
    }
  }

  return Object.freeze({
    idType,
    resolve,
    run: <T>(auth: TenantAuth, fn: () => T): T => context.withTenant(auth.tenantId, () => runWithAuth(auth, fn)),
  })
}

/**
 * Log a problem answer: `warn` for 4xx, `error` (or `warn`) for 5xx, with `event`, `status`, `code`,
 * `reason`, `method`, `requestId` and, for 5xx, the cause's class name and SQLSTATE — never its message,
 * which may quote a value.
 */
export function logProblem(logger: HttpLogger | undefined, error: HttpProblemError, method: string, requestId: string | undefined): void {
  if (logger === undefined) return
  const fields: Record<string, unknown> = { event: 'tenantize.http.rejected', status: error.status, code: error.code, reason: error.reason, method, requestId }
  if (error.status >= 500) {
    const cause = error.cause as { name?: unknown; code?: unknown } | undefined
    fields['cause'] = typeof cause?.name === 'string' ? cause.name : undefined
    fields['sqlstate'] = typeof cause?.code === 'string' && /^[0-9A-Z]{5}$/.test(cause.code) ? cause.code : undefined
    if (logger.error !== undefined) logger.error(fields, 'tenantize: request failed')
    else logger.warn(fields, 'tenantize: request failed')
  } else {
    logger.warn(fields, 'tenantize: request rejected')
  }
}
