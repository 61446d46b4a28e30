/**
 * Renders a run's figures as Markdown: BENCHMARKS.md after a full run, the
 * console after a quick one. Every number comes from the results object.
 */
import { method } from "./method.js"
import type { Results, Target, VariantResult } from "./lib/results.js"
import { findVariant, medianRatio } from "./lib/results.js"
import type { Summary } from "./lib/stats.js"

const NAMES: Record<string, string> = {
  "task-queue": "effect-task-queue",
  "p-queue": "p-queue",
  "p-queue-records": "p-queue + status map",
  fastq: "fastq.promise",
  "effect-loop": "bare Effect loop",
  bare: "bare HttpApi route",
  raw: "raw better-sqlite3, own table",
  "raw-table": "raw better-sqlite3, library's table"
}

const nameOf = (impl: string) => NAMES[impl] ?? impl

const num = (x: number, digits = 0) =>
  x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })

const ratio = (x: number | undefined) => (x === undefined ? "–" : `${x.toFixed(2)}×`)

const range = (s: Summary | undefined, digits = 0) =>
  s === undefined ? "–" : `${num(s.min, digits)}–${num(s.max, digits)}`

const spread = (s: Summary | undefined) =>
  s === undefined ? "–" : `${(s.spread * 100).toFixed(0)}%`

const median = (v: VariantResult | undefined, metric: string, digits = 0) => {
  const s = v?.summary[metric]
  return s === undefined ? "–" : num(s.median, digits)
}

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>) =>
  [
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...rows.map((row) => `| ${row.join(" | ")} |`)
  ].join("\n")

const variantsOf = (results: Results, id: string) =>
  results.cases.find((c) => c.id === id)?.variants ?? []

const throughputTable = (results: Results) =>
  table(
    [
      "maxWorkers",
      "implementation",
      "tasks/s (median)",
      "min–max",
      "spread",
      "vs p-queue",
      "vs bare Effect loop"
    ],
    variantsOf(results, "throughput").map((v) => {
      const workers = { workers: v.params["workers"]! }
      const pQueue = findVariant(results, "throughput", "p-queue", workers)
      const loop = findVariant(results, "throughput", "effect-loop", workers)
      return [
        String(workers.workers),
        nameOf(v.impl),
        median(v, "tasksPerSec"),
        range(v.summary["tasksPerSec"]),
        spread(v.summary["tasksPerSec"]),
        ratio(medianRatio(v, pQueue, "tasksPerSec")),
        ratio(medianRatio(v, loop, "tasksPerSec"))
      ]
    })
  )

const memoryTable = (results: Results) => {
  const pQueue = findVariant(results, "memory", "p-queue")
  return table(
    [
      "implementation",
      "heap bytes/task (median)",
      "min–max",
      "spread",
      "RSS bytes/task (median)",
      "min–max",
      "heap vs p-queue"
    ],
    variantsOf(results, "memory").map((v) => [
      nameOf(v.impl),
      median(v, "heapBytesPerTask"),
      range(v.summary["heapBytesPerTask"]),
      spread(v.summary["heapBytesPerTask"]),
      median(v, "rssBytesPerTask"),
      range(v.summary["rssBytesPerTask"]),
      ratio(medianRatio(v, pQueue, "heapBytesPerTask"))
    ])
  )
}

const latencyTable = (results: Results) => {
  const empty = findVariant(results, "latency", "task-queue", { backlog: 0 })
  return table(
    [
      "backlog",
      "p50 µs (median)",
      "min–max",
      "p99 µs (median)",
      "min–max",
      "p99 spread",
      "p99 vs backlog 0"
    ],
    variantsOf(results, "latency").map((v) => [
      num(v.params["backlog"]!),
      median(v, "p50us", 1),
      range(v.summary["p50us"], 1),
      median(v, "p99us", 1),
      range(v.summary["p99us"], 1),
      spread(v.summary["p99us"]),
      ratio(medianRatio(v, empty, "p99us"))
    ])
  )
}

const httpTable = (results: Results) => {
  const bare = findVariant(results, "http", "bare")
  return table(
    [
      "route",
      "requests/s (median)",
      "min–max",
      "spread",
      "p50 ms",
      "p99 ms (median)",
      "min–max",
      "req/s vs bare",
      "p99 vs bare"
    ],
    variantsOf(results, "http").map((v) => [
      v.impl === "task-queue" ? "effect-task-queue `POST /v0/scrapes`" : nameOf(v.impl),
      median(v, "requestsPerSec"),
      range(v.summary["requestsPerSec"]),
      spread(v.summary["requestsPerSec"]),
      median(v, "p50ms", 1),
      median(v, "p99ms", 1),
      range(v.summary["p99ms"], 1),
      ratio(medianRatio(v, bare, "requestsPerSec")),
      ratio(medianRatio(v, bare, "p99ms"))
    ])
  )
}

/**
 * The durable store's figures, one row each: this library, the raw queue on
 * the library's table and the raw queue on its own minimal table, side by side.
 */
const sqliteRows = (batchSize: number) =>
  [
    ["enqueue, one per commit (tasks/s)", "enqueueOnePerSec", 0],
    [`enqueue, ${batchSize} per commit (tasks/s)`, "enqueueBatchPerSec", 0],
    ["processing (tasks/s)", "processPerSec", 0],
    ["idle enqueue-to-start p50 (µs)", "p50us", 1],
    ["idle enqueue-to-start p99 (µs)", "p99us", 1]
  ] as const

const sqliteTable = (results: Results) => {
  const ours = findVariant(results, "sqlite", "task-queue")
  const onTable = findVariant(results, "sqlite", "raw-table")
  const raw = findVariant(results, "sqlite", "raw")
  if (ours === undefined && onTable === undefined && raw === undefined) {
    return "Not measured in this run."
  }
  const group = (v: VariantResult | undefined, metric: string, digits: number) => [
    median(v, metric, digits),
    range(v?.summary[metric], digits),
    spread(v?.summary[metric])
  ]
  return table(
    [
      "figure",
      `${nameOf("task-queue")} (median)`,
      "min–max",
      "spread",
      `${nameOf("raw-table")} (median)`,
      "min–max",
      "spread",
      `${nameOf("raw")} (median)`,
      "min–max",
      "spread",
      "library ÷ raw (own table)",
      "library ÷ raw (library's table)",
      "raw (library's table) ÷ raw (own table)"
    ],
    sqliteRows(results.settings.sqlite.batchSize).map(([label, metric, digits]) => [
      label,
      ...group(ours, metric, digits),
      ...group(onTable, metric, digits),
      ...group(raw, metric, digits),
      ratio(medianRatio(ours, raw, metric)),
      ratio(medianRatio(ours, onTable, metric)),
      ratio(medianRatio(onTable, raw, metric))
    ])
  )
}

/** Unprofiled processing time per task of `impl`: 1 / its median tasks/s, in µs. */
const unprofiledUs = (results: Results, impl: string) => {
  const perSec = findVariant(results, "sqlite", impl)?.summary["processPerSec"]?.median
  return perSec === undefined ? undefined : 1e6 / perSec
}

/** Unprofiled processing time per task and how the gap to the raw queue splits. */
const sqliteGap = (results: Results) => {
  const [ours, onTable, raw] = [
    unprofiledUs(results, "task-queue"),
    unprofiledUs(results, "raw-table"),
    unprofiledUs(results, "raw")
  ]
  if (ours === undefined || onTable === undefined || raw === undefined) return ""
  return (
    " In processing, without a profiler, the median tasks/s come to " +
    `${ours.toFixed(1)} µs per task for this library, ${onTable.toFixed(1)} µs for the raw ` +
    `queue on the library's table and ${raw.toFixed(1)} µs for the raw queue on its own ` +
    `table: of the library's ${(ours - raw).toFixed(1)} µs more than the raw queue on its ` +
    `own table, ${(onTable - raw).toFixed(1)} µs come with the library's table and ` +
    `statements and ${(ours - onTable).toFixed(1)} µs with the rest of the library.`
  )
}

/** `x` µs as more or less than something else. */
const moreOrLess = (x: number) => `${Math.abs(x).toFixed(1)} µs ${x < 0 ? "less" : "more"}`

/**
 * The library's profiled time per task split in two: the SQLite work its
 * table and statements need anyway (what the raw queue on the library's
 * table spends in SQLite), and the rest. Profiled figures only.
 */
const profileGap = (
  ours: (metric: string) => number,
  onTable: (metric: string) => number,
  raw: (metric: string) => number
) => {
  const total = ours("usPerTask")
  const needed = onTable("sqliteUs")
  const outside = total - ours("sqliteUs")
  return (
    `\n\nIn the profiled runs (all figures from here on are profiled µs), of the library's ` +
    `${total.toFixed(1)} µs per task, ${needed.toFixed(1)} µs ` +
    `(${((needed / total) * 100).toFixed(0)}%) is SQLite work its table and statements need ` +
    "anyway: that is what the raw queue spends in SQLite running the library's statements on " +
    `the library's table, against ${raw("sqliteUs").toFixed(1)} µs on its own minimal table, ` +
    `so the table's columns and indexes (the list, running, retention and idempotency-key ` +
    `indexes besides the claim's) and the statements' extra work cost ` +
    `${moreOrLess(needed - raw("sqliteUs"))} per task. The rest, ` +
    `${(total - needed).toFixed(1)} µs (${(((total - needed) / total) * 100).toFixed(0)}%), ` +
    `is the library's own: ${moreOrLess(ours("sqliteUs") - needed)} in SQLite than the raw ` +
    "queue on the library's table (this includes @effect/sql-sqlite-node's JavaScript around " +
    "each statement, its prepared-statement cache among it, which the profile counts as " +
    `SQLite), and ${outside.toFixed(1)} µs outside SQLite against the raw queue's ` +
    `${(onTable("usPerTask") - needed).toFixed(1)} µs on the same table: ` +
    `${ours("effectUs").toFixed(1)} µs in Effect's runtime (the feeder's step, the workers ` +
    "waking for each claimed task, the handler's fiber work), " +
    `${ours("sqlUs").toFixed(1)} µs in \`@effect/sql\` (the feeder takes its connection with ` +
    "`sql.reserve` and runs BEGIN, its statements and COMMIT on that connection itself), " +
    `${ours("libraryUs").toFixed(1)} µs in the library's own code and ` +
    `${ours("gcUs").toFixed(1)} µs collecting garbage.`
  )
}

/**
 * What every profile table needs said: profiling slows the run, so its µs per
 * task are above the unprofiled ones (given where the run has them), and each
 * column is a median of its own.
 */
const profileNotes = (
  rows: ReadonlyArray<readonly [name: string, profiled: number, unprofiled: number | undefined]>,
  digits = 1
) => {
  const known = rows.filter((row): row is readonly [string, number, number] => row[2] !== undefined)
  const compared =
    known.length === 0
      ? ""
      : ` (here ${known
          .map(
            ([name, profiled, unprofiled]) =>
              `${profiled.toFixed(digits)} µs against ${unprofiled.toFixed(digits)} µs for ${name}`
          )
          .join(", ")})`
  return (
    "Profiling slows the run, so the µs/task of a profiled run is above the µs per task of the " +
    `unprofiled runs, 1 / their median tasks/s${compared}; the two kinds are not mixed below. ` +
    "Each column is its own median across rounds, so a row's parts need not add up exactly " +
    "to its µs/task."
  )
}

/** Case 5's processing with a CPU profile: microseconds per task by where they went. */
const sqliteProfileTable = (results: Results) => {
  const variants = variantsOf(results, "sqlite-profile")
  if (variants.length === 0) return "Not measured in this run."
  const us = (v: (typeof variants)[number], metric: string) => v.summary[metric]?.median ?? 0
  const metrics = ["usPerTask", "sqliteUs", "sqlUs", "effectUs", "libraryUs", "gcUs", "otherUs"]
  const rows = variants.map((v) => [nameOf(v.impl), ...metrics.map((m) => us(v, m).toFixed(1))])
  const ours = variants.find((v) => v.impl === "task-queue")
  const onTable = variants.find((v) => v.impl === "raw-table")
  const raw = variants.find((v) => v.impl === "raw")
  const gap =
    ours === undefined || onTable === undefined || raw === undefined
      ? ""
      : profileGap(
          (metric) => us(ours, metric),
          (metric) => us(onTable, metric),
          (metric) => us(raw, metric)
        )
  return (
    table(
      [
        "implementation",
        "µs/task",
        "SQLite",
        "@effect/sql",
        "Effect runtime",
        "library (src/)",
        "GC",
        "other"
      ],
      rows
    ) +
    "\n\nThe profile (V8's sampler at 100 µs, through `node:inspector`) covers only the " +
    "processing stretch; SQLite's native time is counted where the driver calls into it. " +
    profileNotes(
      variants.map((v) => [nameOf(v.impl), us(v, "usPerTask"), unprofiledUs(results, v.impl)])
    ) +
    gap
  )
}

const measuredOf = (t: Target) =>
  t.measured === undefined
    ? "not measured"
    : t.unit === "ms"
      ? `${num(t.measured, 2)} ms`
      : ratio(t.measured)

const targetsTable = (targets: ReadonlyArray<Target>) =>
  table(
    ["target", "goal", "measured", "met"],
    targets.map((t) => [
      t.name,
      t.goal,
      measuredOf(t),
      t.met === undefined ? "–" : t.met ? "met" : "not met"
    ])
  )

const load = (averages: ReadonlyArray<number>) => averages.map((x) => x.toFixed(2)).join(" / ")

const machineTable = (results: Results) => {
  const m = results.machine
  const lib =
    `${m.library.version} at ${m.library.commit}` +
    (m.library.srcDirty ? " (src/ had uncommitted changes)" : "")
  return table(
    ["", ""],
    [
      ["date", results.startedAt],
      [
        "mode",
        `${results.mode}, ${results.settings.rounds} rounds, ${num(results.durationSeconds)} s in all`
      ],
      ["CPU", m.cpuModel],
      ["cores", String(m.cores)],
      ["memory", `${m.memoryGiB.toFixed(1)} GiB`],
      ["OS", m.os],
      ["Node", m.node],
      [
        "load average (1 / 5 / 15 min)",
        `at start ${load(results.loadAverage.start)}, at end ${load(results.loadAverage.end)}`
      ],
      ["effect-task-queue", lib],
      ...Object.entries(m.packages).map(([name, version]) => [name, version])
    ]
  )
}

const PROFILED = {
  "task-queue": "effect-task-queue",
  "effect-loop": "bare Effect loop"
} as const

/** Case 1 at maxWorkers 8 again, with a CPU profile: microseconds per task by where they went. */
const profileTable = (results: Results) => {
  const variants = variantsOf(results, "profile")
  if (variants.length === 0) return "Not measured in this run."
  const us = (v: (typeof variants)[number], metric: string) => v.summary[metric]?.median ?? 0
  const rows = variants.map((v) => [
    PROFILED[v.impl as keyof typeof PROFILED] ?? v.impl,
    us(v, "usPerTask").toFixed(2),
    us(v, "gcUs").toFixed(2),
    us(v, "effectUs").toFixed(2),
    us(v, "libraryUs").toFixed(2),
    us(v, "otherUs").toFixed(2)
  ])
  const [queue, loop] = [
    variants.find((v) => v.impl === "task-queue"),
    variants.find((v) => v.impl === "effect-loop")
  ]
  const gap =
    queue === undefined || loop === undefined
      ? ""
      : "\n\nPer task the queue spends " +
        `${(us(queue, "usPerTask") - us(loop, "usPerTask")).toFixed(2)} µs more than the bare loop: ` +
        `${(us(queue, "gcUs") - us(loop, "gcUs")).toFixed(2)} µs more collecting garbage (the task ` +
        "records stay alive until the run ends, so they are copied out of the young generation), " +
        `${(us(queue, "effectUs") - us(loop, "effectUs")).toFixed(2)} µs more in Effect's runtime (the ` +
        "interruptible region and exit handling around each handler, the log annotations and " +
        "FiberRefs set for each task, taking the next token), and " +
        `${us(queue, "libraryUs").toFixed(2)} µs in the library's own code (ids, the record, the ` +
        "index, retention, the end-of-task checks)."
  const unprofiled = (impl: string) => {
    const workers = { workers: 8 }
    const perSec = findVariant(results, "throughput", impl, workers)?.summary["tasksPerSec"]?.median
    return perSec === undefined ? undefined : 1e6 / perSec
  }
  return (
    table(["implementation", "µs/task", "GC", "Effect runtime", "library (src/)", "other"], rows) +
    "\n\nThe profile (V8's sampler at 100 µs, through `node:inspector`) covers only the timed " +
    "stretch of the timed run (not its warm-up). " +
    profileNotes(
      variants.map((v) => [
        PROFILED[v.impl as keyof typeof PROFILED] ?? v.impl,
        us(v, "usPerTask"),
        unprofiled(v.impl)
      ]),
      2
    ) +
    gap
  )
}

export interface RenderOptions {
  /** Whether the run wrote its figures to bench/results/ (a `--case` run writes nothing). */
  readonly written: boolean
}

export const renderMarkdown = (results: Results, options: RenderOptions): string => {
  const s = results.settings
  const saved = options.written
    ? `The same figures are in \`bench/results/${results.mode === "full" ? "latest" : "quick"}.json\`. `
    : "Only the cases named with `--case` ran, and no file was written. "
  const sections = [
    "# Benchmarks",
    "Written by `npm run bench` (bench/run.ts) from the measurements of one run; do not edit by hand. " +
      saved +
      "Medians across rounds; " +
      "min–max is the lowest and highest round; spread is (max − min) / median. " +
      "Ratios are ratios of medians.",
    "## Machine",
    machineTable(results),
    "## Targets",
    targetsTable(results.targets),
    `## 1. Throughput: ${num(s.throughput.tasks)} no-op tasks`,
    throughputTable(results),
    "### Where the time goes",
    profileTable(results),
    `## 2. Memory: ${num(s.memory.tasks)} tasks waiting`,
    memoryTable(results),
    `## 3. Enqueue latency against backlog: ${num(s.latency.samples)} samples`,
    latencyTable(results),
    "Backlog is the number of tasks waiting before the untimed warm-up on the measured queue " +
      `(${num(s.latency.warmUp)} enqueues, the same for every size), so the sampled enqueues ` +
      `find backlog + ${num(s.latency.warmUp)} to backlog + ` +
      `${num(s.latency.warmUp + s.latency.samples)} tasks waiting; see the Method section.`,
    `## 4. HTTP enqueue: ${s.http.connections} connections, ${s.http.durationSeconds} s`,
    httpTable(results),
    `## 5. Durable SQLite store: ${num(s.sqlite.tasks)} tasks at maxWorkers ${s.sqlite.workers}`,
    sqliteTable(results),
    "The ratio columns divide medians: above 1, the first of the two is faster for tasks/s " +
      "and slower for latencies. " +
      "Raw better-sqlite3, library's table runs the raw queue's machinery on the library's " +
      "`tasks` table with the library's statements; raw better-sqlite3, own table runs it on " +
      "a minimal table of its own. So library ÷ raw (own table), the whole gap, is the " +
      "product of raw (library's table) ÷ raw (own table) (what the library's table and " +
      "statements cost in SQLite) and library ÷ raw (library's table) (what the rest of the " +
      "library costs: Effect's runtime, `@effect/sql`, its own code)." +
      sqliteGap(results),
    "### Where the processing time goes",
    sqliteProfileTable(results),
    ...results.notMeasured.flatMap((c) => [`## ${c.title}`, `Not measured yet: ${c.reason}.`]),
    "## Method",
    method(s)
  ]
  return sections.join("\n\n") + "\n"
}
