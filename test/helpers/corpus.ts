/**
 * The corpus harness: a real public schema (test/fixtures/corpus/<name>/schema.sql) taken through the
 * whole conversion in the test's fresh database — load the schema, fill it with the catalog-driven
 * generator, init → plan → apply (schema phase while an old-style app keeps inserting, then enforce) →
 * verify → a second tenant's rows → isolation as the app role → rollback → schema and data as before.
 * Each phase is timed; one summary line per schema goes to stdout.
 */
import assert from 'node:assert/strict'
import { access, readFile } from 'node:fs/promises'
import { after, type TestContext } from 'node:test'
import pg from 'pg'
import { apply, conversionStatus, resetReadiness, rollback } from '../../src/apply/index.js'
import { initConfig } from '../../src/apply/init.js'
import { modelOptionsFrom } from '../../src/cli/commands/verify.js'
import { configAcceptances } from '../../src/verify/lints/accept.js'
import { DataCheckError, describeFinding } from '../../src/datacheck/findings.js'
import { introspect, type Catalog } from '../../src/catalog/index.js'
import { parseConfig, splitKey, type TenantizeConfig } from '../../src/plan/config.js'
import type { Plan } from '../../src/plan/steps.js'
import { qualifiedName, quoteIdent, quoteLiteral, roleName } from '../../src/sql/quote.js'
import { deleteTenant, importTenant, tenantModel } from '../../src/tenants/index.js'
import { exitCodeFor, verify } from '../../src/verify/index.js'
import type { VerifyReport } from '../../src/verify/types.js'
import { asRole, dataChecksums, schemaFingerprint } from './conversion.js'
import { CorpusData, fillSummary, type FillResult } from './corpus-data.js'
import type { TestDatabase } from './db.js'
import { fast, planFor } from './examples.js'

/**
 * What the harness's deletes start with: the marker an app puts before the deletes it means (Lemmy's trigger
 * r.require_uplete refuses a DELETE on its *_actions tables unless the statement starts with it).
 */
const APP_DELETE = '/**/ '

/** The second tenant's id, of the tenant id's type (30011 fits an int2, int4 or int8 key). */
const secondTenantFor = (idType: TenantizeConfig['tenant']['idType']): string => ({ uuid: 'c0000000-0000-4000-8000-00000000000b', bigint: '30011', text: 'corpus-second' })[idType]

const corpusFile = (name: string, file: string): URL => new URL(`../fixtures/corpus/${name}/${file}`, import.meta.url)

const exists = (url: URL): Promise<boolean> => access(url).then(() => true, () => false)

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(url)
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

/** A role unique to this database (roles are cluster-wide, test files run in parallel), dropped after the file. */
function appRoleFor(t: TestDatabase): string {
  const role = `${t.name}_app`
  after(async () => {
    await t.sql(`DROP OWNED BY ${quoteIdent(role)}`).catch(() => undefined)
    await withClient(t.adminUrl, (c) => c.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`)).catch(() => undefined)
  })
  return role
}

export interface CorpusOptions {
  /**
   * A known gap: this phase and the ones after it run as `todo` (they run and report, and do not fail the
   * suite); the phases before it must pass.
   */
  readonly todoFrom?: { readonly phase: string; readonly reason: string }
  /** Rows per table the generator writes (default 3). */
  readonly rows?: number
  /** Tables the old app writes to during the schema phase (default 3). */
  readonly writerTables?: number
  /**
   * A file of the schema's directory run right after schema.sql that drops tables (a cut-down schema for
   * npm test): the run fails if a table it keeps lost a foreign key, so the rest stays a real subset.
   */
  readonly cut?: string
  /**
   * Verify as `tenantize verify` runs next to the config (the classes, excluded tables, accepted risks it
   * names), not inferring the tenant model from the catalog: for a schema whose config excludes tables.
   */
  readonly verifyWithConfig?: boolean
  /**
   * A known gap of the tenant lifecycle on this schema (the FINDINGS entry): that phase runs as `todo` — it runs,
   * reports and cleans up, and does not fail the suite; the phases after it run as usual.
   */
  readonly lifecycleTodo?: string
}

/** What one schema's run measured, for the closing summary line. */
interface Summary {
  tables: number
  classes: Record<string, number>
  seconds: Record<string, number>
  probed: number
  tenantTables: number
  rollbackIdentical: boolean | null
  failedAt: string | null
  firstFailure: string | null
}

const tenantClass = (c: string): boolean => c === 'direct' || c === 'child' || c === 'root' || c === 'membership'

/**
 * The schema (and its cut) into `db`, filled by the generator (values from each table's seed), then the schema's data.sql;
 * checks that the cut keeps every foreign key of the tables it keeps.
 */
async function loadCorpus(db: TestDatabase, name: string, options: CorpusOptions, seedOf: (table: string) => number = () => 1): Promise<{ fill: FillResult; data: CorpusData }> {
  const sql = await readFile(corpusFile(name, 'schema.sql'), 'utf8')
  await withClient(db.url, (c) => c.query(sql))
  if (options.cut !== undefined) {
    const cut = await readFile(corpusFile(name, options.cut), 'utf8')
    const foreignKeys = `SELECT conrelid::regclass::text || ' ' || conname AS k FROM pg_catalog.pg_constraint WHERE contype = 'f' ORDER BY 1`
    const before = await db.sql<{ k: string }>(foreignKeys)
    await withClient(db.url, (c) => c.query(cut))
    const tablesLeft = new Set((await db.sql<{ t: string }>(`SELECT oid::regclass::text AS t FROM pg_catalog.pg_class WHERE relkind IN ('r', 'p')`)).map((r) => r.t))
    const after = new Set((await db.sql<{ k: string }>(foreignKeys)).map((r) => r.k))
    assert.deepEqual(before.map((r) => r.k).filter((k) => tablesLeft.has(k.slice(0, k.lastIndexOf(' '))) && !after.has(k)), [], `${options.cut} keeps every foreign key of the tables it keeps`)
  }
  return withClient(db.url, async (c) => {
    const catalog = await introspect(c)
    await c.query('BEGIN')
    const filled = await CorpusData.fill(c, catalog, { rows: options.rows ?? 3, seedOf })
    // data.sql: what the schema's app guarantees that no constraint declares (e.g. tenant ids that name a tenant).
    const dataFile = corpusFile(name, 'data.sql')
    if (await exists(dataFile)) await c.query(await readFile(dataFile, 'utf8'))
    await c.query('COMMIT')
    await c.query('ANALYZE')
    return { fill: filled.result, data: filled.data }
  })
}

/**
 * Run the corpus conversion of `name` as subtests of `t`. Each phase asserts what it promises; a phase
 * that fails stops the later ones (they would only repeat the failure).
 */
export async function corpusConversion(t: TestContext, db: TestDatabase, name: string, options: CorpusOptions = {}): Promise<void> {
  const corpusOptions = options
  const summary: Summary = { tables: 0, classes: {}, seconds: {}, probed: 0, tenantTables: 0, rollbackIdentical: null, failedAt: null, firstFailure: null }
  const failed = new Set<string>()
  const role = appRoleFor(db)
  let config: TenantizeConfig | undefined
  let data: CorpusData | undefined
  let fill: FillResult | undefined
  let tables: string[] = []
  let fingerprint = ''
  let startData: Record<string, string> = {}
  let plan: Plan | undefined
  let writers: { key: string; pk: readonly string[]; rows: Record<string, string | null>[] }[] = []
  let tenantTables: { key: string; column: string }[] = []
  let secondRows: Record<string, number> = {}
  let secondTenant = secondTenantFor('uuid')

  /**
   * Every row of `tenant` and its tenant row, in one transaction, as a person would by hand (the app's own delete
   * rules respected: APP_DELETE): children first; a row the tenant's own row references (its settings) goes after
   * it — a table whose delete fails on a foreign key is tried again once the others are gone.
   */
  const deleteRowsOf = async (tenant: string): Promise<void> => {
    const order = [...tenantTables.map((x) => x.key)].filter((k) => k !== config!.tenant.table)
    const fillOrder = fill!.order
    order.sort((a, b) => fillOrder.indexOf(b) - fillOrder.indexOf(a))
    const root = await withClient(db.url, async (c) => rootKeyOf(await introspect(c), config!.tenant.table))
    const deletes = [
      ...order.map((key) => ({ key, sql: `${APP_DELETE}DELETE FROM ${qualifiedName(splitKey(key).schema, splitKey(key).name)} WHERE ${quoteIdent(tenantTables.find((x) => x.key === key)!.column)}::text = $1` })),
      { key: config!.tenant.table, sql: `${APP_DELETE}DELETE FROM ${qualifiedName(root.schema, root.name)} WHERE ${quoteIdent(root.id)}::text = $1` },
    ]
    // One transaction: keys the conversion added are checked at commit (a tenant's row and its settings reference each other).
    await withClient(db.url, async (c) => {
      await c.query('BEGIN')
      for (let pass = 0; deletes.length > 0; pass++) {
        const failing: typeof deletes = []
        let last: unknown
        for (const d of deletes) {
          await c.query('SAVEPOINT corpus_delete')
          try {
            await c.query(d.sql, [tenant])
            await c.query('RELEASE SAVEPOINT corpus_delete')
          } catch (error) {
            // 23503 foreign_key_violation; PostgreSQL 18 reports an ON DELETE RESTRICT key as 23001 restrict_violation.
            if (!['23503', '23001'].includes((error as { code?: string }).code ?? '')) throw error
            await c.query('ROLLBACK TO SAVEPOINT corpus_delete')
            last = error
            failing.push(d)
          }
        }
        if (failing.length === deletes.length) throw last
        deletes.splice(0, deletes.length, ...failing)
      }
      await c.query('COMMIT')
    })
  }

  // A phase that changes the database and fails stops the later ones (they would only repeat the failure);
  // verify and the isolation check only look, so the phases after them still run.
  let todo: string | undefined
  const phase = async (title: string, fn: () => Promise<void>, options: { gate?: boolean; needs?: string; todo?: string } = {}): Promise<void> => {
    if (title === corpusOptions.todoFrom?.phase) todo = corpusOptions.todoFrom.reason
    await t.test(title, { todo: todo ?? options.todo }, async () => {
      if (summary.failedAt !== null) assert.fail(`not run: the phase "${summary.failedAt}" failed`)
      if (options.needs !== undefined && failed.has(options.needs)) assert.fail(`not run: the phase "${options.needs}" failed`)
      const started = performance.now()
      try {
        await fn()
      } catch (error) {
        failed.add(title)
        if (options.gate !== false) summary.failedAt = title
        if (summary.firstFailure === null) summary.firstFailure = title
        throw error
      } finally {
        summary.seconds[title] = (performance.now() - started) / 1000
      }
    })
  }

  try {
    await phase('load', async () => {
      ;({ fill, data } = await loadCorpus(db, name, options))
      assert.deepEqual(Object.entries(fill.counts).filter(([, n]) => n === 0).map(([k]) => k), [], `the generator fills every table: ${fillSummary(fill)}`)
      tables = fill.order.map((k) => qualifiedName(splitKey(k).schema, splitKey(k).name))
      summary.tables = tables.length
      fingerprint = await schemaFingerprint(db.url)
      startData = await dataChecksums(db.url, tables)
    })

    await phase('init', async () => {
      const committed = corpusFile(name, 'tenantize.config.json')
      const initFile = corpusFile(name, 'init.json')
      // init.json: the options a person passes to init (an existing tenant table and its column).
      // Its `tables`: what the person changed in the proposal, per table (merged over init's entry).
      const init = (await exists(initFile)) ? (JSON.parse(await readFile(initFile, 'utf8')) as { tenantTable?: string; tenantColumn?: string; tables?: Record<string, Record<string, unknown>>; verify?: Record<string, unknown> }) : {}
      // Otherwise init as `tenantize init` runs it: the library's initConfig reads the facts it needs from the data
      // (the default tenant, rows per tenant along reverse paths).
      const raw = (await exists(committed))
        ? (JSON.parse(await readFile(committed, 'utf8')) as Record<string, unknown>)
        : (await withClient(db.url, (c) => initConfig(c, { appRole: role, ...(init.tenantTable === undefined ? {} : { tenantTable: splitKey(init.tenantTable) }), ...(init.tenantColumn === undefined ? {} : { tenantColumn: init.tenantColumn }) }))).config
      const proposed = raw as { roles?: Record<string, unknown>; tables?: Record<string, Record<string, unknown>> }
      const tablesChosen = { ...proposed.tables }
      for (const [key, change] of Object.entries(init.tables ?? {})) {
        // A null in the change removes that field of the proposal (e.g. a child's path when it becomes direct).
        const was = tablesChosen[key]
        t.diagnostic(`init.json changes ${key}: init proposed ${was === undefined ? 'nothing' : `${String(was['class'])}${was['column'] === undefined ? '' : ` on ${String(was['column'])}`} (${String(was['reason'])})`}`)
        tablesChosen[key] = Object.fromEntries(Object.entries({ ...tablesChosen[key], ...change }).filter(([, v]) => v !== null))
      }
      // init.json's `verify`: the risks the person accepts after reading verify's report (verify.accept), as in the config.
      const withRole = { ...proposed, tables: tablesChosen, roles: { ...proposed.roles, app: role }, ...(init.verify === undefined ? {} : { verify: init.verify }) }
      config = parseConfig(withRole, `corpus/${name}/tenantize.config.json`)
      secondTenant = secondTenantFor(config.tenant.idType)
      for (const c of Object.values(config.tables)) summary.classes[c.class] = (summary.classes[c.class] ?? 0) + 1
      const classified = new Set(Object.keys(config.tables))
      const roots = config.tenant.create ? [] : [config.tenant.table]
      assert.deepEqual(fill!.order.filter((k) => !classified.has(k) && !roots.includes(k)), [], 'init classifies every table')
    })

    await phase('plan', async () => {
      plan = await planFor(db.url, config!)
      assert.ok(plan.steps.length > 0, 'the plan has steps')
      assert.deepEqual(plan.enforceBlockers, [], 'nothing blocks the enforce phase')
      for (const m of plan.manual) t.diagnostic(`manual step: ${m.object}: ${m.reason}`)
    })

    await phase('apply schema phase while the old app writes', async () => {
      const candidates = Object.entries(config!.tables)
        .filter(([, c]) => c.class === 'child' || c.class === 'direct')
        .sort(([ka, a], [kb, b]) => Number(b.class === 'child') - Number(a.class === 'child') || ka.localeCompare(kb))
      const picked: { key: string; pk: readonly string[] }[] = []
      // An app of the old kind that already keeps a tenant column (an existing tenant table) writes its tenant's id there.
      const oldAppFixed = (key: string): Record<string, string> => (config!.tenant.create ? {} : { [config!.tables[key]?.column ?? config!.tenant.column]: config!.tenant.default.id })
      await withClient(db.url, async (c) => {
        const catalog = await introspect(c)
        // Tables whose rows the writer can make for every index first: a key the database assigns (a key of foreign
        // keys to few parent rows repeats) and no CHECK (one index's row passing it says nothing of the next one's).
        const steady = (key: string): boolean => {
          const table = catalog.table(splitKey(key).schema, splitKey(key).name)
          const pk = table?.constraints.find((k) => k.type === 'primary key')?.columns ?? []
          return pk.length > 0 && pk.every((c) => table?.columns.some((x) => x.name === c && (x.default !== null || x.identity !== null))) && !table?.constraints.some((k) => k.type === 'check')
        }
        // Tables no trigger of the app's fires on after an insert first: such a trigger may change other rows (Lemmy's
        // comment insert moves its post's newest_comment_time_at), which deleting the old app's rows after the
        // rollback does not undo, so the data would not be as before for a reason that is not the conversion's.
        const quiet = (key: string): boolean => !(catalog.table(splitKey(key).schema, splitKey(key).name)?.triggers ?? []).some((x) => x.timing === 'after' && x.events.includes('insert'))
        candidates.sort(([a], [b]) => Number(quiet(b)) - Number(quiet(a)) || Number(steady(b)) - Number(steady(a)))
        for (const [key] of candidates) {
          if (picked.length >= (options.writerTables ?? 3)) break
          const table = catalog.table(splitKey(key).schema, splitKey(key).name)
          const pk = table?.constraints.find((k) => k.type === 'primary key')?.columns
          if (pk === undefined || table === undefined || table.kind === 'partitioned') continue
          const { text, values } = data!.statementFor(key, 100, oldAppFixed(key))
          await c.query('BEGIN')
          const ok = await c.query(text, values).then(() => true, () => false)
          await c.query('ROLLBACK')
          if (ok) picked.push({ key, pk })
        }
      })
      assert.ok(picked.length > 0, 'the old app has a table it can write to')
      writers = picked.map((p) => ({ ...p, rows: [] }))
      t.diagnostic(`the old app writes to ${picked.map((p) => p.key).join(', ')}`)
      const writer = recordingWriter(db.url, (i) => {
        const w = writers[i % writers.length]!
        const statement = data!.statementFor(w.key, 1000 + i, oldAppFixed(w.key))
        return { table: i % writers.length, text: statement.text.replace(/ RETURNING \*$/, ` RETURNING ${w.pk.map((c) => `${quoteIdent(c)}::text`).join(', ')}`), values: statement.values }
      })
      let failed: unknown
      try {
        await apply({ databaseUrl: db.url, config: config!, phase: 'schema', timeouts: fast })
      } catch (error) {
        failed = error
      }
      const written = await writer.stop()
      // The data check's refusal lists its findings: name them in the failure, not only their number.
      if (failed instanceof DataCheckError) assert.fail(`${failed.message}:\n  ${failed.findings.map((f) => `${f.table ?? 'database'}: ${describeFinding(f)}`).join('\n  ')}`)
      if (failed !== undefined) throw failed
      assert.ok(written.length > 0, 'the old app kept writing during the schema phase')
      for (const [k, w] of writers.entries()) w.rows = written.filter((r) => r.table === k).map((r) => r.row)
      const wrong: string[] = []
      for (const w of writers) {
        const { schema, name: table } = splitKey(w.key)
        const found = new Map<string, (string | null)[]>()
        for (const row of await db.sql<{ k: string; tenant: string | null }>(`SELECT ${keyOf(w.pk)} AS k, ${quoteIdent(config!.tenant.column)}::text AS tenant FROM ${qualifiedName(schema, table)} WHERE ${writtenBy(w.pk)}`, w.pk.map((c) => w.rows.map((r) => r[c])))) {
          found.set(sameKey(row.k), [...(found.get(sameKey(row.k)) ?? []), row.tenant])
        }
        for (const r of w.rows) {
          const tenants = found.get(rowKey(w.pk, r)) ?? []
          if (tenants.length !== 1 || tenants[0] !== config!.tenant.default.id) wrong.push(`${w.key} ${JSON.stringify(r)}: ${JSON.stringify(tenants)}`)
        }
      }
      assert.deepEqual(wrong, [], 'every write of the old app is there and belongs to the default tenant')
    })

    await phase('apply enforce phase', async () => {
      // The app that sets the tenant context is deployed: a new readiness window, no context-less writes since.
      await resetReadiness(db.url)
      await apply({ databaseUrl: db.url, config: config!, phase: 'enforce', timeouts: fast })
      const status = await conversionStatus(db.url)
      tenantTables = status.tables.filter((s) => tenantClass(s.class) && s.tenantColumn !== null).map((s) => ({ key: s.table, column: s.tenantColumn! }))
      const expected = Object.entries(config!.tables).filter(([, c]) => tenantClass(c.class)).map(([k]) => k)
      if (config!.tenant.create) expected.push(config!.tenant.table)
      if (config!.tenant.membership !== null) expected.push(config!.tenant.membership.table)
      assert.deepEqual(tenantTables.map((x) => x.key).sort(), expected.sort(), 'tenantize.status lists every tenant table')
      summary.tenantTables = tenantTables.length
      // What the plan leaves to a person (plan.manual), done as that person would: the schema's manual.sql.
      const manual = corpusFile(name, 'manual.sql')
      if (await exists(manual)) await runWithRole(db.url, role, await readFile(manual, 'utf8'))
    })

    await phase('verify: exit 0, every tenant table probed', async () => {
      const report = await verify({ databaseUrl: db.url, ...(options.verifyWithConfig === true ? modelOptionsFrom(config!) : { accept: configAcceptances(config!.verify.accept) }), appRole: role, tenantColumn: config!.tenant.column, setting: config!.tenant.setting })
      const partitions = await withClient(db.url, async (c) => new Map((await introspect(c)).tables.map((x) => [`${x.schema}.${x.name}`, x.partitions.map((p) => `${p.schema}.${p.name}`)])))
      const probed = probedTables(report, partitions)
      summary.probed = tenantTables.filter((x) => probed.has(x.key)).length
      // Warnings do not fail the run; listed, so a false alarm on a real schema is seen.
      for (const f of report.findings.filter((x) => x.severity === 'warn')) t.diagnostic(`verify warning: ${f.rule} ${f.object}: ${f.message}`)
      assert.deepEqual(
        { errors: report.findings.filter((f) => f.severity === 'error').map((f) => `${f.rule} ${f.object}: ${f.message}`), unprobed: tenantTables.filter((x) => !probed.has(x.key)).map((x) => `${x.key}: ${unprobedReason(report, x.key)}`), exitCode: exitCodeFor(report, 'error') },
        { errors: [], unprobed: [], exitCode: 0 },
        'verify finds no error and probes every tenant table',
      )
    }, { gate: false })

    await phase('a second tenant writes its rows as the app role', async () => {
      const root = await withClient(db.url, async (c) => rootKeyOf(await introspect(c), config!.tenant.table))
      const rootSql = qualifiedName(root.schema, root.name)
      if (config!.tenant.create) await db.sql(`INSERT INTO ${rootSql} (id, slug, name) VALUES ($1, 'corpus-second', 'Second tenant')`, [secondTenant])
      // second-tenant.sql: how the app creates a tenant whose row needs rows of its own first (its settings),
      // the new id in the setting corpus.second_tenant.
      else if (await exists(corpusFile(name, 'second-tenant.sql'))) {
        const sql = await readFile(corpusFile(name, 'second-tenant.sql'), 'utf8')
        await withClient(db.url, async (c) => {
          await c.query('BEGIN')
          await c.query(`SELECT set_config('corpus.second_tenant', $1, true)`, [secondTenant])
          await c.query(sql)
          await c.query('COMMIT')
        })
      }
      // An existing tenant table: the second tenant is a copy of the default tenant's row under a new id.
      else await db.sql(`INSERT INTO ${rootSql} SELECT (jsonb_populate_record(NULL::${rootSql}, to_jsonb(r) || jsonb_build_object(${quoteLiteral(root.id)}, $1::text))).* FROM ${rootSql} r WHERE ${quoteIdent(root.id)}::text = $2`, [secondTenant, config!.tenant.default.id])
      const keys = tenantTables.map((x) => x.key).filter((k) => k !== config!.tenant.table)
      const result = await withClient(db.url, async (c) => {
        const catalog = await introspect(c)
        await c.query('BEGIN')
        await c.query(`SET LOCAL ROLE ${roleName(role)}`)
        await c.query('SELECT set_config($1, $2, true)', [config!.tenant.setting, secondTenant])
        const { result } = await CorpusData.fill(c, catalog, { tables: keys, rows: 2, fixed: { [config!.tenant.column]: secondTenant } })
        await c.query('COMMIT')
        return result
      })
      secondRows = result.counts
      assert.deepEqual(Object.entries(result.counts).filter(([, n]) => n === 0).map(([k]) => `${k}: ${result.problems[k] ?? ''}`), [], 'the app role writes rows of the second tenant into every tenant table')
    }, { gate: false })

    await phase('isolation as the app role', async () => {
      const leaks: string[] = []
      for (const { key, column } of tenantTables) {
        const target = qualifiedName(splitKey(key).schema, splitKey(key).name)
        const [admin] = await db.sql<{ a: number; b: number }>(`SELECT count(*) FILTER (WHERE ${quoteIdent(column)}::text = $1)::int AS a, count(*) FILTER (WHERE ${quoteIdent(column)}::text = $2)::int AS b FROM ${target}`, [config!.tenant.default.id, secondTenant])
        const seen = (tenant: string | null): Promise<{ n: number; foreign: number }> => seenAs(db.url, role, config!, tenant, target, column)
        const a = await seen(config!.tenant.default.id)
        const b = await seen(secondTenant)
        const none = await seen(null)
        if (a.foreign !== 0 || a.n !== admin!.a) leaks.push(`${key}: tenant A sees ${a.n} rows (${a.foreign} not its own), owns ${admin!.a}`)
        if (b.foreign !== 0 || b.n !== admin!.b) leaks.push(`${key}: tenant B sees ${b.n} rows (${b.foreign} not its own), owns ${admin!.b}`)
        if (none.n !== 0) leaks.push(`${key}: no context sees ${none.n} rows`)
        if (key !== config!.tenant.table && admin!.b < (secondRows[key] ?? 0)) leaks.push(`${key}: ${secondRows[key]} rows written for B, ${admin!.b} owned by B`)
      }
      assert.deepEqual(leaks, [], 'each tenant sees exactly its rows; no context sees none')
    }, { gate: false, needs: 'a second tenant writes its rows as the app role' })

    // The tenant lifecycle on a real schema, where init created the tenant table (a tenant of the schema's own has
    // rows of its own that a copy cannot bring): a second copy of the database, loaded and filled like this one (so
    // its keys collide), imported as a new tenant — every row, every reference to a row of its own — seen only by
    // itself, then deleted, leaving every other row as it was.
    if (config?.tenant.create === true) {
      await phase('tenant lifecycle: a second copy of the database imported as a new tenant, isolated, then deleted', async () => {
        // Another seed for the tenant tables: keys the app chooses (text tokens) differ as in a real second database,
        // serial keys collide anyway; the shared tables (global, excluded) hold the same rows as here, as two copies of
        // one app share their lookup data.
        const source = await db.another('src')
        const tenantKeys = new Set(Object.entries(config!.tables).filter(([, c]) => tenantClass(c.class)).map(([k]) => k))
        await loadCorpus(source, name, options, (table) => (tenantKeys.has(table) ? 2 : 1))
        const root = await withClient(db.url, async (c) => rootKeyOf(await introspect(c), config!.tenant.table))
        const everything = [...tables, qualifiedName(root.schema, root.name)]
        const before = await dataChecksums(db.url, everything)
        const lifecycle = { databaseUrl: db.url, config: config!, batchPauseMs: 0, timeouts: fast }
        let deleted: Awaited<ReturnType<typeof deleteTenant>> | undefined
        try {
          const imported = await importTenant({ ...lifecycle, from: source.url, slug: 'corpus-import', name: 'Corpus import' }).catch((error: unknown) => {
            // Keys the app chooses (no sequence, no uuid default) that collide cannot be given new values: the import
            // refuses, naming the column and the fix, and (checked below) leaves every other row as it was.
            const e = error as { code?: string; object?: string; message?: string }
            if (e.code !== 'TZ_TENANT' || !/collide with rows already in the target, and .* has no sequence or uuid default/.test(e.message ?? '')) throw error
            t.diagnostic(`tenant lifecycle: the import refuses: ${e.object ?? ''}: ${e.message ?? ''}`)
            return undefined
          })
          if (imported !== undefined) {
            await checkImported(db, source, config!, role, tenantTables, new Set(fill!.order), imported.tenant!.id)
            deleted = await deleteTenant({ ...lifecycle, tenant: 'corpus-import' })
            t.diagnostic(`tenant lifecycle: ${imported.tables.reduce((a, x) => a + x.rows, 0)} rows imported into ${imported.tables.length} tables (${imported.tables.reduce((a, x) => a + x.remapped, 0)} keys remapped), ${deleted.deleted} deleted`)
          }
        } finally {
          // A failed import or check leaves the tenant: removed, so the rollback phase still tells its own story.
          if (deleted === undefined) {
            await deleteTenant({ ...lifecycle, tenant: 'corpus-import' }).catch(async (error: unknown) => {
              // No tenant: the import refused before creating it. Else its rows go by hand, so the rollback phase still runs.
              if ((error as { code?: string }).code === 'TZ_TENANT' && /no tenant/.test((error as Error).message)) return
              t.diagnostic(`tenant lifecycle: deleting the imported tenant failed too: ${(error as Error).message}; deleting its rows by hand`)
              const [row] = await db.sql<{ id: string }>(`SELECT ${quoteIdent(root.id)}::text AS id FROM ${qualifiedName(root.schema, root.name)} WHERE slug = 'corpus-import'`)
              if (row !== undefined) await deleteRowsOf(row.id)
            })
          }
        }
        assert.deepEqual(await dataChecksums(db.url, everything), before, 'after the delete every other row is as it was')
      }, { gate: false, ...(options.lifecycleTodo === undefined ? {} : { todo: options.lifecycleTodo }) })
    }

    await phase('rollback: schema and data as before', async () => {
      await deleteRowsOf(secondTenant)
      const manualDown = corpusFile(name, 'manual.down.sql')
      if (await exists(manualDown)) await runWithRole(db.url, role, await readFile(manualDown, 'utf8'))
      await rollback({ databaseUrl: db.url, config: config!, phase: 'all', timeouts: fast })
      for (const w of writers) {
        const { schema, name: table } = splitKey(w.key)
        const deleted = (await db.sql<{ k: string }>(`${APP_DELETE}DELETE FROM ${qualifiedName(schema, table)} WHERE ${writtenBy(w.pk)} RETURNING ${keyOf(w.pk)} AS k`, w.pk.map((c) => w.rows.map((r) => r[c])))).map((d) => sameKey(d.k))
        const gone = new Set(deleted)
        const missing = w.rows.filter((r) => !gone.has(rowKey(w.pk, r)))
        assert.deepEqual(missing, [], `the old app's rows of ${w.key} are still there after rollback`)
        assert.equal(deleted.length, w.rows.length, `the old app's rows of ${w.key}, each once`)
      }
      const sameSchema = (await schemaFingerprint(db.url)) === fingerprint
      const sameData = JSON.stringify(await dataChecksums(db.url, tables)) === JSON.stringify(startData)
      summary.rollbackIdentical = sameSchema && sameData
      assert.equal(await schemaFingerprint(db.url), fingerprint, 'schema identical to the start')
      assert.deepEqual(await dataChecksums(db.url, tables), startData, 'every row as it was')
    })
  } finally {
    const s = summary.seconds
    const applySeconds = (s['apply schema phase while the old app writes'] ?? 0) + (s['apply enforce phase'] ?? 0)
    const classes = Object.entries(summary.classes).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k} ${v}`).join(', ')
    const line = `corpus ${name}${options.cut === undefined ? '' : ` (${options.cut})`}: ${summary.tables} tables; classes ${classes || '-'}; apply ${applySeconds.toFixed(1)} s; probed ${summary.probed}/${summary.tenantTables}; rollback identical ${summary.rollbackIdentical === null ? '-' : summary.rollbackIdentical ? 'yes' : 'NO'}${summary.firstFailure === null ? '' : `; FAILED at ${summary.firstFailure}`}`
    console.log(line)
    t.diagnostic(line)
  }
}

/** What the app role sees of `table` in `tenant`'s context (none: null): its rows, and how many are not the tenant's. */
async function seenAs(url: string, role: string, config: TenantizeConfig, tenant: string | null, table: string, column: string): Promise<{ n: number; foreign: number }> {
  return asRole(url, role, tenant, async (c) => {
    if (config.tenant.setting !== 'tenantize.tenant_id' && tenant !== null) await c.query('SELECT set_config($1, $2, true)', [config.tenant.setting, tenant])
    return (await c.query<{ n: number; foreign: number }>(`SELECT count(*)::int AS n, count(*) FILTER (WHERE ${quoteIdent(column)}::text IS DISTINCT FROM $1)::int AS foreign FROM ${table}`, [tenant])).rows[0]!
  })
}

/**
 * An imported tenant: every table (of the source's, not the tenant or membership table init created) has the
 * source's row count; as the app role the tenant sees exactly its rows; every reference between tenant tables
 * names a row of the same tenant (a key the import did not map would name another tenant's row).
 */
async function checkImported(db: TestDatabase, source: TestDatabase, config: TenantizeConfig, role: string, tenantTables: readonly { key: string; column: string }[], original: ReadonlySet<string>, tenant: string): Promise<void> {
  const problems: string[] = []
  for (const { key, column } of tenantTables) {
    if (key === config.tenant.table || !original.has(key)) continue
    const sql = qualifiedName(splitKey(key).schema, splitKey(key).name)
    const [own] = await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql} WHERE ${quoteIdent(column)}::text = $1`, [tenant])
    const [expected] = await source.sql<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql}`)
    if (own!.n !== expected!.n) problems.push(`${key}: ${own!.n} rows imported, the source has ${expected!.n}`)
    const seen = await seenAs(db.url, role, config, tenant, sql, column)
    if (seen.n !== own!.n || seen.foreign !== 0) problems.push(`${key}: the new tenant sees ${seen.n} rows (${seen.foreign} not its own), owns ${own!.n}`)
  }
  const model = await withClient(db.url, async (c) => tenantModel(await introspect(c), config))
  for (const e of model.edges) {
    const from = model.table(e.from)!
    const to = model.table(e.to)!
    if (to.role === 'root' || from.role === 'root') continue
    const refs = e.fk.columns.filter((c) => c !== from.column)
    if (refs.length === 0) continue
    const match = e.fk.columns.map((c, i) => `p.${quoteIdent(e.fk.references.columns[i]!)} = f.${quoteIdent(c)}`).join(' AND ')
    const [dangling] = await db.sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${from.sql} AS f WHERE f.${quoteIdent(from.column)}::text = $1 AND ${refs.map((c) => `f.${quoteIdent(c)} IS NOT NULL`).join(' AND ')}
         AND NOT EXISTS (SELECT 1 FROM ${to.sql} AS p WHERE p.${quoteIdent(to.column)}::text = $1 AND ${match})`,
      [tenant],
    )
    if (dangling!.n > 0) problems.push(`${e.from} ${e.fk.name}: ${dangling!.n} imported row(s) reference no ${e.to} row of the new tenant`)
  }
  assert.deepEqual(problems, [], 'the new tenant has every row of the source, references only its own rows, and sees only them')
}

/**
 * The old app's rows by their primary key, all at once (one statement per table: a statement per row scanned the
 * table each time, as `key::text = $1` uses no index — minutes on a loaded machine). `$1…$n` are text arrays,
 * one per key column; `keyOf` gives a row's key as text, `rowKey` the same for a written row.
 */
const writtenBy = (pk: readonly string[]): string => `(${pk.map((c) => `${quoteIdent(c)}::text`).join(', ')}) IN (SELECT * FROM unnest(${pk.map((_, i) => `$${i + 1}::text[]`).join(', ')}))`
const keyOf = (pk: readonly string[]): string => `pg_catalog.json_build_array(${pk.map((c) => `${quoteIdent(c)}::text`).join(', ')})::text`
const rowKey = (pk: readonly string[], r: Record<string, string | null>): string => JSON.stringify(pk.map((c) => r[c]))
/** A key `keyOf` gave, as `rowKey` spells it. */
const sameKey = (k: string): string => JSON.stringify(JSON.parse(k))

/** Run a fixture's SQL file as the admin, the app role's name in the setting corpus.app_role (for its GRANTs). */
async function runWithRole(url: string, role: string, sql: string): Promise<void> {
  await withClient(url, async (c) => {
    await c.query(`SELECT set_config('corpus.app_role', $1, false)`, [role])
    await c.query(sql)
  })
}

/** The tenant table and its id column (its single-column primary key; `id` for a table init creates). */
function rootKeyOf(catalog: Catalog, key: string): { schema: string; name: string; id: string } {
  const { schema, name } = splitKey(key)
  const pk = catalog.table(schema, name)?.constraints.find((c) => c.type === 'primary key')?.columns
  return { schema, name, id: pk?.length === 1 ? pk[0]! : 'id' }
}

/**
 * An app of the old kind (no tenant column, no context) inserting until stopped, as fast as it can;
 * any failed insert fails the run. Returns the key of every row it wrote.
 */
function recordingWriter(url: string, statement: (i: number) => { table: number; text: string; values: unknown[] }): { stop(): Promise<{ table: number; row: Record<string, string | null> }[]> } {
  let running = true
  const written: { table: number; row: Record<string, string | null> }[] = []
  const done = withClient(url, async (c) => {
    for (let i = 0; running; i++) {
      const { table, text, values } = statement(i)
      const { rows } = await c.query<Record<string, string | null>>(text, values)
      written.push({ table, row: rows[0]! })
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
  })
  return {
    async stop() {
      running = false
      await done
      return written
    },
  }
}

/**
 * Tables whose probe rows were created and whose read-other check passed. A partitioned table's probe
 * rows live in its partitions: one of them seeded is enough.
 */
function probedTables(report: VerifyReport, partitions: ReadonlyMap<string, readonly string[]>): Set<string> {
  const out = new Set<string>()
  const seededOk = new Set((report.probe?.seeded ?? []).filter((s) => s.error === null && s.rows > 0).map((s) => s.table))
  const seeded = (table: string): boolean => seededOk.has(table) || (partitions.get(table) ?? []).some(seeded)
  for (const c of report.probe?.checks ?? []) if (c.check === 'read-other' && c.status === 'pass' && seeded(c.table)) out.add(c.table)
  return out
}

function unprobedReason(report: VerifyReport, key: string): string {
  if (report.probe === null) return 'the probe did not run'
  const seeded = report.probe.seeded.find((s) => s.table === key)
  if (seeded === undefined) return 'not in the probe'
  if (seeded.error !== null) return `not seeded: ${seeded.error}`
  const c = report.probe.checks.find((x) => x.table === key && x.check === 'read-other')
  return c === undefined ? 'no read-other check' : `read-other ${c.status}: ${c.detail}`
}
