/**
 * `tenantize/runtime/express` — tenant middleware for Express 5.
 *
 * ```ts
 * app.use(tenantMiddleware({ jwt: { secret }, isMember: sqlMembership({ pool: systemPool }) }))
 * app.get('/reports', requirePermission(rbac, 'reports:read'), handler) // handler runs inside withTenant
 * app.use(problemErrorHandler())                                        // TenantAccessError → 404
 * ```
 *
 * Express is used for types only; this module does not load it.
 *
 * @module
 */
import type { ErrorRequestHandler, Request, RequestHandler, Response } from 'express'
import { currentAuth, type TenantAuth } from './http/auth-context.js'
import { HttpProblemError, toHttpProblem, type ProblemResponse } from './http/problem.js'
import { createTenantHttp, logProblem, type HttpLogger, type HttpRequestLike, type TenantHttpOptions } from './http/resolve.js'
import type { Rbac } from './rbac.js'

export * from './http/index.js'

function requestLike(req: Request): HttpRequestLike {
  return {
    method: req.method,
    hostname: req.hostname,
    header: (name) => {
      const value = req.headers[name]
      return Array.isArray(value) ? value[0] : value
    },
  }
}

function send(res: Response, problem: ProblemResponse): void {
  res.status(problem.status).set(problem.headers).send(JSON.stringify(problem.body))
}

/** The authentication of the request, set by {@link tenantMiddleware} (also `res.locals.tenantize`). */
export function authOf(res: Response): TenantAuth | undefined {
  return res.locals['tenantize'] as TenantAuth | undefined
}

/**
 * Authenticate each request, find its tenant, check membership, and run the rest of the chain inside
 * `withTenant` (and with `currentAuth()` set). Rejections are answered at once as
 * `application/problem+json`; the route handlers never run. See `createTenantHttp` for the options.
 *
 * @throws {TypeError} for unsafe or incomplete options (when the app is built, not per request).
 */
export function tenantMiddleware(options: TenantHttpOptions): RequestHandler {
  const http = createTenantHttp(options)
  return (req, res, next) => {
    http.resolve(requestLike(req)).then(
      (auth) => {
        res.locals['tenantize'] = auth
        try {
          http.run(auth, () => next())
        } catch (error) {
          next(error)
        }
      },
      (error: unknown) => send(res, (error as HttpProblemError).toResponse()),
    ).catch(next)
  }
}

/**
 * A route guard: 403 unless the request's user role or API key scopes grant `permission`.
 * @throws {TypeError} at once for a malformed permission name.
 */
export function requirePermission(rbac: Rbac, permission: string): RequestHandler {
  rbac.can(undefined, permission) // a malformed permission is a TypeError now, not on the first request
  return (_req, res, next) => {
    try {
      rbac.assertCan((authOf(res) ?? currentAuth())?.principal, permission)
    } catch (error) {
      if (error instanceof HttpProblemError) return send(res, error.toResponse())
      throw error
    }
    next()
  }
}

/**
 * An error handler (register it after the routes) that answers tenantize's errors as problem
 * documents — `TenantAccessError` as the same 404 as `notFound()`, `InvalidTenantIdError` as 400,
 * `HttpProblemError` as itself — and passes every other error on to Express.
 */
export function problemErrorHandler(options: { readonly logger?: HttpLogger } = {}): ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    const problem = toHttpProblem(error)
    if (problem === undefined || res.headersSent) return next(error)
    logProblem(options.logger, problem, req.method, authOf(res)?.requestId)
    send(res, problem.toResponse())
  }
}
