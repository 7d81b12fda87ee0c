import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli } from './helpers/cli.js'
import { testDatabase } from './helpers/db.js'

// Cut-over readiness on the command line (issue #12): status --readiness, apply --phase enforce refusing
// while an old app writes without a tenant context, --tables canaries, --ignore-readiness; plan checks
// the config against the catalog. The real CLI in a child process without a terminal, in a folder of its own.

const db = await testDatabase(import.meta.url)
const dir = await mkdtemp(join(tmpdir(), 'tz-readiness-'))
after(() => rm(dir, { recursive: true, force: true }))
const cli = (args: readonly string[]): ReturnType<typeof runCli> => runCli(dir, args)

/** Times and durations vary from run to run: compared as `<time>` and `<t>`; pre-flight lines (server version, size) left out. */
const stable = (s: string): string =>
  s
    .replace(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/g, '<time>')
    .replace(/\d+(\.\d)? (ms|s)\b/g, '<t>')
    .split('\n')
    .filter((l) => !/^[✔ℹ⚠✖] pre-flight /.test(l))
    .join('\n')

const t = await db.another('cli')
await t.sql(`
  CREATE TABLE notes (id serial PRIMARY KEY, body text);
  CREATE TABLE tags (id serial PRIMARY KEY, name text);
  CREATE TABLE comments (id serial PRIMARY KEY, note_id int NOT NULL REFERENCES notes, body text);`)
const app = t.role('app')
const init = await cli(['init', '--db', t.url, '--app-role', app])
assert.equal(init.code, 0, init.stderr)
const config = JSON.parse(await readFile(join(dir, 'tenantize.config.json'), 'utf8')) as { tenant: { default: { id: string } }; tables: Record<string, { path?: { columns: string[] } }> }

const rls = async (): Promise<Record<string, boolean>> =>
  Object.fromEntries((await t.sql<{ relname: string; relrowsecurity: boolean }>(`SELECT relname, relrowsecurity FROM pg_class WHERE relname IN ('notes', 'tags', 'comments') AND relkind = 'r' ORDER BY 1`)).map((r) => [r.relname, r.relrowsecurity]))

/** The ledger names of the frozen plan's steps (what apply runs), e.g. `0026_rls:public.notes`. */
async function stepNames(): Promise<{ name: string; id: string; phase: string }[]> {
  const [row] = await t.sql<{ plan: { steps: { id: string; phase: string }[] } }>('SELECT plan FROM tenantize.plans')
  return row!.plan.steps.map((s, i) => ({ name: `${String(i + 1).padStart(4, '0')}_${s.id}`, id: s.id, phase: s.phase }))
}

const HEAD = 'Write statements per table since its window started (the schema phase, or tenantize status --readiness --reset):'

test('plan with a config path column that does not exist: exit 2, the same TZ_CONFIG as apply, naming the column; nothing created', async () => {
  const bad = structuredClone(config)
  bad.tables['public.comments']!.path!.columns = ['nope_id']
  await writeFile(join(dir, 'bad.json'), JSON.stringify(bad, null, 2))
  const plan = await cli(['plan', '--db', t.url, '--config', 'bad.json'])
  assert.equal(plan.code, 2)
  assert.equal(plan.stdout, '')
  assert.equal(plan.stderr, [
    'TZ_CONFIG tenantize.config.json: 1 problem(s): the configuration names tables or columns the database does not have; nothing was changed',
    'TZ_CONFIG tables.public.comments.path.columns: names column nope_id of public.comments, which does not exist — fix: correct the column name (the columns of the foreign key), or move one of tables.public.comments.alternatives into path',
    '',
  ].join('\n'))
  const applied = await cli(['apply', '--db', t.url, '--config', 'bad.json', '--yes'])
  assert.equal(applied.code, 2)
  assert.equal(applied.stderr, plan.stderr, 'plan and apply refuse alike')
  assert.deepEqual(await t.sql(`SELECT to_regnamespace('tenantize') AS s`), [{ s: null }])
})

test('status --readiness before the schema phase: nothing counted yet, exit 1', async () => {
  const r = await cli(['status', '--db', t.url, '--readiness'])
  assert.equal(r.code, 1)
  assert.equal(r.stdout, 'No readiness counters: they start with the schema phase (tenantize apply --phase schema) and count every write statement on a tenant table from then on.\n')
})

test('after the schema phase (one line per step, the phase named): every table at 0, exit 0', async () => {
  const applied = await cli(['apply', '--db', t.url, '--phase', 'schema', '--yes'])
  assert.equal(applied.code, 0, applied.stderr)
  const steps = (await stepNames()).filter((s) => s.phase === 'schema')
  assert.equal(stable(applied.stdout), [
    `Running ${steps.length} step(s) up (↑ ${steps[0]!.name} … ${steps.at(-1)!.name})`,
    '▸ schema phase ↑',
    ...steps.map((s, i) => `[${i + 1}/${steps.length}] ↑ ${s.name} (<t>)`),
    `✔ schema phase: ${steps.length} step(s) ↑ in <t>`,
    `Done: ${steps.length} step(s) up in <t>.`,
    '',
  ].join('\n'))
  const r = await cli(['status', '--db', t.url, '--readiness'])
  assert.equal(r.code, 0, r.stdout)
  assert.equal(stable(r.stdout), [
    HEAD,
    '  table            without context  total  share  since                    state',
    '  public.comments  0                0      -      <time>  counting',
    '  public.notes     0                0      -      <time>  counting',
    '  public.tags      0                0      -      <time>  counting',
    '✔ no write without a tenant context on the 3 table(s) still to enforce: ready for tenantize apply --phase enforce',
    '',
  ].join('\n'))
})

test('an old app writing without a tenant context: status --readiness exits 1 naming the table; enforce refuses naming it and --ignore-readiness', async () => {
  // The old app: three statements without context (51 rows). The new app, on tags only: one with context.
  await t.sql(`INSERT INTO notes (body) VALUES ('a'); INSERT INTO notes (body) SELECT 'b' FROM generate_series(1, 50); UPDATE notes SET body = 'c' WHERE id = 1`)
  await t.sql(`BEGIN; SELECT set_config('tenantize.tenant_id', '${config.tenant.default.id}', true); INSERT INTO tags (name) VALUES ('x'); COMMIT`)
  const r = await cli(['status', '--db', t.url, '--readiness'])
  assert.equal(r.code, 1)
  assert.equal(stable(r.stdout), [
    HEAD,
    '  table            without context  total  share   since                    state',
    '  public.comments  0                0      -       <time>  counting',
    '  public.notes     3                3      100.0%  <time>  counting',
    '  public.tags      0                1      0.0%    <time>  counting',
    '✖ public.notes: 3 write statement(s) without a tenant context: each would fail once it is enforced — deploy the app with tenant context (withTenant) for it, then tenantize status --readiness --reset',
    '1 of 3 table(s) still to enforce are not ready: apply --phase enforce refuses (enforce the ready ones with --tables, or override with --ignore-readiness)',
    '',
  ].join('\n'))
  const json = await cli(['status', '--db', t.url, '--readiness', '--json'])
  assert.equal(json.code, 1)
  const report = JSON.parse(json.stdout) as { ready: boolean; reset: boolean; tables: { since: string }[] }
  assert.ok(report.tables.every((x) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(x.since)), 'since: ISO 8601 in UTC')
  assert.deepEqual({ ...report, tables: report.tables.map((x) => ({ ...x, since: '<time>' })) }, {
    ready: false,
    reset: false,
    tables: [
      { table: 'public.comments', withoutContext: 0, withContext: 0, total: 0, share: null, since: '<time>', enforced: false },
      { table: 'public.notes', withoutContext: 3, withContext: 0, total: 3, share: 100, since: '<time>', enforced: false },
      { table: 'public.tags', withoutContext: 0, withContext: 1, total: 1, share: 0, since: '<time>', enforced: false },
    ],
  })

  const refused = await cli(['apply', '--db', t.url, '--phase', 'enforce', '--yes'])
  assert.equal(refused.code, 2)
  assert.equal(refused.stderr, [
    'TZ_PREFLIGHT apply --phase enforce: 1 table(s) still get writes without a tenant context: each would fail once row-level security is on; nothing was changed',
    'TZ_PREFLIGHT public.notes: 3 write statement(s) without a tenant context, 0 with one, since the schema phase or the last reset — fix: deploy the app with tenant context (withTenant) for this table, reset the window (tenantize status --readiness --reset) and watch it stay at 0; or enforce other tables first (--tables), or pass --ignore-readiness to enforce anyway (those writes then fail)',
    '',
  ].join('\n'))
  assert.deepEqual(await rls(), { comments: false, notes: false, tags: false }, 'nothing was enforced')
  // --force skips only the pre-flight of long transactions and locks: enforce still refuses.
  const forced = await cli(['apply', '--db', t.url, '--phase', 'enforce', '--yes', '--force'])
  assert.equal(forced.code, 2)
  assert.equal(forced.stderr, refused.stderr)
})

test('--tables enforces only the canary; the other tables stay counting', async () => {
  const r = await cli(['apply', '--db', t.url, '--phase', 'enforce', '--tables', 'public.tags', '--yes'])
  assert.equal(r.code, 0, r.stderr)
  assert.deepEqual(await rls(), { comments: false, notes: false, tags: true })
  const all = await stepNames()
  const canary = all.filter((s) => s.phase === 'enforce' && (!/^(rls|view):/.test(s.id) || s.id === 'rls:public.tags'))
  assert.equal(stable(r.stdout), [
    `Running ${canary.length} step(s) up (↑ ${canary[0]!.name} … ${canary.at(-1)!.name})`,
    '▸ enforce phase ↑',
    ...canary.map((s, i) => `[${i + 1}/${canary.length}] ↑ ${s.name} (<t>)`),
    `✔ enforce phase: ${canary.length} step(s) ↑ in <t>`,
    `Done: ${canary.length} step(s) up in <t>.`,
    '',
  ].join('\n'))
  const status = await cli(['status', '--db', t.url, '--readiness'])
  assert.equal(status.code, 1, 'notes still gets writes without context')
  assert.match(stable(status.stdout), /\n {2}public\.tags {6}0 {16}1 {6}0\.0% {4}<time> {2}enforced\n/)
  const unknown = await cli(['apply', '--db', t.url, '--phase', 'enforce', '--tables', 'public.nope', '--yes'])
  assert.equal(unknown.code, 2)
  assert.match(unknown.stderr, /^TZ_USAGE --tables: public\.nope is not a table the plan enforces; nothing was changed — fix: name tables as schema\.table, from: /)
})

test('--ignore-readiness enforces anyway, after printing the tables it forces and their counts', async () => {
  const r = await cli(['apply', '--db', t.url, '--phase', 'enforce', '--tables', 'public.notes', '--ignore-readiness', '--yes'])
  assert.equal(r.code, 0, r.stderr)
  const step = (await stepNames()).find((s) => s.id === 'rls:public.notes')!.name
  assert.equal(stable(r.stdout), [
    '⚠ --ignore-readiness: enforcing 1 table(s) that still get writes without a tenant context; those writes fail from now on:',
    '  table         without context  total  since',
    '  public.notes  3                3      <time>',
    `Running 1 step(s) up (↑ ${step} … ${step})`,
    '▸ enforce phase ↑',
    `[1/1] ↑ ${step} (<t>)`,
    '✔ enforce phase: 1 step(s) ↑ in <t>',
    'Done: 1 step(s) up in <t>.',
    '',
  ].join('\n'))
  assert.deepEqual(await rls(), { comments: false, notes: true, tags: true })
  // Enforced tables no longer count against readiness: their context-less writes fail now.
  const status = await cli(['status', '--db', t.url, '--readiness'])
  assert.equal(status.code, 0, status.stdout)
  assert.match(stable(status.stdout), /\n {2}public\.notes {5}3 {16}3 {6}100\.0% {2}<time> {2}enforced\n/)
})

test('status --readiness --reset starts a new window; the last table is enforced without an override', async () => {
  const before = JSON.parse((await cli(['status', '--db', t.url, '--readiness', '--json'])).stdout) as { tables: { table: string; since: string }[] }
  const r = await cli(['status', '--db', t.url, '--readiness', '--reset'])
  assert.equal(r.code, 0, r.stdout)
  assert.equal(stable(r.stdout), [
    'Readiness window reset: every count starts again from 0.',
    HEAD,
    '  table            without context  total  share  since                    state',
    '  public.comments  0                0      -      <time>  counting',
    '  public.notes     0                0      -      <time>  enforced',
    '  public.tags      0                0      -      <time>  enforced',
    '✔ no write without a tenant context on the 1 table(s) still to enforce: ready for tenantize apply --phase enforce',
    '',
  ].join('\n'))
  const now = JSON.parse((await cli(['status', '--db', t.url, '--readiness', '--json'])).stdout) as { ready: boolean; tables: { table: string; since: string }[] }
  assert.equal(now.ready, true)
  for (const row of now.tables) assert.ok(row.since > before.tables.find((b) => b.table === row.table)!.since, `${row.table}: the window starts at the reset`)
  const rest = await cli(['apply', '--db', t.url, '--phase', 'enforce', '--yes'])
  assert.equal(rest.code, 0, rest.stderr)
  assert.deepEqual(await rls(), { comments: true, notes: true, tags: true })
  const done = await cli(['status', '--db', t.url, '--readiness'])
  assert.equal(done.code, 0)
  assert.match(done.stdout, /\n✔ every table is enforced\.\n$/)
})

test('usage: --tables with the schema phase, --reset without --readiness', async () => {
  const tables = await cli(['apply', '--db', t.url, '--phase', 'schema', '--tables', 'public.tags', '--yes'])
  assert.equal(tables.code, 2)
  assert.equal(tables.stderr, 'TZ_USAGE --tables: --tables chooses the tables to enforce: the schema phase always runs for every table — fix: use it with --phase enforce (or all), or leave it out\n')
  const reset = await cli(['status', '--db', t.url, '--reset'])
  assert.equal(reset.code, 2)
  assert.equal(reset.stderr, 'TZ_USAGE --reset: --reset starts a new readiness window — fix: use it with --readiness: tenantize status --readiness --reset\n')
})

test('--help documents the exit codes of status --readiness and that --ignore-readiness, not --force, overrides the refusal', async () => {
  const status = await cli(['status', '--help'])
  assert.match(status.stdout.replace(/\s+/g, ' '), /--readiness .*exit 0 when every table still to enforce is at 0, 1 otherwise \(or when nothing is counted yet\)/)
  const apply = await cli(['apply', '--help'])
  const flat = apply.stdout.replace(/\s+/g, ' ')
  assert.match(flat, /--tables <list> enforce only these tables, comma-separated schema\.table/)
  assert.match(flat, /--ignore-readiness enforce although tables still get writes without a tenant context/)
  assert.match(flat, /--force is not an override for it: --force only skips the pre-flight of long transactions and locks\./)
})
