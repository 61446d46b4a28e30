/**
 * The durable engine on SQLite in memory, on the test clock: cancel from
 * each state a task can be in, idempotency keys, a pause that lands as
 * tasks are claimed, and what a durable queue refuses.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Schedule, Schema, TestClock } from "effect"
import { TaskError } from "effect-task-queue"
import {
  cancelAsAttemptFails,
  invalidOption,
  makeDurableQueue,
  memoryDb,
  settle,
  sleeper,
  starts,
  statsAre,
  yieldUntil
} from "./helpers.js"

describe("TaskQueue on SQLite: cancel and idempotency", () => {
  it.scoped(
    "cancels queued, delayed, retry-waiting and running tasks; a finished one is refused",
    () =>
      Effect.gen(function* () {
        const context = yield* memoryDb
        const probe = starts()
        let interrupted = 0
        const queue = yield* makeDurableQueue(context, {
          name: "cancel",
          maxWorkers: 1,
          payload: Schema.String,
          retry: { maxAttempts: 3, schedule: Schedule.spaced("5 seconds") },
          handler: (label: string) =>
            Effect.zipRight(
              probe.record(label),
              label === "flaky"
                ? Effect.fail("flaky")
                : label === "quick"
                  ? Effect.succeed("done")
                  : Effect.onInterrupt(Effect.never, () => Effect.sync(() => (interrupted += 1)))
            )
        })
        const flaky = yield* queue.enqueue("flaky")
        yield* yieldUntil(() => probe.of("flaky").length === 1)
        const running = yield* queue.enqueue("running")
        const queued = yield* queue.enqueue("queued")
        const delayed = yield* queue.enqueueWith({ delay: "1 second" }, "delayed")
        yield* yieldUntil(() => probe.of("running").length === 1)

        for (const task of [queued, delayed, flaky]) {
          expect(yield* task.cancel).toBe("cancelled")
          const cancelled = yield* queue.get(task.id)
          expect(cancelled).toMatchObject({
            status: "cancelled",
            reason: "cancelled",
            runAt: undefined
          })
          expect(queue.toView(cancelled).error).toMatchObject({
            kind: "interrupted",
            reason: "cancelled"
          })
        }
        expect((yield* queue.get(flaky.id)).attempt).toBe(1)
        expect((yield* queue.get(queued.id)).attempt).toBe(0)

        // The running one: interrupted, and its slot is free when cancel returns.
        const quick = yield* queue.enqueue("quick")
        expect(yield* queue.cancel(running.id)).toBe("cancelled")
        expect(interrupted).toBe(1)
        expect(yield* queue.get(running.id)).toMatchObject({ status: "cancelled", attempt: 1 })
        expect(Exit.isInterrupted(yield* running.await)).toBe(true)
        yield* yieldUntil(() => probe.of("quick").length === 1)
        expect(yield* quick.await).toEqual(Exit.succeed("done"))

        yield* TestClock.adjust("1 minute")
        yield* settle
        expect(probe.of("flaky")).toEqual([0])
        expect(probe.of("queued")).toEqual([])
        expect(probe.of("delayed")).toEqual([])
        expect(probe.of("running")).toEqual([0])

        const finished = yield* Effect.flip(queue.cancel(quick.id))
        expect(finished).toBeInstanceOf(TaskError.TaskFinished)
        expect(finished).toMatchObject({ id: quick.id, status: "succeeded" })
        expect((yield* queue.get(quick.id)).status).toBe("succeeded")
        const again = yield* Effect.flip(queue.cancel(queued.id))
        expect(again).toMatchObject({ _tag: "TaskFinished", status: "cancelled" })
        const unknown = yield* Effect.flip(queue.cancel("0000000000ZZZZZZZZZZZZZZZZ"))
        expect(unknown).toBeInstanceOf(TaskError.TaskNotFound)
      })
  )

  it.scoped(
    "gives back the first task for a repeated idempotency key, before and after it ran",
    () =>
      Effect.gen(function* () {
        const context = yield* memoryDb
        const seen: Array<string> = []
        const queue = yield* makeDurableQueue(context, {
          name: "keys",
          maxWorkers: 1,
          payload: Schema.String,
          handler: (payload: string) => Effect.sync(() => seen.push(payload))
        })
        yield* queue.pause
        const first = yield* queue.enqueueWith({ idempotencyKey: "k" }, "first")
        const second = yield* queue.enqueueWith({ idempotencyKey: "k" }, "second")
        expect(second.id).toBe(first.id)
        yield* queue.resume
        yield* queue.awaitIdle
        const third = yield* queue.enqueueWith({ idempotencyKey: "k", priority: 9 }, "third")
        expect(third.id).toBe(first.id)
        yield* queue.awaitIdle
        expect(seen).toEqual(["first"])
        const page = yield* queue.list()
        expect(page.items.map((t) => [t.id, t.status])).toEqual([[first.id, "succeeded"]])
      })
  )
})

/**
 * Two tasks on two workers, the queue paused as soon as the store holds
 * both claimed (whether or not their handlers began), then a minute on the
 * clock: what started has finished; what did not must wait, queued.
 */
const pausedAsClaimed = (name: string) =>
  Effect.gen(function* () {
    const context = yield* memoryDb
    const { handler, started } = sleeper(100)
    const queue = yield* makeDurableQueue(context, {
      name,
      maxWorkers: 2,
      payload: Schema.String,
      handler
    })
    const tasks = [yield* queue.enqueue("a"), yield* queue.enqueue("b")] as const
    yield* yieldUntil(statsAre(queue, { running: 2 }))
    yield* queue.pause
    yield* TestClock.adjust("1 minute")
    yield* settle
    const began = new Set(started.map(([label]) => label))
    const waiting = tasks.filter((_, i) => !began.has("ab"[i]!))
    return { queue, tasks, began, waiting }
  })

describe("TaskQueue on SQLite: cancels that race", () => {
  it.effect("cancels a task whose attempt fails as the cancel comes, at any scheduler budget", () =>
    cancelAsAttemptFails(({ name, maxAttempts, handler }) =>
      Effect.flatMap(memoryDb, (context) =>
        makeDurableQueue(context, {
          name,
          maxWorkers: 1,
          payload: Schema.String,
          retry: { maxAttempts, schedule: Schedule.spaced("3 seconds") },
          handler
        })
      )
    )
  )

  it.scoped("after shutdown: awaitIdle returns with tasks left queued, and pause works", () =>
    Effect.gen(function* () {
      const context = yield* memoryDb
      const queue = yield* makeDurableQueue(context, {
        name: "after-shutdown",
        maxWorkers: 1,
        payload: Schema.String,
        handler: (_: string) => Effect.void
      })
      yield* queue.pause
      yield* queue.enqueue("left for the next start")
      yield* queue.shutdown
      const idle = yield* Effect.fork(queue.awaitIdle)
      yield* yieldUntil(() => idle.unsafePoll() !== null)
      expect((yield* queue.stats).queued).toBe(1)
      expect(Exit.isSuccess(yield* Effect.exit(queue.pause))).toBe(true)
      expect((yield* queue.stats).paused).toBe(true)
    })
  )
})

describe("TaskQueue on SQLite: a pause as tasks are claimed", () => {
  it.scoped("shows a claimed task whose handler had not started as queued while paused", () =>
    Effect.gen(function* () {
      const { queue, tasks, began } = yield* pausedAsClaimed("pause-claimed")
      expect.soft(yield* queue.stats).toMatchObject({ running: 0, queued: 2 - began.size })
      for (const [i, task] of tasks.entries()) {
        const name = "ab"[i]!
        const { status } = yield* queue.get(task.id)
        expect.soft([name, status]).toEqual([name, began.has(name) ? "succeeded" : "queued"])
      }
      yield* queue.resume
      yield* TestClock.adjust("1 second")
      yield* queue.awaitIdle
      for (const task of tasks) expect((yield* queue.get(task.id)).status).toBe("succeeded")
    })
  )

  it.scoped("cancels such a task as a queued one: cancelled at once, no attempt made", () =>
    Effect.gen(function* () {
      const { queue, waiting } = yield* pausedAsClaimed("pause-claimed-cancel")
      for (const task of waiting) {
        expect.soft(yield* task.cancel).toBe("cancelled")
        // Read at once, as after the cancel of any queued task.
        const cancelled = yield* queue.get(task.id)
        expect
          .soft([cancelled.status, cancelled.attempt, cancelled.startedAt])
          .toEqual(["cancelled", 0, undefined])
      }
      yield* queue.resume
      yield* queue.awaitIdle
      for (const task of waiting) expect((yield* queue.get(task.id)).status).toBe("cancelled")
    })
  )
})

describe("TaskQueue on SQLite: what a durable queue refuses", () => {
  it.scoped("refuses a durable queue without a payload Schema", () =>
    Effect.gen(function* () {
      const context = yield* memoryDb
      const option = yield* invalidOption(
        Effect.scoped(
          makeDurableQueue(context, {
            name: "no-payload",
            maxWorkers: 1,
            handler: (_: string) => Effect.void
          })
        )
      )
      expect(option).toBe("payload")
    })
  )

  it.scoped(
    "refuses a task's own retry schedule or isPermanent, and a payload off its Schema",
    () =>
      Effect.gen(function* () {
        const context = yield* memoryDb
        const queue = yield* makeDurableQueue(context, {
          name: "own-retry",
          maxWorkers: 1,
          payload: Schema.Struct({ n: Schema.Number }),
          handler: (_: { readonly n: number }) => Effect.void
        })
        yield* queue.pause
        const schedule = Schedule.spaced("1 second")
        expect(yield* invalidOption(queue.enqueueWith({ retry: { schedule } }, { n: 1 }))).toBe(
          "retry.schedule"
        )
        const error = yield* Effect.flip(
          queue.enqueueWith(
            {
              retry: {
                isPermanent: function never() {
                  return true
                }
              }
            },
            { n: 1 }
          )
        )
        expect(error._tag === "InvalidOption" && error.message).toBe(
          "Invalid option retry.isPermanent: [function never] (a durable queue keeps maxAttempts " +
            "per task; schedule and isPermanent are set on the queue)"
        )
        const payload = yield* Effect.flip(queue.enqueueWith({}, { n: "one" } as never))
        expect(payload._tag === "InvalidOption" && payload.value).toBe('{"n":"one"}')
        // Nothing was stored; a task's own maxAttempts is kept.
        expect((yield* queue.list()).items).toEqual([])
        const own = yield* queue.enqueueWith({ retry: { maxAttempts: 5 } }, { n: 1 })
        expect((yield* queue.get(own.id)).maxAttempts).toBe(5)
      })
  )
})
