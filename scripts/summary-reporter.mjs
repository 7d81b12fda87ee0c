// node:test reporter that counts leaf tests and writes `{ passed, failed, skipped, failures }` as JSON at the end.
// The test runner script prints the closing `N passed, N failed` line from it.
export default async function* summaryReporter(source) {
  let passed = 0
  let failed = 0
  let skipped = 0
  const failures = []
  // The last lines each file wrote to stderr: when a whole file fails (its top level threw, the process
  // exited), that is where the reason is.
  const stderr = new Map()
  for await (const event of source) {
    if (event.type === 'test:stderr' && event.data.file !== undefined) {
      const lines = (stderr.get(event.data.file) ?? []).concat(String(event.data.message).split('\n').filter((l) => l.trim() !== ''))
      stderr.set(event.data.file, lines.slice(-6))
      continue
    }
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue
    const data = event.data
    if (data.details?.type === 'suite') continue
    if (data.skip !== undefined || data.todo !== undefined) { skipped++; continue }
    if (event.type === 'test:pass') passed++
    else {
      failed++
      // The first line of the error, and its cause's: a failure of a whole file (its top level, a hook, the
      // process exiting) has no subtest to point at, and CI shows only the end of the output.
      const error = data.details?.error
      const why = [error?.message, error?.cause?.message ?? (typeof error?.cause === 'string' ? error.cause : undefined)]
        .filter((m) => typeof m === 'string' && m.length > 0)
        .map((m) => m.split('\n')[0].slice(0, 300))
        .filter((m, i, all) => all.indexOf(m) === i)
      const wholeFile = data.file !== undefined && data.name === data.file
      const tail = wholeFile && stderr.has(data.file) ? `\n    its last lines on stderr:\n${stderr.get(data.file).map((l) => `    | ${l.slice(0, 300)}`).join('\n')}` : ''
      failures.push(`${data.file ?? ''} › ${data.name}${why.length > 0 ? ` — ${why.join(' — ')}` : ''}${tail}`)
    }
  }
  yield JSON.stringify({ passed, failed, skipped, failures }) + '\n'
}
