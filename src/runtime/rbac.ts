import { currentAuth, type Principal } from './http/auth-context.js'
import { HttpErrorCodes, HttpProblemError } from './http/problem.js'

/** One role: its own permissions and the roles whose permissions it includes. */
export interface RoleDefinition {
  /** `resource:action` names; `resource:*` for every action on a resource; `*` for everything. */
  readonly permissions: readonly string[]
  readonly inherits?: string | readonly string[]
}

/** Role name → definition. */
export type RoleMatrix = Readonly<Record<string, RoleDefinition>>

/**
 * The four roles of seed 003, each including the one below it. `super_admin` has every permission —
 * within its tenant only: no role reaches across tenants (that is what `asSystem` and a separate
 * system pool are for).
 */
export const DEFAULT_ROLES: RoleMatrix = Object.freeze({
  viewer: Object.freeze({ permissions: Object.freeze(['dashboard:read', 'reports:read']) }),
  manager: Object.freeze({ inherits: 'viewer', permissions: Object.freeze(['reports:export', 'reports:generate']) }),
  admin: Object.freeze({
    inherits: 'manager',
    permissions: Object.freeze(['members:read', 'members:manage', 'api-keys:manage', 'settings:manage', 'audit:read']),
  }),
  super_admin: Object.freeze({ inherits: 'admin', permissions: Object.freeze(['*']) }),
})

/** Who is asking: a user with a role, an API key with scopes (a tenantize `Principal` fits). */
export type RbacSubject = { readonly role?: string | undefined; readonly scopes?: readonly string[] | undefined } | Principal

export interface Rbac {
  /** The role names, in definition order. */
  readonly roles: readonly string[]
  /** A role's effective permissions (its own and inherited ones), sorted; `[]` for an unknown role. */
  permissionsOf(role: string): readonly string[]
  /**
   * May `subject` do `permission`? An API key (a subject with `scopes`) may do what its scopes grant;
   * a user what their role grants. Unknown roles, no role and no subject may do nothing.
   * @throws {TypeError} when `permission` is not a `resource:action` name.
   */
  can(subject: RbacSubject | undefined, permission: string): boolean
  /**
   * {@link can}, or throw a 403 {@link HttpProblemError} (`TZ_HTTP_FORBIDDEN`) naming the permission.
   * Without a subject: 401 `TZ_HTTP_UNAUTHENTICATED`.
   */
  assertCan(subject: RbacSubject | undefined, permission: string): void
}

const NAME = '[a-z0-9][a-z0-9_.-]*'
const PERMISSION = new RegExp(`^${NAME}:${NAME}$`)
const GRANT = new RegExp(`^(?:\\*|${NAME}:(?:\\*|${NAME}))$`)

/** True when `value` can be granted: `resource:action`, `resource:*` or `*`. */
export function isPermissionGrant(value: unknown): value is string {
  return typeof value === 'string' && GRANT.test(value)
}

function grants(granted: ReadonlySet<string> | readonly string[], permission: string): boolean {
  const has = (p: string): boolean => (Array.isArray(granted) ? (granted as readonly string[]).includes(p) : (granted as ReadonlySet<string>).has(p))
  return has('*') || has(permission) || has(`${permission.slice(0, permission.indexOf(':'))}:*`)
}

/**
 * Check a role matrix (every permission well-formed, every inherited role defined, no cycles) and
 * compute each role's effective permissions.
 *
 * ```ts
 * const rbac = createRbac()                       // DEFAULT_ROLES
 * rbac.can({ role: 'manager' }, 'reports:export') // true
 * rbac.can({ scopes: ['reports:read'] }, 'reports:export') // false (an API key)
 * ```
 *
 * @throws {TypeError} for a malformed matrix.
 */
export function createRbac(matrix: RoleMatrix = DEFAULT_ROLES): Rbac {
  const names = Object.keys(matrix)
  if (names.length === 0) throw new TypeError('rbac: define at least one role')
  for (const name of names) {
    const definition = matrix[name]!
    if (!Array.isArray(definition.permissions)) throw new TypeError(`rbac: role ${JSON.stringify(name)} needs a permissions array`)
    const bad = definition.permissions.filter((p) => !isPermissionGrant(p))
    if (bad.length > 0) throw new TypeError(`rbac: role ${JSON.stringify(name)} has malformed permissions ${JSON.stringify(bad)}: use resource:action, resource:* or *`)
    for (const parent of parentsOf(definition)) {
      if (!Object.hasOwn(matrix, parent)) throw new TypeError(`rbac: role ${JSON.stringify(name)} inherits unknown role ${JSON.stringify(parent)}`)
    }
  }
  const effective = new Map<string, ReadonlySet<string>>()
  const visiting = new Set<string>()
  function resolve(name: string): ReadonlySet<string> {
    const done = effective.get(name)
    if (done !== undefined) return done
    if (visiting.has(name)) throw new TypeError(`rbac: role ${JSON.stringify(name)} inherits itself`)
    visiting.add(name)
    const definition = matrix[name]!
    const set = new Set<string>(definition.permissions)
    for (const parent of parentsOf(definition)) for (const p of resolve(parent)) set.add(p)
    visiting.delete(name)
    effective.set(name, set)
    return set
  }
  for (const name of names) resolve(name)

  function checkPermission(permission: string): void {
    if (typeof permission !== 'string' || !PERMISSION.test(permission)) {
      throw new TypeError(`rbac: ${JSON.stringify(permission)} is not a permission name (resource:action)`)
    }
  }

  function can(subject: RbacSubject | undefined, permission: string): boolean {
    checkPermission(permission)
    if (subject === undefined) return false
    if ('scopes' in subject && subject.scopes !== undefined) return grants(subject.scopes, permission)
    const role = 'role' in subject ? subject.role : undefined
    if (role === undefined || !Object.hasOwn(matrix, role)) return false
    return grants(effective.get(role)!, permission)
  }

  return Object.freeze({
    roles: Object.freeze([...names]),
    permissionsOf: (role: string) => (Object.hasOwn(matrix, role) ? Object.freeze([...effective.get(role)!].sort()) : Object.freeze([])),
    can,
    assertCan(subject: RbacSubject | undefined, permission: string): void {
      if (subject === undefined) {
        checkPermission(permission)
        throw new HttpProblemError(HttpErrorCodes.UNAUTHENTICATED, undefined, { reason: 'no-principal' })
      }
      if (!can(subject, permission)) throw new HttpProblemError(HttpErrorCodes.FORBIDDEN, `missing permission ${permission}`, { reason: 'permission' })
    },
  })
}

function parentsOf(definition: RoleDefinition): readonly string[] {
  const inherits = definition.inherits
  return inherits === undefined ? [] : typeof inherits === 'string' ? [inherits] : inherits
}

/**
 * The check behind every framework's `requirePermission` guard: the current request's principal
 * (see `currentAuth`) must have `permission`.
 * @throws {HttpProblemError} 401 outside the tenant middleware, 403 without the permission.
 */
export function assertCurrentCan(rbac: Rbac, permission: string): void {
  rbac.assertCan(currentAuth()?.principal, permission)
}
