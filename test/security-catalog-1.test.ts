import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { LINT_RULES, POOLER_CHECKS, PROBE_CHECKS, PROBE_META } from '../src/verify/index.js'
import { ACCESS_CLASSES } from './fixtures/security/classes-access.js'
import { CHANNEL_CLASSES, SERVER_CLASS } from './fixtures/security/classes-channels.js'
import { OBJECT_CLASSES } from './fixtures/security/classes-objects.js'
import { runSecurityClasses } from './fixtures/security/run.js'

// docs/security.md, part 1 of 3: row-level security off or around, roles, and policies that admit other tenants.
await runSecurityClasses(import.meta.url, ACCESS_CLASSES)

interface Row { readonly name: string; readonly verify: string[]; readonly blocked: string }

/** The rows of docs/security.md's table: class, the rule ids of its verify column, yes/no/n/a of its apply column. */
async function documentedClasses(): Promise<Row[]> {
  const text = await readFile(new URL('../docs/security.md', import.meta.url), 'utf8')
  return text.split('\n').filter((line) => /^\| \d+ \|/.test(line)).map((line) => {
    const cells = line.split(' | ').map((c) => c.trim())
    const verifyCell = cells[2] ?? ''
    return {
      name: cells[1] ?? '',
      verify: verifyCell.startsWith('not detected') ? [] : [...verifyCell.matchAll(/`([a-z][a-z0-9-]+)`/g)].map((m) => m[1]!),
      blocked: /^(yes|no|n\/a)\b/.exec(cells[3] ?? '')?.[1] ?? '?',
    }
  })
}

test('docs/security.md lists every class once, each with a test of its name and the verify and apply results the test proves', async () => {
  const rows = await documentedClasses()
  const tested = [...ACCESS_CLASSES, ...OBJECT_CLASSES, ...CHANNEL_CLASSES].map((c) => ({ name: c.name, verify: [...c.verify], blocked: c.blocked ? 'yes' : 'no' }))
  tested.push({ name: SERVER_CLASS.name, verify: [...SERVER_CLASS.verify], blocked: SERVER_CLASS.blocked })
  assert.ok(rows.length >= 25, `only ${rows.length} classes`)
  assert.equal(new Set(rows.map((r) => r.name)).size, rows.length, 'a class is listed twice')
  assert.deepEqual(rows.map((r) => r.name).sort(), tested.map((c) => c.name).sort(), 'the table and the tests name the same classes')
  const byName = new Map(tested.map((c) => [c.name, c]))
  for (const row of rows) {
    const c = byName.get(row.name)!
    assert.deepEqual(row.verify.sort(), [...c.verify].sort(), `${row.name}: verify column`)
    assert.equal(row.blocked, c.blocked, `${row.name}: apply column`)
  }
  const ids = new Set([...LINT_RULES.map((r) => r.id), ...PROBE_CHECKS.map((c) => `probe-${c.id}`), ...PROBE_META.map((c) => c.id), ...POOLER_CHECKS.map((c) => `pooler-${c.id}`)])
  assert.deepEqual(rows.flatMap((r) => r.verify).filter((id) => !ids.has(id)), [], 'every id in the table is a rule verify reports')
  const summary = `**${rows.length} classes · ${rows.filter((r) => r.verify.length > 0).length} detected by verify · ${rows.filter((r) => r.blocked === 'yes').length} blocked by the generated setup · ${rows.filter((r) => r.verify.length === 0).length} not detected (gaps, below).**`
  assert.ok((await readFile(new URL('../docs/security.md', import.meta.url), 'utf8')).includes(summary), `the summary line reads ${summary}`)
})
