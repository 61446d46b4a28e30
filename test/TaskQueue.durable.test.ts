/**
 * The durable engine on the SQL store, SQLite in memory, all on the test
 * clock, with the same execution semantics as the memory engine's tests:
 * results, retries on the schedule's exact gaps, timeouts, delays and
 * runAt, priorities, pause, resize, awaitIdle and stats. Cancels,
 * idempotency and refusals are in TaskQueue.durable.cancel.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  DateTime,
  Duration,
  Effect,
  Exit,
  Fiber,
  Option,
  Schedule,
  Schema,
  TestClock
} from "effect"
import { TaskError } from "effect-task-queue"
import {
  invalidOption,
  isDone,
  makeDurableQueue,
  memoryDb,
  readRow,
  settle,
  sleeper,
  starts,
  statsAre,
  yieldUntil
} from "./helpers.js"

describe("TaskQueue on SQLite: results, retries, timeouts", () => {
  it.scoped("runs a task from its stored payload and keeps its result", () =>
    Effect.gen(function* () {
      const context = yield* memoryDb
      const Order = Schema.Struct({ id: Schema.Number, at: Schema.Date })
      const seen: Array<unknown> = []
      const queue = yield* makeDurableQueue(context, {
        name: "results",
        maxWorkers: 1,
        payload: Order,
        success: Schema.Struct({ total: Schema.Number }),
        handler: (order: typeof Order.Type) =>
          Effect.sync(() => seen.push(order)).pipe(
            Effect.zipRight(Effect.sleep("1 second")),
            Effect.as({ total: order.id * 2 })
          )
      })
      const task = yield* queue.enqueue({ id: 21, at: new Date(5_000) })
      // The payload is kept as the Schema's encoded JSON.
      const row = yield* readRow(task.id).pipe(Effect.provide(context))
      expect(JSON.parse(row!.payload)).toEqual({ id: 21, at: new Date(5_000).toISOString() })

      yield* yieldUntil(() => seen.length === 1)
      expect(seen).toEqual([{ id: 21, at: new Date(5_000) }])
      expect(yield* queue.get(task.id)).toMatchObject({ status: "running", attempt: 1 })
      yield* TestClock.adjust("999 millis")
      expect((yield* queue.get(task.id)).status).toBe("running")
      yield* TestClock.adjust("1 millis")
      expect(yield* task.await).toEqual(Exit.succeed({ total: 42 }))
      const done = yield* queue.get(task.id)
      expect(done).toMatchObject({ status: "succeeded", attempt: 1, maxAttempts: 3 })
      expect(done.startedAt?.getTime()).toBe(0)
      expect(done.finishedAt?.getTime()).toBe(1000)
      expect(queue.toView(done).result).toEqual({ total: 42 })
      expect(yield* queue.stats).toEqual({
        queued: 0,
        running: 0,
        delayed: 0,
        paused: false,
        maxWorkers: 1
      })
    })
  )

  it.scoped("retries on the schedule's exact gaps, then fails with the last error", () =>
    Effect.gen(function* () {
      const context = yield* memoryDb
      const probe = starts()
      let attempt = 0
      const queue = yield* makeDurableQueue(context, {
        name: "retries",
        maxWorkers: 1,
        payload: Schema.String,
        failure: Schema.String,
        retry: { maxAttempts: 4, schedule: Schedule.exponential("1 second") },
        handler: (_: string) =>
          Effect.zipRight(
            probe.record("t"),
            Effect.suspend(() => Effect.fail(`attempt ${(attempt += 1)}`))
          )
      })
      const task = yield* queue.enqueue("x")
      yield* yieldUntil(() => probe.of("t").length === 1)
      yield* yieldUntil(statsAre(queue, { delayed: 1 }))
      const waiting = yield* queue.get(task.id)
      expect(waiting).toMatchObject({ status: "queued", attempt: 1, maxAttempts: 4 })
      expect(waiting.runAt?.getTime()).toBe(1000)
      expect(yield* queue.stats).toMatchObject({ queued: 1, running: 0, delayed: 1 })

      yield* TestClock.adjust("999 millis")
      yield* settle
      expect(probe.of("t")).toEqual([0])
      yield* TestClock.adjust("1 millis")
      yield* yieldUntil(() => probe.of("t").length === 2)
      expect(probe.of("t")).toEqual([0, 1000])
      yield* TestClock.adjust("1999 millis")
      yield* settle
      expect(probe.of("t")).toEqual([0, 1000])
      yield* TestClock.adjust("1 millis")
      yield* yieldUntil(() => probe.of("t").length === 3)
      yield* TestClock.adjust("4 seconds")
      yield* yieldUntil(() => probe.of("t").length === 4)
      expect(probe.of("t")).toEqual([0, 1000, 3000, 7000])
      yield* TestClock.adjust("10 minutes")
      expect(probe.of("t")).toHaveLength(4)

      expect(yield* task.await).toEqual(Exit.fail("attempt 4"))
      const failed = yield* queue.get(task.id)
      expect(failed).toMatchObject({ status: "failed", attempt: 4, maxAttempts: 4 })
      expect(failed.startedAt?.getTime()).toBe(7000)
      expect(failed.finishedAt?.getTime()).toBe(7000)
      expect(failed.runAt).toBeUndefined()
      expect(queue.toView(failed).error).toMatchObject({ kind: "failure", message: "attempt 4" })
    })
  )

  it.scoped("fails at once on a permanent error; retries a defect and ends kind defect", () =>
    Effect.gen(function* () {
      const context = yield* memoryDb
      const probe = starts()
      const queue = yield* makeDurableQueue(context, {
        name: "permanent",
        maxWorkers: 1,
        payload: Schema.String,
        failure: Schema.String,
        retry: {
          maxAttempts: 2,
          schedule: Schedule.spaced("1 second"),
          isPermanent: (e) => e === "gone"
        },
        handler: (kind: string) =>
          Effect.zipRight(
            probe.record(kind),
            kind === "gone" ? Effect.fail("gone") : Effect.die(new Error("boom"))
          )
      })
      const gone = yield* queue.enqueue("gone")
      const boom = yield* queue.enqueue("boom")
      yield* TestClock.adjust("1 minute")
      expect(yield* gone.await).toEqual(Exit.fail("gone"))
      expect(probe.of("gone")).toEqual([0])
      expect(probe.of("boom")).toEqual([0, 1000])
      const failed = yield* queue.get(boom.id)
      expect(failed).toMatchObject({ status: "failed", attempt: 2 })
      expect(queue.toView(failed).error).toMatchObject({ kind: "defect" })
      expect(queue.toView(failed).error?.message).toContain("boom")
    })
  )

  it.scoped(
    "times an attempt out, retries it, and ends with TaskTimeout; a task's own timeout",
    () =>
      Effect.gen(function* () {
        const context = yield* memoryDb
        const probe = starts()
        let stopped = 0
        const queue = yield* makeDurableQueue(context, {
          name: "timeouts",
          maxWorkers: 1,
          payload: Schema.String,
          timeout: "1 second",
          retry: { maxAttempts: 2, schedule: Schedule.spaced("1 second") },
          handler: (label: string) =>
            Effect.zipRight(
              probe.record(label),
              Effect.onInterrupt(Effect.never, () => Effect.sync(() => (stopped += 1)))
            )
        })
        const task = yield* queue.enqueue("slow")
        yield* TestClock.adjust("999 millis")
        expect(yield* queue.get(task.id)).toMatchObject({ status: "running", attempt: 1 })
        yield* TestClock.adjust("1 millis")
        yield* yieldUntil(statsAre(queue, { delayed: 1 }))
        expect(stopped).toBe(1)
        yield* TestClock.adjust("1 second")
        yield* yieldUntil(() => probe.of("slow").length === 2)
        yield* TestClock.adjust("1 second")
        expect(yield* task.await).toEqual(Exit.fail(TaskError.TaskTimeout.of(1000)))
        expect(probe.of("slow")).toEqual([0, 2000])
        const failed = yield* queue.get(task.id)
        expect(failed).toMatchObject({ status: "failed", attempt: 2 })
        expect(failed.finishedAt?.getTime()).toBe(3000)
        expect(queue.toView(failed).error).toMatchObject({ kind: "timeout" })

        // Its own timeout and attempts, kept in its row.
        const own = yield* queue.enqueueWith(
          { timeout: "250 millis", retry: { maxAttempts: 1 } },
          "own"
        )
        yield* yieldUntil(() => probe.of("own").length === 1)
        yield* TestClock.adjust("250 millis")
        expect(yield* own.await).toEqual(Exit.fail(TaskError.TaskTimeout.of(250)))
        expect(yield* queue.get(own.id)).toMatchObject({ status: "failed", maxAttempts: 1 })
        expect(probe.of("own")).toEqual([3000])
      })
  )

  it.scoped("lifts the queue's timeout for a task whose own timeout is Duration.infinity", () =>
    Effect.gen(function* () {
      const context = yield* memoryDb
      const queue = yield* makeDurableQueue(context, {
        name: "no-timeout",
        maxWorkers: 1,
        payload: Schema.String,
        timeout: "1 second",
        retry: { maxAttempts: 1 },
        handler: (label: string) => Effect.as(Effect.sleep("5 seconds"), label)
      })
      const task = yield* queue.enqueueWith({ timeout: Duration.infinity }, "patient")
      yield* TestClock.adjust("5 seconds")
      // As with the memory store: no limit for this task, so it runs its 5 s.
      expect(yield* task.await).toEqual(Exit.succeed("patient"))
    })
  )

  it.scoped("gives back an undefined result that the success Schema allows", () =>
    Effect.gen(function* () {
      const context = yield* memoryDb
      const queue = yield* makeDurableQueue(context, {
        name: "undefined-result",
        maxWorkers: 1,
        payload: Schema.Number,
        success: Schema.UndefinedOr(Schema.Number),
        handler: (n: number) => Effect.succeed(n > 0 ? n : undefined)
      })
      const some = yield* queue.enqueue(1)
      const none = yield* queue.enqueue(0)
      expect(yield* some.await).toEqual(Exit.succeed(1))
      // The handler succeeded: its task must not read back as a defect.
      expect(yield* none.await).toEqual(Exit.succeed(undefined))
      const task = yield* queue.get(none.id)
      expect(task.status).toBe("succeeded")
      expect(queue.toView(task).error).toBeUndefined()
    })
  )
})

describe("TaskQueue on SQLite: when tasks start", () => {
  it.scoped("starts a delayed task when it is due, and takes runAt in each form", () =>
    Effect.gen(function* () {
      const context = yield* memoryDb
      const probe = starts()
      const queue = yield* makeDurableQueue(context, {
        name: "delays",
        maxWorkers: 4,
        payload: Schema.String,
        handler: (label: string) => probe.record(label)
      })
      const delayed = yield* queue.enqueueWith({ delay: "5 seconds" }, "delay")
      yield* queue.enqueueWith({ runAt: new Date(2_000) }, "date")
      yield* queue.enqueueWith({ runAt: DateTime.unsafeMake(3_000) }, "datetime")
      yield* queue.enqueueWith({ runAt: -1_000 }, "past")
      yield* yieldUntil(() => probe.of("past").length === 1)
      expect((yield* queue.get(delayed.id)).runAt?.getTime()).toBe(5000)
      yield* yieldUntil(statsAre(queue, { queued: 3, delayed: 3, running: 0 }))

      yield* TestClock.adjust("1999 millis")
      yield* settle
      expect(probe.of("date")).toEqual([])
      yield* TestClock.adjust("1 millis")
      yield* yieldUntil(() => probe.of("date").length === 1)
      yield* TestClock.adjust("1 second")
      yield* yieldUntil(() => probe.of("datetime").length === 1)
      yield* TestClock.adjust("1999 millis")
      yield* settle
      expect(probe.of("delay")).toEqual([])
      yield* TestClock.adjust("1 millis")
      yield* queue.awaitIdle
      expect([...probe.at.entries()]).toEqual([
        ["past", [0]],
        ["date", [2000]],
        ["datetime", [3000]],
        ["delay", [5000]]
      ])
    })
  )

  it.scoped("starts the highest priority first, first in first out within a priority", () =>
    Effect.gen(function* () {
      const context = yield* memoryDb
      const { handler, started, names } = sleeper(10)
      const queue = yield* makeDurableQueue(context, {
        name: "priorities",
        maxWorkers: 1,
        payload: Schema.String,
        handler
      })
      yield* queue.enqueue("busy")
      yield* yieldUntil(() => started.length === 1)
      const waiting: Array<readonly [string, number]> = [
        ["a", 0],
        ["b", 5],
        ["c", -1],
        ["d", 5],
        ["e", 0],
        ["f", 10],
        ["g", -1],
        ["h", 0]
      ]
      for (const [name, priority] of waiting) yield* queue.enqueueWith({ priority }, name)
      yield* TestClock.adjust("1 second")
      yield* queue.awaitIdle
      expect(names()).toEqual(["busy", "f", "b", "d", "a", "e", "h", "c", "g"])
      expect(started.map(([, at]) => at)).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80])
    })
  )

  it.scoped("starts nothing while paused; running tasks finish and enqueue still works", () =>
    Effect.gen(function* () {
      const context = yield* memoryDb
      const { handler, started } = sleeper(100)
      const queue = yield* makeDurableQueue(context, {
        name: "pause",
        maxWorkers: 2,
        payload: Schema.String,
        handler
      })
      for (const name of ["a", "b", "c"]) yield* queue.enqueue(name)
      yield* yieldUntil(() => started.length === 2)
      yield* queue.pause
      expect(yield* queue.stats).toEqual({
        queued: 1,
        running: 2,
        delayed: 0,
        paused: true,
        maxWorkers: 2
      })
      const d = yield* queue.enqueue("d")
      expect((yield* queue.get(d.id)).status).toBe("queued")
      yield* TestClock.adjust("1 minute")
      yield* yieldUntil(statsAre(queue, { running: 0 }))
      expect(started).toEqual([
        ["a", 0],
        ["b", 0]
      ])
      expect(yield* queue.stats).toMatchObject({ queued: 2, running: 0, paused: true })
      yield* queue.resume
      yield* yieldUntil(() => started.length === 4)
      expect(started.slice(2)).toEqual([
        ["c", 60_000],
        ["d", 60_000]
      ])
      yield* TestClock.adjust("100 millis")
      yield* queue.awaitIdle
    })
  )

  it.effect("wakes a worker waiting between tasks for each claim, at any scheduler budget", () =>
    Effect.gen(function* () {
      // Workers wait for the next claimed task between two; where the
      // scheduler yields decides whether a claim lands as a worker looks for
      // a task, or as it begins to wait. The ticker never runs here (the test
      // clock stands still): only the claim can wake the worker.
      const stuck: Array<number> = []
      for (let budget = 10; budget <= 40; budget++) {
        const ran = yield* Effect.gen(function* () {
          const context = yield* memoryDb
          let done = 0
          const queue = yield* makeDurableQueue(context, {
            name: `wake-${budget}`,
            maxWorkers: 3,
            payload: Schema.Number,
            handler: (_: number) => Effect.sync(() => (done += 1))
          })
          for (let n = 0; n < 36; n += 3) {
            yield* Effect.fork(queue.enqueue(n))
            yield* Effect.fork(queue.enqueue(n + 1))
            yield* queue.enqueue(n + 2)
            for (let i = 0; i < 1000 && done < n + 3; i++) yield* Effect.yieldNow()
          }
          return done
        }).pipe(Effect.scoped, Effect.withMaxOpsBeforeYield(budget))
        if (ran !== 36) stuck.push(budget)
      }
      expect(stuck).toEqual([])
    })
  )

  it.effect("runs the next task after a resize down while a worker waits, at any budget", () =>
    Effect.gen(function* () {
      // The drain fiber may hold a permit and the next token when the
      // resize lands: it gives the token back, and that must wake the worker
      // that waits for it.
      const stuck: Array<number> = []
      for (let budget = 10; budget <= 40; budget++) {
        const ran = yield* Effect.gen(function* () {
          const context = yield* memoryDb
          const queue = yield* makeDurableQueue(context, {
            name: `resize-wake-${budget}`,
            maxWorkers: 2,
            payload: Schema.String,
            handler: (s: string) => Effect.succeed(s)
          })
          yield* (yield* queue.enqueue("first")).await
          yield* settle
          yield* queue.resize(1)
          const second = yield* Effect.fork((yield* queue.enqueue("second")).await)
          for (let i = 0; i < 1000 && second.unsafePoll() === null; i++) yield* Effect.yieldNow()
          return second.unsafePoll() !== null
        }).pipe(Effect.scoped, Effect.withMaxOpsBeforeYield(budget))
        if (!ran) stuck.push(budget)
      }
      expect(stuck).toEqual([])
    })
  )

  it.scoped("runs more at once when resized up, and at most the new size when resized down", () =>
    Effect.gen(function* () {
      const context = yield* memoryDb
      let running = 0
      let most = 0
      const { handler, started } = sleeper(100)
      const queue = yield* makeDurableQueue(context, {
        name: "resize",
        maxWorkers: 1,
        payload: Schema.String,
        handler: (name: string) =>
          Effect.sync(() => {
            running += 1
            most = Math.max(most, running)
          }).pipe(
            Effect.zipRight(handler(name)),
            Effect.ensuring(Effect.sync(() => (running -= 1)))
          )
      })
      for (const name of ["a", "b", "c", "d", "e", "f", "g"]) yield* queue.enqueue(name)
      yield* yieldUntil(() => started.length === 1)
      yield* queue.resize(3)
      expect(queue.maxWorkers).toBe(3)
      yield* yieldUntil(() => started.length === 3)
      expect(started.map(([, at]) => at)).toEqual([0, 0, 0])
      expect(yield* queue.stats).toEqual({
        queued: 4,
        running: 3,
        delayed: 0,
        paused: false,
        maxWorkers: 3
      })
      yield* queue.resize(1)
      expect(yield* invalidOption(queue.resize(0))).toBe("maxWorkers")
      expect(queue.maxWorkers).toBe(1)
      most = running
      yield* TestClock.adjust("100 millis")
      yield* yieldUntil(statsAre(queue, { running: 1 }))
      most = running
      yield* TestClock.adjust("1 second")
      yield* queue.awaitIdle
      expect(most).toBe(1)
      expect(started.map(([, at]) => at)).toEqual([0, 0, 0, 100, 200, 300, 400])
    })
  )

  it.scoped("waits for idle: at once when idle; delayed and retry-waiting tasks count", () =>
    Effect.gen(function* () {
      const context = yield* memoryDb
      let calls = 0
      const queue = yield* makeDurableQueue(context, {
        name: "idle",
        maxWorkers: 1,
        payload: Schema.String,
        retry: { maxAttempts: 2, schedule: Schedule.spaced("3 seconds") },
        handler: (_: string) =>
          Effect.suspend(() => ((calls += 1) === 1 ? Effect.fail("again") : Effect.void))
      })
      yield* queue.awaitIdle
      yield* queue.enqueueWith({ delay: "2 seconds" }, "later")
      const idle = yield* Effect.fork(queue.awaitIdle)
      yield* TestClock.adjust("2 seconds")
      yield* yieldUntil(() => calls === 1)
      yield* settle
      expect(yield* Fiber.poll(idle)).toEqual(Option.none())
      yield* TestClock.adjust("2999 millis")
      yield* settle
      expect(yield* Fiber.poll(idle)).toEqual(Option.none())
      yield* TestClock.adjust("1 millis")
      yield* yieldUntil(isDone(idle))
      expect(calls).toBe(2)
      expect(yield* queue.stats).toMatchObject({ queued: 0, running: 0, delayed: 0 })
    })
  )
})
