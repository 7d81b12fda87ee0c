import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Command, CommanderError } from 'commander'
import { blockMigration } from '../src/blocks/index.js'
import { registerAdd } from '../src/cli/commands/add.js'
import type { CliIO } from '../src/cli/io.js'
import { TenantizeError } from '../src/errors.js'

// `tenantize add` through commander, as the CLI will register it: files, numbering, output, errors.

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tz-add-'))
  after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

interface Run {
  readonly code: number | undefined
  readonly stdout: string
  readonly stderr: string
}

async function add(args: readonly string[]): Promise<Run> {
  let stdout = ''
  let stderr = ''
  let code: number | undefined
  const io: CliIO = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) }, env: {} }
  const program = new Command().exitOverride().configureOutput({ writeOut: (s) => (stdout += s), writeErr: (s) => (stderr += s) })
  registerAdd(program, io, (c) => (code = c))
  for (const cmd of program.commands) cmd.exitOverride()
  await program.parseAsync(['add', ...args], { from: 'user' })
  return { code, stdout, stderr }
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  assert.fail('expected an error')
}

test('add rbac writes the next-numbered pair with the generated SQL and prints the files', async () => {
  const dir = await tempDir()
  await writeFile(join(dir, '0007_create_invoice.up.sql'), 'CREATE TABLE invoice (id int);\n')
  const run = await add(['rbac', '--dir', dir])
  assert.equal(run.code, 0)
  assert.equal(await readFile(join(dir, '0008_rbac.up.sql'), 'utf8'), blockMigration('rbac', { appRole: 'tenantize_app' }).up)
  assert.equal(await readFile(join(dir, '0008_rbac.down.sql'), 'utf8'), blockMigration('rbac', { appRole: 'tenantize_app' }).down)
  assert.equal(
    run.stdout,
    `Created ${join(dir, '0008_rbac.up.sql')}\nCreated ${join(dir, '0008_rbac.down.sql')}\n` +
      'Adds memberships: which user has which role in which tenant (permission matrix: createRbac in tenantize/runtime).\n' +
      'Apply it with: tenantize migrate up\n',
  )
})

test('add api-keys --json passes the names through and prints one JSON object', async () => {
  const dir = join(await tempDir(), 'new', 'migrations')
  const run = await add(['api-keys', '--dir', dir, '--tenant-table', 'app.tenants', '--tenant-column', 'tenant_id', '--app-role', 'web', '--json'])
  assert.equal(run.code, 0)
  assert.deepEqual(JSON.parse(run.stdout), {
    block: 'api-keys',
    name: '0001_api_keys',
    up: join(dir, '0001_api_keys.up.sql'),
    down: join(dir, '0001_api_keys.down.sql'),
    tables: ['app.api_keys'],
  })
  const expected = blockMigration('api-keys', { tenantTable: 'app.tenants', tenantColumn: 'tenant_id', appRole: 'web' })
  assert.equal(await readFile(join(dir, '0001_api_keys.up.sql'), 'utf8'), expected.up)
  assert.match(expected.up, /REFERENCES "app"\."tenants" \("id"\)/)
})

test('adding a block twice is refused and writes nothing', async () => {
  const dir = await tempDir()
  await add(['audit', '--dir', dir])
  const error = await rejection(add(['audit', '--dir', dir]))
  assert.ok(error instanceof TenantizeError)
  assert.equal(error.code, 'TZ_EXISTS')
  assert.equal(error.object, join(dir, '0001_audit_log.up.sql'))
  assert.deepEqual((await readdir(dir)).sort(), ['0001_audit_log.down.sql', '0001_audit_log.up.sql'])
})

test('bad option values are reported together as TZ_USAGE, before any file is written', async () => {
  const dir = await tempDir()
  const error = await rejection(add(['rbac', '--dir', dir, '--tenant-table', 'a.b.c', '--tenant-column', 'x$y', '--app-role', 'public']))
  assert.ok(error instanceof TenantizeError)
  assert.equal(error.code, 'TZ_USAGE')
  assert.deepEqual(error.problems.map((p) => p.object), ['--tenant-table', '--tenant-column', '--app-role'])
  assert.deepEqual(await readdir(dir), [])
})

test('an unknown block is a commander usage error listing the choices', async () => {
  const error = await rejection(add(['billing']))
  assert.ok(error instanceof CommanderError)
  assert.equal(error.code, 'commander.invalidArgument')
  assert.match(error.message, /rbac, api-keys, audit/)
})

test('--help lists every flag', async () => {
  let out = ''
  const program = new Command().exitOverride().configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (out += s) })
  registerAdd(program, { stdout: { write: () => true }, stderr: { write: () => true }, env: {} }, () => undefined)
  for (const cmd of program.commands) cmd.exitOverride()
  await rejection(program.parseAsync(['add', '--help'], { from: 'user' }))
  for (const flag of ['--dir', '--tenant-table', '--tenant-column', '--app-role', '--json']) assert.ok(out.includes(flag), flag)
})
