import { z } from 'zod'
import { ErrorCodes, TenantizeError } from '../errors.js'

/** `500ms`, `2s`, `1m`, or a bare number of milliseconds → milliseconds. */
export const duration = z
  .union([z.number(), z.string()])
  .transform((value, ctx) => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min)?\s*$/.exec(String(value))
    if (m === null) {
      ctx.addIssue({ code: 'custom', message: `"${String(value)}" is not a duration; use e.g. 500ms, 2s or 1m` })
      return z.NEVER
    }
    const n = Number(m[1])
    const unit = m[2] ?? 'ms'
    return Math.round(unit === 'ms' ? n : unit === 's' ? n * 1000 : n * 60_000)
  })

export const positiveInt = z.coerce.number().int('must be a whole number').positive('must be at least 1')

const kebab = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)

/**
 * Validate a command's options with its schema. Every problem is reported at once, each naming its flag.
 */
export function parseOptions<S extends z.ZodType>(schema: S, raw: unknown): z.output<S> {
  const result = schema.safeParse(raw)
  if (result.success) return result.data
  const problems = result.error.issues.map((issue) => {
    const key = issue.path.map(String).join('.')
    return { object: key === '' ? 'options' : `--${kebab(key)}`, message: issue.message }
  })
  throw new TenantizeError(ErrorCodes.USAGE, problems.length === 1 ? 'invalid option' : `${problems.length} invalid options`, { problems })
}
