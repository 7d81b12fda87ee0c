import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { qualifiedName, quoteIdent } from '../sql/quote.js'
import { requireTenant } from './context.js'
import type { ApiKeyVerification, ApiKeyVerifier } from './http/resolve.js'
import { isPermissionGrant } from './rbac.js'

/** Runs one parameterized statement: a `tenantPool`, a transaction handle, a `pg.Pool`. */
export interface SqlRunner {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>
}

export interface ApiKeyStoreOptions {
  /**
   * Tenant-scoped work (create, list, revoke) — normally your `tenantPool`, so RLS applies. Every
   * statement also filters on the current tenant, and throws outside `withTenant`.
   */
  readonly db: SqlRunner
  /**
   * Lookups by prefix when a request presents a key, before any tenant is known: a separate system
   * pool (a role with BYPASSRLS, or the table owner). It also records last use and usage count.
   */
  readonly system: SqlRunner
  /** Default `public`. */
  readonly schema?: string
  /** Default `api_keys` (the table `tenantize add api-keys` creates). */
  readonly table?: string
  /** Default `org_id`. */
  readonly tenantColumn?: string
  /**
   * Optional server-side secret (kept outside the database): hashes become HMAC-SHA-256 under it, so a
   * copy of the table alone cannot even confirm a leaked key. Changing it invalidates every key.
   */
  readonly pepper?: string | Uint8Array
  /** The key's leading label, `tz` by default: keys read `tz_<16 hex>_<43 base64url>`. */
  readonly label?: string
  /** Record `last_used_at` and `usage_count` on every successful verification. Default true. */
  readonly trackUsage?: boolean
}

export interface CreateApiKeyInput {
  /** What the key is for, shown in listings. 1–200 characters. */
  readonly name: string
  /** Permission names (`resource:action`, `resource:*`, `*`) the key grants. Default none. */
  readonly scopes?: readonly string[]
  /** When the key stops working; must be in the future. Default never. */
  readonly expiresAt?: Date
  /** Who created it (a user id), for the record. */
  readonly createdBy?: string
}

/** A key as listed: everything except the secret and its hash. */
export interface ApiKeyInfo {
  readonly id: string
  readonly name: string
  /** The public part of the key, e.g. to show `tz_3f9c…` in a UI. */
  readonly prefix: string
  readonly scopes: readonly string[]
  readonly createdAt: Date
  readonly createdBy: string | null
  readonly expiresAt: Date | null
  readonly revokedAt: Date | null
  readonly revokedBy: string | null
  readonly lastUsedAt: Date | null
  readonly usageCount: number
}

/** A newly created key. `key` is the only copy of the secret: show it once, it cannot be recovered. */
export interface CreatedApiKey {
  readonly id: string
  readonly key: string
  readonly prefix: string
  readonly name: string
  readonly scopes: readonly string[]
  readonly createdAt: Date
  readonly expiresAt: Date | null
}

export interface ApiKeyStore extends ApiKeyVerifier {
  /** Create a key for the current tenant. @throws {TenantContextMissingError} outside `withTenant`. */
  create(input: CreateApiKeyInput): Promise<CreatedApiKey>
  /** The current tenant's keys, oldest first. */
  list(): Promise<ApiKeyInfo[]>
  /** Revoke one of the current tenant's keys; `false` when there is no such active key. */
  revoke(id: string, options?: { readonly revokedBy?: string }): Promise<boolean>
  /**
   * Check a presented key: parse it, look its prefix up through the system pool, compare hashes with
   * `timingSafeEqual`, refuse revoked and expired keys, and on success record the use. Never throws
   * for a bad key (only for database failures); never writes for a rejected one.
   */
  verify(key: string): Promise<ApiKeyVerification>
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const LABEL = /^[a-z][a-z0-9]{0,15}$/
const PREFIX_BYTES = 8
const SECRET_BYTES = 32
const HASH_BYTES = 32

interface KeyRow {
  id: string
  tenant_id: string
  secret_hash: Buffer
  scopes: string[]
  revoked: boolean
  expired: boolean
}

interface InfoRow {
  id: string
  name: string
  prefix: string
  scopes: string[]
  created_at: Date
  created_by: string | null
  expires_at: Date | null
  revoked_at: Date | null
  revoked_by: string | null
  last_used_at: Date | null
  usage_count: string
}

/**
 * API keys stored as prefix + hash in the table `tenantize add api-keys` creates. Keys are 256-bit
 * random secrets, so one SHA-256 (or HMAC-SHA-256 with a `pepper`) is the right hash: there is nothing
 * to brute-force, and verification stays cheap.
 *
 * ```ts
 * const keys = createApiKeyStore({ db: tenantDb, system: systemPool })
 * const { key } = await withTenant(orgId, () => keys.create({ name: 'CI', scopes: ['reports:read'] }))
 * // hand `key` to the user once; later: tenantMiddleware({ apiKeys: keys, … })
 * ```
 *
 * @throws {TypeError} for an invalid label or an empty pepper.
 */
export function createApiKeyStore(options: ApiKeyStoreOptions): ApiKeyStore {
  const label = options.label ?? 'tz'
  if (!LABEL.test(label)) throw new TypeError('api keys: label must be 1–16 lower-case letters and digits, starting with a letter')
  const pepper = options.pepper === undefined ? undefined : typeof options.pepper === 'string' ? Buffer.from(options.pepper, 'utf8') : Buffer.from(options.pepper)
  if (pepper !== undefined && pepper.length === 0) throw new TypeError('api keys: the pepper cannot be empty')
  const keyPattern = new RegExp(`^${label}_([0-9a-f]{${PREFIX_BYTES * 2}})_([A-Za-z0-9_-]{43})$`)
  const table = qualifiedName(options.schema ?? 'public', options.table ?? 'api_keys')
  const tenant = quoteIdent(options.tenantColumn ?? 'org_id')
  const trackUsage = options.trackUsage ?? true
  const dummy = Buffer.alloc(HASH_BYTES)

  const hash = (key: string): Buffer =>
    pepper === undefined ? createHash('sha256').update(key, 'utf8').digest() : createHmac('sha256', pepper).update(key, 'utf8').digest()

  const infoColumns = `"id"::text AS id, "name", "prefix", "scopes", "created_at", "created_by", "expires_at", "revoked_at", "revoked_by", "last_used_at", "usage_count"::text AS usage_count`

  const toInfo = (r: InfoRow): ApiKeyInfo =>
    Object.freeze({
      id: r.id,
      name: r.name,
      prefix: r.prefix,
      scopes: Object.freeze([...r.scopes]),
      createdAt: r.created_at,
      createdBy: r.created_by,
      expiresAt: r.expires_at,
      revokedAt: r.revoked_at,
      revokedBy: r.revoked_by,
      lastUsedAt: r.last_used_at,
      usageCount: Number(r.usage_count),
    })

  return Object.freeze({
    async create(input: CreateApiKeyInput): Promise<CreatedApiKey> {
      const tenantId = requireTenant()
      if (typeof input.name !== 'string' || input.name.trim().length === 0 || input.name.length > 200) throw new TypeError('api keys: name must be 1–200 characters')
      const scopes = [...(input.scopes ?? [])]
      const bad = scopes.filter((s) => !isPermissionGrant(s))
      if (bad.length > 0) throw new TypeError(`api keys: malformed scopes ${JSON.stringify(bad)}: use resource:action, resource:* or *`)
      if (input.expiresAt !== undefined && !(input.expiresAt instanceof Date && input.expiresAt.getTime() > Date.now())) {
        throw new TypeError('api keys: expiresAt must be a Date in the future')
      }
      const prefix = randomBytes(PREFIX_BYTES).toString('hex')
      const key = `${label}_${prefix}_${randomBytes(SECRET_BYTES).toString('base64url')}`
      const { rows } = await options.db.query(
        `INSERT INTO ${table} (${tenant}, "name", "prefix", "secret_hash", "scopes", "expires_at", "created_by") VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING "id"::text AS id, "created_at"`,
        [tenantId, input.name, prefix, hash(key), scopes, input.expiresAt ?? null, input.createdBy ?? null],
      )
      const row = rows[0] as { id: string; created_at: Date }
      return Object.freeze({ id: row.id, key, prefix, name: input.name, scopes: Object.freeze(scopes), createdAt: row.created_at, expiresAt: input.expiresAt ?? null })
    },

    async list(): Promise<ApiKeyInfo[]> {
      const tenantId = requireTenant()
      const { rows } = await options.db.query(`SELECT ${infoColumns} FROM ${table} WHERE ${tenant} = $1 ORDER BY "created_at", "id"`, [tenantId])
      return (rows as InfoRow[]).map(toInfo)
    },

    async revoke(id: string, revokeOptions: { readonly revokedBy?: string } = {}): Promise<boolean> {
      const tenantId = requireTenant()
      if (typeof id !== 'string' || !UUID.test(id)) return false
      const { rows } = await options.db.query(
        `UPDATE ${table} SET "revoked_at" = now(), "revoked_by" = $3 WHERE ${tenant} = $1 AND "id" = $2 AND "revoked_at" IS NULL RETURNING "id"`,
        [tenantId, id, revokeOptions.revokedBy ?? null],
      )
      return rows.length > 0
    },

    async verify(key: string): Promise<ApiKeyVerification> {
      const parsed = typeof key === 'string' ? keyPattern.exec(key) : null
      const presented = hash(typeof key === 'string' ? key : '')
      if (parsed === null) {
        timingSafeEqual(presented, dummy)
        return { valid: false, reason: 'malformed' }
      }
      const { rows } = await options.system.query(
        `SELECT "id"::text AS id, ${tenant}::text AS tenant_id, "secret_hash", "scopes", "revoked_at" IS NOT NULL AS revoked, ("expires_at" IS NOT NULL AND "expires_at" <= now()) AS expired FROM ${table} WHERE "prefix" = $1`,
        [parsed[1]],
      )
      let match: KeyRow | undefined
      for (const row of rows as KeyRow[]) {
        const stored = Buffer.isBuffer(row.secret_hash) && row.secret_hash.length === HASH_BYTES ? row.secret_hash : dummy
        if (timingSafeEqual(presented, stored) && stored !== dummy) match = row
      }
      if (rows.length === 0) timingSafeEqual(presented, dummy)
      if (match === undefined) return { valid: false, reason: 'unknown' }
      if (match.revoked) return { valid: false, reason: 'revoked' }
      if (match.expired) return { valid: false, reason: 'expired' }
      if (trackUsage) {
        const touched = await options.system.query(
          `UPDATE ${table} SET "last_used_at" = now(), "usage_count" = "usage_count" + 1 WHERE "id" = $1 AND "revoked_at" IS NULL AND ("expires_at" IS NULL OR "expires_at" > now()) RETURNING "id"`,
          [match.id],
        )
        if (touched.rows.length === 0) return { valid: false, reason: 'revoked' }
      }
      return { valid: true, keyId: match.id, tenantId: match.tenant_id, scopes: Object.freeze([...match.scopes]) }
    },
  })
}
