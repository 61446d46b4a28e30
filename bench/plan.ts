/**
 * What each mode measures: the sizes, and for each case the variants that
 * run in their own child process every round.
 */
import autocannon from "autocannon"
import type { Figures, Results, Settings } from "./lib/results.js"
import { runChild, startServer } from "./lib/spawn.js"

/**
 * Case 1 runs 200,000 tasks in both modes: its figures depend on the number
 * of tasks (a queue whose enqueue loop yields starts its workers early, one
 * whose loop never yields queues everything first), so a quick run at
 * another size would not tell the same story. Its warm-up is 50,000 tasks:
 * warm-ups of 20,000, 50,000 and 100,000 gave the same figures within the
 * spread between rounds. The latency warm-up (case 3) on the measured queue
 * is 10,000 enqueues: the slow start of a fresh queue is over within the
 * first few thousand.
 */
export const FULL: Settings = {
  rounds: 5,
  throughput: { tasks: 200_000, warmUp: 50_000, workers: [1, 8, 64] },
  memory: { tasks: 1_000_000 },
  latency: { backlogs: [0, 100_000, 1_000_000], warmUp: 10_000, samples: 10_000 },
  http: { durationSeconds: 10, warmupSeconds: 2, connections: 50, backlog: 100_000, workers: 3 },
  sqlite: {
    enqueueOne: 5_000,
    enqueueBatch: 20_000,
    batchSize: 100,
    tasks: 50_000,
    workers: 8,
    samples: 500
  }
}

export const QUICK: Settings = {
  rounds: 3,
  throughput: { tasks: 200_000, warmUp: 50_000, workers: [1, 8, 64] },
  memory: { tasks: 100_000 },
  latency: { backlogs: [0, 100_000, 250_000], warmUp: 10_000, samples: 10_000 },
  http: { durationSeconds: 3, warmupSeconds: 2, connections: 50, backlog: 100_000, workers: 3 },
  sqlite: {
    enqueueOne: 2_000,
    enqueueBatch: 5_000,
    batchSize: 100,
    tasks: 10_000,
    workers: 8,
    samples: 200
  }
}

export interface Variant {
  readonly impl: string
  readonly params: Record<string, number>
  readonly run: () => Promise<Figures>
}

export interface CasePlan {
  readonly id: string
  readonly title: string
  /** The figures summarized across rounds (median, min, max). */
  readonly metrics: ReadonlyArray<string>
  readonly variants: ReadonlyArray<Variant>
}

const MINUTE = 60_000

const throughput = (s: Settings): CasePlan => ({
  id: "throughput",
  title: "Throughput",
  metrics: ["tasksPerSec", "ms"],
  variants: s.throughput.workers.flatMap((workers) =>
    ["task-queue", "p-queue", "fastq", "effect-loop"].map((impl) => ({
      impl,
      params: { workers },
      run: () =>
        runChild(
          "throughput.ts",
          [
            `--impl=${impl}`,
            `--workers=${workers}`,
            `--tasks=${s.throughput.tasks}`,
            `--warm-up=${s.throughput.warmUp}`
          ],
          2 * MINUTE
        )
    }))
  )
})

/**
 * Where the time of case 1 goes, at maxWorkers 8: the same run with a CPU
 * profile of its timed stretch, for this library and the bare Effect loop.
 */
const profile = (s: Settings): CasePlan => ({
  id: "profile",
  title: "Where the time goes",
  metrics: ["usPerTask", "gcUs", "effectUs", "libraryUs", "otherUs"],
  variants: ["task-queue", "effect-loop"].map((impl) => ({
    impl,
    params: { workers: 8 },
    run: () =>
      runChild(
        "throughput.ts",
        [
          `--impl=${impl}`,
          "--workers=8",
          `--tasks=${s.throughput.tasks}`,
          `--warm-up=${s.throughput.warmUp}`,
          "--profile=true"
        ],
        2 * MINUTE
      )
  }))
})

const memory = (s: Settings): CasePlan => ({
  id: "memory",
  title: "Memory per queued task",
  metrics: ["heapBytesPerTask", "rssBytesPerTask"],
  variants: ["task-queue", "p-queue", "p-queue-records"].map((impl) => ({
    impl,
    params: {},
    run: () => runChild("memory.ts", [`--impl=${impl}`, `--tasks=${s.memory.tasks}`], 5 * MINUTE)
  }))
})

const latency = (s: Settings): CasePlan => ({
  id: "latency",
  title: "Enqueue latency against backlog",
  metrics: ["p50us", "p99us"],
  variants: s.latency.backlogs.map((backlog) => ({
    impl: "task-queue",
    params: { backlog },
    run: () =>
      runChild(
        "enqueue-latency.ts",
        [`--backlog=${backlog}`, `--warm-up=${s.latency.warmUp}`, `--samples=${s.latency.samples}`],
        5 * MINUTE
      )
  }))
})

/** One HTTP round: a fresh server child, a warm-up load, then the measured load. */
const httpRound = async (impl: string, s: Settings["http"]): Promise<Figures> => {
  const backlog = impl === "task-queue" ? s.backlog : 0
  const args = [`--impl=${impl}`, `--workers=${s.workers}`, `--backlog=${backlog}`]
  const server = await startServer("http-server.ts", args, 3 * MINUTE)
  const load = (duration: number) =>
    autocannon({
      url: `http://127.0.0.1:${Number(server.info["port"])}/v0/scrapes`,
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ url: "https://shop.example/products/kettle" }),
      connections: s.connections,
      duration
    })
  const measure = async () => ({
    warm: await load(s.warmupSeconds),
    result: await load(s.durationSeconds)
  })
  const { warm, result } = await measure().catch(async (error: unknown) => {
    await server.stop().catch(() => {})
    throw error
  })
  const final = await server.stop()
  if (result.non2xx + result.errors + result.timeouts + warm.non2xx + warm.errors > 0) {
    throw new Error(`${impl}: load saw non-2xx answers or errors: ${JSON.stringify(result)}`)
  }
  // Requests still in flight when the load stops are handled but not counted by the load.
  const answered = warm["2xx"] + result["2xx"]
  if (Number(final["handled"]) < answered) {
    throw new Error(`${impl}: server handled ${final["handled"]}, load saw ${answered} 2xx`)
  }
  return {
    requestsPerSec: result.requests.average,
    p50ms: result.latency.p50,
    p99ms: result.latency.p99,
    meanMs: result.latency.mean,
    maxMs: result.latency.max,
    requests: result["2xx"],
    seconds: result.duration,
    backlog
  }
}

const http = (s: Settings): CasePlan => ({
  id: "http",
  title: "HTTP enqueue",
  metrics: ["requestsPerSec", "p50ms", "p99ms"],
  variants: ["task-queue", "bare"].map((impl) => ({
    impl,
    params: {},
    run: () => httpRound(impl, s.http)
  }))
})

/**
 * This library on the SQLite store vs a minimal queue on better-sqlite3, on
 * a table of its own (`raw`) and on the library's table with the library's
 * statements (`raw-table`): enqueue one at a time and in batches,
 * processing, idle enqueue-to-start.
 */
const sqliteCase = (
  s: Settings,
  id: string,
  title: string,
  metrics: ReadonlyArray<string>,
  profiled: boolean
): CasePlan => ({
  id,
  title,
  metrics,
  variants: ["task-queue", "raw-table", "raw"].map((impl) => ({
    impl,
    params: { workers: s.sqlite.workers },
    run: () =>
      runChild(
        "sqlite.ts",
        [
          `--profile=${profiled}`,
          `--impl=${impl}`,
          `--one=${s.sqlite.enqueueOne}`,
          `--batch=${s.sqlite.enqueueBatch}`,
          `--batch-size=${s.sqlite.batchSize}`,
          `--tasks=${s.sqlite.tasks}`,
          `--workers=${s.sqlite.workers}`,
          `--samples=${s.sqlite.samples}`
        ],
        5 * MINUTE
      )
  }))
})

const sqlite = (s: Settings) =>
  sqliteCase(
    s,
    "sqlite",
    "Durable SQLite store",
    ["enqueueOnePerSec", "enqueueBatchPerSec", "processPerSec", "p50us", "p99us"],
    false
  )

/** Case 5's processing again, with a CPU profile of that stretch. */
const sqliteProfile = (s: Settings) =>
  sqliteCase(
    s,
    "sqlite-profile",
    "Durable processing: where the time goes",
    ["usPerTask", "sqliteUs", "sqlUs", "effectUs", "libraryUs", "gcUs", "otherUs"],
    true
  )

export const plan = (s: Settings): ReadonlyArray<CasePlan> => [
  throughput(s),
  profile(s),
  memory(s),
  latency(s),
  http(s),
  sqlite(s),
  sqliteProfile(s)
]

/** Cases the suite has a place for but does not measure yet: none at present. */
export const NOT_MEASURED: Results["notMeasured"] = []
