import type { ForeignKeyConstraint, Table, View } from '../../catalog/types.js'
import { identList, quoteIdent } from '../../sql/quote.js'
import type { ModelTable, TenantModel } from '../lints/model.js'
import { scopedTwin } from '../lints/rules/integrity.js'
import type { ProbeCheck, ProbeStatus, UnprobedTable } from '../types.js'
import { copy } from './copy.js'
import { descendants } from './partitions.js'
import { insertSql, tableSql, type RowValues, type SeededRow, type Seeder } from './seed.js'
import { isProbeBug, settingSql, type ProbeSession, type StepResult } from './session.js'
import { copyText } from './values.js'

/** Garbage context values: each must match no row (or raise an error). */
export const GARBAGE_CONTEXTS: readonly string[] = Object.freeze(['%', '*', ' ', 'not-a-tenant'])

const display = (t: { schema: string; name: string }): string => `${t.schema}.${t.name}`
const n = (v: unknown): number => Number(v)

/** `(t.tableoid = $i AND t.ctid = $j) OR …` for the given rows, appending to `params`. */
function rowsPredicate(rows: readonly SeededRow[], params: unknown[], alias = ''): string {
  if (rows.length === 0) return 'false'
  const a = alias === '' ? '' : `${alias}.`
  return `(${rows.map((r) => {
    params.push(r.tableOid, r.ctid)
    return `(${a}tableoid = $${params.length - 1}::oid AND ${a}ctid = $${params.length}::tid)`
  }).join(' OR ')})`
}

/** `unexercised`: the check could not exercise what it checks (why); the table counts as not probed. */
type Outcome = { status: ProbeStatus; detail: string; sqlstate?: string | null; unexercised?: string }
type Refusal = Extract<StepResult, { ok: false }>
type Privilege = 'INSERT' | 'UPDATE' | 'DELETE'
type Privileges = Privilege | readonly Privilege[]

const pass = (detail: string, sqlstate: string | null = null): Outcome => ({ status: 'pass', detail, sqlstate })
const fail = (detail: string): Outcome => ({ status: 'fail', detail })
const skip = (detail: string): Outcome => ({ status: 'skip', detail })

/** A write refused by something that says nothing about isolation: not exercised, an error with its SQLSTATE. */
function notExercised(reason: string, sqlstate: string | null): Outcome {
  return { status: 'error', detail: `not exercised: ${reason}`, sqlstate, unexercised: reason }
}

/** A read of the app role that should have shown nothing: refused (or a probe bug) is not a leak. */
function blocked(r: StepResult, what: string): Outcome | null {
  if (r.ok) return null
  if (isProbeBug(r)) return { status: 'error', detail: `${what}: the probe's statement failed (${r.code}: ${r.message})`, sqlstate: r.code }
  return pass(`${what} was refused (${r.code}: ${r.message})`, r.code)
}

/** A writable, plain column to `SET c = c` (keeps the row as it was, but makes a new row version). */
function touchColumn(t: Table, prefer: string | null): string | null {
  const writable = t.columns.filter((c) => c.generated === null && c.identity !== 'always')
  if (prefer !== null && writable.some((c) => c.name === prefer)) return prefer
  return writable[0]?.name ?? null
}

/** ` OVERRIDING SYSTEM VALUE` when `cols` name a GENERATED ALWAYS identity column (an INSERT is refused 428C9 without it). */
function overriding(t: Table, cols: readonly string[]): string {
  return cols.some((c) => t.columns.find((x) => x.name === c)?.identity === 'always') ? ' OVERRIDING SYSTEM VALUE' : ''
}

/** A foreign key from `t` to another tenant table, preferring the tenant-scoped one. */
function tenantForeignKey(model: TenantModel, t: Table): ForeignKeyConstraint | undefined {
  const fks = t.constraints.filter((c): c is ForeignKeyConstraint => c.type === 'foreign key' && c.references.table.oid !== t.oid && model.isTenantTable(c.references.table.oid))
  return fks.find((c) => c.references.table.oid !== model.root?.oid) ?? fks[0]
}

/** Primary key, else a unique constraint whose columns are all NOT NULL: what ON CONFLICT can name. */
function arbiter(t: Table): readonly string[] | null {
  const key = t.constraints.find((c) => c.type === 'primary key') ?? t.constraints.find((c) => c.type === 'unique' && c.columns.every((x) => !(t.columns.find((col) => col.name === x)?.nullable ?? true)))
  return key === undefined ? null : key.columns
}

export class TableChecks {
  /** Tables whose write checks were refused by something other than isolation (so their isolation is unproven), and why. */
  readonly notExercised: UnprobedTable[] = []

  constructor(
    private readonly s: ProbeSession,
    private readonly seeder: Seeder,
    private readonly model: TenantModel,
  ) {}

  private get A(): string {
    return this.seeder.tenants.A
  }

  private get B(): string {
    return this.seeder.tenants.B
  }

  /** Run one check in a rolled-back savepoint and turn its outcome into a result. */
  private async run(t: { schema: string; name: string }, check: string, fn: () => Promise<Outcome>): Promise<ProbeCheck> {
    try {
      const o = await this.s.isolated(fn)
      if (o.unexercised !== undefined) this.notExercised.push({ table: display(t), reason: `${check} not exercised: ${o.unexercised}` })
      return { table: display(t), check, status: o.status, detail: o.detail, sqlstate: o.sqlstate ?? null }
    } catch (error) {
      const e = error as { code?: string; message?: string }
      return { table: display(t), check, status: 'error', detail: `the probe failed: ${e.message ?? String(error)}`, sqlstate: e.code ?? null }
    }
  }

  /** count(*) of `t` as the app role with the current context; a refusal counts as 0 rows. */
  private async count(t: Table, where = 'true', params: unknown[] = []): Promise<{ rows: number; error: StepResult | null }> {
    const r = await this.s.step(`SELECT count(*) AS n FROM ${tableSql(t)} t WHERE ${where}`, params)
    return r.ok ? { rows: n(r.rows[0]?.['n']), error: null } : { rows: 0, error: r }
  }

  /** Whether tenant B's seeded rows of `t` are all still there, unchanged (checked as the admin). */
  private async intact(t: Table): Promise<boolean> {
    const B = this.seeder.rowsOf(t, 'B')
    await this.s.asAdmin()
    const params: unknown[] = []
    const r = await this.s.exec(`SELECT count(*) AS n FROM ${tableSql(t)} t WHERE ${rowsPredicate(B, params, 't')}`, params)
    return n(r.rows[0]?.['n']) === B.length
  }

  /** Fresh values for a row of tenant B (or, for the root, of a new tenant) that the table itself accepts. */
  private async otherRow(m: ModelTable): Promise<RowValues | string> {
    return this.acceptedRow(m.table, m.class === 'root' ? 'new' : 'B')
  }

  /**
   * Values the table accepts from the admin (checked in a savepoint that is rolled back), so that a refusal
   * of the app role's insert is about isolation, not a unique key or a check constraint. Tries again with
   * fresh values for defaulted columns, then with new parent rows, when the values collide with a row.
   */
  private async acceptedRow(t: Table, side: 'A' | 'B' | 'new'): Promise<RowValues | string> {
    let last = ''
    // The row's own tenant as context, for defaults and triggers that need one (undone with the check).
    if (side !== 'new') await this.s.exec('SELECT pg_catalog.set_config($1, $2, true)', [this.s.setting, this.seeder.tenants[side]])
    const tries = [{}, { fillDefaults: true }, ...Array.from({ length: 6 }, () => ({ fillDefaults: true, freshParents: true }))]
    for (const options of tries) {
      const values = await this.seeder.values(t, side, options)
      if (typeof values === 'string') return values
      const { text, params } = insertSql(t, values, false)
      await this.s.exec('SAVEPOINT tz_probe_try')
      try {
        await this.s.exec(text, params)
        return values
      } catch (error) {
        last = (error as Error).message
        // Only collisions and check constraints are worth another try with fresh values.
        if (!['23505', '23514'].includes((error as { code?: string }).code ?? '')) break
      } finally {
        await this.s.exec('ROLLBACK TO SAVEPOINT tz_probe_try')
        await this.s.exec('RELEASE SAVEPOINT tz_probe_try')
      }
    }
    return `the table refuses even the admin's row (${last})`
  }

  /** Whether rows of this table belong to a tenant the probe can name (a tenant column or a foreign key to one). */
  private tenantBound(m: ModelTable): boolean {
    return m.tenantColumn !== null || tenantForeignKey(this.model, m.table) !== undefined
  }

  /** Whether the app role (the current role) may `privilege` on `t` at all, on the table or on a column. */
  private async may(t: Table, privilege: Privilege): Promise<boolean> {
    // Column privileges exist for INSERT and UPDATE, not DELETE.
    const column = privilege === 'DELETE' ? '' : ' OR pg_catalog.has_any_column_privilege($1::oid, $2)'
    const r = await this.s.exec(`SELECT pg_catalog.has_table_privilege($1::oid, $2)${column} AS may`, [t.oid, privilege])
    return r.rows[0]?.['may'] === true
  }

  /**
   * Whether a refusal of the app role's write into `m` is one that means isolation: row-level security
   * (42501 "new row violates row-level security policy", 0A000 "COPY FROM not supported with row-level
   * security"), a foreign key of the table (23503: the composite tenant key), the tenant column's NOT NULL
   * (23502) or check (23514), or the app role lacking (one of) `privilege` on the table altogether. Anything else —
   * a trigger's function it cannot reach, a constraint of another table — was raised before or instead of
   * the policy, so the refusal shows nothing. `may`: the privilege, when it was read before the statement.
   */
  private async isolating(r: Refusal, m: ModelTable, privilege: Privileges, may?: boolean): Promise<boolean> {
    const own = [...descendants(this.model.catalog, m.table)].map((oid) => this.model.catalog.tableByOid(oid)).filter((x): x is Table => x !== undefined)
    const named = (type: 'foreign key' | 'check'): boolean => own.some((x) => x.constraints.some((c) => c.type === type && c.name === r.constraint && (type === 'foreign key' || (m.tenantColumn !== null && c.columns.includes(m.tenantColumn)))))
    switch (r.code) {
      case '42501':
        if (/row-level security/.test(r.message)) return true
        if (may !== undefined) return !may
        for (const p of typeof privilege === 'string' ? [privilege] : privilege) if (!(await this.may(m.table, p))) return true
        return false
      case '0A000':
        return /row-level security/.test(r.message)
      case '23503':
        return named('foreign key')
      case '23502':
        return m.tenantColumn !== null && r.column === m.tenantColumn
      case '23514':
        return named('check')
      default:
        return false
    }
  }

  /**
   * A write of the app role that should have been refused (or changed nothing): null when it succeeded, a pass
   * when a refusal that means isolation stopped it, else not exercised (a probe bug: an error).
   */
  private async refused(r: StepResult, m: ModelTable, what: string, privilege: Privileges, may?: boolean): Promise<Outcome | null> {
    if (r.ok) return null
    if (isProbeBug(r)) return { status: 'error', detail: `${what}: the probe's statement failed (${r.code}: ${r.message})`, sqlstate: r.code }
    if (await this.isolating(r, m, privilege, may)) return pass(`${what} was refused (${r.code}: ${r.message})`, r.code)
    return notExercised(`${what} was refused by ${r.code}: ${r.message} — not by row-level security, a foreign key or the tenant column, so the refusal shows nothing about isolation`, r.code)
  }

  /**
   * After tenant A's row for another tenant was refused: tenant A inserts a row of its own (undone with the
   * check). Null when it can (or no row could be made for it); not exercised when it is refused too, since a
   * table that refuses every row of the app shows nothing by refusing tenant B's.
   */
  private async ownInsert(m: ModelTable): Promise<Outcome | null> {
    await this.s.asAdmin()
    const values = await this.acceptedRow(m.table, 'A')
    if (typeof values === 'string') return null
    await this.s.asApp(this.A)
    const { text, params } = insertSql(m.table, values, false)
    const r = await this.s.step(text, params)
    if (r.ok) return null
    if (isProbeBug(r)) return { status: 'error', detail: `tenant A's own INSERT: the probe's statement failed (${r.code}: ${r.message})`, sqlstate: r.code }
    return notExercised(`tenant A cannot insert a row of its own either (${r.code}: ${r.message}), so the refusal of tenant B's row shows nothing about isolation`, r.code)
  }

  async contextNone(m: ModelTable): Promise<ProbeCheck> {
    return this.run(m.table, 'context-none', async () => {
      await this.s.asApp(null)
      const c = await this.count(m.table)
      if (c.error !== null) return blocked(c.error, 'SELECT with no context') ?? pass('')
      return c.rows === 0 ? pass('no context set: 0 rows visible') : fail(`with no context set the app role sees ${c.rows} row(s) of ${display(m.table)}`)
    })
  }

  /** Rows of tenant A in the table (by its tenant column), or the probe's own rows when it has none. */
  private async ownRows(m: ModelTable, seeded: number): Promise<number> {
    if (m.tenantColumn === null) return seeded
    const r = await this.s.step(`SELECT count(*) AS n FROM ${tableSql(m.table)} WHERE ${quoteIdent(m.tenantColumn)} = $1`, [this.A])
    return r.ok ? Math.max(seeded, n(r.rows[0]?.['n'])) : seeded
  }

  /** Every per-table check except context-none (which must run before anything sets the context). */
  async all(m: ModelTable): Promise<ProbeCheck[]> {
    const t = m.table
    const A = this.seeder.rowsOf(t, 'A')
    const B = this.seeder.rowsOf(t, 'B')
    // How many rows tenant A has: its probe rows, plus any a trigger made for it while seeding (read as the admin).
    const own = await this.ownRows(m, A.length)
    const failure = this.seeder.failures.get(t.oid)
    const noRows = (side: string): Outcome => skip(`no rows of tenant ${side} in ${display(t)}${failure === undefined ? '' : `: ${failure}`}`)
    const out: ProbeCheck[] = []
    const push = async (check: string, fn: () => Promise<Outcome>): Promise<void> => {
      out.push(await this.run(t, check, fn))
    }

    await push('read-own', async () => {
      if (A.length === 0) return noRows('A')
      await this.s.asApp(this.A)
      const params: unknown[] = []
      const c = await this.count(t, rowsPredicate(A, params, 't'), params)
      if (c.error !== null) return { status: 'fail', detail: `tenant A cannot read its own rows: ${c.error.ok ? '' : c.error.message}`, sqlstate: c.error.ok ? null : c.error.code }
      return c.rows === A.length ? pass(`tenant A sees its ${A.length} row(s)`) : fail(`tenant A sees ${c.rows} of its ${A.length} row(s)`)
    })

    await push('read-other', async () => {
      if (B.length === 0) return noRows('B')
      await this.s.asApp(this.A)
      const params: unknown[] = []
      const c = await this.count(t, rowsPredicate(B, params, 't'), params)
      if (c.error !== null) return blocked(c.error, 'SELECT of B\'s rows') ?? pass('')
      return c.rows === 0 ? pass(`tenant A sees none of B's ${B.length} row(s)`) : fail(`tenant A reads ${c.rows} of tenant B's rows in ${display(t)}`)
    })

    await push('count', async () => {
      await this.s.asApp(this.A)
      const c = await this.count(t)
      if (c.error !== null) return blocked(c.error, 'count(*)') ?? pass('')
      return c.rows <= own ? pass(`count(*) = ${c.rows} (tenant A has ${own})`) : fail(`count(*) with tenant A's context is ${c.rows}; tenant A has ${own} row(s) in ${display(t)}`)
    })

    await push('join', async () => {
      // other = rows where the child or the joined parent is one of tenant B's
      const fk = tenantForeignKey(this.model, t)
      if (fk === undefined) return skip('no foreign key to another tenant table to join through')
      const parent = this.model.catalog.tableByOid(fk.references.table.oid)!
      const PB = this.seeder.rowsOf(parent, 'B')
      await this.s.asApp(this.A)
      const params: unknown[] = []
      const on = fk.columns.map((c, i) => `c.${quoteIdent(c)} = p.${quoteIdent(fk.references.columns[i]!)}`).join(' AND ')
      const other = `${rowsPredicate(B, params, 'c')} OR ${rowsPredicate(PB, params, 'p')}`
      // A LEFT JOIN, as an application lists rows with their parent: each side must be filtered on its own.
      const r = await this.s.step(`SELECT count(*) AS total, count(*) FILTER (WHERE ${other}) AS other FROM ${tableSql(t)} c LEFT JOIN ${tableSql(parent)} p ON ${on}`, params)
      if (!r.ok) return blocked(r, 'the join') ?? pass('')
      const total = n(r.rows[0]?.['total'])
      const otherRows = n(r.rows[0]?.['other'])
      if (otherRows > 0 || total > own) return fail(`joining ${display(t)} to ${display(parent)} with tenant A's context returns ${total} row(s), ${otherRows} of them tenant B's`)
      return pass(`join to ${display(parent)} returns ${total} row(s), none of B's`)
    })

    await push('insert-other', async () => {
      if (!this.tenantBound(m)) return skip('rows of this table name no tenant (no tenant column, no foreign key to a tenant table)')
      const values = await this.otherRow(m)
      if (typeof values === 'string') return skip(values)
      await this.s.asApp(this.A)
      const { text, params } = insertSql(t, values, false)
      const r = await this.s.step(text, params)
      const refused = await this.refused(r, m, `INSERT of a row for ${m.class === 'root' ? 'a new tenant' : 'tenant B'}`, 'INSERT')
      if (refused === null) return fail(`tenant A inserted a row for ${m.class === 'root' ? 'another tenant' : 'tenant B'} into ${display(t)}`)
      // The root's own row is the tenant itself: there is no other row of tenant A to insert.
      if (refused.status !== 'pass' || m.class === 'root' || !(await this.may(t, 'INSERT'))) return refused
      const own = await this.ownInsert(m)
      return own ?? { ...refused, detail: `${refused.detail}; tenant A's own row was accepted` }
    })

    await push('update-other', async () => {
      if (B.length === 0) return noRows('B')
      const col = touchColumn(t, m.tenantColumn)
      if (col === null) return skip('no column to update')
      await this.s.asApp(this.A)
      const params: unknown[] = []
      const r = await this.s.step(`UPDATE ${tableSql(t)} t SET ${quoteIdent(col)} = t.${quoteIdent(col)} WHERE ${rowsPredicate(B, params, 't')}`, params)
      const refused = await this.refused(r, m, 'UPDATE of B\'s rows', 'UPDATE')
      if (refused?.status === 'error' && refused.unexercised === undefined) return refused
      if (!(await this.intact(t))) return fail(`tenant A updated tenant B's rows in ${display(t)}`)
      return refused ?? pass(`UPDATE of B's rows changed ${r.ok ? r.rowCount : 0} row(s)`)
    })

    await push('delete-other', async () => {
      if (B.length === 0) return noRows('B')
      await this.s.asApp(this.A)
      const params: unknown[] = []
      // Starts with an empty comment, as applications mark a deliberate delete for a guard trigger that refuses
      // every other one (Lemmy's require_uplete checks current_query()): the comment changes nothing else.
      const r = await this.s.step(`/**/ DELETE FROM ${tableSql(t)} t WHERE ${rowsPredicate(B, params, 't')}`, params)
      const refused = await this.refused(r, m, 'DELETE of B\'s rows', 'DELETE')
      if (refused?.status === 'error' && refused.unexercised === undefined) return refused
      if (!(await this.intact(t))) return fail(`tenant A deleted tenant B's rows in ${display(t)}`)
      return refused ?? pass('DELETE of B\'s rows deleted nothing')
    })

    await push('update-move', async () => {
      if (A.length === 0) return noRows('A')
      let set: string
      let what = 'to another tenant'
      const params: unknown[] = []
      if (m.tenantColumn !== null) {
        if (t.columns.find((c) => c.name === m.tenantColumn)?.identity === 'always') return pass(`"${m.tenantColumn}" is GENERATED ALWAYS AS IDENTITY: no UPDATE can set it to another tenant`)
        const target = m.class === 'root' ? await this.otherRow(m) : null
        if (typeof target === 'string') return skip(target)
        params.push(target === null ? this.B : target.get(m.tenantColumn) ?? this.B)
        set = `${quoteIdent(m.tenantColumn)} = $1`
      } else {
        const fk = tenantForeignKey(this.model, t)
        const parent = fk === undefined ? undefined : this.seeder.rowsOf(this.model.catalog.tableByOid(fk.references.table.oid)!, 'B')[0]
        if (fk === undefined || parent === undefined) return skip('rows of this table name no tenant to move them to')
        what = `at a ${display(fk.references.table)} row of tenant B (through ${fk.columns.join(', ')}), which its policy does not stop`
        set = fk.columns.map((c, i) => {
          params.push(parent.values[fk.references.columns[i]!] ?? null)
          return `${quoteIdent(c)} = $${params.length}`
        }).join(', ')
      }
      await this.s.asApp(this.A)
      const r = await this.s.step(`UPDATE ${tableSql(t)} t SET ${set} WHERE ${rowsPredicate(A, params, 't')}`, params)
      return (await this.refused(r, m, 'UPDATE moving A\'s rows to B', 'UPDATE')) ?? (r.ok && r.rowCount > 0 ? fail(`tenant A pointed ${r.rowCount} row(s) of ${display(t)} ${what}`) : pass('UPDATE moving A\'s rows matched nothing'))
    })

    await push('upsert', async () => {
      if (B.length === 0) return noRows('B')
      const key = arbiter(t)
      if (key === null) return skip('no primary key or NOT NULL unique constraint for ON CONFLICT')
      // Values the table accepts, so that a CHECK does not refuse the row before its key conflicts with B's.
      const values = await this.acceptedRow(t, 'A')
      if (typeof values === 'string') return skip(values)
      for (const c of key) {
        const v = B[0]!.values[c]
        if (v === null || v === undefined) return skip(`tenant B's row has no value in key column ${c}`)
        values.set(c, v)
      }
      const col = t.columns.find((c) => !key.includes(c.name) && c.generated === null && c.identity !== 'always' && values.has(c.name))?.name ?? key[0]!
      const { text, params } = insertSql(t, values, false)
      await this.s.asApp(this.A)
      const r = await this.s.step(`${text} ON CONFLICT (${identList(key)}) DO UPDATE SET ${quoteIdent(col)} = EXCLUDED.${quoteIdent(col)}`, params)
      const refused = await this.refused(r, m, 'INSERT … ON CONFLICT DO UPDATE on B\'s key', ['INSERT', 'UPDATE'])
      if (refused?.status === 'error' && refused.unexercised === undefined) return refused
      if (!(await this.intact(t))) return fail(`INSERT … ON CONFLICT DO UPDATE with tenant A's context changed tenant B's row in ${display(t)}`)
      return refused ?? pass('ON CONFLICT on B\'s key left B\'s row alone')
    })

    await push('merge', async () => {
      if (this.model.catalog.server.major < 15) return skip('MERGE needs PostgreSQL 15')
      if (B.length === 0) return noRows('B')
      const col = touchColumn(t, m.tenantColumn)
      if (col === null) return skip('no column to update')
      await this.s.asApp(this.A)
      const r1 = await this.s.step(
        `MERGE INTO ${tableSql(t)} t USING (SELECT $1::oid AS o, $2::tid AS c) s ON t.tableoid = s.o AND t.ctid = s.c WHEN MATCHED THEN UPDATE SET ${quoteIdent(col)} = t.${quoteIdent(col)}`,
        [B[0]!.tableOid, B[0]!.ctid],
      )
      const refused1 = await this.refused(r1, m, 'MERGE … WHEN MATCHED THEN UPDATE of B\'s row', 'UPDATE')
      if (refused1?.status === 'error' && refused1.unexercised === undefined) return refused1
      if (!(await this.intact(t))) return fail(`MERGE with tenant A's context updated tenant B's row in ${display(t)}`)
      if (!this.tenantBound(m) || refused1?.unexercised !== undefined) return refused1 ?? pass('MERGE did not update B\'s row')
      const values = await this.otherRow(m)
      if (typeof values === 'string') return skip(values)
      await this.s.asApp(this.A)
      const cols = [...values.keys()]
      const casts = cols.map((c, i) => `$${i + 1}::${t.columns.find((x) => x.name === c)!.type}`)
      const r2 = await this.s.step(`MERGE INTO ${tableSql(t)} t USING (SELECT 1) s ON false WHEN NOT MATCHED THEN INSERT (${identList(cols)})${overriding(t, cols)} VALUES (${casts.join(', ')})`, [...values.values()])
      return (await this.refused(r2, m, 'MERGE … WHEN NOT MATCHED THEN INSERT for B', 'INSERT')) ?? fail(`MERGE with tenant A's context inserted a row for another tenant into ${display(t)}`)
    })

    await push('copy-from', async () => {
      if (!this.tenantBound(m)) return skip('rows of this table name no tenant')
      const values = await this.otherRow(m)
      if (typeof values === 'string') return skip(values)
      await this.s.asApp(this.A)
      // Read before COPY: after its error the transaction takes no statement until the check is rolled back.
      const may = await this.may(t, 'INSERT')
      const cols = [...values.keys()]
      const line = `${[...values.values()].map(copyText).join('\t')}\n`
      const r = await copy(this.s.client, `COPY ${tableSql(t)} (${identList(cols)}) FROM STDIN`, line)
      if (r.error !== null) {
        const e = r.error as Error & { code?: string; constraint?: string; column?: string }
        const refusal: Refusal = { ok: false, code: e.code ?? '', message: e.message, constraint: e.constraint, column: e.column }
        if (await this.isolating(refusal, m, 'INSERT', may)) return pass(`COPY FROM was refused (${refusal.code}: ${refusal.message})`, refusal.code)
        return notExercised(`COPY FROM was refused by ${refusal.code}: ${refusal.message} — not by row-level security, a foreign key or the tenant column, so the refusal shows nothing about isolation`, refusal.code)
      }
      return fail(`COPY FROM with tenant A's context loaded a row for another tenant into ${display(t)}`)
    })

    await push('copy-to', async () => {
      await this.s.asApp(this.A)
      const source = t.partitioned ? `(SELECT * FROM ${tableSql(t)})` : tableSql(t)
      const r = await copy(this.s.client, `COPY ${source} TO STDOUT`)
      if (r.error !== null) return pass(`COPY TO was refused (${r.error.code ?? ''}: ${r.error.message})`, r.error.code ?? null)
      const lines = r.rowCount ?? 0
      return lines <= own ? pass(`COPY TO exported ${lines} row(s) (tenant A has ${own})`) : fail(`COPY TO with tenant A's context exported ${lines} row(s) of ${display(t)}; tenant A has ${own}`)
    })

    await push('select-for-update', async () => {
      await this.s.asApp(this.A)
      const params: unknown[] = []
      const r = await this.s.step(`SELECT count(*) AS total, count(*) FILTER (WHERE other) AS other FROM (SELECT ${rowsPredicate(B, params, 't')} AS other FROM ${tableSql(t)} t FOR UPDATE) x`, params)
      if (!r.ok) return blocked(r, 'SELECT … FOR UPDATE') ?? pass('')
      const total = n(r.rows[0]?.['total'])
      const other = n(r.rows[0]?.['other'])
      return other === 0 && total <= own ? pass(`FOR UPDATE locked ${total} row(s), none of B's`) : fail(`SELECT … FOR UPDATE with tenant A's context locked ${total} row(s) of ${display(t)}, ${other} of them tenant B's`)
    })

    await push('cte', async () => {
      const col = touchColumn(t, m.tenantColumn)
      if (col === null) return skip('no column to update')
      await this.s.asApp(this.A)
      const params: unknown[] = []
      const r = await this.s.step(
        `WITH u AS (UPDATE ${tableSql(t)} t SET ${quoteIdent(col)} = t.${quoteIdent(col)} WHERE ${rowsPredicate(B, params, 't')} RETURNING 1), s AS (SELECT 1 FROM ${tableSql(t)}) SELECT (SELECT count(*) FROM u) AS updated, (SELECT count(*) FROM s) AS seen`,
        params,
      )
      const refused = await this.refused(r, m, 'the CTEs', 'UPDATE')
      if (refused?.status === 'error' && refused.unexercised === undefined) return refused
      if (B.length > 0 && !(await this.intact(t))) return fail(`a writable CTE with tenant A's context updated tenant B's rows in ${display(t)}`)
      if (r.ok && n(r.rows[0]?.['seen']) > own) return fail(`a CTE with tenant A's context read ${n(r.rows[0]?.['seen'])} row(s) of ${display(t)}; tenant A has ${own}`)
      return refused ?? pass('CTEs saw and changed only A\'s rows')
    })

    await push('insert-select', async () => {
      const own = await this.acceptedRow(t, m.class === 'root' ? 'new' : 'A')
      if (typeof own === 'string') return skip(own)
      const other = this.tenantBound(m) ? await this.otherRow(m) : null
      if (typeof other === 'string') return skip(other)
      await this.s.asApp(this.A)
      const cast = (c: string, i: number): string => `$${i + 1}::${t.columns.find((x) => x.name === c)!.type}`
      const cols = [...own.keys()]
      const params: unknown[] = [...own.values()]
      const r1 = await this.s.step(`INSERT INTO ${tableSql(t)} (${identList(cols)})${overriding(t, cols)} SELECT ${cols.map(cast).join(', ')} FROM ${tableSql(t)} t WHERE ${rowsPredicate(B, params, 't')}`, params)
      if (isProbeBug(r1)) return blocked(r1, 'INSERT … SELECT')!
      if (r1.ok && r1.rowCount > 0) return fail(`INSERT … SELECT with tenant A's context read ${r1.rowCount} of tenant B's rows in ${display(t)}`)
      if (other === null) return pass('INSERT … SELECT read none of B\'s rows')
      const ocols = [...other.keys()]
      const r2 = await this.s.step(`INSERT INTO ${tableSql(t)} (${identList(ocols)})${overriding(t, ocols)} SELECT ${ocols.map(cast).join(', ')}`, [...other.values()])
      return (await this.refused(r2, m, 'INSERT … SELECT of a row for another tenant', 'INSERT')) ?? fail(`INSERT … SELECT with tenant A's context wrote a row for another tenant into ${display(t)}`)
    })

    await push('context-empty', async () => this.emptyLike(t, [''], 'an empty context'))
    await push('context-garbage', async () => this.emptyLike(t, GARBAGE_CONTEXTS, 'a garbage context'))

    await push('context-reset', async () => {
      await this.s.asApp(this.A)
      await this.s.exec(`RESET ${settingSql(this.s.setting)}`)
      const c = await this.count(t)
      if (c.error !== null) return blocked(c.error, 'SELECT after RESET') ?? pass('')
      return c.rows === 0 ? pass('after RESET: 0 rows visible') : fail(`after RESET of ${this.s.setting} the app role sees ${c.rows} row(s) of ${display(t)}`)
    })

    await push('row-security-off', async () => {
      await this.s.asApp(this.A)
      await this.s.exec('SET LOCAL row_security = off')
      const r = await this.s.step(`SELECT count(*) AS n FROM ${tableSql(t)}`)
      if (!r.ok) return r.code === '42501' ? pass(`SET row_security = off: the query fails (${r.message})`, r.code) : (blocked(r, 'SELECT with row_security = off') ?? pass(''))
      return fail(`with row_security = off the app role reads ${n(r.rows[0]?.['n'])} row(s) of ${display(t)}: row-level security does not apply to it`)
    })

    return out
  }

  /** Each of `contexts` must show no rows. */
  private async emptyLike(t: Table, contexts: readonly string[], what: string): Promise<Outcome> {
    const seen: string[] = []
    const refused: string[] = []
    for (const ctx of contexts) {
      await this.s.asApp(ctx)
      const c = await this.count(t)
      if (c.error !== null) {
        const b = blocked(c.error, 'SELECT')
        if (b?.status === 'error') return b
        refused.push(`${JSON.stringify(ctx)} → ${c.error.ok ? '' : c.error.code}`)
      } else if (c.rows > 0) seen.push(`${JSON.stringify(ctx)} → ${c.rows} row(s)`)
      await this.s.asAdmin()
    }
    if (seen.length > 0) return fail(`with ${what} the app role sees rows of ${display(t)}: ${seen.join(', ')}`)
    return pass(`with ${what}: no rows${refused.length > 0 ? ` (refused: ${refused.join(', ')})` : ''}`)
  }

  /** Through a view over tenant tables, tenant A must see none of B's marker values. */
  async view(v: View, markers: readonly string[]): Promise<ProbeCheck> {
    return this.run(v, 'view-other', async () => {
      if (markers.length === 0) return skip('no distinctive values of tenant B to look for')
      await this.s.asApp(this.A)
      const r = await this.s.step(`SELECT count(*) AS n FROM ${tableSql(v)} v WHERE EXISTS (SELECT 1 FROM unnest($1::text[]) m WHERE strpos(v::text, m) > 0)`, [markers])
      if (!r.ok) return blocked(r, 'SELECT from the view') ?? pass('')
      const rows = n(r.rows[0]?.['n'])
      return rows === 0 ? pass(`none of B's ${markers.length} marker value(s) visible through the view`) : fail(`through view ${display(v)} tenant A sees ${rows} row(s) holding tenant B's values`)
    })
  }

  /** Existing data: rows referencing a parent of another tenant, rows without tenant (as the admin, read-only). */
  async data(m: ModelTable): Promise<ProbeCheck[]> {
    const t = m.table
    const out: ProbeCheck[] = []
    const tc = m.tenantColumn
    out.push(await this.run(t, 'data-cross-tenant-reference', async () => {
      if (tc === null || m.class !== 'direct') return skip('no tenant column to compare')
      const risky = t.constraints.filter((c): c is ForeignKeyConstraint => {
        if (c.type !== 'foreign key' || c.parentOid !== null) return false
        const p = this.model.modelTable(c.references.table.oid)
        if (p === undefined || p.class !== 'direct' || p.tenantColumn === null) return false
        if (c.columns.some((x, i) => x === tc && c.references.columns[i] === p.tenantColumn)) return !c.validated
        const fks = t.constraints.filter((x): x is ForeignKeyConstraint => x.type === 'foreign key')
        const twin = scopedTwin(fks, c, tc, p.tenantColumn)
        return twin === undefined || !twin.validated
      })
      if (risky.length === 0) return pass('every foreign key to a tenant table includes the tenant column and is validated')
      const found: string[] = []
      for (const fk of risky) {
        const parent = this.model.modelTable(fk.references.table.oid)!
        const pairs = fk.columns.map((c, i) => [c, fk.references.columns[i]!] as const).filter(([c]) => c !== tc)
        if (pairs.length === 0) continue
        const on = pairs.map(([c, p]) => `c.${quoteIdent(c)} = p.${quoteIdent(p)}`).join(' AND ')
        const r = await this.s.step(`SELECT count(*) AS n FROM ${tableSql(t)} c JOIN ${tableSql(parent.table)} p ON ${on} WHERE c.${quoteIdent(tc)} IS DISTINCT FROM p.${quoteIdent(parent.tenantColumn!)}`)
        if (!r.ok) return { status: 'error', detail: `checking ${fk.name} failed (${r.code}: ${r.message})`, sqlstate: r.code }
        const rows = n(r.rows[0]?.['n'])
        if (rows > 0) found.push(`${rows} row(s) through ${fk.name} → ${display(parent.table)}`)
      }
      return found.length === 0 ? pass(`no row references another tenant's parent (${risky.map((f) => f.name).join(', ')})`) : fail(`${display(t)} has rows whose parent belongs to another tenant: ${found.join('; ')}`)
    }))
    out.push(await this.run(t, 'data-null-tenant', async () => {
      if (tc === null || m.class !== 'direct') return skip('no tenant column')
      if (!(t.columns.find((c) => c.name === tc)?.nullable ?? false)) return pass(`"${tc}" is NOT NULL`)
      const r = await this.s.step(`SELECT count(*) AS n FROM ${tableSql(t)} WHERE ${quoteIdent(tc)} IS NULL`)
      if (!r.ok) return { status: 'error', detail: `${r.code}: ${r.message}`, sqlstate: r.code }
      const rows = n(r.rows[0]?.['n'])
      return rows === 0 ? pass(`no row has a NULL "${tc}"`) : fail(`${rows} row(s) of ${display(t)} have no tenant (NULL "${tc}")`)
    }))
    return out
  }
}
