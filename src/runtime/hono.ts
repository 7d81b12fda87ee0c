/**
 * `tenantize/runtime/hono` — tenant middleware for Hono 4.
 *
 * ```ts
 * const app = new Hono<TenantEnv>()
 * app.use(tenantMiddleware({ jwt: { secret }, isMember: sqlMembership({ pool: systemPool }) }))
 * app.get('/reports', requirePermission(rbac, 'reports:read'), handler) // handler runs inside withTenant
 * app.onError(problemErrorHandler())                                    // TenantAccessError → 404
 * ```
 *
 * Hono is used for types only; this module does not load it.
 *
 * @module
 */
import type { Context, ErrorHandler, MiddlewareHandler } from 'hono'
import type { TenantAuth } from './http/auth-context.js'
import { HttpErrorCodes, HttpProblemError, toHttpProblem, type ProblemResponse } from './http/problem.js'
import { createTenantHttp, logProblem, type HttpLogger, type HttpRequestLike, type TenantHttpOptions } from './http/resolve.js'
import type { Rbac } from './rbac.js'

export * from './http/index.js'

/** The Hono environment the middleware sets: `c.get('tenantize')`. Use `new Hono<TenantEnv>()`. */
export type TenantEnv = { Variables: { tenantize: TenantAuth } }

function requestLike(c: Context): HttpRequestLike {
  let hostname: string | undefined
  try {
    hostname = new URL(c.req.url).hostname
  } catch {
    hostname = undefined
  }
  return { method: c.req.method, hostname, header: (name) => c.req.header(name) }
}

function respond(problem: ProblemResponse): Response {
  return new Response(JSON.stringify(problem.body), { status: problem.status, headers: { ...problem.headers } })
}

/**
 * Authenticate each request, find its tenant, check membership, and run the rest of the chain inside
 * `withTenant` (and with `currentAuth()` set); `c.get('tenantize')` holds the result. Rejections are
 * answered at once as `application/problem+json`. See `createTenantHttp` for the options.
 *
 * @throws {TypeError} for unsafe or incomplete options (when the app is built, not per request).
 */
export function tenantMiddleware(options: TenantHttpOptions): MiddlewareHandler<TenantEnv> {
  const http = createTenantHttp(options)
  return async (c, next) => {
    let auth: TenantAuth
    try {
      auth = await http.resolve(requestLike(c))
    } catch (error) {
      return respond((error as HttpProblemError).toResponse())
    }
    c.set('tenantize', auth)
    await http.run(auth, () => next())
  }
}

/**
 * A route guard: 403 unless the request's user role or API key scopes grant `permission`.
 * @throws {TypeError} at once for a malformed permission name.
 */
export function requirePermission(rbac: Rbac, permission: string): MiddlewareHandler<TenantEnv> {
  rbac.can(undefined, permission) // a malformed permission is a TypeError now, not on the first request
  return async (c, next) => {
    try {
      rbac.assertCan(c.get('tenantize')?.principal, permission)
    } catch (error) {
      if (error instanceof HttpProblemError) return respond(error.toResponse())
      throw error
    }
    await next()
  }
}

/**
 * For `app.onError(…)`: answers tenantize's errors as problem documents — `TenantAccessError` as the
 * same 404 as `notFound()`, `InvalidTenantIdError` as 400, `HttpProblemError` as itself — Hono's
 * `HTTPException`s with their own response, and anything else as a bare 500 problem (`fallback` to
 * answer those yourself). Messages of unknown errors are never sent or logged: they may quote values.
 */
export function problemErrorHandler(options: { readonly logger?: HttpLogger; readonly fallback?: ErrorHandler } = {}): ErrorHandler {
  return (error, c) => {
    const problem = toHttpProblem(error)
    if (problem === undefined) {
      if (typeof (error as { getResponse?: unknown }).getResponse === 'function') return (error as { getResponse(): Response }).getResponse()
      if (options.fallback !== undefined) return options.fallback(error, c)
      const internal = new HttpProblemError(HttpErrorCodes.INTERNAL, undefined, { reason: 'handler-failed', cause: error })
      logProblem(options.logger, internal, c.req.method, (c.get('tenantize') as TenantAuth | undefined)?.requestId)
      return respond(internal.toResponse())
    }
    logProblem(options.logger, problem, c.req.method, (c.get('tenantize') as TenantAuth | undefined)?.requestId)
    return respond(problem.toResponse())
  }
}
