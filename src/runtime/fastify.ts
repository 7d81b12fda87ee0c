/**
 * `tenantize/runtime/fastify` — tenant plugin for Fastify 5.
 *
 * ```ts
 * await app.register(tenantPlugin, { jwt: { secret }, isMember: sqlMembership({ pool: systemPool }) })
 * app.setErrorHandler(problemErrorHandler())                // TenantAccessError → 404
 * app.get('/reports', { preHandler: requirePermission(rbac, 'reports:read') }, handler)
 * ```
 *
 * Credentials are checked in `onRequest` (before the body is read); the route's `preHandler` hooks and
 * handler run inside `withTenant`. Fastify is used for types only; this module does not load it.
 *
 * @module
 */
import type { FastifyError, FastifyPluginCallback, FastifyReply, FastifyRequest, preHandlerHookHandler } from 'fastify'
import type { TenantAuth } from './http/auth-context.js'
import { HttpProblemError, toHttpProblem, type ProblemResponse } from './http/problem.js'
import { createTenantHttp, logProblem, type HttpLogger, type HttpRequestLike, type TenantHttpOptions } from './http/resolve.js'
import type { Rbac } from './rbac.js'

export * from './http/index.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by tenantize's `tenantPlugin`: who is asking and for which tenant; `null` before it ran. */
    tenantize: TenantAuth | null
  }
}

function requestLike(request: FastifyRequest): HttpRequestLike {
  return {
    method: request.method,
    hostname: request.hostname,
    header: (name) => {
      const value = request.headers[name]
      return Array.isArray(value) ? value[0] : value
    },
  }
}

function send(reply: FastifyReply, problem: ProblemResponse): FastifyReply {
  return reply.code(problem.status).headers(problem.headers).send(JSON.stringify(problem.body))
}

const plugin: FastifyPluginCallback<TenantHttpOptions> = (app, options, done) => {
  let http: ReturnType<typeof createTenantHttp>
  try {
    http = createTenantHttp(options)
  } catch (error) {
    done(error as Error)
    return
  }
  app.decorateRequest('tenantize', null)
  app.addHook('onRequest', (request, reply, hookDone) => {
    http.resolve(requestLike(request)).then(
      (auth) => {
        request.tenantize = auth
        hookDone()
      },
      (error: unknown) => {
        send(reply, (error as HttpProblemError).toResponse())
      },
    )
  })
  app.addHook('preHandler', (request, _reply, hookDone) => {
    const auth = request.tenantize
    if (auth === null) {
      hookDone(new Error('tenantize: preHandler ran without onRequest'))
      return
    }
    try {
      http.run(auth, () => hookDone())
    } catch (error) {
      hookDone(error as Error)
    }
  })
  done()
}

// Like fastify-plugin: the hooks apply to the whole application, not only inside the plugin's scope.
Object.assign(plugin, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: 'tenantize' })

/**
 * Register with `app.register(tenantPlugin, options)`: authenticates every request, finds its tenant,
 * checks membership, and runs the handler inside `withTenant`; `request.tenantize` holds the result.
 * Rejections are answered in `onRequest` as `application/problem+json`. See `createTenantHttp` for
 * the options; unsafe options make `register` fail with a TypeError.
 */
export const tenantPlugin: FastifyPluginCallback<TenantHttpOptions> = plugin

/**
 * A route `preHandler` guard: 403 unless the request's user role or API key scopes grant `permission`.
 * @throws {TypeError} at once for a malformed permission name.
 */
export function requirePermission(rbac: Rbac, permission: string): preHandlerHookHandler {
  rbac.can(undefined, permission) // a malformed permission is a TypeError now, not on the first request
  return function guard(request, reply, done) {
    try {
      rbac.assertCan(request.tenantize?.principal, permission)
    } catch (error) {
      if (error instanceof HttpProblemError) {
        send(reply, error.toResponse())
        return
      }
      throw error
    }
    done()
  }
}

/**
 * For `app.setErrorHandler(…)`: answers tenantize's errors as problem documents — `TenantAccessError`
 * as the same 404 as `notFound()`, `InvalidTenantIdError` as 400, `HttpProblemError` as itself — and
 * hands every other error back to Fastify's default handling.
 */
export function problemErrorHandler(options: { readonly logger?: HttpLogger } = {}) {
  return function handler(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
    const problem = toHttpProblem(error)
    if (problem === undefined) throw error
    logProblem(options.logger, problem, request.method, request.tenantize?.requestId)
    return send(reply, problem.toResponse())
  }
}
