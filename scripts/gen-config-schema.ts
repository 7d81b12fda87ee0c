/** `npm run docs:config`: write docs/config.schema.json (the config's JSON Schema, for editors) from the zod schema. */
import { writeFile } from 'node:fs/promises'
import { configJsonSchema } from '../src/plan/config.js'

await writeFile('docs/config.schema.json', `${JSON.stringify(configJsonSchema(), null, 2)}\n`)
console.log('docs/config.schema.json written')
