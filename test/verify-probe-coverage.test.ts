import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { Command, CommanderError } from 'commander'
import { registerVerify } from '../src/cli/commands/verify.js'
import { reportError } from '../src/cli/main.js'
import { quoteIdent as q } from '../src/sql/index.js'
import { reportSchema } from '../src/verify/report/schema.js'
import { renderReport } from '../src/verify/report/index.js'
import type { VerifyReport } from '../src/verify/types.js'
import { exitCodeFor, verify } from '../src/verify/verify.js'
import { testDatabase } from './helpers/db.js'
import { createVerifyFixture, withRoles } from './helpers/verify-fixture.js'

// Issue #11: verify cannot pass what it did not check. The seeder fills the kinds of tables it failed on
// in real schemas (test/fixtures/verify/probe-coverage.sql), and a table it cannot fill is an error.

const db = await testDatabase(import.meta.url)
const fx = await createVerifyFixture(db)
await db.sql(withRoles(await readFile(new URL('./fixtures/verify/probe-coverage.sql', import.meta.url), 'utf8'), { app: fx.app, owner: fx.owner }))
const report: VerifyReport = await verify({ databaseUrl: db.url, appRole: fx.app })

// Set up before any test is declared (the runner may end the file, and drop its databases, once declared tests are done).
// A second database: the tenantized fixture plus two tables no row can enter.
const bad = await db.another('probe-coverage-bad')
const badFx = await createVerifyFixture(bad)
await bad.sql(`SET ROLE ${q(badFx.owner)};
  CREATE TABLE app.sealed (org_id uuid NOT NULL REFERENCES app.organizations (id), id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text NOT NULL);
  ALTER TABLE app.sealed ADD CONSTRAINT sealed_never CHECK (false) NOT VALID;
  CREATE TABLE app.guarded (org_id uuid NOT NULL REFERENCES app.organizations (id), id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text NOT NULL);
  CREATE FUNCTION app.refuse() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog AS $$ BEGIN RAISE EXCEPTION 'guarded rows come from the import job'; END $$;
  CREATE TRIGGER refuse BEFORE INSERT ON app.guarded FOR EACH ROW EXECUTE FUNCTION app.refuse();
  ${['sealed', 'guarded'].map((t) => `ALTER TABLE app.${t} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
    CREATE POLICY tenant_isolation ON app.${t} AS PERMISSIVE FOR ALL TO ${q(badFx.app)} USING (org_id = (SELECT tenantize.current_tenant_id())) WITH CHECK (org_id = (SELECT tenantize.current_tenant_id()));
    CREATE INDEX ${t}_org_id_idx ON app.${t} (org_id);
    GRANT SELECT, INSERT, UPDATE, DELETE ON app.${t} TO ${q(badFx.app)};`).join('\n')}
  RESET ROLE;`)
const badArgs = ['--db', bad.url, '--app-role', badFx.app]

/** The fixture's tenant tables in schema hard (partitioned parents included). */
const HARD = ['addresses', 'bookings', 'folders', 'hashed', 'hashed_0', 'hashed_1', 'logs', 'logs_eu', 'logs_us', 'rules', 'settings', 'ticket_items', 'tickets', 'tree', 'typed'].map((t) => `hard.${t}`)
/** Checks that only pass when the probe has rows of both tenants in the table. */
const ROW_CHECKS = ['read-own', 'read-other', 'update-other', 'delete-other', 'update-move']

test('the model sees every table of the fixture as a tenant table (the test would prove nothing otherwise)', () => {
  const tenant = report.model.tables.filter((t) => t.class !== 'global').map((t) => t.table).filter((t) => t.startsWith('hard.'))
  assert.deepEqual(tenant.sort(), HARD)
})

test('every tenant table is probed: domains, CHECKs, defaults a CHECK refuses, enums, arrays, json, generated and identity columns, exclusion constraints, global and self references, composite keys, partitions', () => {
  const probe = report.probe!
  assert.deepEqual(probe.unprobed, [])
  assert.equal(report.summary.unprobed, 0)
  assert.deepEqual(probe.seeded.filter((s) => s.error !== null || s.rows < 2).map((s) => `${s.table}: ${s.error ?? `${s.rows} row(s)`}`), [])
  for (const table of HARD) {
    for (const check of ROW_CHECKS) {
      const c = probe.checks.find((x) => x.table === table && x.check === check)
      assert.equal(c?.status, 'pass', `${table} ${check}: ${c?.detail ?? 'missing'}`)
    }
  }
  assert.deepEqual(report.findings.filter((f) => f.rule === 'probe-unprobed' || f.rule === 'probe-error').map((f) => f.message), [])
})

test('nothing the probe inserted persists, not even the row it had to create in an empty global table', async () => {
  assert.deepEqual(await db.sql('SELECT (SELECT count(*)::int FROM hard.tickets) AS tickets, (SELECT count(*)::int FROM hard.tree) AS tree, (SELECT count(*)::int FROM hard.kinds) AS kinds'), [{ tickets: 0, tree: 0, kinds: 0 }])
})

/** `tenantize verify` through commander, as main.ts wires it. */
async function cli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  let code = 0
  const io = { stdout: { write: (s: string) => (stdout += s), isTTY: false }, stderr: { write: (s: string) => (stderr += s) }, env: {} }
  const program = new Command().exitOverride().configureOutput({ writeOut: (s) => (stdout += s), writeErr: (s) => (stderr += s) })
  registerVerify(program, io, (c) => (code = c))
  for (const c of program.commands) c.exitOverride()
  try {
    await program.parseAsync(['verify', ...args], { from: 'user' })
  } catch (error) {
    if (error instanceof CommanderError) code = error.code === 'commander.helpDisplayed' ? 0 : 2
    else code = reportError(error, io, false)
  }
  return { code, stdout, stderr }
}


test('a table no row can enter (CHECK (false) NOT VALID, a trigger that always raises) is "not probed" with the reason, an error: verify exits 1', async () => {
  const run = await cli([...badArgs, '--format', 'json'])
  const parsed = reportSchema.parse(JSON.parse(run.stdout))
  assert.equal(run.code, 1, run.stderr)
  assert.deepEqual(parsed.probe!.unprobed.map((u) => u.table).sort(), ['app.guarded', 'app.sealed'])
  const sealed = parsed.probe!.unprobed.find((u) => u.table === 'app.sealed')!
  assert.match(sealed.reason, /23514: new row for relation "sealed" violates check constraint "sealed_never"; sealed_never is CHECK \(false\) NOT VALID/)
  const guarded = parsed.probe!.unprobed.find((u) => u.table === 'app.guarded')!
  assert.match(guarded.reason, /P0001: guarded rows come from the import job/)
  const findings = parsed.findings.filter((f) => f.rule === 'probe-unprobed')
  assert.deepEqual(findings.map((f) => [f.severity, f.table, f.message.startsWith('not probed: ')]).sort(), [['error', 'app.guarded', true], ['error', 'app.sealed', true]])
  assert.equal(parsed.summary.unprobed, 2)
  // Nothing else is wrong with the database: the unprobed tables alone make it fail.
  assert.deepEqual(parsed.findings.filter((f) => f.severity === 'error' && f.rule !== 'probe-unprobed').map((f) => `${f.rule} ${f.object}`), [])
  // Checks that only look at probe rows are skipped there, never passed.
  const vacuous = parsed.probe!.checks.filter((c) => c.table === 'app.sealed' && ['read-own', 'read-other', 'count', 'context-none', 'update-other'].includes(c.check))
  assert.equal(vacuous.length, 5)
  for (const c of vacuous) assert.equal(c.status, 'skip', `${c.check}: ${c.detail}`)
})

test('--allow-unprobed: exit 0, the tables still listed as warnings in text, JSON, JUnit and HTML', async () => {
  const run = await cli([...badArgs, '--allow-unprobed'])
  assert.equal(run.code, 0, run.stdout + run.stderr)
  assert.match(run.stdout, /⚠ probe-unprobed \(2\)/)
  assert.match(run.stdout, /• app\.sealed not probed: inserting a row into app\.sealed failed/)
  assert.match(run.stdout, /✖ app\.guarded {2}NOT PROBED: /)
  assert.match(run.stdout, /2 tenant table\(s\) not probed/)
  const strict = await cli([...badArgs, '--allow-unprobed', '--fail-on', 'warn'])
  assert.equal(strict.code, 1)

  const lib = await verify({ databaseUrl: bad.url, appRole: badFx.app, allowUnprobed: true })
  assert.equal(exitCodeFor(lib, 'error'), 0)
  assert.deepEqual(lib.findings.filter((f) => f.rule === 'probe-unprobed').map((f) => f.severity), ['warn', 'warn'])
  const junit = renderReport(lib, 'junit')
  assert.match(junit, /<testcase classname="coverage\.app\.sealed" name="probed">\s*<failure type="warn" message="not probed: inserting a row into app\.sealed/)
  assert.match(junit, /<testcase classname="coverage\.app\.projects" name="probed">/)
  const html = renderReport(lib, 'html')
  assert.match(html, /<code>app\.guarded<\/code> <b class="error unprobed" title="[^"]*guarded rows come from the import job[^"]*">not probed<\/b>/)
  assert.match(html, /<div class="card" id="unprobed"><b class="error">2<\/b>tenant tables not probed<\/div>/)
})

test('when every tenant table was probed the HTML says so', () => {
  assert.match(renderReport(report, 'html'), /<div class="card" id="unprobed"><b class="pass">0<\/b>tenant tables not probed<\/div>/)
  assert.match(renderReport(report, 'html'), /Every tenant table was probed with rows of both tenants\./)
})
