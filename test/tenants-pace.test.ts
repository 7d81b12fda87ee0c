import { test } from 'node:test'
import assert from 'node:assert/strict'
import { lsnBytes, MIN_BATCH, pacer, WAL_PER_BATCH } from '../src/tenants/pace.js'

const at = (bytes: number): string => `${Math.floor(bytes / 2 ** 32).toString(16).toUpperCase()}/${(bytes % 2 ** 32).toString(16).toUpperCase()}`

test('lsnBytes reads the two hexadecimal halves of a WAL position', () => {
  assert.equal(lsnBytes('0/0'), 0)
  assert.equal(lsnBytes('16/B374D848'), 0x16 * 2 ** 32 + 0xb374d848)
  assert.equal(lsnBytes(at(123_456_789_012)), 123_456_789_012)
})

test('pacer: starts at 1,000 rows (or the configured size if smaller), grows at most twofold, up to the configured size', () => {
  const p = pacer(5000, at(0))
  assert.equal(p.size, 1000)
  p.done(1000, at(1000 * 100)) // 100 bytes a row: the budget would allow ~21,000
  assert.equal(p.size, 2000)
  p.done(2000, at(100_000 + 2000 * 100))
  assert.equal(p.size, 4000)
  p.done(4000, at(100_000 + 200_000 + 4000 * 100))
  assert.equal(p.size, 5000)
  assert.equal(pacer(300, at(0)).size, 300)
})

test('pacer: a batch that wrote more WAL than the budget (full-page images after a checkpoint) makes the next one smaller, never below the floor', () => {
  const p = pacer(5000, at(1_000_000))
  p.done(1000, at(1_000_000 + 8 * WAL_PER_BATCH)) // 8 × the budget
  assert.equal(p.size, 125)
  p.done(125, at(1_000_000 + 8 * WAL_PER_BATCH + 100 * WAL_PER_BATCH))
  assert.equal(p.size, MIN_BATCH)
  assert.equal(pacer(50, at(0)).size, 50, 'a configured size below the floor is kept')
  const q = pacer(50, at(0))
  q.done(50, at(100 * WAL_PER_BATCH))
  assert.equal(q.size, 50)
})

test('pacer: a batch that wrote no WAL (or a position that did not move) lets the size grow', () => {
  const p = pacer(5000, at(0))
  p.done(1000, at(0))
  assert.equal(p.size, 2000)
  p.done(0, at(0))
  assert.equal(p.size, 2000, 'an empty batch changes nothing')
})
