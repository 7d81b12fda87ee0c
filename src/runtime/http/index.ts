/**
 * The framework-independent core of tenantize's HTTP middleware: credentials (bearer token via jose,
 * API key) → tenant (token claim, slug, API key, development header) → membership → `withTenant`,
 * and RFC 9457 problem responses. The Express, Fastify and Hono adapters are thin layers over it.
 *
 * @module
 */
export { createTenantHttp, logProblem, type TenantStatusLookup, type TenantHttp, type TenantHttpOptions, type HttpRequestLike, type HttpLogger, type SlugOptions, type ApiKeyVerifier, type ApiKeyVerification } from './resolve.js'
export { currentAuth, runWithAuth, type TenantAuth, type Principal, type TenantSource } from './auth-context.js'
export { jwtVerifier, type JwtOptions, type VerifiedToken } from './jwt.js'
export { sqlMembership, sqlTenantStatus, type SqlTenantStatusOptions, type SqlMembershipOptions, type IsMember, type MembershipResult, type RowQueryable } from './membership.js'
export {
  HttpProblemError,
  HttpErrorCodes,
  notFound,
  problemFromError,
  toHttpProblem,
  PROBLEM_CONTENT_TYPE,
  type HttpErrorCode,
  type ProblemDocument,
  type ProblemResponse,
} from './problem.js'
