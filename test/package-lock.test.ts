import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'

// Issue #13 item 12: `npm install` on a fresh clone must leave package-lock.json as it is. npm rewrites the
// lock's root entry whenever it differs from package.json (as the peer dependency ranges once did), so the
// two are compared here, field by field, without running npm.

const FIELDS = ['name', 'version', 'license', 'dependencies', 'devDependencies', 'peerDependencies', 'peerDependenciesMeta', 'optionalDependencies', 'engines', 'bin'] as const

test('package-lock.json records package.json as it is: the root entry names the same dependencies, ranges, peers, engines and bin', async () => {
  const pkg = JSON.parse(await readFile('package.json', 'utf8')) as Record<string, unknown>
  const lock = JSON.parse(await readFile('package-lock.json', 'utf8')) as { name: string; version: string; lockfileVersion: number; packages: Record<string, Record<string, unknown>> }
  assert.equal(lock.lockfileVersion, 3)
  assert.deepEqual([lock.name, lock.version], [pkg['name'], pkg['version']])
  const root = lock.packages['']!
  for (const field of FIELDS) {
    // npm sorts the keys it writes: compare the contents, not their order.
    const sorted = (v: unknown): unknown => (v !== null && typeof v === 'object' ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v)
    assert.deepEqual(sorted(root[field]), sorted(pkg[field]), `package-lock.json packages[""].${field} differs from package.json: run npm install and commit both files`)
  }
  // Every dependency is locked (npm ci refuses a lock that lacks one).
  const direct = Object.keys({ ...(pkg['dependencies'] as object), ...(pkg['devDependencies'] as object) })
  assert.deepEqual(direct.filter((name) => lock.packages[`node_modules/${name}`] === undefined), [])
})
