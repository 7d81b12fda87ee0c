import { quoteIdent } from '../../../sql/quote.js'
import { display, onTable, tableSql, type LintRule } from '../rule.js'

/** `pg_notify(` or a NOTIFY statement in a routine body. */
const NOTIFIES = /\bpg_notify\s*\(|(?:^|[\s;])NOTIFY\s+[A-Za-z_"]/i

export const notifyRules: readonly LintRule[] = [
  {
    id: 'trigger-notify-tenant-data',
    severity: 'warn',
    category: 'functions and triggers',
    scope: 'table',
    summary: 'A trigger on a tenant table sends NOTIFY (pg_notify).',
    why: 'Notifications bypass row-level security: any session may LISTEN on any channel, so every tenant\'s app session receives what one tenant\'s writes announce (ids, e-mails, whole rows).',
    fixHint: 'Announce outside the database per tenant, or notify only that something changed (no tenant data) and let listeners re-read through their own policies.',
    *check(model) {
      for (const m of model.tenantTables()) {
        for (const tg of m.table.triggers) {
          if (tg.parentOid !== null) continue
          const r = model.catalog.routineByOid(tg.function.oid)
          if (r === undefined || r.extension !== null || !NOTIFIES.test(r.body)) continue
          const trigger = `trigger ${quoteIdent(tg.name)} on ${display(m.table)}`
          yield {
            ...onTable(m.table, `${trigger} runs ${r.schema}.${r.name}(), which sends NOTIFY: every tenant's sessions may LISTEN to it`, `-- listeners of every tenant receive the payload; send none (or only a change marker), or drop the trigger:\nDROP TRIGGER ${quoteIdent(tg.name)} ON ${tableSql(m.table)};`),
            objectKind: 'trigger',
            object: trigger,
          }
        }
      }
    },
  },
]
