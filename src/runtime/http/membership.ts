import { qualifiedName, quoteIdent } from '../../sql/quote.js'

/** What a membership check may return: `false` (not a member), `true`, or the member's role. */
export type MembershipResult = boolean | { readonly role?: string | undefined }

/** `isMember(userId, tenantId)`: is this user a member of this tenant? Called with a canonical tenant id. */
export type IsMember = (userId: string, tenantId: string) => Promise<MembershipResult>

/** Anything that runs one parameterized statement and returns rows (a `pg.Pool`, a tenantize system handle). */
export interface RowQueryable {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>
}

export interface SqlMembershipOptions {
  /**
   * A pool that sees every tenant's memberships: a separate system pool (a role with BYPASSRLS or the
   * table owner), because the tenant is not current yet when membership is checked.
   */
  readonly pool: RowQueryable
  /** Default `public`. */
  readonly schema?: string
  /** Default `memberships` (the table `tenantize add rbac` creates). */
  readonly table?: string
  /** Default `user_id`. */
  readonly userColumn?: string
  /** Default `org_id`. */
  readonly tenantColumn?: string
  /** The role column, or `null` when the table has none. Default `role`. */
  readonly roleColumn?: string | null
}

/** SQLSTATEs that mean "this user id cannot be in that column" (e.g. a non-uuid subject against a uuid column). */
const NOT_A_VALUE = new Set(['22P02', '22003', '22001'])

/**
 * The default membership check: one parameterized lookup in a membership table through a system pool,
 * `SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2 LIMIT 1` (names quoted through
 * tenantize's one quoting path). A user id that cannot be a value of the user column is "not a member".
 */
export function sqlMembership(options: SqlMembershipOptions): IsMember {
  const table = qualifiedName(options.schema ?? 'public', options.table ?? 'memberships')
  const user = quoteIdent(options.userColumn ?? 'user_id')
  const tenant = quoteIdent(options.tenantColumn ?? 'org_id')
  const roleColumn = options.roleColumn === undefined ? 'role' : options.roleColumn
  const select = roleColumn === null ? 'NULL::text' : `${quoteIdent(roleColumn)}::text`
  const text = `SELECT ${select} AS role FROM ${table} WHERE ${tenant} = $1 AND ${user} = $2 LIMIT 1`
  return async (userId, tenantId) => {
    let rows: unknown[]
    try {
      rows = (await options.pool.query(text, [tenantId, userId])).rows
    } catch (error) {
      if (NOT_A_VALUE.has(String((error as { code?: unknown }).code))) return false
      throw error
    }
    const row = rows[0] as { role: string | null } | undefined
    if (row === undefined) return false
    return { role: row.role ?? undefined }
  }
}

export interface SqlTenantStatusOptions {
  /** A pool that may read `tenantize.tenant_status` (a system pool, as for {@link sqlMembership}). */
  readonly pool: RowQueryable
}

/**
 * The default tenant status lookup for `tenantStatus`: `SELECT status FROM tenantize.tenant_status WHERE
 * tenant = $1`, the table `tenantize tenant suspend|resume|import|delete` keep (no row: active). Before
 * any tenant command ran, the table does not exist and every tenant is active; any other error fails the
 * request (500), never open.
 */
export function sqlTenantStatus(options: SqlTenantStatusOptions): (tenantId: string) => Promise<string | undefined> {
  const text = 'SELECT status FROM tenantize.tenant_status WHERE tenant = $1'
  return async (tenantId) => {
    try {
      const row = (await options.pool.query(text, [tenantId])).rows[0] as { status: string } | undefined
      return row?.status
    } catch (error) {
      if ((error as { code?: unknown }).code === '42P01') return undefined
      throw error
    }
  }
}
