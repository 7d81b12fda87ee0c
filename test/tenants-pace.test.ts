import { test } from 'node:test'
import assert from 'node:assert/strict'
import { lsnBytes, MIN_BATCH, pacer, WAL_PER_BATCH, WAL_PER_SECOND } from '../src/tenants/pace.js'

const at = (bytes: number): string => `${Math.floor(bytes / 2 ** 32).toString(16).toUpperCase()}/${(bytes % 2 ** 32).toString(16).toUpperCase()}`
const BASE = 7 * 2 ** 32 + 123

test('lsnBytes reads the two hexadecimal halves of a WAL position', () => {
  assert.equal(lsnBytes('0/0'), 0)
  assert.equal(lsnBytes('16/B374D848'), 0x16 * 2 ** 32 + 0xb374d848)
  assert.equal(lsnBytes(at(123_456_789_012)), 123_456_789_012)
})

test('pacer: starts at 1,000 rows (or the configured size if smaller), grows at most twofold, up to the configured size', () => {
  const p = pacer(5000)
  assert.equal(p.size, 1000)
  p.done(1000, at(BASE), at(BASE + 1000 * 100), 1000) // 100 bytes a row: the budget would allow ~10,000
  assert.equal(p.size, 2000)
  p.done(2000, at(BASE), at(BASE + 2000 * 100), 1000)
  assert.equal(p.size, 4000)
  p.done(4000, at(BASE), at(BASE + 4000 * 100), 1000)
  assert.equal(p.size, 5000)
  assert.equal(pacer(300).size, 300)
})

test('pacer: a batch that wrote more WAL than the budget (full-page images after a checkpoint) makes the next one smaller, never below the floor', () => {
  const p = pacer(5000)
  p.done(1000, at(BASE), at(BASE + 8 * WAL_PER_BATCH), 1000) // 8 × the budget
  assert.equal(p.size, 125)
  p.done(125, at(BASE), at(BASE + 100 * WAL_PER_BATCH), 1000)
  assert.equal(p.size, MIN_BATCH)
  assert.equal(pacer(50).size, 50, 'a configured size below the floor is kept')
  const q = pacer(50)
  q.done(50, at(0), at(100 * WAL_PER_BATCH), 1000)
  assert.equal(q.size, 50)
})

test('pacer: a batch that wrote no WAL lets the size grow; an empty batch changes nothing', () => {
  const p = pacer(5000)
  p.done(1000, at(BASE), at(BASE), 5)
  assert.equal(p.size, 2000)
  p.done(0, at(BASE), at(BASE), 5)
  assert.equal(p.size, 2000)
})

test('pacer: the wait after a batch keeps its WAL per second under the rate, counting the time the batch took', () => {
  const p = pacer(5000)
  assert.equal(p.done(1000, at(BASE), at(BASE + WAL_PER_SECOND), 0), 1000, 'a second’s worth of WAL written at once: wait a second')
  assert.equal(p.done(1000, at(BASE), at(BASE + WAL_PER_SECOND / 2), 200), 300)
  assert.equal(p.done(1000, at(BASE), at(BASE + WAL_PER_SECOND / 2), 800), 0, 'slower than the rate: no wait')
})
