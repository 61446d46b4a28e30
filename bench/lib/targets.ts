/**
 * The targets from the issue, checked against a run's medians.
 */
import type { CaseResult, Settings, Target } from "./results.js"
import { findVariant, medianRatio } from "./results.js"

const check = (
  name: string,
  goal: string,
  measured: number | undefined,
  ok: (x: number) => boolean,
  unit?: Target["unit"]
): Target => ({
  name,
  goal,
  measured,
  ...(unit === undefined ? {} : { unit }),
  met: measured === undefined ? undefined : ok(measured)
})

export const checkTargets = (
  cases: ReadonlyArray<CaseResult>,
  settings: Settings
): Array<Target> => {
  const results = { cases }
  const ours8 = findVariant(results, "throughput", "task-queue", { workers: 8 })
  const pQueue8 = findVariant(results, "throughput", "p-queue", { workers: 8 })
  const loop8 = findVariant(results, "throughput", "effect-loop", { workers: 8 })
  const backlogs = settings.latency.backlogs
  const largest = Math.max(...backlogs)
  const httpOurs = findVariant(results, "http", "task-queue")
  const httpBare = findVariant(results, "http", "bare")
  const sqliteWorkers = { workers: settings.sqlite.workers }
  const sqliteOurs = findVariant(results, "sqlite", "task-queue", sqliteWorkers)
  const sqliteRaw = findVariant(results, "sqlite", "raw", sqliteWorkers)
  const idleP50us = sqliteOurs?.summary["p50us"]?.median
  return [
    check(
      "Throughput at maxWorkers 8 vs p-queue",
      "≥ 1.0×",
      medianRatio(ours8, pQueue8, "tasksPerSec"),
      (x) => x >= 1.0
    ),
    check(
      "Throughput at maxWorkers 8 vs bare Effect loop",
      "≥ 0.5×",
      medianRatio(ours8, loop8, "tasksPerSec"),
      (x) => x >= 0.5
    ),
    check(
      "Heap per queued task vs p-queue",
      "≤ 0.3×",
      medianRatio(
        findVariant(results, "memory", "task-queue"),
        findVariant(results, "memory", "p-queue"),
        "heapBytesPerTask"
      ),
      (x) => x <= 0.3
    ),
    check(
      `Enqueue p99 at a backlog of ${largest.toLocaleString("en-US")} vs a backlog of 0`,
      "≤ 1.5×",
      medianRatio(
        findVariant(results, "latency", "task-queue", { backlog: largest }),
        findVariant(results, "latency", "task-queue", { backlog: 0 }),
        "p99us"
      ),
      (x) => x <= 1.5
    ),
    check(
      "HTTP enqueue requests/s vs bare route",
      "≥ 0.8×",
      medianRatio(httpOurs, httpBare, "requestsPerSec"),
      (x) => x >= 0.8
    ),
    check(
      "HTTP enqueue p99 latency vs bare route",
      "≤ 1.3×",
      medianRatio(httpOurs, httpBare, "p99ms"),
      (x) => x <= 1.3
    ),
    check(
      `Durable processing at maxWorkers ${settings.sqlite.workers} vs raw better-sqlite3, own table`,
      "≥ 0.7×",
      medianRatio(sqliteOurs, sqliteRaw, "processPerSec"),
      (x) => x >= 0.7
    ),
    check(
      "Idle enqueue-to-start p50 (in process)",
      "< 2 ms",
      idleP50us === undefined ? undefined : idleP50us / 1000,
      (x) => x < 2,
      "ms"
    )
  ]
}
