import type pg from 'pg'
import type { Problem } from '../errors.js'
import { ErrorCodes } from '../errors.js'
import { roleName } from '../sql/quote.js'

/**
 * The login role the application connects with (`--app-login`): it gets membership in the app role, so
 * that the policies written `TO <app role>` apply to its sessions. It must not escape them: no superuser,
 * no BYPASSRLS, and it must own none of the tables (an owner skips RLS unless FORCEd, and can turn it off).
 */
export async function appLoginProblems(client: pg.ClientBase, login: string, appRole: string): Promise<Problem[]> {
  const { rows } = await client.query<{ super: boolean; bypass: boolean; can_login: boolean; inherit: boolean }>('SELECT rolsuper AS super, rolbypassrls AS bypass, rolcanlogin AS can_login, rolinherit AS inherit FROM pg_catalog.pg_roles WHERE rolname = $1', [login])
  const r = rows[0]
  const object = `role ${login}`
  if (r === undefined) return [{ code: ErrorCodes.CONFIG, object, message: 'does not exist', fix: `create it: CREATE ROLE ${roleName(login)} LOGIN PASSWORD '…' (or pass the role your app's DATABASE_URL names)` }]
  const problems: Problem[] = []
  if (login === appRole) problems.push({ code: ErrorCodes.CONFIG, object, message: 'is the app role itself', fix: 'leave --app-login out: the app connects as the app role' })
  if (r.super) problems.push({ code: ErrorCodes.CONFIG, object, message: 'is a superuser: row-level security never applies to it', fix: `ALTER ROLE ${roleName(login)} NOSUPERUSER (and use another role for administration)` })
  if (r.bypass) problems.push({ code: ErrorCodes.CONFIG, object, message: 'has BYPASSRLS: row-level security never applies to it', fix: `ALTER ROLE ${roleName(login)} NOBYPASSRLS` })
  if (!r.can_login) problems.push({ code: ErrorCodes.CONFIG, object, message: 'cannot log in (NOLOGIN)', fix: `ALTER ROLE ${roleName(login)} LOGIN, or pass the role the app's DATABASE_URL names` })
  if (!r.inherit) problems.push({ code: ErrorCodes.CONFIG, object, message: 'is NOINHERIT: its sessions do not get the app role\'s privileges without SET ROLE', fix: `ALTER ROLE ${roleName(login)} INHERIT` })
  const owned = await client.query<{ rel: string }>(
    `SELECT c.oid::regclass::text AS rel FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tenantize') AND n.nspname NOT LIKE 'pg\\_%'
        AND pg_catalog.pg_has_role($1, c.relowner, 'USAGE') ORDER BY 1 LIMIT 5`,
    [login],
  )
  if (owned.rows.length > 0) problems.push({ code: ErrorCodes.CONFIG, object, message: `owns (or inherits the owner of) ${owned.rows.map((o) => o.rel).join(', ')}${owned.rows.length === 5 ? ', …' : ''}: an owner can switch row-level security off`, fix: 'connect the app with a role that owns nothing; keep the owner for migrations' })
  return problems
}

/** `GRANT <app role> TO <login>`: the login's sessions act as the app role (idempotent). */
export async function grantAppLogin(client: pg.ClientBase, login: string, appRole: string): Promise<void> {
  await client.query(`GRANT ${roleName(appRole)} TO ${roleName(login)}`)
}
