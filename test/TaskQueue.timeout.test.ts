/**
 * Attempt timeouts, all on the test clock: timed from an attempt's start,
 * the AbortSignal of a promise the handler waits on, a worker slot held
 * until a timed-out handler has really stopped, `TaskTimeout` retried like
 * a failure, and a task's own timeout over the queue's; then the checks on
 * `enqueueWith`'s options.
 */
import { describe, expect, it } from "@effect/vitest"
import { assertInstanceOf } from "@effect/vitest/utils"
import { Duration, Effect, Exit, Fiber, Schedule, TestClock } from "effect"
import { TaskError, TaskQueue } from "effect-task-queue"
import { makeQueue, starts } from "./helpers.js"

describe("TaskQueue timeouts", () => {
  it.scoped("times an attempt from when it starts, not from when it was enqueued", () =>
    Effect.gen(function* () {
      const queue = yield* makeQueue({
        name: "timeout",
        maxWorkers: 1,
        timeout: "1 second",
        retry: { maxAttempts: 1 },
        handler: (ms: number) => (ms < 0 ? Effect.never : Effect.sleep(ms))
      })
      yield* queue.enqueue(500)
      const hung = yield* queue.enqueue(-1)
      yield* TestClock.adjust("1499 millis")
      const running = yield* queue.get(hung.id)
      expect(running.status).toBe("running")
      expect(running.startedAt?.getTime()).toBe(500)
      yield* TestClock.adjust("1 millis")
      const failed = yield* queue.get(hung.id)
      expect(failed.status).toBe("failed")
      expect(failed.finishedAt?.getTime()).toBe(1500)
      expect(yield* hung.await).toEqual(Exit.fail(TaskError.TaskTimeout.of(1000)))
    })
  )

  it.scoped("aborts the AbortSignal of a promise the handler waits on", () =>
    Effect.gen(function* () {
      let aborted = false
      const queue = yield* makeQueue({
        name: "abort",
        maxWorkers: 1,
        timeout: "2 seconds",
        retry: { maxAttempts: 1 },
        handler: () =>
          Effect.tryPromise({
            try: (signal) =>
              new Promise<never>(() => {
                signal.addEventListener("abort", () => {
                  aborted = true
                })
              }),
            catch: (error) => String(error)
          })
      })
      const task = yield* queue.enqueue()
      yield* TestClock.adjust("1999 millis")
      expect(aborted).toBe(false)
      yield* TestClock.adjust("1 millis")
      expect(aborted).toBe(true)
      expect(queue.toView(yield* queue.get(task.id)).error?.kind).toBe("timeout")
    })
  )

  it.scoped("holds the slot until a timed-out handler has really stopped", () =>
    Effect.gen(function* () {
      const probe = starts()
      const queue = yield* makeQueue({
        name: "slow-stop",
        maxWorkers: 1,
        timeout: "1 second",
        retry: { maxAttempts: 1 },
        handler: (label: "slow" | "next") =>
          Effect.zipRight(
            probe.record(label),
            label === "next"
              ? Effect.void
              : Effect.never.pipe(Effect.onInterrupt(() => Effect.sleep("5 seconds")))
          )
      })
      const slow = yield* queue.enqueue("slow")
      const next = yield* queue.enqueue("next")
      yield* TestClock.adjust("5999 millis")
      expect(probe.of("next")).toEqual([])
      expect(yield* queue.stats).toMatchObject({ running: 1, queued: 1 })
      expect((yield* queue.get(slow.id)).status).toBe("running")
      yield* TestClock.adjust("1 millis")
      expect(probe.of("next")).toEqual([6000])
      const failed = yield* queue.get(slow.id)
      expect(failed.status).toBe("failed")
      expect(failed.finishedAt?.getTime()).toBe(6000)
      expect(yield* next.await).toEqual(Exit.void)
    })
  )

  it.scoped("never runs a timed-out attempt and its retry at once, even with a free slot", () =>
    Effect.gen(function* () {
      const probe = starts()
      let running = 0
      let maxRunning = 0
      const queue = yield* makeQueue({
        name: "no-overlap",
        maxWorkers: 2,
        timeout: "1 second",
        retry: { maxAttempts: 2, schedule: Schedule.spaced(0) },
        handler: () =>
          Effect.zipRight(
            probe.record("t"),
            Effect.sync(() => {
              running += 1
              maxRunning = Math.max(maxRunning, running)
            })
          ).pipe(
            Effect.zipRight(Effect.never),
            Effect.onInterrupt(() =>
              Effect.zipRight(
                Effect.sleep("5 seconds"),
                Effect.sync(() => (running -= 1))
              )
            )
          )
      })
      const task = yield* queue.enqueue()
      yield* TestClock.adjust("20 seconds")
      expect(probe.of("t")).toEqual([0, 6000])
      expect(maxRunning).toBe(1)
      const failed = yield* queue.get(task.id)
      expect(failed).toMatchObject({ status: "failed", attempt: 2 })
      expect(failed.finishedAt?.getTime()).toBe(12_000)
    })
  )

  it.scoped("stops the fibers a timed-out handler forked before the slot is free", () =>
    Effect.gen(function* () {
      const probe = starts()
      const queue = yield* makeQueue({
        name: "timeout-children",
        maxWorkers: 1,
        timeout: "1 second",
        retry: { maxAttempts: 1 },
        handler: (label: "parent" | "next") =>
          Effect.zipRight(
            probe.record(label),
            label === "next"
              ? Effect.void
              : Effect.fork(
                  Effect.never.pipe(Effect.onInterrupt(() => Effect.sleep("3 seconds")))
                ).pipe(Effect.zipRight(Effect.never))
          )
      })
      const parent = yield* queue.enqueue("parent")
      yield* queue.enqueue("next")
      yield* TestClock.adjust("3999 millis")
      expect(probe.of("next")).toEqual([])
      yield* TestClock.adjust("1 millis")
      expect(probe.of("next")).toEqual([4000])
      expect((yield* queue.get(parent.id)).finishedAt?.getTime()).toBe(4000)
    })
  )

  it.scoped("ends cancelled, not retried, a task cancelled while its timed-out handler stops", () =>
    Effect.gen(function* () {
      const probe = starts()
      const queue = yield* makeQueue({
        name: "cancel-while-stopping",
        maxWorkers: 1,
        timeout: "1 second",
        retry: { maxAttempts: 3, schedule: Schedule.spaced(0) },
        handler: () =>
          Effect.zipRight(
            probe.record("t"),
            Effect.never.pipe(Effect.onInterrupt(() => Effect.sleep("5 seconds")))
          )
      })
      const task = yield* queue.enqueue()
      yield* TestClock.adjust("3 seconds")
      const cancel = yield* Effect.fork(task.cancel)
      yield* TestClock.adjust("2999 millis")
      expect(cancel.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(cancel)).toBe("cancelled")
      const ended = yield* queue.get(task.id)
      expect(ended).toMatchObject({ status: "cancelled", reason: "cancelled", attempt: 1 })
      expect(ended.finishedAt?.getTime()).toBe(6000)
      yield* TestClock.adjust("1 minute")
      expect(probe.of("t")).toEqual([0])
    })
  )

  it.scoped(
    "fails with the typed TaskTimeout, retried like a failure, even a 'permanent' one",
    () =>
      Effect.gen(function* () {
        const probe = starts()
        const queue = yield* makeQueue({
          name: "typed-timeout",
          maxWorkers: 1,
          timeout: "1 second",
          retry: { maxAttempts: 2, schedule: Schedule.spaced("1 second"), isPermanent: () => true },
          handler: () => Effect.zipRight(probe.record("t"), Effect.never)
        })
        const task = yield* queue.enqueue()
        yield* TestClock.adjust("1 second")
        expect(yield* queue.get(task.id)).toMatchObject({ status: "queued", attempt: 1 })
        yield* TestClock.adjust("1 minute")
        expect(probe.of("t")).toEqual([0, 2000])
        const exit = yield* task.await
        expect(exit).toEqual(Exit.fail(TaskError.TaskTimeout.of(1000)))
        const ended = yield* queue.get(task.id)
        expect(ended).toMatchObject({ status: "failed", attempt: 2 })
        expect(ended.finishedAt?.getTime()).toBe(3000)
        expect(queue.toView(ended).error).toEqual({
          kind: "timeout",
          message: "The task timed out after 1000 ms"
        })
      })
  )

  it.scoped("takes a task's own timeout over the queue's; Duration.infinity for none", () =>
    Effect.gen(function* () {
      const queue = yield* makeQueue({
        name: "own-timeout",
        maxWorkers: 3,
        timeout: "1 second",
        retry: { maxAttempts: 1 },
        handler: (ms: number) => Effect.as(Effect.sleep(ms), ms)
      })
      const plain = yield* queue.enqueue(10_000)
      const longer = yield* queue.enqueueWith({ timeout: "3 seconds" }, 10_000)
      const none = yield* queue.enqueueWith({ timeout: Duration.infinity }, 10_000)
      yield* TestClock.adjust("10 seconds")
      const ends = []
      for (const task of [plain, longer, none]) {
        const ended = yield* queue.get(task.id)
        ends.push([ended.status, ended.finishedAt?.getTime()])
      }
      expect(ends).toEqual([
        ["failed", 1000],
        ["failed", 3000],
        ["succeeded", 10_000]
      ])
      expect(yield* longer.await).toEqual(Exit.fail(TaskError.TaskTimeout.of(3000)))
    })
  )
})

describe("TaskQueue.enqueueWith options", () => {
  it.scoped("refuses bad options naming option, value and rule, and stores nothing", () =>
    Effect.gen(function* () {
      const probe = starts()
      const queue = yield* makeQueue({
        name: "bad-options",
        maxWorkers: 1,
        handler: () => probe.record("t")
      })
      const cases: Array<
        [TaskQueue.EnqueueOptions<never>, { option: string; value: string; rule: string }]
      > = [
        [{ delay: -1 }, { option: "delay", value: "-1", rule: "must be a non-negative duration" }],
        [
          { delay: "-5 seconds" },
          { option: "delay", value: '"-5 seconds"', rule: "must be a non-negative duration" }
        ],
        [
          { delay: "1 second", runAt: 5000 },
          { option: "runAt", value: "5000", rule: "cannot be given with delay" }
        ],
        [
          { priority: 1.5 },
          {
            option: "priority",
            value: "1.5",
            rule: "must be an integer from -1000000 to 1000000"
          }
        ],
        [
          { retry: { maxAttempts: 0 } },
          { option: "retry.maxAttempts", value: "0", rule: "must be a positive integer" }
        ],
        [
          { idempotencyKey: "" },
          { option: "idempotencyKey", value: '""', rule: "must be a string of 1 to 255 characters" }
        ],
        [{ timeout: 0 }, { option: "timeout", value: "0", rule: "must be a positive duration" }]
      ]
      for (const [options, expected] of cases) {
        const error = yield* Effect.flip(queue.enqueueWith(options))
        assertInstanceOf(error, TaskError.InvalidOption)
        expect({ option: error.option, value: error.value, rule: error.rule }).toEqual(expected)
        expect(error.message).toBe(
          `Invalid option ${expected.option}: ${expected.value} (${expected.rule})`
        )
      }
      yield* TestClock.adjust("1 minute")
      expect((yield* queue.list()).items).toEqual([])
      expect(yield* queue.stats).toMatchObject({ queued: 0, running: 0, delayed: 0 })
      expect(probe.at.size).toBe(0)
      // The same queue still takes good options.
      const task = yield* queue.enqueueWith({ delay: "1 second", priority: 2 })
      yield* TestClock.adjust("1 second")
      expect(yield* task.await).toEqual(Exit.void)
      expect(probe.of("t")).toEqual([61_000])
    })
  )
})
