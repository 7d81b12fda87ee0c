import type pg from 'pg'

/**
 * `COPY … FROM STDIN` and `COPY … TO STDOUT` through node-postgres without pg-copy-streams: a minimal
 * "submittable" (the interface pg-copy-streams itself implements) that sends the data in one chunk or
 * collects what the server sends.
 */

export interface CopyOutcome {
  /** The rows COPY reported (`COPY n`), or null on error. */
  readonly rowCount: number | null
  /** COPY TO: the data, as text. */
  readonly data: string
  /** The error PostgreSQL answered with, if any. */
  readonly error: (Error & { code?: string }) | null
}

interface Connection {
  query(text: string): void
  sendCopyFromChunk(chunk: Buffer): void
  endCopyFrom(): void
  sendCopyFail(message: string): void
}

class CopySubmittable {
  private error: (Error & { code?: string }) | null = null
  private readonly chunks: Buffer[] = []
  private rowCount: number | null = null

  constructor(
    private readonly text: string,
    private readonly input: string | null,
    private readonly done: (outcome: CopyOutcome) => void,
  ) {}

  submit(connection: Connection): void {
    connection.query(this.text)
  }

  handleCopyInResponse(connection: Connection): void {
    if (this.input === null) {
      connection.sendCopyFail('tenantize: no input')
      return
    }
    connection.sendCopyFromChunk(Buffer.from(this.input, 'utf8'))
    connection.endCopyFrom()
  }

  handleCopyData(msg: { chunk: Buffer }): void {
    this.chunks.push(msg.chunk)
  }

  handleCommandComplete(msg: { text?: string }): void {
    const m = /^COPY (\d+)/.exec(msg.text ?? '')
    if (m !== null) this.rowCount = Number(m[1])
  }

  /** node-postgres drops the active query on an error: the ReadyForQuery that follows never reaches it. */
  handleError(error: Error & { code?: string }): void {
    this.error = error
    this.finish()
  }

  handleReadyForQuery(): void {
    this.finish()
  }

  private finished = false

  private finish(): void {
    if (this.finished) return
    this.finished = true
    this.done({ rowCount: this.error === null ? this.rowCount : null, data: Buffer.concat(this.chunks).toString('utf8'), error: this.error })
  }

  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
}

/** Run one COPY statement; `input` is the COPY FROM data (text format, one line per row). Never throws for SQL errors. */
export function copy(client: pg.ClientBase, text: string, input: string | null = null): Promise<CopyOutcome> {
  return new Promise((resolve) => {
    const submittable = new CopySubmittable(text, input, resolve)
    ;(client as unknown as { query(s: CopySubmittable): void }).query(submittable)
  })
}
