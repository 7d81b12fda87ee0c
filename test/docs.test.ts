import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { withReference } from '../src/cli/reference.js'
import { ErrorCodes } from '../src/errors.js'
import { configJsonSchema } from '../src/plan/config.js'

test('the README CLI reference matches --help (run npm run docs:cli after changing a command)', async () => {
  const readme = await readFile('README.md', 'utf8')
  assert.equal(withReference(readme), readme)
})

test('every error code is documented in docs/errors.md', async () => {
  const doc = await readFile('docs/errors.md', 'utf8')
  const missing = Object.values(ErrorCodes).filter((code) => !doc.includes(`\`${code}\``))
  assert.deepEqual(missing, [])
})

test('the README starts with the two commands a new user runs, then the test command', async () => {
  const readme = await readFile('README.md', 'utf8')
  const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!)
  assert.match(blocks[0]!, /^npm install .*\nnpx tenantize demo .*\n$/)
  assert.match(blocks[1]!, /^npm test /)
})

test('docs/config.schema.json is the config schema (run npm run docs:config after changing it)', async () => {
  assert.equal(await readFile('docs/config.schema.json', 'utf8'), `${JSON.stringify(configJsonSchema(), null, 2)}\n`)
})
