/**
 * Case 2, memory: bytes per queued task with `--tasks` tasks waiting behind
 * one task that never finishes (one worker), for one `--impl`:
 *
 * - `task-queue`: this library with the memory store, handler `Effect.never`;
 * - `p-queue`: `new PQueue({ concurrency: 1 })` behind a never-resolving task;
 * - `p-queue-records`: the same, plus the status map the throughput case keeps.
 *
 * Each task carries the payload `{ n: i }`. The figure is the heap used after
 * settling the heap, minus the same reading taken before the enqueues.
 */
import { Effect, Logger, LogLevel } from "effect"
import { TaskQueue, TaskStore } from "effect-task-queue"
import PQueue from "p-queue"
import { emitResult, intOption, requiredOption, runMain, settleHeap } from "../lib/child.js"

const impl = requiredOption("impl")
const tasks = intOption("tasks")

interface Reading {
  readonly heapUsed: number
  readonly rss: number
}

const read = async (): Promise<Reading> => {
  await settleHeap()
  const usage = process.memoryUsage()
  return { heapUsed: usage.heapUsed, rss: usage.rss }
}

interface Payload {
  readonly n: number
}

const never = () => new Promise<void>(() => {})

const pQueue = async (withRecords: boolean) => {
  const queue = new PQueue({ concurrency: 1 })
  const records = new Map<number, { status: string }>()
  const work = (payload: Payload) => Promise.resolve(payload.n)
  void queue.add(never)
  const before = await read()
  for (let i = 0; i < tasks; i++) {
    const payload: Payload = { n: i }
    if (withRecords) records.set(i, { status: "queued" })
    void queue.add(() => work(payload))
  }
  const after = await read()
  if (queue.size !== tasks || queue.pending !== 1) {
    throw new Error(`expected ${tasks} queued and 1 running, got ${queue.size}, ${queue.pending}`)
  }
  // Read after the second reading, so the map is reachable while it is taken.
  return { before, after, records: withRecords ? records.size : 0 }
}

const taskQueue = () =>
  Effect.gen(function* () {
    const queue = yield* TaskQueue.make({
      name: "bench",
      maxWorkers: 1,
      handler: (_payload: Payload) => Effect.never,
      // Nothing is measured at shutdown: interrupt the never-ending task at once.
      shutdownGrace: 0
    })
    yield* queue.enqueue({ n: -1 })
    yield* Effect.sleep("10 millis")
    const before = yield* Effect.promise(read)
    for (let i = 0; i < tasks; i++) yield* queue.enqueue({ n: i })
    const after = yield* Effect.promise(read)
    const stats = yield* queue.stats
    if (stats.queued !== tasks || stats.running !== 1) {
      throw new Error(`expected ${tasks} queued and 1 running, got ${JSON.stringify(stats)}`)
    }
    return { before, after, records: tasks + 1 }
  }).pipe(
    Effect.scoped,
    Effect.provide(TaskStore.layerMemory()),
    Logger.withMinimumLogLevel(LogLevel.Warning),
    Effect.runPromise
  )

const impls: Record<string, () => Promise<{ before: Reading; after: Reading; records: number }>> = {
  "task-queue": taskQueue,
  "p-queue": () => pQueue(false),
  "p-queue-records": () => pQueue(true)
}

runMain(async () => {
  const run = impls[impl]
  if (run === undefined) throw new Error(`unknown --impl=${impl}`)
  const { before, after, records } = await run()
  emitResult({
    impl,
    tasks,
    statusRecords: records,
    heapBytesPerTask: (after.heapUsed - before.heapUsed) / tasks,
    rssBytesPerTask: (after.rss - before.rss) / tasks,
    heapBeforeMB: before.heapUsed / 2 ** 20,
    heapAfterMB: after.heapUsed / 2 ** 20,
    rssDeltaMB: (after.rss - before.rss) / 2 ** 20
  })
})
