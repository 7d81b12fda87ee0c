import { runMutationPart } from './helpers/verify-mutations.js'

// The mutation suite, part 3 of 3 (see test/helpers/verify-mutations.ts).
await runMutationPart(import.meta.url, 2, 3)
