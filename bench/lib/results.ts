/**
 * The shape of a run's figures, as written to bench/results/*.json and read
 * by the report.
 */
import type { Machine } from "./machine.js"
import type { Summary } from "./stats.js"

export type Figures = Record<string, unknown>

export interface VariantResult {
  readonly impl: string
  /** What sets this variant apart within its case (workers, backlog, ...). */
  readonly params: Record<string, number>
  /** Each round's figures as the child (or the load generator) reported them. */
  readonly rounds: ReadonlyArray<Figures>
  /** Median and spread across rounds of each metric the report shows. */
  readonly summary: Record<string, Summary>
}

export interface CaseResult {
  readonly id: string
  readonly title: string
  readonly variants: ReadonlyArray<VariantResult>
}

export interface Target {
  readonly name: string
  readonly goal: string
  /** A ratio of two medians, or for an absolute target a median in `unit`. */
  readonly measured: number | undefined
  /** What `measured` is in; a ratio when absent. */
  readonly unit?: "ms"
  readonly met: boolean | undefined
}

export interface Settings {
  readonly rounds: number
  readonly throughput: {
    readonly tasks: number
    /** Tasks of the untimed warm-up run before the timed one, at most `tasks`. */
    readonly warmUp: number
    readonly workers: ReadonlyArray<number>
  }
  readonly memory: { readonly tasks: number }
  readonly latency: {
    readonly backlogs: ReadonlyArray<number>
    /** Untimed enqueues on the measured queue after its backlog, before the samples. */
    readonly warmUp: number
    readonly samples: number
  }
  readonly http: {
    readonly durationSeconds: number
    readonly warmupSeconds: number
    readonly connections: number
    readonly backlog: number
    readonly workers: number
  }
  readonly sqlite: {
    /** Enqueues timed one at a time, each its own commit. */
    readonly enqueueOne: number
    /** Enqueues timed in transactions of `batchSize`. */
    readonly enqueueBatch: number
    readonly batchSize: number
    /** Tasks in the file when processing starts. */
    readonly tasks: number
    readonly workers: number
    /** Idle enqueue-to-start samples, after a warm-up. */
    readonly samples: number
  }
}

export interface Results {
  readonly mode: "full" | "quick"
  readonly startedAt: string
  readonly durationSeconds: number
  readonly machine: Machine
  /** `os.loadavg()` (1, 5, 15 minutes) when the run started and ended: other work on the machine. */
  readonly loadAverage: {
    readonly start: ReadonlyArray<number>
    readonly end: ReadonlyArray<number>
  }
  readonly settings: Settings
  readonly cases: ReadonlyArray<CaseResult>
  /** Cases the suite has a place for but does not measure yet, with the reason. */
  readonly notMeasured: ReadonlyArray<{
    readonly id: string
    readonly title: string
    readonly reason: string
  }>
  readonly targets: ReadonlyArray<Target>
}

export const findVariant = (
  results: Pick<Results, "cases">,
  caseId: string,
  impl: string,
  params: Record<string, number> = {}
): VariantResult | undefined =>
  results.cases
    .find((c) => c.id === caseId)
    ?.variants.find(
      (v) => v.impl === impl && Object.entries(params).every(([k, n]) => v.params[k] === n)
    )

/** Ratio of two variants' medians of one metric; undefined when either is missing. */
export const medianRatio = (
  a: VariantResult | undefined,
  b: VariantResult | undefined,
  metric: string
): number | undefined => {
  const x = a?.summary[metric]?.median
  const y = b?.summary[metric]?.median
  return x === undefined || y === undefined || y === 0 ? undefined : x / y
}
