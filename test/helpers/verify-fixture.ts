import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import pg from 'pg'
import { introspect, type Catalog, type ServerInfo, type Table } from '../../src/catalog/index.js'
import { connect } from '../../src/db/connect.js'
import { quoteIdent } from '../../src/sql/index.js'
import { LINT_RULES, lintCatalog, type ModelOptions, type TenantModel } from '../../src/verify/lints/index.js'
import type { Finding, VerifyReport } from '../../src/verify/types.js'
import { verifyClient, type VerifyCoreOptions } from '../../src/verify/verify.js'
import { LINT_CASES } from '../fixtures/verify/lint-cases.js'
import type { TestDatabase } from './db.js'

/**
 * A correctly tenantized database made by hand (test/fixtures/verify/tenantized.sql): a root
 * `organizations` table, direct tables, a child with a composite foreign key, a partitioned table with
 * two partitions, a security_invoker view, a sequence and global reference data. Roles get per-run names
 * derived from the database name and are dropped after the test file.
 */
export interface VerifyFixture {
  readonly db: TestDatabase
  /** The application role: LOGIN, not owner, NOSUPERUSER NOBYPASSRLS, password `app-password`. */
  readonly app: string
  /** Owns schema `app`, schema `tenantize` and everything in them. */
  readonly owner: string
  /** Every role a test created for this database (the fixture's and those added with {@link VerifyFixture.role}). */
  readonly roles: readonly string[]
  /** A per-run role name for a test's own role (created by the test, dropped with the fixture's). */
  role(key: string): string
}

const suffixOf = (db: TestDatabase): string => db.name.slice(db.name.lastIndexOf('_') + 1)

/** Substitute psql-style `:"name"` role variables with quoted per-run role names. */
export function withRoles(sql: string, roles: Readonly<Record<string, string>>): string {
  return sql.replace(/:"([a-z_]+)"/g, (_, key: string) => {
    const role = roles[key]
    if (role === undefined) throw new Error(`unknown fixture variable ${key}`)
    return quoteIdent(role)
  })
}

/** Drop roles after the file: first what they own and their privileges in the database, then the roles. */
export function dropRolesAfter(db: TestDatabase, roles: () => readonly string[]): void {
  after(async () => {
    const names = roles()
    if (names.length === 0) return
    const admin = new pg.Client(db.adminUrl)
    await admin.connect()
    try {
      const existing = (await admin.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolname = ANY($1)', [names])).rows.map((r) => r.rolname)
      if (existing.length === 0) return
      // The database may already be gone (then so are the objects and grants that name these roles).
      await db.sql(`DROP OWNED BY ${existing.map(quoteIdent).join(', ')} CASCADE`).catch(() => undefined)
      for (const r of existing) await admin.query(`DROP OWNED BY ${quoteIdent(r)} CASCADE`).catch(() => undefined)
      for (const r of existing) await admin.query(`DROP ROLE IF EXISTS ${quoteIdent(r)}`)
    } finally {
      await admin.end()
    }
  })
}

/** Create the tenantized fixture in `db`. Call at the top level of a test file. */
export async function createVerifyFixture(db: TestDatabase): Promise<VerifyFixture> {
  const suffix = suffixOf(db)
  const app = `tz_vf_app_${suffix}`
  const owner = `tz_vf_owner_${suffix}`
  const roles = [app, owner]
  dropRolesAfter(db, () => roles)
  const text = await readFile(new URL('../fixtures/verify/tenantized.sql', import.meta.url), 'utf8')
  await db.sql(withRoles(text, { app, owner }))
  return {
    db,
    app,
    owner,
    roles,
    role(key) {
      const name = `tz_vf_${key}_${suffix}`
      if (!roles.includes(name)) roles.push(name)
      return name
    },
  }
}

/** One connection to the database, closed after the file. */
export async function fixtureClient(db: TestDatabase): Promise<pg.Client> {
  const client = await connect(db.url)
  after(() => client.end())
  return client
}

/** Introspect inside the caller's open transaction (so uncommitted mutations are seen). */
export function catalogInTransaction(client: pg.Client): Promise<Catalog> {
  return introspect(client, { inTransaction: true })
}

/**
 * Run `fn` after `sql` inside a transaction that is always rolled back: the fixture stays as it was.
 * Tests in one file share the client, so they run one after another (node:test runs a file's tests in order).
 */
export async function inRolledBack<T>(client: pg.Client, sql: string, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN')
  try {
    if (sql.trim() !== '') await client.query(sql)
    return await fn()
  } finally {
    await client.query('ROLLBACK')
  }
}

/** The lint result for the fixture after `sql` (rolled back afterwards). */
export async function lintAfter(client: pg.Client, sql: string, options: ModelOptions = {}): Promise<{ model: TenantModel; findings: Finding[] }> {
  return inRolledBack(client, sql, async () => lintCatalog(await catalogInTransaction(client), options))
}

/**
 * A copy of a catalog with some parts replaced (for what a test server cannot show, e.g. an older server
 * version or a privilege only newer servers have). Lookups follow the replaced arrays.
 */
export function patchCatalog(catalog: Catalog, patch: { server?: Partial<ServerInfo>; tables?: (t: Table) => Table }): Catalog {
  const server = { ...catalog.server, ...patch.server }
  const tables = patch.tables === undefined ? catalog.tables : catalog.tables.map(patch.tables)
  return {
    ...catalog,
    server,
    tables,
    table: (schema, name) => tables.find((t) => t.schema === schema && t.name === name),
    tableByOid: (oid) => tables.find((t) => t.oid === oid),
  }
}

/** Roles a lint case may use: the fixture's, plus one spare it may create. */
export function caseRoles(fx: VerifyFixture): { app: string; owner: string; extra: string } {
  return { app: fx.app, owner: fx.owner, extra: fx.role('extra') }
}

export interface LintRun {
  readonly sql: (r: ReturnType<typeof caseRoles>) => string
  readonly options?: (r: ReturnType<typeof caseRoles>) => ModelOptions
  readonly patch?: (catalog: Catalog, r: ReturnType<typeof caseRoles>) => Catalog
  readonly match?: (f: Finding) => boolean
  readonly committed?: { readonly setup: readonly string[]; readonly teardown: readonly string[] }
}

/**
 * The findings of `rule` (matching `run.match`) after applying `run` to the fixture: its SQL inside a
 * rolled-back transaction, its committed setup (undone by its teardown) for states a transaction cannot
 * hold, and its catalog patch for what the test server cannot show.
 */
export async function findingsOf(client: pg.Client, fx: VerifyFixture, rule: string, run: LintRun): Promise<Finding[]> {
  const r = caseRoles(fx)
  for (const statement of run.committed?.setup ?? []) {
    // A failing CREATE INDEX CONCURRENTLY is the point of some setups: it leaves an INVALID index behind.
    await client.query(statement).catch((error: { code?: string }) => {
      if (error.code !== '23505') throw error
    })
  }
  try {
    return await inRolledBack(client, run.sql(r), async () => {
      let catalog = await catalogInTransaction(client)
      if (run.patch !== undefined) catalog = run.patch(catalog, r)
      const { findings } = await lintCatalog(catalog, run.options?.(r) ?? { appRole: r.app })
      return findings.filter((f) => f.rule === rule && (run.match?.(f) ?? true))
    })
  } finally {
    for (const statement of run.committed?.teardown ?? []) await client.query(statement)
  }
}

/**
 * Full verify (lints + live probe) of the fixture after `sql`, all inside one transaction that is rolled
 * back. A fresh connection each time: the probe's no-context check needs a session in which the tenant
 * setting was never defined.
 */
export async function verifyAfter(fx: VerifyFixture, sql: string, options: VerifyCoreOptions = {}): Promise<VerifyReport> {
  const client = await connect(fx.db.url)
  try {
    return await inRolledBack(client, sql, async () => (await verifyClient(client, { appRole: fx.app, ...options, inTransaction: true })).report)
  } finally {
    await client.end()
  }
}

/**
 * For each lint case whose rule belongs to one of `groups`: a test where the rule fires (with a fix, a
 * reason and its docs line) and one where it does not. The groups are split across files that run in parallel.
 */
export function registerLintCases(client: pg.Client, fx: VerifyFixture, groups: ReadonlySet<string>): void {
  const rules = new Map(LINT_RULES.map((r) => [r.id, r]))
  for (const c of LINT_CASES.filter((x) => groups.has(rules.get(x.rule)!.category))) {
    test(`${c.rule} fires when ${c.fires.title}`, async () => {
      const found = await findingsOf(client, fx, c.rule, c.fires)
      assert.ok(found.length > 0, `${c.rule} did not fire`)
      for (const f of found) {
        assert.equal(f.source, 'lint')
        assert.equal(f.docs, `docs/rules.md#${c.rule}`)
        assert.ok(f.fix.trim().length > 0 && f.why.length > 0 && f.message.length > 0)
      }
    })
    test(`${c.rule} does not fire ${c.clean === undefined ? 'on the tenantized fixture' : `when ${c.clean.title}`}`, async () => {
      const found = await findingsOf(client, fx, c.rule, c.clean ?? { sql: () => '' })
      assert.deepEqual(found.map((f) => f.message), [])
    })
  }
}
