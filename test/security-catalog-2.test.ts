import { OBJECT_CLASSES } from './fixtures/security/classes-objects.js'
import { runSecurityClasses } from './fixtures/security/run.js'

// docs/security.md, part 2 of 3: views, functions, triggers, rules, privileges, keys and sequences.
await runSecurityClasses(import.meta.url, OBJECT_CLASSES)
