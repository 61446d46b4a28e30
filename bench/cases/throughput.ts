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
 *
 * Before the timed run, the same implementation runs once untimed on an
 * instance of its own (its own queue, store and record map) with
 * min(`--tasks`, `--warm-up`) tasks, to the end; that instance is dropped, the
 * heap is settled, and only then does the timed run start on a fresh instance.
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
/** Tasks of the untimed warm-up run (fewer when the timed run is smaller). */
const warmUpTasks = Math.min(tasks, intOption("warm-up"))
const profiling = option("profile") === "true"

/** What runs just before the clock starts and just after it stops. */
interface Stretch {
  readonly start: () => Promise<void>
  readonly stop: () => Promise<void>
}

/** The warm-up run: nothing around its stretch. */
const untimed: Stretch = { start: async () => {}, stop: async () => {} }

/**
 * The timed run: with `--profile=true`, a CPU profile covers its stretch
 * (from just before the first enqueue to idle) and its breakdown joins the
 * result.
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

/** One run of an implementation on a fresh instance: `n` tasks, the clock around `stretch`. */
type Run = (n: number, stretch: Stretch) => Promise<Outcome>

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
  n: number,
  stretch: Stretch,
  submit: (record: StatusRecord) => void,
  idle: () => Promise<void>
): Promise<Outcome> => {
  const records = new Map<number, StatusRecord>()
  let lookups = 0
  await settleHeap()
  await stretch.start()
  const start = performance.now()
  for (let i = 0; i < n; i++) {
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
  await stretch.stop()
  return {
    ms,
    first: records.get(0)!.status,
    last: records.get(n - 1)!.status,
    lookups
  }
}

const pQueue: Run = (n, stretch) => {
  const queue = new PQueue({ concurrency: workers })
  return runPromiseQueue(
    n,
    stretch,
    (record) => void queue.add(() => runTask(record)),
    () => queue.onIdle()
  )
}

const fastQueue: Run = (n, stretch) => {
  const queue = fastq.promise(runTask, workers)
  return runPromiseQueue(
    n,
    stretch,
    (record) => void queue.push(record),
    () => queue.drained()
  )
}

const taskQueue: Run = (n, stretch) =>
  Effect.gen(function* () {
    const queue = yield* TaskQueue.make({
      name: "bench",
      maxWorkers: workers,
      handler: () => Effect.void
    })
    const ids: Array<string> = []
    let lookups = 0
    yield* Effect.promise(settleHeap)
    yield* Effect.promise(stretch.start)
    const start = performance.now()
    for (let i = 0; i < n; i++) {
      const handle = yield* queue.enqueue()
      ids.push(handle.id)
      if ((i + 1) % LOOKUP_EVERY === 0) {
        yield* queue.get(ids[randomBelow(i + 1)]!)
        lookups += 1
      }
    }
    yield* queue.awaitIdle
    const ms = performance.now() - start
    yield* Effect.promise(stretch.stop)
    const first = yield* queue.get(ids[0]!)
    const last = yield* queue.get(ids[n - 1]!)
    return { ms, first: first.status, last: last.status, lookups }
  }).pipe(
    Effect.scoped,
    Effect.provide(TaskStore.layerMemory({ maxFinished: n })),
    Logger.withMinimumLogLevel(LogLevel.Warning),
    Effect.runPromise
  )

const effectLoop: Run = (n, stretch) =>
  Effect.gen(function* () {
    const queue = yield* Queue.unbounded<number>()
    const finished = yield* Deferred.make<void>()
    let done = 0
    const worker = Effect.gen(function* () {
      while (true) {
        yield* Queue.take(queue)
        yield* Effect.void
        done += 1
        if (done === n) yield* Deferred.succeed(finished, undefined)
      }
    })
    for (let i = 0; i < workers; i++) yield* Effect.forkScoped(worker)
    yield* Effect.promise(settleHeap)
    yield* Effect.promise(stretch.start)
    const start = performance.now()
    for (let i = 0; i < n; i++) yield* Queue.offer(queue, i)
    yield* Deferred.await(finished)
    const ms = performance.now() - start
    yield* Effect.promise(stretch.stop)
    return { ms, first: "n/a", last: "n/a", lookups: 0 }
  }).pipe(Effect.scoped, Effect.runPromise)

const impls: Record<string, Run> = {
  "task-queue": taskQueue,
  "p-queue": pQueue,
  fastq: fastQueue,
  "effect-loop": effectLoop
}

/** Every task of a run with records must have succeeded by its end. */
const check = (label: string, outcome: Outcome) => {
  if (impl !== "effect-loop" && (outcome.first !== "succeeded" || outcome.last !== "succeeded")) {
    throw new Error(`${label}: first/last task not succeeded: ${outcome.first}, ${outcome.last}`)
  }
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
  // The warm-up: its own instance, dropped when it returns; the timed run
  // settles the heap before its clock starts.
  const warmUp = await run(warmUpTasks, untimed)
  check("warm-up", warmUp)
  const outcome = await run(tasks, timed)
  check("timed run", outcome)
  emitResult({
    impl,
    tasks,
    workers,
    warmUpTasks,
    warmUpMs: warmUp.ms,
    ms: outcome.ms,
    tasksPerSec: (tasks / outcome.ms) * 1000,
    firstStatus: outcome.first,
    lastStatus: outcome.last,
    lookups: outcome.lookups,
    ...breakdownFigures(outcome.ms)
  })
})
