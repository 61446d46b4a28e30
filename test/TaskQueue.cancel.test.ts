/**
 * Cancel from every state a task can be in (queued, running, waiting for
 * its retry or for its schedule to decide, delayed, finished) and racing
 * the queue's shutdown; then what a shutdown does to tasks that wait:
 * delayed, waiting for a retry, or failing or timing out in the grace
 * period. All on the test clock.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Either, Exit, Fiber, Schedule, Scope, TestClock } from "effect"
import type { Task } from "effect-task-queue"
import { TaskError, TaskQueue, TaskStore } from "effect-task-queue"
import { cancelAsAttemptFails, makeQueue, starts, yieldUntil } from "./helpers.js"

/** A store that counts, per task, how many times it was written as ended. */
const countingStore = Effect.gen(function* () {
  const inner = yield* TaskStore.makeMemory()
  const ended = new Map<string, number>()
  const count = (record: { readonly id: string; readonly status: string }) => {
    if (record.status !== "queued" && record.status !== "running") {
      ended.set(record.id, (ended.get(record.id) ?? 0) + 1)
    }
  }
  const store = TaskStore.TaskStore.of({
    ...inner,
    update: (record) =>
      Effect.zipRight(
        Effect.sync(() => count(record)),
        inner.update(record)
      ),
    unsafeUpdate: (record) => {
      count(record)
      inner.unsafeUpdate!(record)
    }
  })
  return { store, ended }
})

describe("TaskQueue cancel", () => {
  it.scoped("cancels a queued task: it never starts", () =>
    Effect.gen(function* () {
      const probe = starts()
      const queue = yield* makeQueue({
        name: "cancel-queued",
        maxWorkers: 1,
        handler: (label: string) => Effect.zipRight(probe.record(label), Effect.sleep("1 second"))
      })
      yield* queue.enqueue("first")
      const second = yield* queue.enqueue("second")
      expect(yield* second.cancel).toBe("cancelled")
      yield* TestClock.adjust("1 minute")
      expect(probe.of("second")).toEqual([])
      expect(yield* queue.get(second.id)).toMatchObject({
        status: "cancelled",
        reason: "cancelled",
        attempt: 0
      })
    })
  )

  it.scoped("cancels a running task with attempts left: no retry follows", () =>
    Effect.gen(function* () {
      const probe = starts()
      const queue = yield* makeQueue({
        name: "cancel-running",
        maxWorkers: 1,
        retry: { schedule: Schedule.spaced("1 second") },
        handler: () => Effect.zipRight(probe.record("t"), Effect.never)
      })
      const task = yield* queue.enqueue()
      yield* yieldUntil(() => probe.of("t").length === 1)
      expect(yield* task.cancel).toBe("cancelled")
      yield* TestClock.adjust("1 minute")
      expect(probe.of("t")).toEqual([0])
      expect(yield* queue.get(task.id)).toMatchObject({
        status: "cancelled",
        reason: "cancelled",
        attempt: 1
      })
      expect(Exit.isInterrupted(yield* task.await)).toBe(true)
    })
  )

  it.effect("cancels a task whose attempt fails as the cancel comes, at any scheduler budget", () =>
    cancelAsAttemptFails(({ name, maxAttempts, handler }) =>
      makeQueue({
        name,
        maxWorkers: 1,
        retry: { maxAttempts, schedule: Schedule.spaced("3 seconds") },
        handler
      })
    )
  )

  it.scoped("cancels a task waiting for its retry: the retry never runs", () =>
    Effect.gen(function* () {
      const probe = starts()
      const queue = yield* makeQueue({
        name: "cancel-retry",
        maxWorkers: 1,
        retry: { schedule: Schedule.spaced("5 seconds") },
        handler: () => Effect.zipRight(probe.record("t"), Effect.fail("flaky"))
      })
      const task = yield* queue.enqueue()
      yield* TestClock.adjust("2 seconds")
      expect(yield* queue.get(task.id)).toMatchObject({ status: "queued", attempt: 1 })
      expect(yield* queue.cancel(task.id)).toBe("cancelled")
      const cancelled = yield* queue.get(task.id)
      expect(cancelled).toMatchObject({
        status: "cancelled",
        reason: "cancelled",
        attempt: 1,
        runAt: undefined
      })
      expect(cancelled.finishedAt?.getTime()).toBe(2000)
      expect(yield* queue.stats).toMatchObject({ queued: 0, running: 0, delayed: 0 })
      yield* queue.awaitIdle
      yield* TestClock.adjust("1 minute")
      expect(probe.of("t")).toEqual([0])
      expect(yield* queue.get(task.id)).toEqual(cancelled)
    })
  )

  it.scoped(
    "cancels a task whose retry schedule is still deciding, at once: no retry follows",
    () =>
      Effect.gen(function* () {
        let calls = 0
        const queue = yield* makeQueue({
          name: "cancel-deciding",
          maxWorkers: 1,
          retry: {
            // A schedule whose step takes a second: the task still runs meanwhile.
            schedule: Schedule.spaced("1 minute").pipe(
              Schedule.tapInput(() => Effect.sleep("1 second"))
            )
          },
          handler: () =>
            Effect.suspend(() => {
              calls += 1
              return Effect.fail("flaky")
            })
        })
        const task = yield* queue.enqueue()
        yield* TestClock.adjust("500 millis")
        expect((yield* queue.get(task.id)).status).toBe("running")
        // The step is cut short: the task ends cancelled at once, with no retry.
        expect(yield* task.cancel).toBe("cancelled")
        const ended = yield* queue.get(task.id)
        expect(ended).toMatchObject({ status: "cancelled", reason: "cancelled" })
        expect(ended.finishedAt?.getTime()).toBe(500)
        yield* TestClock.adjust("10 minutes")
        expect(calls).toBe(1)
      })
  )

  it.scoped("cancels a delayed task: it never starts", () =>
    Effect.gen(function* () {
      const probe = starts()
      const queue = yield* makeQueue({
        name: "cancel-delayed",
        maxWorkers: 1,
        handler: (label: string) => probe.record(label)
      })
      const delayed = yield* queue.enqueueWith({ delay: "10 seconds" }, "delayed")
      const at = yield* queue.enqueueWith({ runAt: 8000 }, "at")
      expect((yield* queue.get(at.id)).runAt?.getTime()).toBe(8000)
      yield* TestClock.adjust("5 seconds")
      expect(yield* delayed.cancel).toBe("cancelled")
      expect(yield* at.cancel).toBe("cancelled")
      expect(yield* queue.stats).toMatchObject({ queued: 0, delayed: 0 })
      yield* TestClock.adjust("1 minute")
      expect(probe.at.size).toBe(0)
      expect(yield* queue.get(delayed.id)).toMatchObject({
        status: "cancelled",
        reason: "cancelled",
        attempt: 0,
        runAt: undefined
      })
    })
  )

  it.scoped(
    "refuses to cancel a finished task, failed after its retries, and changes nothing",
    () =>
      Effect.gen(function* () {
        const queue = yield* makeQueue({
          name: "cancel-finished",
          maxWorkers: 1,
          retry: { maxAttempts: 2, schedule: Schedule.spaced("1 second") },
          handler: () => Effect.fail("always")
        })
        const task = yield* queue.enqueue()
        yield* TestClock.adjust("5 seconds")
        const before = yield* queue.get(task.id)
        expect(before).toMatchObject({ status: "failed", attempt: 2 })
        const error = yield* Effect.flip(task.cancel)
        expect(error).toBeInstanceOf(TaskError.TaskFinished)
        expect(error.status).toBe("failed")
        expect(yield* queue.get(task.id)).toEqual(before)
        expect(yield* task.await).toEqual(Exit.fail("always"))
      })
  )

  it.effect("ends each task once when a cancel races the queue's shutdown", () =>
    Effect.gen(function* () {
      for (const cancelFirst of [true, false]) {
        const { store, ended } = yield* countingStore
        const scope = yield* Scope.make()
        let calls = 0
        const queue = yield* TaskQueue.make({
          name: "race",
          maxWorkers: 1,
          shutdownGrace: "1 second",
          retry: { schedule: Schedule.spaced("1 minute") },
          handler: (kind: "flaky" | "hang" | "queued") =>
            kind === "flaky"
              ? Effect.suspend(() => ((calls += 1) === 1 ? Effect.fail("once") : Effect.void))
              : Effect.never
        }).pipe(Effect.provideService(TaskStore.TaskStore, store), Scope.extend(scope))
        const retrying = yield* queue.enqueue("flaky")
        const running = yield* queue.enqueue("hang")
        const queued = yield* queue.enqueue("queued")
        const delayed = yield* queue.enqueueWith({ delay: "1 hour" }, "queued")
        const handles = [retrying, running, queued, delayed]
        yield* yieldUntil(() =>
          Effect.map(queue.get(running.id), (task) => task.status === "running").pipe(Effect.orDie)
        )
        expect((yield* queue.get(retrying.id)).status).toBe("queued")

        const cancels: Array<
          Fiber.RuntimeFiber<Either.Either<Task.TaskStatus, TaskError.TaskFinished>>
        > = []
        const forkCancels = Effect.forEach(handles, (handle) =>
          Effect.map(Effect.fork(Effect.either(handle.cancel)), (fiber) => cancels.push(fiber))
        )
        if (cancelFirst) yield* forkCancels
        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        if (!cancelFirst) yield* forkCancels
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(closing)
        const outcomes = []
        for (const fiber of cancels) outcomes.push(yield* Fiber.join(fiber))

        for (const [i, handle] of handles.entries()) {
          const task = yield* queue.get(handle.id)
          expect(task.status).toBe("cancelled")
          expect(ended.get(handle.id)).toBe(1)
          // Whichever came first, the cancel's answer agrees with the record.
          expect(outcomes[i]).toEqual(
            task.reason === "cancelled"
              ? Either.right("cancelled")
              : Either.left(TaskError.TaskFinished.of(handle.id, "cancelled"))
          )
          expect(["cancelled", "shutdown"]).toContain(task.reason)
          expect(Exit.isInterrupted(yield* handle.await)).toBe(true)
        }
        expect(calls).toBe(1)
        yield* queue.awaitIdle
      }
    })
  )
})

describe("TaskQueue shutdown of waiting tasks", () => {
  it.effect("ends delayed and retry-waiting tasks cancelled with reason shutdown, at once", () =>
    Effect.gen(function* () {
      const probe = starts()
      const scope = yield* Scope.make()
      const queue = yield* makeQueue({
        name: "shutdown-waiting",
        maxWorkers: 2,
        retry: { schedule: Schedule.spaced("10 seconds") },
        handler: (label: string) =>
          Effect.zipRight(probe.record(label), label === "flaky" ? Effect.fail("no") : Effect.void)
      }).pipe(Scope.extend(scope))
      const delayed = yield* queue.enqueueWith({ delay: "1 minute" }, "delayed")
      const retrying = yield* queue.enqueue("flaky")
      yield* TestClock.adjust("1 second")
      expect(yield* queue.stats).toMatchObject({ queued: 2, delayed: 2, running: 0 })

      yield* Scope.close(scope, Exit.void)
      for (const task of [delayed, retrying]) {
        const ended = yield* queue.get(task.id)
        expect(ended).toMatchObject({ status: "cancelled", reason: "shutdown", runAt: undefined })
        expect(ended.finishedAt?.getTime()).toBe(1000)
        expect(queue.toView(ended).error).toMatchObject({ kind: "interrupted", reason: "shutdown" })
        expect(Exit.isInterrupted(yield* task.await)).toBe(true)
      }
      expect((yield* queue.get(retrying.id)).attempt).toBe(1)
      yield* queue.awaitIdle
      yield* TestClock.adjust("1 hour")
      expect(probe.of("flaky")).toEqual([0])
      expect(probe.of("delayed")).toEqual([])
    })
  )

  it.effect("cancels with reason shutdown a task whose attempt fails in the grace period", () =>
    Effect.gen(function* () {
      // Due later (the delay heap) or at once (the ready lanes).
      for (const gap of ["1 second", "0 millis"] as const) {
        const probe = starts()
        const scope = yield* Scope.make()
        const queue = yield* makeQueue({
          name: "shutdown-grace",
          maxWorkers: 1,
          shutdownGrace: "10 seconds",
          retry: { schedule: Schedule.spaced(gap) },
          handler: () =>
            Effect.zipRight(
              probe.record("t"),
              Effect.zipRight(Effect.sleep("2 seconds"), Effect.fail("late"))
            )
        }).pipe(Scope.extend(scope))
        const start = yield* Clock.currentTimeMillis
        const task = yield* queue.enqueue()
        yield* TestClock.adjust("1 second")
        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        yield* TestClock.adjust("1 second")
        // The worker stopped after its attempt: the close does not wait out the grace.
        yield* Fiber.join(closing)
        const ended = yield* queue.get(task.id)
        expect(ended).toMatchObject({ status: "cancelled", reason: "shutdown", attempt: 1 })
        expect(ended.finishedAt?.getTime()).toBe(start + 2000)
        expect(probe.of("t")).toEqual([start])
        expect(yield* queue.stats).toMatchObject({ queued: 0, running: 0, delayed: 0 })
      }
    })
  )

  it.effect("cancels with reason shutdown a task whose attempt times out in the grace period", () =>
    Effect.gen(function* () {
      let calls = 0
      const scope = yield* Scope.make()
      const queue = yield* makeQueue({
        name: "shutdown-timeout",
        maxWorkers: 1,
        shutdownGrace: "10 seconds",
        timeout: "2 seconds",
        retry: { schedule: Schedule.spaced(0) },
        handler: () =>
          Effect.zipRight(
            Effect.sync(() => (calls += 1)),
            Effect.never
          )
      }).pipe(Scope.extend(scope))
      const task = yield* queue.enqueue()
      yield* TestClock.adjust("1 second")
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      const ended = yield* queue.get(task.id)
      expect(ended).toMatchObject({ status: "cancelled", reason: "shutdown", attempt: 1 })
      expect(ended.finishedAt?.getTime()).toBe(2000)
      expect(calls).toBe(1)
    })
  )

  it.effect("ends failed, not cancelled, a task whose last attempt fails in the grace period", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const queue = yield* makeQueue({
        name: "shutdown-last",
        maxWorkers: 1,
        shutdownGrace: "10 seconds",
        retry: { maxAttempts: 1 },
        handler: () => Effect.zipRight(Effect.sleep("2 seconds"), Effect.fail("late"))
      }).pipe(Scope.extend(scope))
      const task = yield* queue.enqueue()
      yield* TestClock.adjust("1 second")
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      expect(yield* queue.get(task.id)).toMatchObject({ status: "failed", reason: undefined })
      expect(yield* task.await).toEqual(Exit.fail("late"))
    })
  )
})
