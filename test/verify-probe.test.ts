import { test } from 'node:test'
import assert from 'node:assert/strict'
import { quoteIdent as q } from '../src/sql/index.js'
import { PROBE_CHECKS } from '../src/verify/probe/registry.js'
import { verify } from '../src/verify/verify.js'
import type { ProbeCheck, VerifyReport } from '../src/verify/types.js'
import { testDatabase } from './helpers/db.js'
import { createVerifyFixture, verifyAfter } from './helpers/verify-fixture.js'

const db = await testDatabase(import.meta.url)
const fx = await createVerifyFixture(db)

const TENANT_TABLES = ['app.events', 'app.events_2024', 'app.events_2025', 'app.invoices', 'app.organizations', 'app.projects', 'app.tasks']
// view-other runs per view; data-misassigned-rows and setting-flip only where a foreign key or a policy gives them something to check.
const TABLE_CHECKS = PROBE_CHECKS.map((c) => c.id).filter((id) => !['view-other', 'data-misassigned-rows', 'setting-flip'].includes(id))

async function rowCounts(): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const t of [...TENANT_TABLES, 'app.currencies']) out[t] = Number((await db.sql<{ n: string }>(`SELECT count(*) AS n FROM ${t}`))[0]!.n)
  return out
}

const before = await rowCounts()
const clean: VerifyReport = await verify({ databaseUrl: db.url, appRole: fx.app })

const find = (report: VerifyReport, table: string, check: string): ProbeCheck => {
  const c = report.probe?.checks.find((x) => x.table === table && x.check === check)
  assert.ok(c !== undefined, `no ${check} on ${table}`)
  return c
}

test('the probe runs every check on every tenant table (and view-other on the view), as the app role via SET ROLE', () => {
  const probe = clean.probe
  assert.ok(probe !== null)
  assert.equal(probe.appRole, fx.app)
  assert.equal(probe.sessionUser, new URL(db.url).username || 'postgres')
  assert.equal(probe.rolledBack, true)
  for (const table of TENANT_TABLES) {
    const checks = probe.checks.filter((c) => c.table === table).map((c) => c.check).sort()
    assert.deepEqual(checks, [...TABLE_CHECKS].sort(), table)
  }
  assert.deepEqual(probe.checks.filter((c) => c.table === 'app.project_summary').map((c) => c.check), ['view-other'])
  assert.deepEqual(probe.seeded.filter((s) => s.error !== null), [])
})

test('on the tenantized fixture no probe check fails; skips are the root table\'s (no tenant column, no parent)', () => {
  const bad = clean.probe!.checks.filter((c) => c.status === 'fail' || c.status === 'error')
  assert.deepEqual(bad, [])
  const skipped = clean.probe!.checks.filter((c) => c.status === 'skip').map((c) => `${c.table} ${c.check}`)
  assert.deepEqual(skipped.sort(), ['app.organizations data-cross-tenant-reference', 'app.organizations data-null-tenant', 'app.organizations join'])
})

test('writes across tenants are refused by PostgreSQL with the expected errors', () => {
  assert.equal(find(clean, 'app.invoices', 'insert-other').sqlstate, '42501')
  assert.equal(find(clean, 'app.invoices', 'copy-from').sqlstate, '0A000') // COPY FROM not supported with row-level security
  assert.equal(find(clean, 'app.invoices', 'row-security-off').sqlstate, '42501') // query would be affected by row-level security policy
  assert.match(find(clean, 'app.invoices', 'upsert').detail, /refused|left B's row alone/)
  assert.match(find(clean, 'app.events', 'merge').detail, clean.database.serverVersionNum >= 150000 ? /refused|did not update/ : /MERGE needs PostgreSQL 15/)
})

test('nothing persists: every table has the rows it had before, and no tenant was left behind', async () => {
  assert.deepEqual(await rowCounts(), before)
  assert.deepEqual(await db.sql("SELECT count(*)::int AS n FROM app.organizations WHERE slug LIKE 'tz%'"), [{ n: 0 }])
})

test('every probe check fails when the protection it checks is broken', async () => {
  const A = '00000000-0000-4000-8000-0000000000a1'
  const B = '00000000-0000-4000-8000-0000000000b2'
  const broken = await verifyAfter(
    fx,
    `-- RLS off on invoices: every read/write/context check there fails
DROP POLICY tenant_isolation ON app.invoices; ALTER TABLE app.invoices DISABLE ROW LEVEL SECURITY;
-- no policy on tasks: tenant A cannot see its own rows
DROP POLICY tenant_isolation ON app.tasks;
-- a definer view owned by a superuser
ALTER VIEW app.project_summary RESET (security_invoker); ALTER VIEW app.project_summary OWNER TO CURRENT_USER;
-- existing bad data: a project without tenant, an event row of tenant A pointing at tenant B (through a plain FK)
ALTER TABLE app.projects ALTER COLUMN org_id DROP NOT NULL;
INSERT INTO app.organizations (id, slug, name) VALUES ('${A}', 'tz-probe-a', 'A'), ('${B}', 'tz-probe-b', 'B');
INSERT INTO app.projects (org_id, id, name) VALUES (NULL, 900000, 'orphan'), ('${B}', 900002, 'b');
ALTER TABLE app.tasks DROP CONSTRAINT tasks_project_fk;
INSERT INTO app.tasks (org_id, project_id, title) VALUES ('${A}', 900002, 'points at B');
ALTER TABLE app.tasks ADD CONSTRAINT tasks_project_id_fkey FOREIGN KEY (project_id) REFERENCES app.projects (id);
-- organization A points at a project filed under B; a policy any session opens with app.bypass = 'on'
ALTER TABLE app.organizations ADD COLUMN main_project_id bigint REFERENCES app.projects (id); UPDATE app.organizations SET main_project_id = 900002 WHERE id = '${A}';
CREATE POLICY support ON app.projects FOR SELECT USING (current_setting('app.bypass', true) = 'on');`,
  )
  const failed = new Set(broken.probe!.checks.filter((c) => c.status === 'fail').map((c) => c.check))
  const expected = PROBE_CHECKS.map((c) => c.id).filter((id) => id !== 'merge' || broken.database.serverVersionNum >= 150000)
  assert.deepEqual(expected.filter((id) => !failed.has(id)), [])
  for (const c of broken.probe!.checks.filter((x) => x.status === 'fail')) {
    assert.ok(broken.findings.some((f) => f.rule === `probe-${c.check}` && f.source === 'probe' && f.message === c.detail), `${c.table} ${c.check} has no finding`)
  }
})

test('the probe fills tables that are hard to fill: CHECK constraints, a context default, a trigger that rewrites seeded rows', async () => {
  const r = fx.app
  const report = await verifyAfter(
    fx,
    `CREATE TABLE app.meters (
       org_id uuid NOT NULL DEFAULT tenantize.current_tenant_id() REFERENCES app.organizations (id),
       id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       code text NOT NULL CHECK (code ~ '^[A-Z0-9]{2,12}$'),
       kind varchar(20) NOT NULL CHECK (kind IN ('power', 'gas')),
       month smallint NOT NULL CHECK (month BETWEEN 1 AND 12),
       UNIQUE (org_id, code));
     CREATE TABLE app.meter_totals (org_id uuid NOT NULL, meter_id bigint PRIMARY KEY REFERENCES app.meters (id), readings int NOT NULL DEFAULT 0);
     CREATE TABLE app.meter_events (org_id uuid NOT NULL DEFAULT tenantize.current_tenant_id(), at timestamptz NOT NULL DEFAULT now(), meter_id bigint NOT NULL);
     CREATE TABLE app.readings (
       org_id uuid NOT NULL REFERENCES app.organizations (id), id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       meter_id bigint NOT NULL REFERENCES app.meters (id), kwh numeric(10, 3) NOT NULL CHECK (kwh > 0));
     -- Logs an event (its org_id comes from the tenant context) and updates the meter's total (a probe row: it moves).
     CREATE FUNCTION app.count_reading() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog AS $$
       BEGIN
         INSERT INTO app.meter_events (meter_id) VALUES (NEW.meter_id);
         INSERT INTO app.meter_totals (org_id, meter_id, readings) VALUES (NEW.org_id, NEW.meter_id, 1)
           ON CONFLICT (meter_id) DO UPDATE SET readings = app.meter_totals.readings + 1;
         RETURN NEW;
       END $$;
     CREATE TRIGGER count_reading AFTER INSERT ON app.readings FOR EACH ROW EXECUTE FUNCTION app.count_reading();
     ${['meters', 'meter_totals', 'meter_events', 'readings'].map((t) => `ALTER TABLE app.${t} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
       CREATE POLICY tenant_isolation ON app.${t} FOR ALL TO ${q(r)} USING (org_id = (SELECT tenantize.current_tenant_id())) WITH CHECK (org_id = (SELECT tenantize.current_tenant_id()));
       GRANT SELECT, INSERT, UPDATE, DELETE ON app.${t} TO ${q(r)};`).join('\n')}`,
  )
  assert.deepEqual(report.probe!.seeded.filter((s) => s.error !== null), [])
  assert.deepEqual(report.probe!.checks.filter((c) => c.status === 'fail' || c.status === 'error').map((c) => `${c.table} ${c.check}: ${c.detail}`), [])
  for (const table of ['app.meters', 'app.meter_totals', 'app.meter_events', 'app.readings']) {
    assert.equal(report.probe!.checks.find((c) => c.table === table && c.check === 'read-own')?.status, 'pass', table)
  }
  // A reading's trigger writes meter_events rows that take org_id from the context: readings were filled after
  // the no-context check, which says so. The same trigger updated the probe's meter_totals rows (found again by key).
  assert.match(report.probe!.checks.find((c) => c.table === 'app.readings' && c.check === 'context-none')!.detail, /checked before this table's probe rows/)
})

test('connected as the app role itself the probe does not run, says why, and the lints still do', async () => {
  const url = new URL(db.url)
  url.username = fx.app
  url.password = 'app-password'
  const report = await verify({ databaseUrl: url.toString(), appRole: fx.app })
  assert.equal(report.probe, null)
  const notRun = report.findings.find((f) => f.rule === 'probe-not-run')
  assert.ok(notRun !== undefined)
  assert.match(notRun.message, new RegExp(`session role "${fx.app}" is subject to row-level security`))
  assert.ok(report.rules.length >= 40)
})

test('a role that may not SET ROLE to the app role gets probe-not-run, not an error', async () => {
  const admin = fx.role('bypass_admin')
  await db.sql(`CREATE ROLE ${q(admin)} LOGIN BYPASSRLS PASSWORD 'admin-password'; GRANT USAGE ON SCHEMA app, tenantize TO ${q(admin)}`)
  const url = new URL(db.url)
  url.username = admin
  url.password = 'admin-password'
  const report = await verify({ databaseUrl: url.toString(), appRole: fx.app })
  const notRun = report.findings.find((f) => f.rule === 'probe-not-run')
  assert.ok(notRun !== undefined)
  assert.match(notRun.message, /cannot SET ROLE/)
})
