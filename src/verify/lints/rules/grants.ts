import type { Sequence } from '../../../catalog/types.js'
import { qualifiedName, roleName } from '../../../sql/quote.js'
import { missingRlsFixes } from '../../../pg-security.js'
import type { ModelTable, TenantModel } from '../model.js'
import { appGrants, appOwns, appRoleSql, display, onTable, tableSql, type Hit, type LintRule } from '../rule.js'

const revoke = (privilege: string, t: { schema: string; name: string }, grantee: string): string =>
  `REVOKE ${privilege} ON ${tableSql(t)} FROM ${grantee === 'public' ? 'PUBLIC' : roleName(grantee)};`

/** One rule per dangerous table privilege held by the app role. */
function privilegeRule(privilege: 'TRUNCATE' | 'REFERENCES' | 'TRIGGER' | 'MAINTAIN', severity: LintRule['severity'], summary: string, why: string): LintRule {
  return {
    id: `grant-${privilege.toLowerCase()}`,
    severity,
    category: 'grants and sequences',
    scope: 'table',
    summary,
    why,
    fixHint: `REVOKE ${privilege} from the app role.`,
    *check(model) {
      if (model.appRole === null) return
      for (const m of model.tenantTables()) {
        const held = appGrants(model, m.table.grants, m.table.owner).filter((g) => g.privilege === privilege)
        for (const grantee of new Set(held.map((g) => g.grantee))) {
          const via = grantee === model.appRole ? '' : ` (through ${grantee === 'public' ? 'PUBLIC' : `"${grantee}"`})`
          yield onTable(m.table, `the app role "${model.appRole}" has ${privilege} on ${display(m.table)}${via}`, revoke(privilege, m.table, grantee))
        }
      }
    },
  }
}

/** Sequences that feed tenant tables: owned by one of their columns, or named in a column default. */
function tenantSequences(model: TenantModel): [Sequence, ModelTable][] {
  const out: [Sequence, ModelTable][] = []
  for (const s of model.catalog.sequences) {
    if (s.extension !== null) continue
    const owner = s.ownedBy === null ? undefined : model.modelTable(s.ownedBy.table.oid)
    if (owner !== undefined && owner.class !== 'global') {
      out.push([s, owner])
      continue
    }
    const user = model.tenantTables().find((m) => m.table.kind !== 'partition' && m.table.columns.some((c) => c.default !== null && defaultUses(c.default, s)))
    if (user !== undefined) out.push([s, user])
  }
  return out
}

/**
 * `nextval('app.seq'::regclass)` names the sequence (catalog text, search_path pinned to pg_catalog); so does
 * `nextval(('app.seq'::text)::regclass)`, a default written with `::text` (no dependency recorded).
 */
function defaultUses(expression: string, s: Sequence): boolean {
  const m = /nextval\(\(?'([^']+)'(?:::text\))?::regclass\)/.exec(expression)
  if (m === null) return false
  const name = m[1]!.replaceAll('"', '')
  return name === `${s.schema}.${s.name}` || name === s.name
}

function onSequence(s: Sequence, m: ModelTable, message: string, fix: string): Hit {
  return { objectKind: 'sequence', object: tableSql(s), table: m.table, message, fix }
}

export const grantRules: readonly LintRule[] = [
  privilegeRule('TRUNCATE', 'error', 'The app role may TRUNCATE a tenant table.', 'TRUNCATE ignores row-level security: one statement empties the table for every tenant.'),
  privilegeRule('REFERENCES', 'warn', 'The app role has REFERENCES on a tenant table.', 'It can create foreign keys from its own tables to this one, and each failing insert then tells whether a key exists in any tenant.'),
  privilegeRule('TRIGGER', 'warn', 'The app role has TRIGGER on a tenant table.', 'It can attach a trigger that runs on every tenant\'s writes and copies the new rows wherever it likes.'),
  privilegeRule('MAINTAIN', 'info', 'The app role has MAINTAIN on a tenant table (PostgreSQL 17+).', 'MAINTAIN allows LOCK TABLE, CLUSTER, REFRESH and VACUUM: one tenant can block all others.'),
  {
    id: 'grant-public',
    severity: 'warn',
    category: 'grants and sequences',
    scope: 'table',
    summary: 'PUBLIC holds privileges on a tenant table.',
    why: 'Every role, including ones created later, gets them; access to tenant data should be granted to named roles only.',
    fixHint: 'REVOKE ALL … FROM PUBLIC and grant to the app role.',
    *check(model) {
      for (const m of model.tenantTables()) {
        const held = [...new Set(m.table.grants.filter((g) => g.grantee === 'public').map((g) => g.privilege))]
        if (held.length === 0) continue
        yield onTable(m.table, `PUBLIC has ${held.join(', ')} on ${display(m.table)}`, `REVOKE ALL ON ${tableSql(m.table)} FROM PUBLIC;\nGRANT SELECT, INSERT, UPDATE, DELETE ON ${tableSql(m.table)} TO ${appRoleSql(model)};`)
      }
    },
  },
  {
    id: 'grant-with-grant-option',
    severity: 'warn',
    category: 'grants and sequences',
    scope: 'table',
    summary: 'The app role may pass its privileges on a tenant table on (WITH GRANT OPTION).',
    why: 'A compromised application could grant access to roles that are not subject to the tenant policies.',
    fixHint: 'REVOKE GRANT OPTION FOR … FROM the app role.',
    *check(model) {
      if (model.appRole === null) return
      for (const m of model.tenantTables()) {
        const held = [...new Set(appGrants(model, m.table.grants, m.table.owner).filter((g) => g.grantable).map((g) => g.privilege))]
        if (held.length === 0) continue
        yield onTable(m.table, `the app role "${model.appRole}" may grant ${held.join(', ')} on ${display(m.table)} to others`, `REVOKE GRANT OPTION FOR ${held.join(', ')} ON ${tableSql(m.table)} FROM ${roleName(model.appRole)};`)
      }
    },
  },
  {
    id: 'grant-app-missing',
    severity: 'info',
    category: 'grants and sequences',
    scope: 'table',
    summary: 'The app role lacks SELECT, INSERT, UPDATE or DELETE on a tenant table.',
    why: 'Not a leak: the application will get "permission denied" on that table, often a sign that the grants were made before the table existed.',
    fixHint: 'GRANT the missing privileges to the app role.',
    *check(model) {
      if (model.app === null) return
      for (const m of model.tenantTables()) {
        if (m.class === 'root' || m.table.kind === 'partition' || appOwns(model, m.table.owner)) continue
        const held = new Set(appGrants(model, m.table.grants, m.table.owner).map((g): string => g.privilege))
        const missing = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'].filter((p) => !held.has(p))
        if (missing.length === 0) continue
        yield onTable(m.table, `the app role "${model.appRole}" has no ${missing.join(', ')} on ${display(m.table)}`, `GRANT ${missing.join(', ')} ON ${tableSql(m.table)} TO ${roleName(model.app.name)};`)
      }
    },
  },
  {
    id: 'global-table-writable',
    severity: 'warn',
    category: 'grants and sequences',
    scope: 'table',
    summary: 'The app role may write a table shared by all tenants.',
    why: 'Shared (global) tables have no tenant column and no policy: a write by one tenant changes the data of all of them. Reference data should be read-only to the app.',
    fixHint: 'REVOKE INSERT, UPDATE, DELETE, TRUNCATE from the app role; change reference data through migrations.',
    *check(model) {
      if (model.app === null) return
      for (const m of model.tables) {
        if (m.class !== 'global' || m.table.kind === 'partition') continue
        const writes: string[] = appOwns(model, m.table.owner) ? ['owner'] : [...new Set(appGrants(model, m.table.grants, m.table.owner).map((g): string => g.privilege).filter((p) => ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'].includes(p)))]
        if (writes.length === 0) continue
        const what = writes[0] === 'owner' ? 'owns' : `has ${writes.join(', ')} on`
        yield onTable(m.table, `the app role "${model.appRole}" ${what} shared table ${display(m.table)}`, `REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ${tableSql(m.table)} FROM ${roleName(model.app.name)};`)
      }
    },
  },
  {
    id: 'sequence-shared',
    severity: 'info',
    category: 'grants and sequences',
    scope: 'table',
    summary: 'A tenant table takes ids from a sequence shared by all tenants.',
    why: 'Consecutive ids tell a tenant how many rows other tenants created in between (a business-volume side channel), and make ids guessable.',
    fixHint: 'Use random UUIDs for ids exposed to users, or accept the side channel knowingly.',
    *check(model) {
      for (const [s, m] of tenantSequences(model)) {
        const how = s.ownedBy === null ? 'a column default' : `${s.ownedBy.identity ? 'identity column' : 'column'} "${s.ownedBy.column}"`
        yield onSequence(s, m, `${display(m.table)} takes ids from sequence ${display(s)} (${how}), shared by all tenants`, `-- e.g. for new rows: ALTER TABLE ${tableSql(m.table)} ALTER COLUMN <id> SET DEFAULT gen_random_uuid();  (needs a uuid column)`)
      }
    },
  },
  {
    id: 'sequence-grant-update',
    severity: 'warn',
    category: 'grants and sequences',
    scope: 'table',
    summary: 'The app role has UPDATE on a sequence that feeds a tenant table.',
    why: 'UPDATE allows setval(): the application can rewind the sequence, so inserts by every tenant fail with duplicate keys.',
    fixHint: 'REVOKE UPDATE; USAGE is all nextval() needs.',
    *check(model) {
      if (model.appRole === null) return
      for (const [s, m] of tenantSequences(model)) {
        const held = appGrants(model, s.grants, s.owner).filter((g) => g.privilege === 'UPDATE')
        for (const grantee of new Set(held.map((g) => g.grantee))) {
          yield onSequence(s, m, `the app role "${model.appRole}" has UPDATE on sequence ${display(s)} (setval)`, `REVOKE UPDATE ON SEQUENCE ${qualifiedName({ schema: s.schema, name: s.name })} FROM ${grantee === 'public' ? 'PUBLIC' : roleName(grantee)};\nGRANT USAGE ON SEQUENCE ${qualifiedName({ schema: s.schema, name: s.name })} TO ${roleName(model.appRole)};`)
        }
      }
    },
  },
  {
    id: 'sequence-grant-missing',
    severity: 'warn',
    category: 'grants and sequences',
    scope: 'table',
    summary: 'The app role lacks USAGE on a sequence a tenant table\'s column default draws from.',
    why: 'Not a leak, but every insert that takes the default fails with "permission denied for sequence": the app cannot create rows in that table.',
    fixHint: 'GRANT USAGE, SELECT ON SEQUENCE … TO the app role.',
    *check(model) {
      if (model.app === null) return
      for (const [s, m] of tenantSequences(model)) {
        if (s.ownedBy?.identity === true || appOwns(model, s.owner)) continue
        if (!m.table.columns.some((c) => c.default !== null && defaultUses(c.default, s))) continue
        if (appGrants(model, s.grants, s.owner).some((g) => g.privilege === 'USAGE' || g.privilege === 'UPDATE')) continue
        yield onSequence(s, m, `the app role "${model.appRole}" has no USAGE on sequence ${display(s)}, which a column default of ${display(m.table)} calls: its inserts fail`, `GRANT USAGE, SELECT ON SEQUENCE ${qualifiedName({ schema: s.schema, name: s.name })} TO ${roleName(model.app.name)};`)
      }
    },
  },
]

export const serverRules: readonly LintRule[] = [
  {
    id: 'server-rls-cve',
    severity: 'error',
    category: 'server',
    scope: 'database',
    summary: 'The server lacks a PostgreSQL security fix for row-level security.',
    why: 'Known, published ways around row-level security work on this server version.',
    fixHint: 'Upgrade to the minor release named in the finding (a minor upgrade is a restart, no dump/restore).',
    *check(model) {
      const server = model.catalog.server
      for (const { fix, upgradeTo } of missingRlsFixes(server.versionNum)) {
        yield { objectKind: 'server', object: `PostgreSQL ${server.version}`, table: null, message: `${fix.cve}: ${fix.summary}; fixed in ${upgradeTo}`, fix: `-- upgrade the server to PostgreSQL ${upgradeTo} or later (minor upgrade: install the package and restart)` }
      }
    },
  },
]

