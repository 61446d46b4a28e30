/**
 * Small statistics over the per-round figures: median and spread across
 * rounds, and nearest-rank percentiles over latency samples.
 */

export interface Summary {
  readonly median: number
  readonly min: number
  readonly max: number
  /** (max - min) / median: how far apart the rounds were, relative to the median. */
  readonly spread: number
  readonly values: ReadonlyArray<number>
}

const sorted = (values: ReadonlyArray<number>): Array<number> => [...values].sort((a, b) => a - b)

export const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return Number.NaN
  const s = sorted(values)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

export const summarize = (values: ReadonlyArray<number>): Summary => {
  const s = sorted(values)
  const med = median(s)
  const min = s[0] ?? Number.NaN
  const max = s[s.length - 1] ?? Number.NaN
  return { median: med, min, max, spread: med === 0 ? 0 : (max - min) / Math.abs(med), values }
}

/** Nearest-rank percentile (`p` in 0-100) of samples that are already sorted ascending. */
export const percentileOfSorted = (samples: ArrayLike<number>, p: number): number => {
  if (samples.length === 0) return Number.NaN
  const rank = Math.max(1, Math.ceil((p / 100) * samples.length))
  return samples[rank - 1]!
}
