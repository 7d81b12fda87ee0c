/**
 * `npm test`: resolve one PostgreSQL server for the whole run (see src/db/test-server.ts), then run every
 * test file with node's test runner, each file in its own process with its own fresh database.
 * Ends with the line `N passed, N failed` and exits non-zero on any failure.
 *
 *   npm test                              # all tests
 *   npm test -- test/sql-quote.test.ts    # some files
 *   TENANTIZE_TEST_PG=embedded npm test   # force embedded PostgreSQL 18
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { resolveTestServer } from '../src/db/test-server.js'
import { withClient } from '../src/db/connect.js'

async function findTests(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...(await findTests(path)))
    else if (entry.name.endsWith('.test.ts')) out.push(relative(process.cwd(), path))
  }
  return out.sort()
}

/**
 * The suite runs against a real PgBouncer (pooler leaks) and renders the HTML report in headless Chromium.
 * On a fresh Debian machine `npm test` installs them itself when it can (as root, with apt-get), saying so in
 * one line; elsewhere it says what is missing and the tests that need them fail naming the package.
 * TENANTIZE_TEST_NO_INSTALL=1 turns the install off.
 */
function ensureDebianPackages(): void {
  const has = (cmd: string, paths: readonly string[]): boolean =>
    paths.some((p) => existsSync(p)) || spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0
  const missing = [
    ...(has('pgbouncer', ['/usr/sbin/pgbouncer']) ? [] : ['pgbouncer']),
    ...(existsSync('/usr/bin/chromium') ? [] : ['chromium']),
  ]
  if (missing.length === 0) return
  const canInstall = process.env['TENANTIZE_TEST_NO_INSTALL'] !== '1' && process.getuid?.() === 0 && existsSync('/usr/bin/apt-get')
  if (!canInstall) {
    console.log(`# missing Debian package(s) ${missing.join(', ')}: the tests that use them will fail; install them with apt-get install -y ${missing.join(' ')}`)
    return
  }
  console.log(`# installing Debian package(s) the tests need: ${missing.join(', ')} (apt-get; set TENANTIZE_TEST_NO_INSTALL=1 to skip)`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const update = spawnSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'], env })
  const install = update.status === 0 ? spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: ['ignore', 'ignore', 'inherit'], env }) : update
  if (install.status !== 0) console.log(`# could not install ${missing.join(', ')} (apt-get exited ${install.status ?? 'on a signal'}): the tests that use them will fail`)
}

/**
 * The Citus tests (test/citus*.test.ts) run on a real 3-node cluster of PostgreSQL 15 + Citus, built from the
 * pinned source in ../shared/citus (test/helpers/citus.ts starts the cluster). When the run includes them
 * and Citus is not installed, `npm test` builds it as root, saying so in one line (several minutes, once);
 * elsewhere those tests skip with the reason. TENANTIZE_TEST_NO_INSTALL=1 turns the build off.
 */
function ensureCitus(files: readonly string[]): void {
  if (!files.some((f) => /(^|\/)citus[^/]*\.test\.ts$/.test(f)) || process.env['TENANTIZE_TEST_CITUS'] === 'skip') return
  if (existsSync('/usr/lib/postgresql/15/lib/citus.so')) return
  const build = join(process.cwd(), '..', 'shared', 'citus', 'build.sh')
  if (!existsSync(build) || process.env['TENANTIZE_TEST_NO_INSTALL'] === '1' || process.getuid?.() !== 0) return
  console.log(`# building Citus into PostgreSQL 15 for the Citus tests (${relative(process.cwd(), build)}, several minutes once; set TENANTIZE_TEST_NO_INSTALL=1 to skip)`)
  const run = spawnSync('bash', [build], { stdio: ['ignore', 'ignore', 'inherit'] })
  if (run.status !== 0) console.log(`# could not build Citus (build.sh exited ${run.status ?? 'on a signal'}): the Citus tests will skip, or fail with TENANTIZE_TEST_CITUS=required`)
}

ensureDebianPackages()
const args = process.argv.slice(2)
const files = args.length > 0 ? args : await findTests('test')
ensureCitus(files)
const server = await resolveTestServer()
const version = await withClient(server.url, async (c) => (await c.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v)
console.log(`# PostgreSQL ${version ?? '?'} (${server.kind}); ${files.length} test files`)

const tmp = await mkdtemp(join(tmpdir(), 'tenantize-test-'))
const summaryFile = join(tmp, 'summary.json')
const concurrency = process.env['TENANTIZE_TEST_CONCURRENCY'] ?? '4'
const code = await new Promise<number>((resolve) => {
  const child = spawn(
    process.execPath,
    [
      '--import', 'tsx',
      '--test',
      `--test-concurrency=${concurrency}`,
      '--test-reporter=spec', '--test-reporter-destination=stdout',
      '--test-reporter=./scripts/summary-reporter.mjs', `--test-reporter-destination=${summaryFile}`,
      ...files,
    ],
    {
      stdio: 'inherit',
      env: { ...process.env, TENANTIZE_TEST_SERVER_URL: server.url, TENANTIZE_TEST_SERVER_KIND: server.kind },
    },
  )
  child.on('close', (c) => resolve(c ?? 1))
})
await server.stop()

let summary = { passed: 0, failed: 0, skipped: 0, failures: [] as string[] }
try {
  summary = JSON.parse(await readFile(summaryFile, 'utf8')) as typeof summary
} catch {
  summary.failed = Math.max(1, summary.failed)
  summary.failures.push('the test runner ended without a summary')
}
await rm(tmp, { recursive: true, force: true })
for (const f of summary.failures) console.log(`FAILED: ${f}`)
if (code !== 0 && summary.failed === 0) {
  summary.failed = 1
  console.log(`FAILED: node --test exited with code ${code}`)
}
if (summary.passed === 0 && summary.failed === 0) {
  summary.failed = 1
  console.log('FAILED: no test ran')
}
const skipped = summary.skipped > 0 ? `, ${summary.skipped} skipped` : ''
console.log(`${summary.passed} passed, ${summary.failed} failed${skipped}`)
process.exit(summary.failed > 0 ? 1 : 0)
