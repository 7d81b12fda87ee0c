import { AsyncLocalStorage } from 'node:async_hooks'

/** Who sent the request, as established by the middleware. */
export type Principal =
  /** A user authenticated by a bearer token; `role` comes from the membership check, when it returns one. */
  | { readonly kind: 'user'; readonly userId: string; readonly role: string | undefined; readonly claims: Readonly<Record<string, unknown>> }
  /** An API key; it belongs to exactly one tenant and carries its scopes. */
  | { readonly kind: 'api-key'; readonly keyId: string; readonly scopes: readonly string[] }
  /** No credentials, only the development tenant header (when enabled). */
  | { readonly kind: 'anonymous' }

/** Where the request's tenant came from. */
export type TenantSource = 'token' | 'api-key' | 'slug' | 'header'

/** The outcome of tenant resolution for one request; handlers read it with {@link currentAuth}. */
export interface TenantAuth {
  /** The tenant id in canonical form (the same as `currentTenant()` inside the handler). */
  readonly tenantId: string
  readonly principal: Principal
  readonly source: TenantSource
  /** The request's `X-Request-Id` when it is well-formed, else a new uuid; audit rows carry it. */
  readonly requestId: string
}

const storage = new AsyncLocalStorage<TenantAuth>()

/** Run `fn` with `auth` as the current request's authentication (the middleware does this). */
export function runWithAuth<T>(auth: TenantAuth, fn: () => T): T {
  return storage.run(auth, fn)
}

/** The current request's authentication inside a handler behind the tenant middleware, else `undefined`. */
export function currentAuth(): TenantAuth | undefined {
  return storage.getStore()
}
