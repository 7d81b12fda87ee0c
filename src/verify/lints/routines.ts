import type { Catalog, Routine } from '../../catalog/types.js'
import { identifierOf, scanTokens, stringOf, type Token } from './sql-text.js'

/** What a function's body does, as far as its tokens tell (SQL and PL/pgSQL bodies only). */
export interface RoutineFacts {
  readonly routine: Routine
  /** Settings read with `current_setting('<name>' …)` in the body itself, lower-cased. */
  readonly settings: readonly string[]
  /** User routines the body calls (by name; every overload of that name). */
  readonly calls: readonly number[]
  /** Names the body mentions, for matching against tables: `[schema, name]` or `[null, name]`. */
  readonly names: readonly (readonly [string | null, string])[]
  /** false when the body could not be scanned (or is not SQL/PL/pgSQL): nothing is known about it. */
  readonly scanned: boolean
}

const SCANNED_LANGUAGES = new Set(['sql', 'plpgsql'])

function isOpen(token: Token | undefined): boolean {
  return token?.kind === 'ASCII_40'
}

function isDot(token: Token | undefined): boolean {
  return token?.text === '.'
}

/** Facts for every routine of the catalog, by oid. */
export function routineFacts(catalog: Catalog): Map<number, RoutineFacts> {
  const out = new Map<number, RoutineFacts>()
  for (const routine of catalog.routines) {
    const tokens = SCANNED_LANGUAGES.has(routine.language) ? scanTokens(routine.body) : null
    if (tokens === null) {
      out.set(routine.oid, { routine, settings: [], calls: [], names: [], scanned: false })
      continue
    }
    const settings = new Set<string>()
    const calls = new Set<number>()
    const seen = new Set<string>()
    const namesOut: (readonly [string | null, string])[] = []
    for (let i = 0; i < tokens.length; i++) {
      const id = identifierOf(tokens[i]!)
      if (id === null) continue
      const qualified = isDot(tokens[i + 1]) && tokens[i + 2] !== undefined ? identifierOf(tokens[i + 2]!) : null
      const schema = qualified === null ? null : id
      const name = qualified ?? id
      const after = qualified === null ? i + 1 : i + 3
      if (qualified !== null) i += 2
      const key = `${schema ?? ''}\u0000${name}`
      if (!seen.has(key)) {
        seen.add(key)
        namesOut.push([schema, name])
      }
      if (!isOpen(tokens[after])) continue
      if (name === 'current_setting' && (schema === null || schema === 'pg_catalog')) {
        const arg = tokens[after + 1]
        const setting = arg === undefined ? null : stringOf(arg)
        if (setting !== null) settings.add(setting.toLowerCase())
        continue
      }
      const candidates = schema === null ? catalog.routines.filter((r) => r.name === name) : catalog.routinesNamed(schema, name)
      for (const r of candidates) if (r.oid !== routine.oid) calls.add(r.oid)
    }
    out.set(routine.oid, { routine, settings: [...settings], calls: [...calls], names: namesOut, scanned: true })
  }
  return out
}

/** Every setting a routine reads, itself or through the routines it calls (cycles are fine). */
export function settingsReadBy(oid: number, facts: ReadonlyMap<number, RoutineFacts>): Set<string> {
  const out = new Set<string>()
  const seen = new Set<number>()
  const stack = [oid]
  while (stack.length > 0) {
    const next = stack.pop()!
    if (seen.has(next)) continue
    seen.add(next)
    const f = facts.get(next)
    if (f === undefined) continue
    for (const s of f.settings) out.add(s)
    stack.push(...f.calls)
  }
  return out
}

/** Whether a routine's body mentions the table `schema.name` (qualified, or by bare name). */
export function mentionsTable(facts: RoutineFacts, schema: string, name: string): boolean {
  return facts.names.some(([s, n]) => n === name && (s === null || s === schema))
}
