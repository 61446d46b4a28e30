/**
 * Case 3, enqueue cost against backlog: the latency of single `enqueue`
 * calls, `--samples` of them, each timed with `performance.now()`, with
 * `--backlog` tasks already waiting behind one task that never finishes
 * (one worker).
 *
 * Before the backlog is built, a separate warm-up queue takes 10,000
 * enqueues and is shut down. Then, on the measured queue, the backlog is
 * followed by `--warm-up` more untimed enqueues (the same for every backlog size)
 * before the heap is settled and the samples are taken: the first few
 * thousand enqueues on a fresh queue are slower than the rest, warm code or
 * not, and without these only the smallest backlog would have them among its
 * samples. Each queue has its own memory store. Nothing is measured at
 * shutdown, so the queues interrupt their never-ending task at once
 * (`shutdownGrace: 0`).
 */
import { Effect, Logger, LogLevel } from "effect"
import { TaskQueue, TaskStore } from "effect-task-queue"
import { emitResult, intOption, runMain, settleHeap } from "../lib/child.js"
import { percentileOfSorted } from "../lib/stats.js"

const backlog = intOption("backlog", true)
const samples = intOption("samples")
/** Enqueues on the separate warm-up queue. */
const WARM_UP = 10_000
/** Untimed enqueues on the measured queue after its backlog, before the samples. */
const warmUpOnQueue = intOption("warm-up", true)

interface Payload {
  readonly n: number
}

const makeQueue = TaskQueue.make({
  name: "bench",
  maxWorkers: 1,
  handler: (_payload: Payload) => Effect.never,
  shutdownGrace: 0
})

const warmUp = Effect.gen(function* () {
  const queue = yield* makeQueue
  for (let i = 0; i < WARM_UP; i++) yield* queue.enqueue({ n: i })
}).pipe(Effect.scoped, Effect.provide(TaskStore.layerMemory()))

const measure = Effect.gen(function* () {
  const queue = yield* makeQueue
  yield* queue.enqueue({ n: -1 })
  yield* Effect.sleep("10 millis")
  for (let i = 0; i < backlog; i++) yield* queue.enqueue({ n: i })
  const before = yield* queue.stats
  if (before.queued !== backlog || before.running !== 1) {
    throw new Error(`expected ${backlog} queued and 1 running, got ${JSON.stringify(before)}`)
  }
  for (let i = 0; i < warmUpOnQueue; i++) yield* queue.enqueue({ n: backlog + i })
  yield* Effect.promise(settleHeap)

  const first = backlog + warmUpOnQueue
  const times = new Float64Array(samples)
  for (let i = 0; i < samples; i++) {
    const start = performance.now()
    yield* queue.enqueue({ n: first + i })
    times[i] = performance.now() - start
  }
  const after = yield* queue.stats
  if (after.queued !== first + samples || after.running !== 1) {
    throw new Error(
      `expected ${first + samples} queued and 1 running, got ${JSON.stringify(after)}`
    )
  }
  return times
}).pipe(Effect.scoped, Effect.provide(TaskStore.layerMemory()))

runMain(async () => {
  const times = await Effect.zipRight(warmUp, measure).pipe(
    Logger.withMinimumLogLevel(LogLevel.Warning),
    Effect.runPromise
  )
  times.sort()
  const us = (ms: number) => ms * 1000
  let total = 0
  for (const t of times) total += t
  emitResult({
    backlog,
    warmUpOnQueue,
    samples,
    p50us: us(percentileOfSorted(times, 50)),
    p99us: us(percentileOfSorted(times, 99)),
    p999us: us(percentileOfSorted(times, 99.9)),
    maxus: us(times[times.length - 1]!),
    meanus: us(total / samples)
  })
})
