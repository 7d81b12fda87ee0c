import type { ForeignKeyConstraint, KeyOrCheckConstraint } from '../../../catalog/types.js'
import type { Table } from '../../../catalog/types.js'
import { indexDefinitionParts } from '../../../sql/index-definition.js'
import { identList, quoteIdent } from '../../../sql/quote.js'
import { onlineUniqueIndex, replacementName } from '../fix-sql.js'
import type { ModelTable, TenantModel } from '../model.js'
import { display, onTable, tableSql, type Hit, type LintRule } from '../rule.js'

/** Direct tenant tables (they have the tenant column), not the root. */
const direct = (model: TenantModel): ModelTable[] => model.tenantTables().filter((m) => m.class === 'direct' && m.tenantColumn !== null)

function onConstraint(m: ModelTable, name: string, message: string, fix: string, kind: Hit['objectKind'] = 'constraint'): Hit {
  return { ...onTable(m.table, message, fix), objectKind: kind, object: `${kind} ${quoteIdent(name)} on ${tableSql(m.table)}` }
}

/** The (child column → parent column) pairs of a foreign key. */
function pairs(fk: ForeignKeyConstraint): [string, string][] {
  return fk.columns.map((c, i) => [c, fk.references.columns[i] ?? ''])
}

/** Whether a foreign key between two tables that both have the tenant column keeps both rows in one tenant. */
export function tenantScoped(fk: ForeignKeyConstraint, childTc: string, parentTc: string): boolean {
  return pairs(fk).some(([c, p]) => c === childTc && p === parentTc)
}

/**
 * A tenant-scoped foreign key on the same table that covers `fk` (same parent, the same column pairs plus
 * the tenant column): the planner adds one beside each original key, which then checks nothing more.
 */
export function scopedTwin(fks: readonly ForeignKeyConstraint[], fk: ForeignKeyConstraint, childTc: string, parentTc: string): ForeignKeyConstraint | undefined {
  const mine = pairs(fk).filter(([c]) => c !== childTc)
  return fks.find((o) => o !== fk && o.references.table.oid === fk.references.table.oid && tenantScoped(o, childTc, parentTc) && mine.every(([c, p]) => pairs(o).some(([oc, op]) => oc === c && op === p)))
}

/**
 * A tenant-scoped twin beside a foreign key that crosses tenants, the way the planner adds it: the parent's
 * unique (tenant, key) index when it has none, the twin NOT VALID and checked at commit, then VALIDATE. The
 * original key stays, so its ON DELETE / ON UPDATE actions (CASCADE, SET NULL) keep working; the twin only
 * checks that the surviving rows are in their parent's tenant.
 */
function scopedTwinFix(model: TenantModel, table: Table, fk: ForeignKeyConstraint, cols: readonly string[], parent: Table, refs: readonly string[], note = ''): string {
  const name = replacementName(fk.name, 'tenant')
  const out: string[] = []
  const indexed = parent.indexes.some((i) => i.unique && i.valid && i.predicate === null && !i.hasExpressions && i.columns.length === refs.length && refs.every((r) => i.columns.includes(r)))
  if (!indexed) out.push(`-- the composite key needs a unique index on ${tableSql(parent)} (${identList(refs)}):`, onlineUniqueIndex(model.catalog, parent, replacementName(`${parent.name}_${refs.join('_')}`, 'key'), identList(refs)))
  const add = `ALTER TABLE ${tableSql(table)} ADD CONSTRAINT ${quoteIdent(name)} FOREIGN KEY (${identList(cols)}) REFERENCES ${tableSql(parent)} (${identList(refs)}) DEFERRABLE INITIALLY DEFERRED`
  // A partitioned table cannot take a NOT VALID foreign key: it is checked as it is added.
  if (table.partitioned) out.push(`${add};`)
  else out.push(`${add} NOT VALID;`, `${note}ALTER TABLE ${tableSql(table)} VALIDATE CONSTRAINT ${quoteIdent(name)};`)
  out.push(`-- ${quoteIdent(fk.name)} stays: it keeps its ON DELETE ${fk.onDelete.toUpperCase()} / ON UPDATE ${fk.onUpdate.toUpperCase()}; ${quoteIdent(name)} checks the tenant at commit.`)
  return out.join('\n')
}

/**
 * Replace a unique index or constraint that spans tenants by one on (tenant column, the same keys), built
 * without blocking writes, swapped in, and only then the old one dropped.
 */
function scopedUniqueFix(model: TenantModel, m: ModelTable, tc: string, key: { name: string; constraint: boolean; deferrable: boolean; initiallyDeferred: boolean }, keys: string, tail: string): string {
  const t = m.table
  const next = replacementName(key.name, 'tenant')
  const build = onlineUniqueIndex(model.catalog, t, next, `${quoteIdent(tc)}, ${keys}`, tail)
  if (!key.constraint) {
    return `${build}\nDROP INDEX ${t.partitioned ? '' : 'CONCURRENTLY '}${tableSql({ schema: t.schema, name: key.name })};\nALTER INDEX ${tableSql({ schema: t.schema, name: next })} RENAME TO ${quoteIdent(key.name)};`
  }
  // A partitioned table takes no constraint USING INDEX: the unique index alone keeps the values unique per tenant (ON CONFLICT uses it too).
  if (t.partitioned) return `${build}\nALTER TABLE ${tableSql(t)} DROP CONSTRAINT ${quoteIdent(key.name)};\nALTER INDEX ${tableSql({ schema: t.schema, name: next })} RENAME TO ${quoteIdent(key.name)};`
  const deferral = key.deferrable ? ` DEFERRABLE${key.initiallyDeferred ? ' INITIALLY DEFERRED' : ''}` : ''
  return `${build}\nALTER TABLE ${tableSql(t)} DROP CONSTRAINT ${quoteIdent(key.name)}, ADD CONSTRAINT ${quoteIdent(key.name)} UNIQUE USING INDEX ${quoteIdent(next)}${deferral};`
}

export const integrityRules: readonly LintRule[] = [
  {
    id: 'tenant-table-no-tenant-column',
    severity: 'warn',
    category: 'keys and integrity',
    scope: 'table',
    summary: 'A table reaches its tenant only through foreign keys; it has no tenant column of its own.',
    why: 'Its policies must join up the chain (slow, and wrong as soon as one link is wrong), and nothing stops a row from pointing at another tenant\'s parent.',
    fixHint: 'Add the tenant column, filled from the parent, with a composite foreign key (tenant, parent_id) → parent(tenant, id).',
    *check(model) {
      if (model.tenantColumn === null) return
      for (const m of model.tenantTables()) {
        if (m.class !== 'child' || m.table.kind === 'partition') continue
        yield onTable(m.table, `${display(m.table)} has no "${model.tenantColumn}" column; it reaches a tenant through ${m.via ?? 'foreign keys'}`, `-- add it without a rewrite, then backfill from the parent in batches:\nALTER TABLE ${tableSql(m.table)} ADD COLUMN ${quoteIdent(model.tenantColumn)} ${model.root === null ? 'uuid' : model.root.columns.find((c) => c.name === model.rootKey)?.type ?? 'uuid'};`)
      }
    },
  },
  {
    id: 'tenant-column-fk-wrong-table',
    severity: 'error',
    category: 'keys and integrity',
    scope: 'table',
    summary: 'The tenant column\'s foreign key points at another table than the tenant table (or at another column than the tenant\'s key).',
    why: 'The tenant column then holds ids of something else — a legacy organisations table, another key — that the database never ties to a tenant: rows can name tenants that do not exist, or the wrong ones, and policies compare the context with ids of that other table.',
    fixHint: 'Point the foreign key at the tenant table\'s key: add the right one NOT VALID, VALIDATE it (it fails on rows naming no tenant: fix those first), then drop the old one.',
    *check(model) {
      for (const m of direct(model)) {
        if (m.table.foreign) continue
        const tc = m.tenantColumn!
        for (const c of m.table.constraints) {
          if (c.type !== 'foreign key' || c.parentOid !== null) continue
          const at = c.columns.indexOf(tc)
          if (at === -1) continue
          const target = c.references.columns[at]!
          const parent = model.modelTable(c.references.table.oid)
          // Right: the tenant table's key, or the tenant column of another tenant table (composite keys).
          if (parent?.class === 'root' && target === model.rootKey) continue
          if (parent?.class === 'direct' && target === parent.tenantColumn) continue
          if (parent === undefined && model.root === null) continue
          const points = `${display(c.references.table)}(${target})`
          const wanted = model.root === null || model.rootKey === null ? null : `${display(model.root)}(${model.rootKey})`
          const message = `foreign key ${quoteIdent(c.name)} makes ${display(m.table)}.${tc} reference ${points}${wanted === null ? ', not the tenant table' : `; the tenant is ${wanted}`}`
          if (model.root === null || model.rootKey === null || c.columns.length > 1) {
            yield onConstraint(m, c.name, message, `-- ${display(m.table)}.${tc} must reference the tenant table's key${c.columns.length > 1 ? ' (or, in a composite key, the parent\'s tenant column)' : ''}; then:\nALTER TABLE ${tableSql(m.table)} DROP CONSTRAINT ${quoteIdent(c.name)};`)
            continue
          }
          const name = `${m.table.name}_${tc}_tenant_fkey`.slice(0, 63)
          const add = `ALTER TABLE ${tableSql(m.table)} ADD CONSTRAINT ${quoteIdent(name)} FOREIGN KEY (${quoteIdent(tc)}) REFERENCES ${tableSql(model.root)} (${quoteIdent(model.rootKey)})`
          // A partitioned table cannot take a NOT VALID foreign key: it is checked as it is added.
          const create = m.table.partitioned
            ? `-- fails on rows whose ${quoteIdent(tc)} names no tenant (fix those rows first); checks every partition while it holds its lock\n${add};`
            : `${add} NOT VALID;\n-- fails on rows whose ${quoteIdent(tc)} names no tenant: fix those rows first\nALTER TABLE ${tableSql(m.table)} VALIDATE CONSTRAINT ${quoteIdent(name)};`
          yield onConstraint(m, c.name, message, `${create}\nALTER TABLE ${tableSql(m.table)} DROP CONSTRAINT ${quoteIdent(c.name)};`)
        }
      }
    },
  },
  {
    id: 'tenant-column-nullable',
    severity: 'warn',
    category: 'keys and integrity',
    scope: 'table',
    summary: 'The tenant column is nullable.',
    why: 'A row without a tenant belongs to nobody: invisible under a correct policy, visible to all under a policy that fails open, and a sign the backfill is incomplete.',
    fixHint: 'Backfill, then ADD CHECK (… IS NOT NULL) NOT VALID, VALIDATE, SET NOT NULL.',
    *check(model) {
      for (const m of direct(model)) {
        if (m.table.kind === 'partition' || m.table.foreign) continue
        const col = m.table.columns.find((c) => c.name === m.tenantColumn)
        if (col === undefined || !col.nullable) continue
        const check = `${m.table.name}_${col.name}_not_null`.slice(0, 63)
        yield { ...onTable(m.table, `${display(m.table)}.${col.name} allows NULL`, `ALTER TABLE ${tableSql(m.table)} ADD CONSTRAINT ${quoteIdent(check)} CHECK (${quoteIdent(col.name)} IS NOT NULL) NOT VALID;\nALTER TABLE ${tableSql(m.table)} VALIDATE CONSTRAINT ${quoteIdent(check)};\nALTER TABLE ${tableSql(m.table)} ALTER COLUMN ${quoteIdent(col.name)} SET NOT NULL;\nALTER TABLE ${tableSql(m.table)} DROP CONSTRAINT ${quoteIdent(check)};`), objectKind: 'column', object: `${tableSql(m.table)}.${quoteIdent(col.name)}` }
      }
    },
  },
  {
    id: 'tenant-column-type-mismatch',
    severity: 'warn',
    category: 'keys and integrity',
    scope: 'table',
    summary: 'The tenant column\'s type differs from the tenant table\'s key type.',
    why: 'Comparisons need casts (which can defeat indexes) and a foreign key to the tenant table is impossible.',
    fixHint: 'ALTER COLUMN … TYPE <key type> (plan it: it rewrites the table).',
    *check(model) {
      if (model.root === null || model.rootKey === null) return
      const keyType = model.root.columns.find((c) => c.name === model.rootKey)?.type
      if (keyType === undefined) return
      for (const m of direct(model)) {
        if (m.table.kind === 'partition') continue
        const col = m.table.columns.find((c) => c.name === m.tenantColumn)
        if (col === undefined || col.type === keyType) continue
        yield { ...onTable(m.table, `${display(m.table)}.${col.name} is ${col.type}; ${display(model.root)}.${model.rootKey} is ${keyType}`, `-- rewrites the table; schedule it:\nALTER TABLE ${tableSql(m.table)} ALTER COLUMN ${quoteIdent(col.name)} TYPE ${keyType};`), objectKind: 'column', object: `${tableSql(m.table)}.${quoteIdent(col.name)}` }
      }
    },
  },
  {
    id: 'unique-not-tenant-scoped',
    severity: 'warn',
    category: 'keys and integrity',
    scope: 'table',
    summary: 'A unique constraint or index on a tenant table does not include the tenant column.',
    why: 'It is an existence oracle: inserting a value another tenant already uses fails with "duplicate key", revealing that it exists (an email, an invoice number). It also stops two tenants from using the same value.',
    fixHint: 'Replace it with a unique index on (<tenant column>, …), built CONCURRENTLY — or, when it must stay global (an API key hash), list it under keepGlobalUnique in the config.',
    *check(model) {
      for (const m of direct(model)) {
        if (m.table.kind === 'partition' || m.table.foreign) continue
        const tc = m.tenantColumn!
        const keep = new Set(model.globalUniques[display(m.table)] ?? [])
        // A unique key over every primary key column (formbricks' (id, "workspaceId") next to its primary key id,
        // for composite foreign keys) can only refuse a row the primary key refuses: it reveals nothing more,
        // and the primary key has its own rule (primary-key-not-tenant-scoped).
        const pk = m.table.constraints.find((c) => c.type === 'primary key')?.columns ?? []
        const overPrimaryKey = (columns: readonly (string | null)[]): boolean => pk.length > 0 && pk.every((c) => columns.includes(c))
        for (const c of m.table.constraints) {
          if (c.type !== 'unique' && c.type !== 'exclusion') continue
          if (c.type === 'unique' && overPrimaryKey(c.columns)) continue
          if (c.parentOid !== null || c.columns.includes(tc) || keep.has(c.name)) continue
          const message = `${(c as KeyOrCheckConstraint).type} constraint ${quoteIdent(c.name)} on ${display(m.table)} (${c.columns.join(', ')}) spans all tenants`
          if (c.type === 'exclusion') {
            const index = m.table.indexes.find((i) => i.constraint === c.name)
            yield onConstraint(m, c.name, message, `-- add ${quoteIdent(tc)} WITH = to the exclusion constraint (needs the btree_gist extension for a GiST index), then drop the old one:\n-- ${index?.definition ?? c.name}`)
            continue
          }
          const index = m.table.indexes.find((i) => i.constraint === c.name)
          const parts = index === undefined ? undefined : indexDefinitionParts(index.definition, index.method)
          yield onConstraint(m, c.name, message, scopedUniqueFix(model, m, tc, { name: c.name, constraint: true, deferrable: c.deferrable, initiallyDeferred: c.initiallyDeferred }, parts?.keys ?? identList(c.columns), parts?.tail ?? ''))
        }
        for (const i of m.table.indexes) {
          if (!i.unique || i.constraint !== null || i.columns.includes(tc) || keep.has(i.name) || overPrimaryKey(i.columns)) continue
          const parts = indexDefinitionParts(i.definition, i.method)
          const keys = parts?.keys ?? i.columns.map((c) => c ?? '(expression)').join(', ')
          const message = `unique index ${quoteIdent(i.name)} on ${display(m.table)} (${keys}) spans all tenants`
          const fix = parts === undefined
            ? `-- recreate it with ${quoteIdent(tc)} as the first key column: ${i.definition.replace(/\n/g, ' ')}`
            : scopedUniqueFix(model, m, tc, { name: i.name, constraint: false, deferrable: false, initiallyDeferred: false }, parts.keys, parts.tail)
          yield onConstraint(m, i.name, message, fix, 'index')
        }
      }
    },
  },
  {
    id: 'primary-key-not-tenant-scoped',
    severity: 'info',
    category: 'keys and integrity',
    scope: 'table',
    summary: 'A tenant table\'s primary key does not include the tenant column.',
    why: 'Ids are unique across tenants, so a client that may choose ids can probe for other tenants\' ids; harmless with random UUIDs or identity ids the app never sets. Citus needs the tenant in every key.',
    fixHint: 'Keep a unique (<tenant column>, id) index for composite foreign keys; move the primary key when convenient.',
    *check(model) {
      for (const m of direct(model)) {
        if (m.table.kind === 'partition' || m.table.foreign) continue
        const pk = m.table.constraints.find((c) => c.type === 'primary key')
        if (pk === undefined || pk.columns.includes(m.tenantColumn!)) continue
        // The tenant model's shape: a generated id plus a unique (tenant, id) key for composite foreign keys.
        // An id the server generates (the other key columns of a partitioned table are its partition key, not ids).
        const generated = pk.columns.some((c) => { const col = m.table.columns.find((x) => x.name === c); return col !== undefined && (col.identity !== null || col.default !== null) })
        const scopedTwin = m.table.indexes.some((i) => i.unique && i.valid && i.predicate === null && i.columns[0] === m.tenantColumn && pk.columns.every((c) => i.columns.includes(c)) && i.columns.length === pk.columns.length + 1)
        if (generated && scopedTwin) continue
        const name = replacementName(`${m.table.name}_${m.tenantColumn}_${pk.columns.join('_')}`, 'key')
        const build = onlineUniqueIndex(model.catalog, m.table, name, identList([m.tenantColumn!, ...pk.columns]))
        // Ids the app chooses stay guessable across tenants until the key itself includes the tenant.
        const move = generated ? '' : m.table.partitioned
          ? `\n-- the app chooses these ids: move the primary key to (${m.tenantColumn}, ${pk.columns.join(', ')}) in a maintenance window (a partitioned table takes no key USING INDEX):\n-- ALTER TABLE ${tableSql(m.table)} DROP CONSTRAINT ${quoteIdent(pk.name)}, ADD PRIMARY KEY (${identList([m.tenantColumn!, ...pk.columns])});`
          : `\n-- the app chooses these ids: move the primary key onto it (foreign keys that reference ${quoteIdent(pk.name)} must move first):\nALTER TABLE ${tableSql(m.table)} DROP CONSTRAINT ${quoteIdent(pk.name)}, ADD CONSTRAINT ${quoteIdent(pk.name)} PRIMARY KEY USING INDEX ${quoteIdent(name)};`
        yield onConstraint(m, pk.name, `primary key ${quoteIdent(pk.name)} on ${display(m.table)} is (${pk.columns.join(', ')}) without "${m.tenantColumn}"`, `-- a unique (${m.tenantColumn}, ${pk.columns.join(', ')}) key for composite foreign keys${generated ? '; the primary key stays' : ''}:\n${build}${move}`)
      }
    },
  },
  {
    id: 'fk-not-tenant-scoped',
    severity: 'warn',
    category: 'keys and integrity',
    scope: 'table',
    summary: 'A foreign key between two tenant tables does not include the tenant column.',
    why: 'A row can reference another tenant\'s row (foreign key checks ignore row-level security), and the error a bad id raises tells whether it exists in another tenant.',
    fixHint: 'A composite foreign key (<tenant column>, parent_id) → parent(<tenant column>, id), added NOT VALID then VALIDATEd.',
    *check(model) {
      for (const m of direct(model)) {
        // A membership row points at a user who may belong to other tenants too: that is what it records.
        if (m.table.foreign || display(m.table) === model.membershipTable) continue
        for (const c of m.table.constraints) {
          if (c.type !== 'foreign key' || c.parentOid !== null) continue
          const parent = model.modelTable(c.references.table.oid)
          if (parent === undefined || parent.class !== 'direct' || parent.tenantColumn === null) continue
          if (tenantScoped(c, m.tenantColumn!, parent.tenantColumn)) continue
          const fks = m.table.constraints.filter((x): x is ForeignKeyConstraint => x.type === 'foreign key')
          if (scopedTwin(fks, c, m.tenantColumn!, parent.tenantColumn) !== undefined) continue
          const cols = [m.tenantColumn!, ...c.columns.filter((x) => x !== m.tenantColumn)]
          const refs = [parent.tenantColumn, ...c.references.columns.filter((_, i) => c.columns[i] !== m.tenantColumn)]
          yield onConstraint(m, c.name, `foreign key ${quoteIdent(c.name)} ${display(m.table)}(${c.columns.join(', ')}) → ${display(c.references.table)}(${c.references.columns.join(', ')}) can point at another tenant's row`, scopedTwinFix(model, m.table, c, cols, parent.table, refs, '-- fails on rows that point at another tenant\'s row: fix those rows first\n'))
        }
      }
    },
  },
  {
    id: 'fk-from-tenant-table-not-tenant-scoped',
    severity: 'warn',
    category: 'keys and integrity',
    scope: 'table',
    summary: 'A foreign key from the tenant table to a table with a tenant column does not pair the tenant\'s key with that tenant column.',
    why: 'A tenant can point at a row filed under another tenant (organization 2 → settings row of organization 1): the other tenant reads it directly, and whatever follows the reference reads it too. probe-data-misassigned-rows finds such rows that already exist.',
    fixHint: 'A composite foreign key (<tenant key>, ref) → table(<tenant column>, id), added NOT VALID then VALIDATEd.',
    *check(model) {
      const root = model.root
      const key = model.rootKey
      if (root === null || key === null) return
      const m = model.modelTable(root.oid)
      if (m === undefined || root.foreign) return
      for (const c of root.constraints) {
        if (c.type !== 'foreign key' || c.parentOid !== null) continue
        const target = model.modelTable(c.references.table.oid)
        if (target === undefined || target.class !== 'direct' || target.tenantColumn === null) continue
        if (tenantScoped(c, key, target.tenantColumn)) continue
        const fks = root.constraints.filter((x): x is ForeignKeyConstraint => x.type === 'foreign key')
        if (scopedTwin(fks, c, key, target.tenantColumn) !== undefined) continue
        const cols = [key, ...c.columns.filter((x) => x !== key)]
        const refs = [target.tenantColumn, ...c.references.columns.filter((_, i) => c.columns[i] !== key)]
        yield onConstraint(
          m,
          c.name,
          `foreign key ${quoteIdent(c.name)} ${display(root)}(${c.columns.join(', ')}) → ${display(c.references.table)}(${c.references.columns.join(', ')}) lets a tenant point at a row filed under another tenant`,
          scopedTwinFix(model, root, c, cols, target.table, refs, '-- fails on rows filed under another tenant (see probe-data-misassigned-rows): fix those rows first\n'),
        )
      }
    },
  },
  {
    id: 'fk-not-validated',
    severity: 'warn',
    category: 'keys and integrity',
    scope: 'table',
    summary: 'A foreign key of a tenant table was added NOT VALID and never validated.',
    why: 'Existing rows were never checked: rows that point at another tenant\'s (or a missing) parent may still be there.',
    fixHint: 'ALTER TABLE … VALIDATE CONSTRAINT (takes only a SHARE UPDATE EXCLUSIVE lock).',
    *check(model) {
      for (const m of model.tenantTables()) {
        for (const c of m.table.constraints) {
          if (c.type !== 'foreign key' || c.validated || c.parentOid !== null) continue
          yield onConstraint(m, c.name, `foreign key ${quoteIdent(c.name)} on ${display(m.table)} is NOT VALID: existing rows were never checked`, `ALTER TABLE ${tableSql(m.table)} VALIDATE CONSTRAINT ${quoteIdent(c.name)};`)
        }
      }
    },
  },
  {
    id: 'index-invalid',
    severity: 'warn',
    category: 'keys and integrity',
    scope: 'table',
    summary: 'A tenant table has an INVALID index (a failed CREATE INDEX CONCURRENTLY).',
    why: 'An invalid index is maintained on every write but never used; when it was meant to be a tenant-scoped unique index, the uniqueness it should guarantee is not enforced for reads of the planner.',
    fixHint: 'DROP INDEX CONCURRENTLY and build it again.',
    *check(model) {
      for (const m of model.tenantTables()) {
        for (const i of m.table.indexes) {
          if (i.valid || i.partitioned) continue
          yield onConstraint(m, i.name, `index ${quoteIdent(i.name)} on ${display(m.table)} is INVALID`, `DROP INDEX CONCURRENTLY ${tableSql({ schema: i.schema, name: i.name })};\n${i.definition.replace(/^CREATE (UNIQUE )?INDEX /, 'CREATE $1INDEX CONCURRENTLY ')};`, 'index')
        }
      }
    },
  },
]
