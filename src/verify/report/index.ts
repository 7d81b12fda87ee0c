import type { VerifyReport } from '../types.js'
import { renderHtml } from './html.js'
import { renderJunit } from './junit.js'
import { renderText } from './text.js'

export { renderHtml } from './html.js'
export { renderJunit } from './junit.js'
export { renderText, type TextOptions } from './text.js'
export { reportSchema, reportJsonSchema, findingSchema, probeCheckSchema } from './schema.js'

export type ReportFormat = 'text' | 'json' | 'junit' | 'html'
export const REPORT_FORMATS: readonly ReportFormat[] = Object.freeze(['text', 'json', 'junit', 'html'])

/** Render a report in one of the four formats. */
export function renderReport(report: VerifyReport, format: ReportFormat, options: { color?: boolean; failOn?: 'error' | 'warn' } = {}): string {
  switch (format) {
    case 'json':
      return `${JSON.stringify(report, null, 2)}\n`
    case 'junit':
      return renderJunit(report)
    case 'html':
      return renderHtml(report)
    case 'text':
      return renderText(report, { color: options.color ?? false, failOn: options.failOn ?? 'error' })
  }
}
