// node:test reporter that counts leaf tests and writes `{ passed, failed, skipped, failures }` as JSON at the end.
// The test runner script prints the closing `N passed, N failed` line from it.
export default async function* summaryReporter(source) {
  let passed = 0
  let failed = 0
  let skipped = 0
  const failures = []
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue
    const data = event.data
    if (data.details?.type === 'suite') continue
    if (data.skip !== undefined || data.todo !== undefined) { skipped++; continue }
    if (event.type === 'test:pass') passed++
    else {
      failed++
      failures.push(`${data.file ?? ''} › ${data.name}`)
    }
  }
  yield JSON.stringify({ passed, failed, skipped, failures }) + '\n'
}
