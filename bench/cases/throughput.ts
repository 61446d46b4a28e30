/**
 * Case 1, throughput: `--tasks` no-op tasks at `--workers` concurrency, timed
 * from the first enqueue to the last completion, for one `--impl`:
 *
 * - `task-queue`: this library, memory store keeping every finished record;
 * - `p-queue`: `new PQueue({ concurrency })`, `add`, `onIdle`;
 * - `fastq`: `fastq.promise(worker, concurrency)`, `push`, `drained`;
 * - `effect-loop`: `--workers` fibers taking from a `Queue.unbounded`.
 *
 * The first three keep a status record per task and read one random earlier
 * record every 10,000 enqueues; the Effect loop keeps none (it is the floor).
 */
import { Deferred, Effect, Logger, LogLevel, Queue } from "effect"
import { TaskQueue, TaskStore } from "effect-task-queue"
import fastq from "fastq"
import PQueue from "p-queue"
import { emitResult, intOption, option, requiredOption, runMain, settleHeap } from "../lib/child.js"
import type { Breakdown } from "../lib/profile.js"
import { startProfile } from "../lib/profile.js"

const impl = requiredOption("impl")
const tasks = intOption("tasks")
const workers = intOption("workers")
const LOOKUP_EVERY = 10_000
const profiling = option("profile") === "true"

/**
 * With `--profile=true`, a CPU profile covers the timed stretch (from just
 * before the first enqueue to idle) and its breakdown joins the result.
 */
const timed = {
  breakdown: undefined as Breakdown | undefined,
  stop: async () => {},
  start: async () => {
    if (!profiling) return
    const profile = await startProfile()
    timed.stop = async () => {
      timed.breakdown = await profile.stop()
    }
  }
}

interface Outcome {
  readonly ms: number
  /** Status of the first and last task, read after the run. */
  readonly first: string
  readonly last: string
  readonly lookups: number
}

const randomBelow = (n: number): number => Math.floor(Math.random() * n)

/** The status record p-queue and fastq users keep themselves. */
interface StatusRecord {
  status: "queued" | "running" | "succeeded"
}

const noop = (): Promise<void> => Promise.resolve()

const runTask = async (record: StatusRecord): Promise<void> => {
  record.status = "running"
  await noop()
  record.status = "succeeded"
}

/** Shared by p-queue and fastq: fill the record map, submit each task, wait for the end. */
const runPromiseQueue = async (
  submit: (record: StatusRecord) => void,
  idle: () => Promise<void>
): Promise<Outcome> => {
  const records = new Map<number, StatusRecord>()
  let lookups = 0
  await settleHeap()
  const start = performance.now()
  for (let i = 0; i < tasks; i++) {
    const record: StatusRecord = { status: "queued" }
    records.set(i, record)
    submit(record)
    if ((i + 1) % LOOKUP_EVERY === 0) {
      if (records.get(randomBelow(i + 1)) === undefined) throw new Error("lookup failed")
      lookups += 1
    }
  }
  await idle()
  const ms = performance.now() - start
  return {
    ms,
    first: records.get(0)!.status,
    last: records.get(tasks - 1)!.status,
    lookups
  }
}

const pQueue = (): Promise<Outcome> => {
  const queue = new PQueue({ concurrency: workers })
  return runPromiseQueue(
    (record) => void queue.add(() => runTask(record)),
    () => queue.onIdle()
  )
}

const fastQueue = (): Promise<Outcome> => {
  const queue = fastq.promise(runTask, workers)
  return runPromiseQueue(
    (record) => void queue.push(record),
    () => queue.drained()
  )
}

const taskQueue = (): Promise<Outcome> =>
  Effect.gen(function* () {
    const queue = yield* TaskQueue.make({
      name: "bench",
      maxWorkers: workers,
      handler: () => Effect.void
    })
    const ids: Array<string> = []
    let lookups = 0
    yield* Effect.promise(settleHeap)
    yield* Effect.promise(timed.start)
    const start = performance.now()
    for (let i = 0; i < tasks; i++) {
      const handle = yield* queue.enqueue()
      ids.push(handle.id)
      if ((i + 1) % LOOKUP_EVERY === 0) {
        yield* queue.get(ids[randomBelow(i + 1)]!)
        lookups += 1
      }
    }
    yield* queue.awaitIdle
    const ms = performance.now() - start
    yield* Effect.promise(timed.stop)
    const first = yield* queue.get(ids[0]!)
    const last = yield* queue.get(ids[tasks - 1]!)
    return { ms, first: first.status, last: last.status, lookups }
  }).pipe(
    Effect.scoped,
    Effect.provide(TaskStore.layerMemory({ maxFinished: tasks })),
    Logger.withMinimumLogLevel(LogLevel.Warning),
    Effect.runPromise
  )

const effectLoop = (): Promise<Outcome> =>
  Effect.gen(function* () {
    const queue = yield* Queue.unbounded<number>()
    const finished = yield* Deferred.make<void>()
    let done = 0
    const worker = Effect.gen(function* () {
      while (true) {
        yield* Queue.take(queue)
        yield* Effect.void
        done += 1
        if (done === tasks) yield* Deferred.succeed(finished, undefined)
      }
    })
    for (let i = 0; i < workers; i++) yield* Effect.forkScoped(worker)
    yield* Effect.promise(settleHeap)
    yield* Effect.promise(timed.start)
    const start = performance.now()
    for (let i = 0; i < tasks; i++) yield* Queue.offer(queue, i)
    yield* Deferred.await(finished)
    const ms = performance.now() - start
    yield* Effect.promise(timed.stop)
    return { ms, first: "n/a", last: "n/a", lookups: 0 }
  }).pipe(Effect.scoped, Effect.runPromise)

const impls: Record<string, () => Promise<Outcome>> = {
  "task-queue": taskQueue,
  "p-queue": pQueue,
  fastq: fastQueue,
  "effect-loop": effectLoop
}

/** The profile as microseconds per task in each category, when there is one. */
const breakdownFigures = (ms: number) => {
  const b = timed.breakdown
  if (b === undefined) return {}
  const usPerTask = (ms * 1000) / tasks
  return {
    usPerTask,
    gcUs: b.gc * usPerTask,
    effectUs: b.effect * usPerTask,
    libraryUs: b.library * usPerTask,
    otherUs: b.other * usPerTask
  }
}

runMain(async () => {
  const run = impls[impl]
  if (run === undefined) throw new Error(`unknown --impl=${impl}`)
  const outcome = await run()
  if (impl !== "effect-loop" && (outcome.first !== "succeeded" || outcome.last !== "succeeded")) {
    throw new Error(`first/last task not succeeded: ${outcome.first}, ${outcome.last}`)
  }
  emitResult({
    impl,
    tasks,
    workers,
    ms: outcome.ms,
    tasksPerSec: (tasks / outcome.ms) * 1000,
    firstStatus: outcome.first,
    lastStatus: outcome.last,
    lookups: outcome.lookups,
    ...breakdownFigures(outcome.ms)
  })
})
