/**
 * What a queue does with code that misbehaves around it: retry schedules
 * that throw, wait or reach past what a Date can hold, a handler that shuts
 * its own queue down, and enqueues let in from a full queue while someone
 * waits for idle. Each ends every task once, frees its worker, and leaves
 * the queue usable.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Schedule, Scope, TestClock } from "effect"
import { TaskError, TaskQueue } from "effect-task-queue"
import { makeQueue, memory, settle, statsAre, yieldUntil } from "./helpers.js"

describe("TaskQueue with misbehaving code", () => {
  it.scoped("refuses null where an option may only be left out, naming it", () =>
    Effect.gen(function* () {
      const base = { name: "nulls", maxWorkers: 1, handler: () => Effect.void }
      for (const option of ["retry", "timeout", "shutdownGrace", "whenFull", "capacity"]) {
        const error = yield* Effect.flip(
          makeQueue({ ...base, [option]: null } as unknown as typeof base)
        )
        expect(error).toBeInstanceOf(TaskError.InvalidOption)
        expect((error as TaskError.InvalidOption).option).toBe(option)
      }
      const queue = yield* makeQueue(base)
      for (const option of ["priority", "delay", "runAt", "timeout", "retry", "idempotencyKey"]) {
        const error = yield* Effect.flip(queue.enqueueWith({ [option]: null } as never))
        expect(error).toBeInstanceOf(TaskError.InvalidOption)
        expect((error as TaskError.InvalidOption).option).toBe(option)
      }
      expect((yield* queue.list()).items).toEqual([])
    })
  )

  it.scoped("fails a task whose retry schedule throws, and frees its worker", () =>
    Effect.gen(function* () {
      const throwing = Schedule.makeWithState(0, () => {
        throw new Error("a bug in the schedule")
      })
      const queue = yield* makeQueue({
        name: "schedule-throws",
        maxWorkers: 1,
        retry: { schedule: throwing as Schedule.Schedule<unknown, unknown> },
        handler: (fail: boolean) => (fail ? Effect.fail("flaky") : Effect.succeed("ok"))
      })
      const broken = yield* queue.enqueue(true)
      const next = yield* queue.enqueue(false)
      const exit = yield* broken.await
      expect(Exit.isFailure(exit) && String(exit.cause)).toContain("a bug in the schedule")
      expect((yield* queue.get(broken.id)).status).toBe("failed")
      expect(yield* next.await).toEqual(Exit.succeed("ok"))
      expect(yield* queue.stats).toMatchObject({ queued: 0, running: 0 })
    })
  )

  it.scoped("ends the retries when the schedule's next run is past what a Date holds", () =>
    Effect.gen(function* () {
      const queue = yield* makeQueue({
        name: "schedule-forever",
        maxWorkers: 1,
        retry: { schedule: Schedule.spaced(Duration.infinity) },
        handler: () => Effect.fail("flaky")
      })
      const task = yield* queue.enqueue()
      yield* queue.awaitIdle
      const ended = yield* queue.get(task.id)
      expect(ended).toMatchObject({ status: "failed", attempt: 1, runAt: undefined })
      expect(queue.toView(ended)).toMatchObject({ status: "failed", runAt: null })
    })
  )

  it.scoped("refuses a delay or runAt past what a Date holds, storing nothing", () =>
    Effect.gen(function* () {
      const queue = yield* makeQueue({ name: "far", maxWorkers: 1, handler: () => Effect.void })
      for (const options of [
        { runAt: 1e300 },
        { runAt: 8.64e15 + 1 },
        { delay: Duration.days(1e9) }
      ]) {
        const error = yield* Effect.flip(queue.enqueueWith(options))
        expect(error).toBeInstanceOf(TaskError.InvalidOption)
      }
      expect((yield* queue.list()).items).toEqual([])
    })
  )

  it.effect("cuts a retry schedule that waits short at the end of the shutdown grace", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const queue = yield* TaskQueue.make({
        name: "schedule-waits",
        maxWorkers: 1,
        shutdownGrace: "1 second",
        retry: {
          schedule: Schedule.spaced("1 second").pipe(Schedule.tapInput(() => Effect.never))
        },
        handler: () => Effect.fail("flaky")
      }).pipe(Effect.provide(memory), Scope.extend(scope))
      const task = yield* queue.enqueue()
      yield* settle
      expect((yield* queue.get(task.id)).status).toBe("running")
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      expect(yield* queue.get(task.id)).toMatchObject({ status: "cancelled", reason: "shutdown" })
    })
  )

  it.effect("lets a handler shut its own queue down without a deadlock", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const self: { queue?: TaskQueue.TaskQueue<[], void, never> } = {}
      const queue = yield* TaskQueue.make({
        name: "shuts-itself",
        maxWorkers: 1,
        shutdownGrace: "100 millis",
        handler: () => Effect.suspend(() => self.queue!.shutdown)
      }).pipe(Effect.provide(memory), Scope.extend(scope))
      self.queue = queue
      const task = yield* queue.enqueue()
      yield* settle
      yield* TestClock.adjust("100 millis")
      const exit = yield* task.await
      expect(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)).toBe(true)
      expect(yield* queue.get(task.id)).toMatchObject({ status: "cancelled", reason: "shutdown" })
      yield* Scope.close(scope, Exit.void)
    })
  )

  it.scoped("does not look idle while an enqueue let in from a full queue stores its task", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const queue = yield* makeQueue({
        name: "idle-waiter",
        maxWorkers: 1,
        capacity: 1,
        handler: () => Deferred.await(gate)
      })
      yield* queue.enqueue()
      yield* yieldUntil(statsAre(queue, { running: 1 }))
      yield* queue.enqueue()
      const waiting = yield* Effect.fork(queue.enqueue())
      yield* settle
      expect(waiting.unsafePoll()).toBeNull()
      yield* Deferred.succeed(gate, undefined)
      yield* queue.awaitIdle
      expect(yield* queue.stats).toMatchObject({ queued: 0, running: 0 })
      expect((yield* queue.list({ status: "succeeded" })).items).toHaveLength(3)
    })
  )
})
