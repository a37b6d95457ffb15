/** Summaries of repeated measurements: the median is the figure, min–max shows the spread. */
export interface Sample {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly values: readonly number[]
}

export function summarize(values: readonly number[]): Sample | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((x, y) => x - y)
  const mid = Math.floor(sorted.length / 2)
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
  return { median, min: sorted[0]!, max: sorted.at(-1)!, values }
}

/** Percentile of unsorted latencies (nearest rank). */
export function percentile(values: Float64Array | readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = Float64Array.from(values).sort()
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]!
}

export function ratio(a: Sample | null, b: Sample | null): number | null {
  if (!a || !b || b.median === 0) return null
  return a.median / b.median
}
