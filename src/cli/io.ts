/** Where a command writes; tests pass their own to capture output. */
export interface CliIO {
  /** `columns`: the terminal's width, when it is one (live progress lines are cut to fit). */
  readonly stdout: { write(text: string): unknown; readonly isTTY?: boolean; readonly columns?: number }
  readonly stderr: { write(text: string): unknown }
  readonly env: NodeJS.ProcessEnv
}

export const processIO: CliIO = { stdout: process.stdout, stderr: process.stderr, env: process.env }

export function line(out: { write(text: string): unknown }, text = ''): void {
  out.write(`${text}\n`)
}

/** Left-aligned columns two spaces apart, the header first; trailing spaces trimmed. */
export function table(head: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd())
}
