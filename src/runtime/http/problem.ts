import { InvalidTenantIdError, TenantAccessError } from '../errors.js'

/**
 * Stable codes of the HTTP errors the middleware answers with, one per situation. Each response is an
 * RFC 9457 problem document whose `code` member is one of these, so clients can `switch` on it.
 */
export const HttpErrorCodes = {
  /** 401: no credentials (no bearer token, no API key). */
  UNAUTHENTICATED: 'TZ_HTTP_UNAUTHENTICATED',
  /** 401: the bearer token is malformed, badly signed, from the wrong issuer/audience, or names no user. */
  INVALID_TOKEN: 'TZ_HTTP_INVALID_TOKEN',
  /** 401: the bearer token has expired. */
  TOKEN_EXPIRED: 'TZ_HTTP_TOKEN_EXPIRED',
  /** 401: the API key is malformed, unknown, revoked or expired (one answer for all four). */
  INVALID_API_KEY: 'TZ_HTTP_INVALID_API_KEY',
  /** 400: both a bearer token and an API key were sent. */
  AMBIGUOUS_CREDENTIALS: 'TZ_HTTP_AMBIGUOUS_CREDENTIALS',
  /** 400: a tenant id of the wrong type (a number where a uuid is expected, SQL, …). */
  INVALID_TENANT_ID: 'TZ_HTTP_INVALID_TENANT_ID',
  /** 403: the credentials name no tenant and the request selects none. */
  NO_TENANT: 'TZ_HTTP_NO_TENANT',
  /** 403: the user is not a member of the tenant, or the API key belongs to another tenant. */
  NOT_A_MEMBER: 'TZ_HTTP_NOT_A_MEMBER',
  /** 403: the user's role (or the API key's scopes) lacks the permission. */
  FORBIDDEN: 'TZ_HTTP_FORBIDDEN',
  /** 403: the tenant is suspended (`tenantize tenant suspend`). */
  TENANT_SUSPENDED: 'TZ_HTTP_TENANT_SUSPENDED',
  /** 404: no such tenant (unknown slug) or no such resource — also for another tenant's resource. */
  NOT_FOUND: 'TZ_HTTP_NOT_FOUND',
  /** 500: a resolver, membership lookup or key store failed; details are not sent to the client. */
  INTERNAL: 'TZ_HTTP_INTERNAL',
} as const

export type HttpErrorCode = (typeof HttpErrorCodes)[keyof typeof HttpErrorCodes]

const STATUS: Readonly<Record<HttpErrorCode, number>> = {
  TZ_HTTP_UNAUTHENTICATED: 401,
  TZ_HTTP_INVALID_TOKEN: 401,
  TZ_HTTP_TOKEN_EXPIRED: 401,
  TZ_HTTP_INVALID_API_KEY: 401,
  TZ_HTTP_AMBIGUOUS_CREDENTIALS: 400,
  TZ_HTTP_INVALID_TENANT_ID: 400,
  TZ_HTTP_NO_TENANT: 403,
  TZ_HTTP_NOT_A_MEMBER: 403,
  TZ_HTTP_FORBIDDEN: 403,
  TZ_HTTP_TENANT_SUSPENDED: 403,
  TZ_HTTP_NOT_FOUND: 404,
  TZ_HTTP_INTERNAL: 500,
}

const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  500: 'Internal Server Error',
}

const DETAILS: Readonly<Record<HttpErrorCode, string>> = {
  TZ_HTTP_UNAUTHENTICATED: 'send a bearer token or an API key',
  TZ_HTTP_INVALID_TOKEN: 'the bearer token is not valid',
  TZ_HTTP_TOKEN_EXPIRED: 'the bearer token has expired',
  TZ_HTTP_INVALID_API_KEY: 'the API key is not valid',
  TZ_HTTP_AMBIGUOUS_CREDENTIALS: 'send either a bearer token or an API key, not both',
  TZ_HTTP_INVALID_TENANT_ID: 'the tenant id is not valid',
  TZ_HTTP_NO_TENANT: 'the request does not select a tenant',
  TZ_HTTP_NOT_A_MEMBER: 'the credentials do not give access to this tenant',
  TZ_HTTP_FORBIDDEN: 'the credentials do not allow this action',
  TZ_HTTP_TENANT_SUSPENDED: 'the tenant is suspended',
  TZ_HTTP_NOT_FOUND: 'not found',
  TZ_HTTP_INTERNAL: 'the request could not be completed',
}

/** An RFC 9457 problem document (`application/problem+json`) with tenantize's `code` member. */
export interface ProblemDocument {
  readonly type: 'about:blank'
  readonly title: string
  readonly status: number
  readonly detail: string
  readonly code: HttpErrorCode
}

/** What a framework adapter sends: status, headers and the JSON body. */
export interface ProblemResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: ProblemDocument
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json'

/**
 * An error that becomes a problem response. Its message is the client-facing `detail`, which never
 * contains a tenant id, token, key or slug. `reason` is a short machine word for logs (e.g. `expired`,
 * `revoked`), also free of values.
 */
export class HttpProblemError extends Error {
  readonly code: HttpErrorCode
  readonly status: number
  readonly reason: string | undefined

  constructor(code: HttpErrorCode, detail: string = DETAILS[code], options: { reason?: string; cause?: unknown } = {}) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'HttpProblemError'
    this.code = code
    this.status = STATUS[code]
    this.reason = options.reason
  }

  /** The problem document and headers to send. */
  toResponse(): ProblemResponse {
    const headers: Record<string, string> = { 'content-type': PROBLEM_CONTENT_TYPE, 'cache-control': 'no-store' }
    if (this.status === 401) {
      const error = this.code === HttpErrorCodes.UNAUTHENTICATED ? '' : ', error="invalid_token"'
      headers['www-authenticate'] = `Bearer realm="api"${error}`
    }
    return Object.freeze({
      status: this.status,
      headers: Object.freeze(headers),
      body: Object.freeze({ type: 'about:blank', title: TITLES[this.status] ?? 'Error', status: this.status, detail: this.message, code: this.code }),
    })
  }

  /** `{ name, code, status, reason, message }` — safe to log. */
  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, status: this.status, reason: this.reason, message: this.message }
  }
}

/**
 * The 404 a handler throws for a resource that does not exist. It is the same response a request for
 * another tenant's resource gets (see {@link problemFromError}), so clients cannot tell the two apart.
 */
export function notFound(): HttpProblemError {
  return new HttpProblemError(HttpErrorCodes.NOT_FOUND)
}

/**
 * The problem error for an error thrown by a handler, or `undefined` for errors that are not
 * tenantize's (leave those to the framework's own error handling):
 * - {@link HttpProblemError} → itself;
 * - `TenantAccessError` (another tenant's resource, `assertSameTenant`) → exactly the 404 of
 *   {@link notFound}: no existence oracle;
 * - `InvalidTenantIdError` (e.g. `parseTenantId` on a URL parameter) → 400 `TZ_HTTP_INVALID_TENANT_ID`.
 */
export function toHttpProblem(error: unknown): HttpProblemError | undefined {
  if (error instanceof HttpProblemError) return error
  if (error instanceof TenantAccessError) return new HttpProblemError(HttpErrorCodes.NOT_FOUND, undefined, { reason: 'other-tenant' })
  if (error instanceof InvalidTenantIdError) return new HttpProblemError(HttpErrorCodes.INVALID_TENANT_ID, undefined, { reason: 'tenant-id' })
  return undefined
}

/** {@link toHttpProblem} as the response to send, or `undefined`. */
export function problemFromError(error: unknown): ProblemResponse | undefined {
  return toHttpProblem(error)?.toResponse()
}
