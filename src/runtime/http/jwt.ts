import type * as JoseModule from 'jose'
import type { JWTPayload, JWTVerifyGetKey } from 'jose'
import { HttpErrorCodes, HttpProblemError } from './problem.js'

/**
 * How bearer tokens are verified (with `jose`, loaded on first use). Give exactly one key source:
 * `secret` (HMAC, at least 32 bytes), `jwksUrl` (fetched and cached by jose) or `jwks` (any jose key
 * getter, e.g. `createLocalJWKSet(…)`).
 */
export interface JwtOptions {
  readonly secret?: string | Uint8Array
  readonly jwksUrl?: string | URL
  readonly jwks?: JWTVerifyGetKey
  /** Accepted `alg` values. Default: HS256/384/512 for `secret`, RS/PS/ES 256–512 and EdDSA for JWKS. */
  readonly algorithms?: readonly string[]
  readonly issuer?: string | readonly string[]
  readonly audience?: string | readonly string[]
  /** Seconds (or a jose duration string such as `'30s'`) of leeway for `exp`/`nbf`. Default 0. */
  readonly clockTolerance?: number | string
  /** Reject tokens without `exp`. Default true. */
  readonly requireExpiration?: boolean
  /** The claim holding the tenant id. Default `org_id`. A token without it relies on slug routing. */
  readonly tenantClaim?: string
  /** The claim holding the user id. Default `sub`. */
  readonly userClaim?: string
}

/** A verified token: the user, the tenant claim as sent (checked later), and the claims. */
export interface VerifiedToken {
  readonly userId: string
  /** The raw tenant claim; `undefined` when absent. Validated against the id type by the resolver. */
  readonly tenantClaim: unknown
  readonly claims: Readonly<JWTPayload>
}

const HMAC = ['HS256', 'HS384', 'HS512']
const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']
const MIN_SECRET_BYTES = 32

/** jose error codes that mean "this token is not acceptable" (as opposed to "the key source failed"). */
const REJECTED = new Set([
  'ERR_JWS_INVALID',
  'ERR_JWT_INVALID',
  'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
  'ERR_JWT_CLAIM_VALIDATION_FAILED',
  'ERR_JOSE_ALG_NOT_ALLOWED',
  'ERR_JOSE_NOT_SUPPORTED',
  'ERR_JWKS_NO_MATCHING_KEY',
  'ERR_JWKS_MULTIPLE_MATCHING_KEYS',
  'ERR_JWK_INVALID',
])

type Jose = typeof JoseModule
let josePromise: Promise<Jose> | undefined
const loadJose = (): Promise<Jose> => (josePromise ??= import('jose'))

/**
 * Check the options once and return `verify(token)`, which resolves to the verified token or rejects
 * with an {@link HttpProblemError}: 401 `TZ_HTTP_TOKEN_EXPIRED`, 401 `TZ_HTTP_INVALID_TOKEN`, or 500
 * `TZ_HTTP_INTERNAL` when the key source (a JWKS endpoint) fails. Tokens never appear in errors.
 *
 * @throws {TypeError} for a missing or ambiguous key source, or a secret shorter than 32 bytes.
 */
export function jwtVerifier(options: JwtOptions): (token: string) => Promise<VerifiedToken> {
  const sources = [options.secret, options.jwksUrl, options.jwks].filter((s) => s !== undefined)
  if (sources.length !== 1) throw new TypeError('jwt: give exactly one of secret, jwksUrl or jwks')
  const tenantClaim = options.tenantClaim ?? 'org_id'
  const userClaim = options.userClaim ?? 'sub'
  let secret: Uint8Array | undefined
  if (options.secret !== undefined) {
    secret = typeof options.secret === 'string' ? new TextEncoder().encode(options.secret) : options.secret
    if (secret.byteLength < MIN_SECRET_BYTES) throw new TypeError(`jwt: the secret must be at least ${MIN_SECRET_BYTES} bytes`)
  }
  const jwksUrl = options.jwksUrl === undefined ? undefined : new URL(options.jwksUrl)
  const algorithms = [...(options.algorithms ?? (secret === undefined ? ASYMMETRIC : HMAC))]
  const verifyOptions = {
    algorithms,
    ...(options.issuer === undefined ? {} : { issuer: typeof options.issuer === 'string' ? options.issuer : [...options.issuer] }),
    ...(options.audience === undefined ? {} : { audience: typeof options.audience === 'string' ? options.audience : [...options.audience] }),
    ...(options.clockTolerance === undefined ? {} : { clockTolerance: options.clockTolerance }),
    ...(options.requireExpiration === false ? {} : { requiredClaims: ['exp'] }),
  }
  let remote: JWTVerifyGetKey | undefined

  return async (token) => {
    const jose = await loadJose()
    let payload: JWTPayload
    try {
      if (secret !== undefined) {
        payload = (await jose.jwtVerify(token, secret, verifyOptions)).payload
      } else {
        const keys = options.jwks ?? (remote ??= jose.createRemoteJWKSet(jwksUrl!))
        payload = (await jose.jwtVerify(token, keys, verifyOptions)).payload
      }
    } catch (error) {
      const code = (error as { code?: unknown }).code
      if (code === 'ERR_JWT_EXPIRED') throw new HttpProblemError(HttpErrorCodes.TOKEN_EXPIRED, undefined, { reason: 'expired' })
      if (typeof code === 'string' && REJECTED.has(code)) {
        throw new HttpProblemError(HttpErrorCodes.INVALID_TOKEN, undefined, { reason: code.replace(/^ERR_/, '').toLowerCase() })
      }
      throw new HttpProblemError(HttpErrorCodes.INTERNAL, undefined, { reason: 'key-source', cause: error })
    }
    const userId = payload[userClaim]
    if (typeof userId !== 'string' || userId.length === 0) {
      throw new HttpProblemError(HttpErrorCodes.INVALID_TOKEN, 'the bearer token names no user', { reason: 'no-user' })
    }
    return Object.freeze({ userId, tenantClaim: payload[tenantClaim], claims: Object.freeze({ ...payload }) })
  }
}
