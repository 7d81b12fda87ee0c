/**
 * Batch sizes for the lifecycle commands, bounded by the WAL a batch writes (issue #15).
 *
 * An app's commit flushes all the WAL written before its commit record, so it waits for as long as writing
 * and syncing a batch's WAL takes (`LWLock:WALWrite`, `IO:WALInitWrite`). How much WAL a batch of n rows
 * writes varies by far: after a checkpoint, the first change to each page writes the whole page (a
 * full-page image), so a batch spread over an index's leaf pages writes ten times what the same batch
 * writes a moment later. A fixed row count cannot bound that, so the size follows the WAL measured: each
 * batch statement returns `pg_current_wal_insert_lsn()`, and the next batch gets the rows that would
 * have written {@link WAL_PER_BATCH} at the last batch's bytes per row, never more than the configured
 * size, nor more than twice the last one. The position counts every session's WAL: when the server writes
 * much WAL for others, batches shrink too, which is what the app's commits need.
 */

/** WAL a batch should write at most, bytes: half of the default wal_buffers' largest automatic size (16 MB). */
export const WAL_PER_BATCH = 2 * 1024 * 1024

/** Fewest rows per batch (below that, round trips cost more than the WAL they would spread). */
export const MIN_BATCH = 100

/** The server's WAL insert position now, for {@link pacer}. */
export const WAL_POSITION = 'SELECT pg_catalog.pg_current_wal_insert_lsn()::text AS lsn'

/** PURE: a WAL position as `pg_current_wal_insert_lsn()::text` prints it (`16/B374D848`), in bytes. */
export function lsnBytes(lsn: string): number {
  const [hi, lo] = lsn.split('/')
  return parseInt(hi ?? '0', 16) * 2 ** 32 + parseInt(lo ?? '0', 16)
}

export interface Pacer {
  /** Rows for the next batch. */
  readonly size: number
  /** Record a batch: `rows` done, WAL position `lsn` when its statement ended. */
  done(rows: number, lsn: string): void
}

/**
 * PURE state machine: batch sizes between {@link MIN_BATCH} and `max`, the first `min(max, 1,000)`, each
 * next one scaled so the batch would write about `budget` bytes of WAL at the last batch's rate. `start`:
 * the WAL position before the first batch.
 */
export function pacer(max: number, start: string, budget = WAL_PER_BATCH): Pacer {
  const ceiling = Math.max(1, Math.floor(max))
  const floor = Math.min(MIN_BATCH, ceiling)
  let size = Math.min(ceiling, 1000)
  let last = lsnBytes(start)
  return {
    get size() {
      return size
    },
    done(rows, lsn) {
      const at = lsnBytes(lsn)
      const bytes = at - last
      last = at
      if (rows <= 0) return
      const perRow = Math.max(1, bytes) / rows
      size = Math.round(Math.min(ceiling, 2 * size, Math.max(floor, budget / perRow)))
    },
  }
}
