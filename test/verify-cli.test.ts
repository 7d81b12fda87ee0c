import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Command, CommanderError } from 'commander'
import { registerVerify } from '../src/cli/commands/verify.js'
import { reportError } from '../src/cli/main.js'
import { reportSchema } from '../src/verify/report/schema.js'
import { testDatabase } from './helpers/db.js'
import { createVerifyFixture } from './helpers/verify-fixture.js'

// `tenantize verify` through commander, as main.ts will wire it: exit 0 clean, 1 findings at or above
// --fail-on, 2 usage / configuration / connection errors.

/** The ANSI escape character. */
const ESC = '\u001b'

interface Run {
  code: number
  stdout: string
  stderr: string
}

async function cli(args: readonly string[], options: { tty?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  let stdout = ''
  let stderr = ''
  let code = 0
  const io = {
    stdout: { write: (s: string) => (stdout += s), isTTY: options.tty === true },
    stderr: { write: (s: string) => (stderr += s) },
    env: options.env ?? {},
  }
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

const db = await testDatabase(import.meta.url)
const fx = await createVerifyFixture(db)
// A second database with a warning only (a policy TO PUBLIC), a third with an error (TRUNCATE granted)
// and a unique key across tenants.
const warnDb = await db.another('verify-cli-warn')
const warnFx = await createVerifyFixture(warnDb)
await warnDb.sql('ALTER POLICY tenant_isolation ON app.projects TO PUBLIC')
const errorDb = await db.another('verify-cli-error')
const errorFx = await createVerifyFixture(errorDb)
await errorDb.sql(`GRANT TRUNCATE ON app.invoices TO "${errorFx.app}"; ALTER TABLE app.invoices ADD CONSTRAINT invoices_customer_email_key UNIQUE (customer_email)`)

const dir = await mkdtemp(join(tmpdir(), 'tz-verify-cli-'))
after(() => rm(dir, { recursive: true, force: true }))

test('exit 0 on the tenantized fixture; the text report ends with the verdict', async () => {
  const r = await cli(['--db', db.url, '--app-role', fx.app])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /passes --fail-on error\n$/)
  assert.ok(!r.stdout.includes(ESC))
})

test('exit 1 when an error is found; --fail-on warn also fails on warnings', async () => {
  const e = await cli(['--db', errorDb.url, '--app-role', errorFx.app])
  assert.equal(e.code, 1)
  assert.match(e.stdout, /✖ grant-truncate \(1\)/)
  const w = await cli(['--db', warnDb.url, '--app-role', warnFx.app])
  assert.equal(w.code, 0)
  const strict = await cli(['--db', warnDb.url, '--app-role', warnFx.app, '--fail-on', 'warn', '--no-probe'])
  assert.equal(strict.code, 1)
  assert.match(strict.stdout, /fails --fail-on warn/)
})

test('DATABASE_URL is used without --db, and the app role is inferred (and said so)', async () => {
  const r = await cli(['--format', 'json', '--no-probe'], { env: { DATABASE_URL: db.url } })
  assert.equal(r.code, 0, r.stderr)
  const report = reportSchema.parse(JSON.parse(r.stdout))
  assert.equal(report.model.appRole, fx.app)
  assert.equal(report.model.appRoleSource, 'policies')
  assert.equal(report.probe, null)
})

test('--format json --out writes the report to a file and a summary line to stdout', async () => {
  const out = join(dir, 'verify.json')
  const r = await cli(['--db', errorDb.url, '--app-role', errorFx.app, '--format', 'json', '--out', out])
  assert.equal(r.code, 1)
  assert.match(r.stdout, /^json report written to .*verify\.json: 1 error\(s\), \d+ warning\(s\), \d+ info; probe \d+ passed, 0 failed\n$/)
  const report = reportSchema.parse(JSON.parse(await readFile(out, 'utf8')))
  assert.deepEqual(report.findings.filter((f) => f.severity === 'error').map((f) => f.rule), ['grant-truncate'])
  assert.ok(report.findings.some((f) => f.rule === 'unique-not-tenant-scoped' && f.object.includes('invoices_customer_email_key')))
})

test('--format junit and --format html go to stdout', async () => {
  const junit = await cli(['--db', db.url, '--app-role', fx.app, '--format', 'junit', '--no-probe'])
  assert.match(junit.stdout, /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<testsuites name="tenantize verify"/)
  const html = await cli(['--db', db.url, '--app-role', fx.app, '--format', 'html', '--no-probe'])
  assert.match(html.stdout, /^<!DOCTYPE html>/)
})

test('on a TTY the text is colored, unless NO_COLOR is set', async () => {
  const colored = await cli(['--db', errorDb.url, '--app-role', errorFx.app, '--no-probe'], { tty: true })
  assert.ok(colored.stdout.includes(`${ESC}[31m`))
  const plain = await cli(['--db', errorDb.url, '--app-role', errorFx.app, '--no-probe'], { tty: true, env: { NO_COLOR: '1' } })
  assert.ok(!plain.stdout.includes(ESC))
})

test('exit 2 with every bad option named at once', async () => {
  const r = await cli(['--db', db.url, '--format', 'pdf', '--fail-on', 'never', '--setting', 'no_dot', '--statement-timeout', 'soon'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /^TZ_USAGE 4 invalid options\n/)
  for (const flag of ['--format', '--fail-on', '--setting', '--statement-timeout']) assert.match(r.stderr, new RegExp(`TZ_USAGE ${flag}:`))
})

test('exit 2 on connection errors, without printing the password', async () => {
  const r = await cli(['--db', 'postgres://someone:s3cret-pw@127.0.0.1:1/nowhere'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /^TZ_CONNECTION postgres:\/\/someone:\*\*\*@127\.0\.0\.1:1\/nowhere: cannot connect/)
  assert.doesNotMatch(r.stderr + r.stdout, /s3cret-pw/)
})

test('exit 2 without a database URL (TZ_CONFIG) and when the app role cannot be inferred (TZ_USAGE)', async () => {
  const none = await cli([])
  assert.equal(none.code, 2)
  assert.match(none.stderr, /^TZ_CONFIG --db: no database URL given/)
  const bare = await db.another('verify-cli-bare')
  await bare.sql('CREATE TABLE things (id int PRIMARY KEY, org_id uuid)')
  const r = await cli(['--db', bare.url])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /^TZ_USAGE --app-role: cannot infer the app role/)
})

test('exit 2 when the report cannot be written', async () => {
  const r = await cli(['--db', db.url, '--app-role', fx.app, '--no-probe', '--out', join(dir, 'missing', 'dir', 'x.txt')])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /^TZ_USAGE .*x\.txt: cannot write the report/)
})

test('--config supplies the tenant model, excluded tables and global unique keys; flags override it', async () => {
  const config = {
    version: 1,
    tenant: { table: 'app.organizations', create: false, idType: 'uuid', column: 'org_id', setting: 'tenantize.tenant_id', default: { id: '00000000-0000-4000-8000-000000000001' } },
    roles: { app: errorFx.app },
    tables: {
      'app.organizations': { class: 'root' },
      'app.invoices': { class: 'direct', keepGlobalUnique: ['invoices_customer_email_key'] },
      'app.events': { class: 'excluded' },
      'app.events_2024': { class: 'excluded' },
      'app.events_2025': { class: 'excluded' },
    },
  }
  const file = join(dir, 'tenantize.config.json')
  await writeFile(file, JSON.stringify(config))
  const r = await cli(['--db', errorDb.url, '--config', file, '--format', 'json', '--no-probe'])
  assert.equal(r.code, 1, r.stderr)
  const report = reportSchema.parse(JSON.parse(r.stdout))
  assert.deepEqual([report.model.appRole, report.model.appRoleSource, report.model.rootTable, report.model.rootSource], [errorFx.app, 'option', 'app.organizations', 'option'])
  assert.deepEqual(report.model.tables.map((t) => t.table).filter((t) => t.startsWith('app.events')), [])
  assert.ok(report.findings.some((f) => f.rule === 'grant-truncate'))
  assert.deepEqual(report.findings.filter((f) => f.rule === 'unique-not-tenant-scoped'), [])
  const overridden = await cli(['--db', errorDb.url, '--config', file, '--app-role', fx.app, '--format', 'json', '--no-probe'])
  assert.equal(reportSchema.parse(JSON.parse(overridden.stdout)).model.appRole, fx.app)
  const bad = await cli(['--db', errorDb.url, '--config', join(dir, 'nope.json')])
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /^TZ_CONFIG .*nope\.json: configuration file not found/)
})

test('--help lists every flag', async () => {
  const r = await cli(['--help'])
  assert.equal(r.code, 0)
  for (const flag of ['--db', '--config', '--app-role', '--tenant-column', '--setting', '--format', '--out', '--fail-on', '--pooler-url', '--no-probe', '--statement-timeout']) assert.ok(r.stdout.includes(flag), flag)
})
