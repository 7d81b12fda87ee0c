/**
 * Regenerate docs/rules.md from the rule registries (src/verify/lints, src/verify/probe/registry.ts) and
 * the JSON Schema section of docs/verify.md from the report schema. test/verify-docs.test.ts fails when
 * either is out of date.
 *
 *   npx tsx scripts/gen-rules-docs.ts
 */
import { readFile, writeFile } from 'node:fs/promises'
import { rulesMarkdown, withReportSchema } from '../src/verify/rules-doc.js'

async function update(path: string, next: (current: string) => string): Promise<void> {
  const current = await readFile(path, 'utf8').catch(() => '')
  const text = next(current)
  if (text === current) console.log(`${path} is up to date`)
  else {
    await writeFile(path, text)
    console.log(`${path} updated`)
  }
}

await update('docs/rules.md', () => rulesMarkdown())
await update('docs/verify.md', withReportSchema)
