/** `npm run docs:cli`: regenerate the CLI reference in README.md from the commander definitions. */
import { readFile, writeFile } from 'node:fs/promises'
import { withReference } from '../src/cli/reference.js'

const readme = await readFile('README.md', 'utf8')
const next = withReference(readme)
if (next === readme) console.log('README.md CLI reference is up to date')
else {
  await writeFile('README.md', next)
  console.log('README.md CLI reference updated')
}
