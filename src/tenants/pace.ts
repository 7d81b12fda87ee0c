import type pg from 'pg'

/**
 * Batch sizes for the lifecycle commands, bounded by the WAL a batch writes (issue #15).
 *
 * An app's commit flushes all the WAL written before its commit record, so it waits for as long as writing
 * and syncing a batch's WAL takes (`LWLock:WALWrite`, `IO:WALInitWrite`). How much WAL a batch of n rows
 * writes varies by far: after a checkpoint, the first change to each page writes the whole page (a
 * full-page image), so a batch spread over an index's leaf pages writes ten times what the same batch
 * writes a moment later. A fixed row count cannot bound that, so the size follows the WAL measured: each
 * batch statement returns `pg_current_wal_insert_lsn()` (read just before it too), and the next batch
 * gets the rows that would have written {@link WAL_PER_BATCH} at the last batch's bytes per row, never
 * more than the configured size, nor more than twice the last one; and the next batch waits as long as
 * keeps the WAL written per second under {@link WAL_PER_SECOND}. The position counts every session's WAL
 * written during the batch: when the server writes much WAL for others, batches shrink and waits grow,
 * but only by what others wrote while a batch ran (not during the waits), so the command goes on.
 */

/** WAL a batch should write at most, bytes. */
export const WAL_PER_BATCH = 1024 * 1024

/**
 * WAL the batches may write per second on average, bytes: after a batch, the command waits until its WAL
 * divided by the time since the last batch began is no more than this. Fast batches (the id map: 1 MB of
 * WAL in a few ms) otherwise wrote WAL faster than the WAL writer flushes it every 200 ms, and the app's
 * commits flushed it, and created the next WAL segments (`IO:WALInitWrite`), themselves.
 */
export const WAL_PER_SECOND = 8 * 1024 * 1024

/** Fewest rows per batch (below that, round trips cost more than the WAL they would spread). */
export const MIN_BATCH = 100

/** The server's WAL insert position now, read before each batch by {@link pacedBatch}. */
const WAL_POSITION = 'SELECT pg_catalog.pg_current_wal_insert_lsn()::text AS lsn'

/** PURE: a WAL position as `pg_current_wal_insert_lsn()::text` prints it (`16/B374D848`), in bytes. */
export function lsnBytes(lsn: string): number {
  const [hi, lo] = lsn.split('/')
  return parseInt(hi ?? '0', 16) * 2 ** 32 + parseInt(lo ?? '0', 16)
}

export interface Pacer {
  /** Rows for the next batch. */
  readonly size: number
  /**
   * Record a batch: `rows` done, the WAL position `from` just before its statement and `to` when it ended,
   * `ms` it took. Returns how long to wait before the next batch, ms, for {@link WAL_PER_SECOND}.
   */
  done(rows: number, from: string, to: string, ms: number): number
}

/**
 * PURE state machine: batch sizes between {@link MIN_BATCH} and `max`, the first `min(max, 1,000)`, each
 * next one scaled so the batch would write about `budget` bytes of WAL at the last batch's rate, and the
 * wait after each for `rate` bytes per second.
 */
export function pacer(max: number, budget = WAL_PER_BATCH, rate = WAL_PER_SECOND): Pacer {
  const ceiling = Math.max(1, Math.floor(max))
  const floor = Math.min(MIN_BATCH, ceiling)
  let size = Math.min(ceiling, 1000)
  return {
    get size() {
      return size
    },
    done(rows, from, to, ms) {
      const bytes = Math.max(0, lsnBytes(to) - lsnBytes(from))
      if (rows > 0) size = Math.round(Math.min(ceiling, 2 * size, Math.max(floor, budget / (Math.max(1, bytes) / rows))))
      return Math.round(Math.max(0, (bytes / rate) * 1000 - ms))
    },
  }
}

/**
 * One batch of a lifecycle command, paced: the WAL position is read just before `batch` runs; `batch` resolves to
 * its rows and the WAL position its statement returned once written; `pace` records both with the batch's time.
 * Resolves to the rows and how long to wait before the next batch, ms (at least `pauseMs`).
 */
export async function pacedBatch(client: Pick<pg.ClientBase, 'query'>, pace: Pacer, pauseMs: number, batch: () => Promise<{ rows: number; lsn: string }>): Promise<{ rows: number; waitMs: number }> {
  const from = (await client.query<{ lsn: string }>(WAL_POSITION)).rows[0]!.lsn
  const began = performance.now()
  const { rows, lsn } = await batch()
  return { rows, waitMs: Math.max(pauseMs, pace.done(rows, from, lsn, performance.now() - began)) }
}
