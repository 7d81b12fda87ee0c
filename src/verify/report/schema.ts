import { z } from 'zod'

/**
 * The JSON report's schema, version 1 (`"kind": "tenantize.verify", "schemaVersion": 1`). Additive
 * changes (new optional fields, new rule ids) keep the version; anything that renames, removes or
 * changes the meaning of a field bumps it. docs/verify.md shows the JSON Schema generated from this.
 */

const severity = z.enum(['error', 'warn', 'info']).describe('error breaks isolation, warn weakens it or is slow, info is worth knowing')
const inference = z.enum(['option', 'policies', 'names', 'foreign keys', 'grants', 'default', 'none']).describe('where the value came from')
const status = z.enum(['pass', 'fail', 'skip', 'error'])

export const findingSchema = z
  .object({
    rule: z.string().describe('stable rule id, documented in docs/rules.md'),
    severity,
    source: z.enum(['lint', 'probe', 'pooler']),
    objectKind: z.enum(['table', 'view', 'materialized view', 'foreign table', 'policy', 'role', 'schema', 'function', 'trigger', 'sequence', 'constraint', 'index', 'column', 'server', 'pooler']),
    object: z.string().describe('the object as SQL names it'),
    table: z.string().nullable().describe('schema.name of the table the finding belongs to'),
    message: z.string(),
    why: z.string(),
    fix: z.string().describe('SQL; lines starting with -- explain what SQL cannot say'),
    docs: z.string(),
  })
  .strict()

export const probeCheckSchema = z
  .object({
    table: z.string().describe('schema.name of the table or view'),
    check: z.string().describe('check id, documented in docs/rules.md (as probe-<check>)'),
    status,
    detail: z.string(),
    sqlstate: z.string().nullable(),
  })
  .strict()

const observation = z.object({ status, detail: z.string() }).strict()

export const reportSchema = z
  .object({
    kind: z.literal('tenantize.verify'),
    schemaVersion: z.literal(1),
    tool: z.object({ name: z.literal('tenantize'), version: z.string() }).strict(),
    generatedAt: z.string().describe('ISO 8601'),
    database: z.object({ name: z.string(), serverVersion: z.string(), serverVersionNum: z.number().int() }).strict(),
    model: z
      .object({
        tenantColumn: z.string().nullable(),
        tenantColumnSource: inference,
        setting: z.string(),
        settingSource: inference,
        appRole: z.string().nullable(),
        appRoleSource: inference,
        rootTable: z.string().nullable(),
        rootSource: inference,
        tables: z.array(
          z
            .object({
              table: z.string(),
              class: z.enum(['root', 'direct', 'child', 'policy', 'global']),
              tenantColumn: z.string().nullable(),
              via: z.string().nullable(),
            })
            .strict(),
        ),
        notes: z.array(z.string()),
      })
      .strict(),
    findings: z.array(findingSchema),
    accepted: z
      .array(
        z
          .object({
            rule: z.string(),
            severity: z.enum(['error', 'warn', 'info']).describe('the severity the finding would have had'),
            object: z.string(),
            table: z.string().nullable(),
            message: z.string(),
            reason: z.string().describe('why the risk is accepted, from the config'),
            source: z.string().describe('verify.accept, or tables["schema.table"].sharedReferences'),
          })
          .strict(),
      )
      .describe('findings the config accepts as known risks; they do not count towards the exit code'),
    probe: z
      .object({
        sessionUser: z.string(),
        appRole: z.string(),
        setting: z.string(),
        rolledBack: z.boolean(),
        seeded: z.array(z.object({ table: z.string(), rows: z.number().int(), error: z.string().nullable() }).strict()),
        unprobed: z
          .array(z.object({ table: z.string().describe('schema.name'), reason: z.string().describe("the seeder's failing statement (SQLSTATE: message), or which tenant's rows are missing") }).strict())
          .describe('tenant tables without a probe row of each tenant: their isolation was not proven (finding probe-unprobed)'),
        checks: z.array(probeCheckSchema),
      })
      .strict()
      .nullable()
      .describe('null with --no-probe'),
    pooler: z
      .object({
        url: z.string(),
        setting: z.string(),
        sessionScope: observation,
        transactionScope: observation,
        backends: z.array(z.number().int()),
        cleaned: z.boolean(),
      })
      .strict()
      .nullable()
      .describe('null without --pooler-url'),
    rules: z.array(z.object({ id: z.string(), severity, scope: z.enum(['table', 'database']) }).strict()),
    summary: z
      .object({
        error: z.number().int(),
        warn: z.number().int(),
        info: z.number().int(),
        checks: z.object({ pass: z.number().int(), fail: z.number().int(), skip: z.number().int(), error: z.number().int() }).strict(),
        unprobed: z.number().int().describe('tenant tables the probe could not probe (probe.unprobed)'),
      })
      .strict(),
  })
  .strict()

/** The JSON Schema (draft 2020-12) of the report, as docs/verify.md shows it. */
export function reportJsonSchema(): Record<string, unknown> {
  return { title: 'tenantize verify report, version 1', ...z.toJSONSchema(reportSchema) }
}
