/**
 * Case 3, enqueue cost against backlog: the latency of single `enqueue`
 * calls, `--samples` of them, each timed with `performance.now()`, with
 * `--backlog` tasks already waiting behind one task that never finishes
 * (one worker).
 *
 * Before the backlog is built, a separate warm-up queue takes 10,000
 * enqueues and is shut down, so every backlog size is measured with the
 * same warmed-up code. Each queue has its own memory store. The heap is
 * settled once before sampling.
 */
import { Effect, Logger, LogLevel } from "effect"
import { TaskQueue, TaskStore } from "effect-task-queue"
import { emitResult, intOption, runMain, settleHeap } from "../lib/child.js"
import { percentileOfSorted } from "../lib/stats.js"

const backlog = intOption("backlog", true)
const samples = intOption("samples")
const WARM_UP = 10_000

interface Payload {
  readonly n: number
}

const makeQueue = TaskQueue.make({
  name: "bench",
  maxWorkers: 1,
  handler: (_payload: Payload) => Effect.never
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
  yield* Effect.promise(settleHeap)

  const times = new Float64Array(samples)
  for (let i = 0; i < samples; i++) {
    const start = performance.now()
    yield* queue.enqueue({ n: backlog + i })
    times[i] = performance.now() - start
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
    samples,
    p50us: us(percentileOfSorted(times, 50)),
    p99us: us(percentileOfSorted(times, 99)),
    p999us: us(percentileOfSorted(times, 99.9)),
    maxus: us(times[times.length - 1]!),
    meanus: us(total / samples)
  })
})
