/**
 * How many tasks a queue holds and when it is done with them: capacity,
 * refusing or making enqueues wait when full; idempotency keys, which give
 * back the task a key already names; and `awaitIdle`. All on the test
 * clock, with exact times.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Option, Schedule, Scope, TestClock } from "effect"
import { TaskError, TaskQueue, TaskStore } from "effect-task-queue"
import { Capacity } from "../src/internal/capacity.js"
import {
  isDone,
  isSuspended,
  makeQueue,
  recorder,
  settle,
  statsAre,
  yieldUntil
} from "./helpers.js"

describe("capacity", () => {
  it.scoped("refuses with QueueFull once capacity tasks are queued, and stores nothing", () =>
    Effect.gen(function* () {
      const { names, handler } = recorder()
      const queue = yield* makeQueue({
        name: "refuse",
        maxWorkers: 1,
        capacity: 2,
        whenFull: "refuse",
        handler
      })
      yield* queue.enqueue("running", 100)
      yield* yieldUntil(statsAre(queue, { running: 1 }))
      yield* queue.enqueue("one", 100)
      const two = yield* queue.enqueue("two", 100)
      const full = yield* Effect.flip(queue.enqueue("refused", 100))
      expect(full).toBeInstanceOf(TaskError.QueueFull)
      expect(full).toMatchObject({ queue: "refuse", capacity: 2 })
      expect(yield* Effect.flip(queue.enqueueWith({ priority: 5 }, "refused", 100))).toBeInstanceOf(
        TaskError.QueueFull
      )
      expect((yield* queue.list()).items).toHaveLength(3)
      expect(yield* queue.stats).toMatchObject({ queued: 2, running: 1 })

      // A task starting makes room for one.
      yield* TestClock.adjust("100 millis")
      yield* yieldUntil(() => names().length === 2)
      yield* queue.enqueue("three", 100)
      expect(yield* Effect.flip(queue.enqueue("refused", 100))).toBeInstanceOf(TaskError.QueueFull)

      // So does a queued task cancelled.
      yield* two.cancel
      yield* queue.enqueue("four", 100)
      expect(yield* Effect.flip(queue.enqueue("refused", 100))).toBeInstanceOf(TaskError.QueueFull)
      yield* TestClock.adjust("1 second")
      yield* queue.awaitIdle
      expect(names()).toEqual(["running", "one", "three", "four"])
      expect((yield* queue.list()).items.map((task) => task.status)).toEqual([
        "succeeded",
        "succeeded",
        "cancelled",
        "succeeded",
        "succeeded"
      ])
    })
  )

  it.scoped("counts enqueues still writing to a slow store against capacity", () =>
    Effect.gen(function* () {
      const inner = yield* TaskStore.makeMemory()
      // A store like a database's: every insert takes 10 ms.
      const slow = TaskStore.TaskStore.of({
        ...inner,
        insert: (record) => Effect.zipRight(Effect.sleep("10 millis"), inner.insert(record)),
        unsafeInsert: undefined,
        unsafeUpdate: undefined
      })
      const queue = yield* TaskQueue.make({
        name: "slow-capacity",
        maxWorkers: 1,
        capacity: 1,
        whenFull: "refuse",
        shutdownGrace: 0,
        handler: (_: string) => Effect.never
      }).pipe(Effect.provideService(TaskStore.TaskStore, slow))
      yield* queue.pause
      const first = yield* Effect.fork(queue.enqueue("first"))
      const second = yield* Effect.fork(Effect.flip(queue.enqueue("second")))
      yield* TestClock.adjust("10 millis")
      yield* Fiber.join(first)
      expect(yield* Fiber.join(second)).toBeInstanceOf(TaskError.QueueFull)
      expect(yield* queue.stats).toMatchObject({ queued: 1 })
      expect((yield* queue.list()).items).toHaveLength(1)
    })
  )

  it.scoped("counts delayed tasks and tasks waiting for a retry against capacity", () =>
    Effect.gen(function* () {
      const queue = yield* makeQueue({
        name: "refuse-delayed",
        maxWorkers: 1,
        capacity: 1,
        whenFull: "refuse",
        retry: { maxAttempts: 2, schedule: Schedule.spaced("1 second") },
        handler: (fail: boolean) => (fail ? Effect.fail("no") : Effect.void)
      })
      yield* queue.enqueueWith({ delay: "1 second" }, false)
      expect(yield* Effect.flip(queue.enqueue(false))).toBeInstanceOf(TaskError.QueueFull)
      yield* TestClock.adjust("1 second")
      yield* queue.awaitIdle

      const failing = yield* queue.enqueue(true)
      yield* yieldUntil(statsAre(queue, { delayed: 1 }))
      expect((yield* queue.get(failing.id)).attempt).toBe(1)
      expect(yield* Effect.flip(queue.enqueue(false))).toBeInstanceOf(TaskError.QueueFull)
      yield* TestClock.adjust("1 second")
      yield* queue.awaitIdle
      yield* queue.enqueue(false)
    })
  )

  it.scoped("suspends enqueue until a task starts, and serves waiters in arrival order", () =>
    Effect.gen(function* () {
      const { starts, handler } = recorder()
      const queue = yield* makeQueue({ name: "wait", maxWorkers: 1, capacity: 1, handler })
      yield* queue.enqueue("a", 100)
      yield* yieldUntil(statsAre(queue, { running: 1 }))
      yield* queue.enqueue("b", 100)
      const waiters: Array<Fiber.RuntimeFiber<TaskQueue.TaskHandle<string, unknown>, unknown>> = []
      for (const name of ["c", "d", "e"]) {
        const fiber = yield* Effect.fork(queue.enqueue(name, 100))
        yield* yieldUntil(isSuspended(fiber))
        waiters.push(fiber)
      }
      yield* settle
      for (const fiber of waiters) expect(yield* Fiber.poll(fiber)).toEqual(Option.none())
      expect((yield* queue.list()).items).toHaveLength(2)

      // Each start makes room for exactly one waiter, the one that came first.
      for (let done = 1; done <= 3; done++) {
        yield* TestClock.adjust("100 millis")
        yield* yieldUntil(isDone(waiters[done - 1]!))
        yield* settle
        for (const fiber of waiters.slice(done)) {
          expect(yield* Fiber.poll(fiber)).toEqual(Option.none())
        }
        expect(yield* queue.stats).toMatchObject({ queued: 1, running: 1 })
      }
      const ids = []
      for (const fiber of waiters) ids.push((yield* Fiber.join(fiber)).id)
      yield* TestClock.adjust("1 second")
      yield* queue.awaitIdle
      expect(starts).toEqual([
        ["a", 0],
        ["b", 100],
        ["c", 200],
        ["d", 300],
        ["e", 400]
      ])
      expect((yield* queue.list()).items.slice(2).map((task) => task.id)).toEqual(ids)
    })
  )

  it.scoped("stores nothing for an interrupted waiting enqueue and does not leak its room", () =>
    Effect.gen(function* () {
      const { names, handler } = recorder()
      const queue = yield* makeQueue({
        name: "wait-interrupt",
        maxWorkers: 1,
        capacity: 1,
        handler
      })
      yield* queue.enqueue("a", 100)
      yield* yieldUntil(statsAre(queue, { running: 1 }))
      yield* queue.enqueue("b", 100)
      const gone = yield* Effect.fork(queue.enqueue("gone", 100))
      yield* yieldUntil(isSuspended(gone))
      const next = yield* Effect.fork(queue.enqueue("next", 100))
      yield* yieldUntil(isSuspended(next))
      yield* Fiber.interrupt(gone)

      // b starts at 100 ms: its room goes to the next waiter.
      yield* TestClock.adjust("100 millis")
      yield* yieldUntil(isDone(next))
      expect(Exit.isSuccess(yield* Fiber.await(next))).toBe(true)
      expect(yield* queue.stats).toMatchObject({ queued: 1, running: 1 })

      // "next" starts at 200 ms: the queue is empty, so one enqueue fits at once, and a second waits.
      yield* TestClock.adjust("100 millis")
      yield* yieldUntil(statsAre(queue, { queued: 0, running: 1 }))
      const fits = yield* Effect.fork(queue.enqueue("fits", 100))
      yield* yieldUntil(isDone(fits))
      const waits = yield* Effect.fork(queue.enqueue("waits", 100))
      yield* yieldUntil(isSuspended(waits))
      yield* settle
      expect(yield* Fiber.poll(waits)).toEqual(Option.none())

      yield* TestClock.adjust("1 second")
      yield* queue.awaitIdle
      expect(names()).toEqual(["a", "b", "next", "fits", "waits"])
      expect((yield* queue.list()).items).toHaveLength(5)
    })
  )

  it.effect("forgets an enqueue interrupted as it starts to wait, at any scheduler budget", () =>
    Effect.gen(function* () {
      // The scheduler's budget moves where the interruption lands: just
      // before, inside or after the enqueue's registration as a waiter.
      const stuck: Array<number> = []
      for (let budget = 10; budget <= 64; budget++) {
        const fits = yield* Effect.gen(function* () {
          const queue = yield* makeQueue({
            name: `wait-budget-${budget}`,
            maxWorkers: 1,
            capacity: 1,
            handler: (_: string) => Effect.void
          })
          yield* Effect.fork(queue.enqueue("first"))
          yield* Effect.yieldNow()
          const interrupted = yield* Effect.fork(queue.enqueueWith({ delay: 1 }, "interrupted"))
          yield* Effect.fork(Fiber.interrupt(interrupted))
          yield* Effect.yieldNow()
          yield* TestClock.adjust("1 second")
          yield* Fiber.await(interrupted)
          yield* queue.awaitIdle
          // The queue is empty: an enqueue must fit at once.
          const late = yield* Effect.fork(queue.enqueue("late"))
          for (let i = 0; i < 1000 && late.unsafePoll() === null; i++) yield* Effect.yieldNow()
          return late.unsafePoll() !== null
        }).pipe(Effect.scoped, Effect.withMaxOpsBeforeYield(budget))
        if (!fits) stuck.push(budget)
      }
      expect(stuck).toEqual([])
    })
  )

  it.effect("lets in an enqueue whose room came after it looked and before it waited", () =>
    Effect.gen(function* () {
      let queued = 1
      const capacity = new Capacity(
        1,
        () => queued,
        () => {}
      )
      // The enqueue finds no room, and goes to wait (its fiber has not run yet)...
      expect(capacity.hasRoom()).toBe(false)
      const waiting = yield* Effect.fork(capacity.waitForRoom(Effect.succeed("in")))
      // ...while the task ahead starts: room made, no waiter registered to wake.
      queued = 0
      capacity.roomMade()
      for (let i = 0; i < 100 && waiting.unsafePoll() === null; i++) yield* Effect.yieldNow()
      expect(waiting.unsafePoll()).toEqual(Exit.succeed("in"))
      expect(capacity.reservations).toBe(0)
    })
  )

  it.scoped("counts a waiting enqueue's delay from the call, not from when room came", () =>
    Effect.gen(function* () {
      const { starts, handler } = recorder()
      const queue = yield* makeQueue({ name: "wait-delay", maxWorkers: 1, capacity: 1, handler })
      yield* queue.enqueue("a", 100)
      yield* yieldUntil(statsAre(queue, { running: 1 }))
      yield* queue.enqueue("b", 100)
      const waiting = yield* Effect.fork(queue.enqueueWith({ delay: "250 millis" }, "delayed", 10))
      yield* yieldUntil(isSuspended(waiting))
      // Room comes at 100 ms, when b starts; the task is due at 250 ms all the same.
      yield* TestClock.adjust("100 millis")
      const task = yield* Fiber.join(waiting)
      expect((yield* queue.get(task.id)).runAt).toEqual(new Date(250))
      yield* TestClock.adjust("1 second")
      yield* queue.awaitIdle
      expect(starts).toEqual([
        ["a", 0],
        ["b", 100],
        ["delayed", 250]
      ])
    })
  )

  it.effect(
    "fails enqueues still waiting for room with QueueShutdown when the queue shuts down",
    () =>
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const queue = yield* makeQueue({
          name: "wait-shutdown",
          maxWorkers: 1,
          capacity: 1,
          handler: (_: string) => Effect.never
        }).pipe(Scope.extend(scope))
        yield* queue.enqueue("running")
        yield* yieldUntil(statsAre(queue, { running: 1 }))
        yield* queue.enqueue("queued")
        const waiters = []
        for (let n = 0; n < 3; n++) {
          const fiber = yield* Effect.fork(queue.enqueue(`waiting ${n}`))
          yield* yieldUntil(isSuspended(fiber))
          waiters.push(fiber)
        }
        yield* Scope.close(scope, Exit.void)
        for (const fiber of waiters) {
          const error = yield* Effect.flip(Fiber.join(fiber))
          expect(error).toBeInstanceOf(TaskError.QueueShutdown)
        }
        const page = yield* queue.list()
        expect(page.items.map((task) => [task.status, task.reason])).toEqual([
          ["cancelled", "shutdown"],
          ["cancelled", "shutdown"]
        ])
      })
  )
})

describe("idempotency keys", () => {
  it.scoped("gives back the same task for the same key, running the handler once", () =>
    Effect.gen(function* () {
      let calls = 0
      const queue = yield* makeQueue({
        name: "idempotent",
        maxWorkers: 1,
        handler: (n: number) =>
          Effect.sync(() => (calls += 1)).pipe(
            Effect.zipRight(Effect.sleep("100 millis")),
            Effect.as(n)
          )
      })
      const first = yield* queue.enqueueWith({ idempotencyKey: "order-1" }, 1)
      const again = yield* queue.enqueueWith({ idempotencyKey: "order-1" }, 2)
      expect(again.id).toBe(first.id)
      expect((yield* queue.list()).items).toHaveLength(1)
      expect((yield* queue.stats).queued).toBe(1)

      yield* TestClock.adjust("100 millis")
      yield* queue.awaitIdle
      const finished = yield* queue.enqueueWith({ idempotencyKey: "order-1" }, 3)
      expect(finished.id).toBe(first.id)
      expect(yield* finished.await).toEqual(Exit.succeed(1))
      expect((yield* queue.get(first.id)).status).toBe("succeeded")
      expect(yield* Effect.flip(finished.cancel)).toBeInstanceOf(TaskError.TaskFinished)
      yield* settle
      expect(calls).toBe(1)
      expect((yield* queue.list()).items).toHaveLength(1)
      expect(yield* queue.stats).toMatchObject({ queued: 0, running: 0 })
    })
  )

  it.scoped(
    "makes different tasks for different keys, no key, or the same key in another queue",
    () =>
      Effect.gen(function* () {
        const store = yield* TaskStore.makeMemory()
        const make = (name: string) =>
          TaskQueue.make({
            name,
            maxWorkers: 1,
            shutdownGrace: 0,
            handler: () => Effect.never
          }).pipe(Effect.provideService(TaskStore.TaskStore, store))
        const one = yield* make("idempotent-one")
        const two = yield* make("idempotent-two")
        const ids = [
          (yield* one.enqueueWith({ idempotencyKey: "k" })).id,
          (yield* one.enqueueWith({ idempotencyKey: "other" })).id,
          (yield* two.enqueueWith({ idempotencyKey: "k" })).id,
          (yield* one.enqueue()).id,
          (yield* one.enqueue()).id
        ]
        expect(new Set(ids).size).toBe(5)
        expect((yield* one.enqueueWith({ idempotencyKey: "k" })).id).toBe(ids[0])
        expect((yield* two.enqueueWith({ idempotencyKey: "k" })).id).toBe(ids[2])
        expect((yield* one.list()).items).toHaveLength(4)
        expect((yield* two.list()).items).toHaveLength(1)
      })
  )
  it.scoped("gives back a repeated key's task even when the queue is full", () =>
    Effect.gen(function* () {
      for (const whenFull of ["refuse", "wait"] as const) {
        const queue = yield* makeQueue({
          name: `idempotent-full-${whenFull}`,
          maxWorkers: 1,
          capacity: 1,
          whenFull,
          handler: (_: string) => Effect.never
        })
        yield* queue.enqueue("running")
        yield* yieldUntil(statsAre(queue, { running: 1 }))
        const queued = yield* queue.enqueueWith({ idempotencyKey: "k" }, "queued")
        const again = yield* Effect.fork(queue.enqueueWith({ idempotencyKey: "k" }, "again"))
        yield* yieldUntil(isDone(again))
        expect((yield* Fiber.join(again)).id).toBe(queued.id)
        expect((yield* queue.list()).items).toHaveLength(2)
      }
    })
  )

  it.scoped("makes a new task for a key once the store has dropped the finished one", () =>
    Effect.gen(function* () {
      let calls = 0
      const queue = yield* TaskQueue.make({
        name: "idempotent-ttl",
        maxWorkers: 1,
        shutdownGrace: 0,
        handler: () => Effect.sync(() => (calls += 1))
      }).pipe(Effect.provide(TaskStore.layerMemory({ finishedTtl: "1 hour" })))
      const first = yield* queue.enqueueWith({ idempotencyKey: "k" })
      yield* queue.awaitIdle
      yield* TestClock.adjust(Duration.toMillis("1 hour") - 1)
      expect((yield* queue.enqueueWith({ idempotencyKey: "k" })).id).toBe(first.id)
      // At one hour the finished task is gone: the key is free again.
      yield* TestClock.adjust(1)
      const second = yield* queue.enqueueWith({ idempotencyKey: "k" })
      expect(second.id).not.toBe(first.id)
      expect(yield* Effect.flip(queue.get(first.id))).toBeInstanceOf(TaskError.TaskNotFound)
      yield* queue.awaitIdle
      expect((yield* queue.get(second.id)).status).toBe("succeeded")
      expect(calls).toBe(2)
    })
  )
})

describe("awaitIdle", () => {
  it.scoped("resolves at once on an empty queue", () =>
    Effect.gen(function* () {
      const queue = yield* makeQueue({
        name: "idle-empty",
        maxWorkers: 1,
        handler: () => Effect.void
      })
      const idle = yield* Effect.fork(queue.awaitIdle)
      yield* yieldUntil(isDone(idle))
    })
  )

  it.scoped("does not resolve before work enqueued in the same tick has finished", () =>
    Effect.gen(function* () {
      const instant = yield* makeQueue({
        name: "idle-instant",
        maxWorkers: 1,
        handler: () => Effect.void
      })
      const task = yield* instant.enqueue()
      yield* instant.awaitIdle
      expect((yield* instant.get(task.id)).status).toBe("succeeded")

      const { handler } = recorder()
      const queue = yield* makeQueue({ name: "idle-tick", maxWorkers: 1, handler })
      const slow = yield* queue.enqueue("slow", 100)
      const idle = yield* Effect.fork(queue.awaitIdle)
      yield* TestClock.adjust("99 millis")
      yield* settle
      expect(yield* Fiber.poll(idle)).toEqual(Option.none())
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(idle)
      expect((yield* queue.get(slow.id)).status).toBe("succeeded")
    })
  )

  it.scoped("waits for delayed tasks and for tasks waiting for a retry", () =>
    Effect.gen(function* () {
      let attempts = 0
      const queue = yield* makeQueue({
        name: "idle-delayed",
        maxWorkers: 1,
        retry: { maxAttempts: 2, schedule: Schedule.spaced("1 second") },
        handler: (kind: "ok" | "flaky") =>
          kind === "flaky" && ++attempts === 1 ? Effect.fail("not yet") : Effect.void
      })
      const delayed = yield* queue.enqueueWith({ delay: "1 second" }, "ok")
      const idle = yield* Effect.fork(queue.awaitIdle)
      yield* TestClock.adjust("999 millis")
      yield* settle
      expect(yield* Fiber.poll(idle)).toEqual(Option.none())
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(idle)
      expect((yield* queue.get(delayed.id)).status).toBe("succeeded")

      const flaky = yield* queue.enqueue("flaky")
      const retried = yield* Effect.fork(queue.awaitIdle)
      yield* yieldUntil(statsAre(queue, { delayed: 1 }))
      expect(yield* queue.get(flaky.id)).toMatchObject({
        status: "queued",
        attempt: 1,
        runAt: new Date(2000)
      })
      yield* TestClock.adjust("999 millis")
      yield* settle
      expect(yield* Fiber.poll(retried)).toEqual(Option.none())
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(retried)
      expect(yield* queue.get(flaky.id)).toMatchObject({ status: "succeeded", attempt: 2 })
    })
  )

  it.scoped("resolves 10,000 concurrent waiters, and waits again for new work", () =>
    Effect.gen(function* () {
      const { handler } = recorder()
      const queue = yield* makeQueue({ name: "idle-many", maxWorkers: 1, handler })
      yield* queue.enqueue("first", 100)
      const waiters = yield* Effect.forkAll(Array.from({ length: 10_000 }, () => queue.awaitIdle))
      yield* TestClock.adjust("99 millis")
      expect(yield* Fiber.poll(waiters)).toEqual(Option.none())
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(waiters)

      yield* queue.enqueue("second", 100)
      const later = yield* Effect.fork(queue.awaitIdle)
      yield* settle
      expect(yield* Fiber.poll(later)).toEqual(Option.none())
      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(later)
    })
  )
})
