/**
 * When tasks start: delays and `runAt`, priorities, capacity, pause and
 * resume, resize, idempotency keys and `awaitIdle`; and what the queue
 * reports while they run: metrics, spans and log lines. All on the test
 * clock, with exact times.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Clock,
  DateTime,
  Duration,
  Effect,
  Exit,
  Fiber,
  HashMap,
  Logger,
  LogLevel,
  Metric,
  Option,
  Schedule,
  Scope,
  TestClock,
  Tracer
} from "effect"
import type { Context } from "effect"
import { TaskError, TaskQueue, TaskStore } from "effect-task-queue"

const memory = TaskStore.layerMemory()

/** A queue in the test's scope, in-memory store, no shutdown grace (the clock stands still while a scope closes). */
const makeQueue = <Args extends ReadonlyArray<any>, A, E, R>(
  options: TaskQueue.Options<Args, A, E, R>
) => TaskQueue.make({ shutdownGrace: 0, ...options }).pipe(Effect.provide(memory))

/** Yields to the queue's fibers (the clock stays put) until `condition` holds; dies if it never does. */
const yieldUntil = (condition: () => Effect.Effect<boolean> | boolean) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1000; i++) {
      const result = condition()
      if (typeof result === "boolean" ? result : yield* result) return
      yield* Effect.yieldNow()
    }
    return yield* Effect.dieMessage("condition never held")
  })

/** Gives the queue's fibers many turns, for checks that something did not happen. */
const settle = Effect.repeatN(Effect.yieldNow(), 100)

type Stats = { readonly stats: Effect.Effect<TaskQueue.Stats> }
const statsAre = (queue: Stats, expected: Partial<TaskQueue.Stats>) => (): Effect.Effect<boolean> =>
  Effect.map(queue.stats, (stats) =>
    Object.entries(expected).every(([key, value]) => stats[key as keyof TaskQueue.Stats] === value)
  )

/** The option an `InvalidOption` names; any other outcome fails the test. */
const invalidOption = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.map(Effect.flip(effect), (error) => {
    expect(error).toBeInstanceOf(TaskError.InvalidOption)
    return (error as TaskError.InvalidOption).option
  })

const isDone = (fiber: Fiber.Fiber<unknown, unknown>) => () =>
  Effect.map(Fiber.poll(fiber), Option.isSome)

/** Waits until a forked fiber is suspended: an enqueue waiting for room. */
const isSuspended = (fiber: Fiber.RuntimeFiber<unknown, unknown>) => () =>
  Effect.map(fiber.status, (status) => status._tag === "Suspended")

/**
 * The test clock, except that, like Effect's live clock, it never wakes a
 * sleep longer than 2^31 - 1 ms (about 24.8 days).
 */
const cappedClock = Effect.map(Effect.clock, (clock): Clock.Clock => ({
  [Clock.ClockTypeId]: Clock.ClockTypeId,
  unsafeCurrentTimeMillis: () => clock.unsafeCurrentTimeMillis(),
  unsafeCurrentTimeNanos: () => clock.unsafeCurrentTimeNanos(),
  currentTimeMillis: clock.currentTimeMillis,
  currentTimeNanos: clock.currentTimeNanos,
  sleep: (duration) =>
    Duration.toMillis(duration) > 2 ** 31 - 1 ? Effect.never : clock.sleep(duration)
}))

/**
 * A handler that takes a name and a duration: it notes the name and the
 * clock when it starts, sleeps that long on the test clock, and returns
 * the name.
 */
const recorder = () => {
  const starts: Array<readonly [string, number]> = []
  const handler = (name: string, ms = 100) =>
    Effect.gen(function* () {
      starts.push([name, yield* Clock.currentTimeMillis])
      yield* Effect.sleep(ms)
      return name
    })
  const names = () => starts.map(([name]) => name)
  return { starts, handler, names }
}

describe("delays and runAt", () => {
  it.scoped("starts a delayed task exactly when it is due, not a millisecond before", () =>
    Effect.gen(function* () {
      const { starts, handler } = recorder()
      const queue = yield* makeQueue({ name: "delay", maxWorkers: 1, handler })
      yield* TestClock.adjust("1 second")
      const task = yield* queue.enqueueWith({ delay: "500 millis" }, "a")
      expect(yield* queue.stats).toEqual({
        queued: 1,
        running: 0,
        delayed: 1,
        paused: false,
        maxWorkers: 1
      })
      const waiting = yield* queue.get(task.id)
      expect(waiting.status).toBe("queued")
      expect(waiting.runAt).toEqual(new Date(1500))
      expect(queue.toView(waiting).runAt).toBe("1970-01-01T00:00:01.500Z")

      yield* TestClock.adjust("499 millis")
      yield* settle
      expect(starts).toEqual([])
      expect((yield* queue.stats).delayed).toBe(1)
      yield* TestClock.adjust("1 millis")
      yield* yieldUntil(() => starts.length === 1)
      expect(starts).toEqual([["a", 1500]])
      const running = yield* queue.get(task.id)
      expect(running.status).toBe("running")
      expect(running.startedAt).toEqual(new Date(1500))
      expect(running.runAt).toBeUndefined()
      expect(yield* queue.stats).toMatchObject({ queued: 0, running: 1, delayed: 0 })
    })
  )

  it.scoped("takes runAt as a Date, a DateTime or epoch milliseconds", () =>
    Effect.gen(function* () {
      const { starts, handler } = recorder()
      const queue = yield* makeQueue({ name: "run-at", maxWorkers: 3, handler })
      const asDate = yield* queue.enqueueWith({ runAt: new Date(300) }, "date")
      const asDateTime = yield* queue.enqueueWith({ runAt: DateTime.unsafeMake(200) }, "datetime")
      const asMillis = yield* queue.enqueueWith({ runAt: 100 }, "millis")
      expect((yield* queue.get(asDate.id)).runAt).toEqual(new Date(300))
      expect((yield* queue.get(asDateTime.id)).runAt).toEqual(new Date(200))
      expect((yield* queue.get(asMillis.id)).runAt).toEqual(new Date(100))
      expect((yield* queue.stats).delayed).toBe(3)

      yield* TestClock.adjust("99 millis")
      yield* settle
      expect(starts).toEqual([])
      yield* TestClock.adjust("1 millis")
      yield* yieldUntil(() => starts.length === 1)
      yield* TestClock.adjust("99 millis")
      yield* settle
      expect(starts).toEqual([["millis", 100]])
      yield* TestClock.adjust("1 millis")
      yield* yieldUntil(() => starts.length === 2)
      yield* TestClock.adjust("100 millis")
      yield* yieldUntil(() => starts.length === 3)
      expect(starts).toEqual([
        ["millis", 100],
        ["datetime", 200],
        ["date", 300]
      ])
    })
  )

  it.scoped("runs at once a task whose runAt has passed, is now, or whose delay is 0", () =>
    Effect.gen(function* () {
      const { starts, handler } = recorder()
      const queue = yield* makeQueue({ name: "run-at-past", maxWorkers: 3, handler })
      yield* TestClock.adjust("1 second")
      yield* queue.enqueueWith({ runAt: new Date(500) }, "past")
      yield* queue.enqueueWith({ runAt: 1000 }, "now")
      yield* queue.enqueueWith({ delay: 0 }, "no delay")
      expect((yield* queue.stats).delayed).toBe(0)
      yield* yieldUntil(() => starts.length === 3)
      expect(starts).toEqual([
        ["past", 1000],
        ["now", 1000],
        ["no delay", 1000]
      ])
    })
  )

  it.scoped("runs a delayed task due sooner before one enqueued earlier", () =>
    Effect.gen(function* () {
      const { starts, handler } = recorder()
      const queue = yield* makeQueue({ name: "delay-order", maxWorkers: 1, handler })
      yield* queue.enqueueWith({ delay: "300 millis" }, "late", 10)
      yield* queue.enqueueWith({ delay: "100 millis" }, "soon", 10)
      yield* queue.enqueueWith({ delay: "200 millis" }, "middle", 10)
      expect(yield* queue.stats).toMatchObject({ queued: 3, delayed: 3 })
      yield* TestClock.adjust("100 millis")
      yield* yieldUntil(() => starts.length === 1)
      expect(yield* queue.stats).toMatchObject({ queued: 2, delayed: 2, running: 1 })
      yield* TestClock.adjust("100 millis")
      yield* yieldUntil(() => starts.length === 2)
      yield* TestClock.adjust("100 millis")
      yield* yieldUntil(() => starts.length === 3)
      expect(starts).toEqual([
        ["soon", 100],
        ["middle", 200],
        ["late", 300]
      ])
    })
  )

  it.scoped(
    "cancels a delayed task: it leaves stats.delayed, never starts, and the next runs on time",
    () =>
      Effect.gen(function* () {
        const { starts, handler } = recorder()
        const queue = yield* makeQueue({ name: "delay-cancel", maxWorkers: 1, handler })
        const first = yield* queue.enqueueWith({ delay: "100 millis" }, "first")
        yield* queue.enqueueWith({ delay: "200 millis" }, "second")
        expect(yield* first.cancel).toBe("cancelled")
        expect(yield* queue.stats).toMatchObject({ queued: 1, delayed: 1 })
        const cancelled = yield* queue.get(first.id)
        expect(cancelled).toMatchObject({ status: "cancelled", attempt: 0, runAt: undefined })
        yield* TestClock.adjust("199 millis")
        yield* settle
        expect(starts).toEqual([])
        yield* TestClock.adjust("1 millis")
        yield* yieldUntil(() => starts.length === 1)
        expect(starts).toEqual([["second", 200]])
      })
  )

  it.scoped("runs a task due further ahead than the live clock can sleep at once", () =>
    Effect.gen(function* () {
      const { starts, handler } = recorder()
      const queue = yield* makeQueue({ name: "delay-long", maxWorkers: 1, handler }).pipe(
        Effect.withClock(yield* cappedClock)
      )
      const due = Duration.toMillis("30 days")
      yield* queue.enqueueWith({ delay: "30 days" }, "far", 10)
      yield* TestClock.adjust(due - 1)
      yield* settle
      expect(starts).toEqual([])
      yield* TestClock.adjust(1)
      yield* yieldUntil(() => starts.length === 1)
      expect(starts).toEqual([["far", due]])
    })
  )

  it.scoped("refuses delay with runAt, a negative delay and a runAt that is not a time", () =>
    Effect.gen(function* () {
      const queue = yield* makeQueue({
        name: "delay-invalid",
        maxWorkers: 1,
        handler: () => Effect.void
      })
      expect(yield* invalidOption(queue.enqueueWith({ delay: 10, runAt: 10 }))).toBe("runAt")
      expect(yield* invalidOption(queue.enqueueWith({ delay: -1 }))).toBe("delay")
      expect(yield* invalidOption(queue.enqueueWith({ runAt: new Date(Number.NaN) }))).toBe("runAt")
      expect((yield* queue.list()).items).toEqual([])
    })
  )
})

describe("priorities", () => {
  it.scoped("starts the highest priority first, first in first out within a priority", () =>
    Effect.gen(function* () {
      const { names, handler } = recorder()
      const queue = yield* makeQueue({ name: "priorities", maxWorkers: 1, handler })
      yield* queue.enqueue("busy", 100)
      yield* yieldUntil(statsAre(queue, { running: 1 }))
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
      for (const [name, priority] of waiting) yield* queue.enqueueWith({ priority }, name, 10)
      yield* TestClock.adjust("1 second")
      yield* queue.awaitIdle
      expect(names()).toEqual(["busy", "f", "b", "d", "a", "e", "h", "c", "g"])
    })
  )

  it.scoped("shows a task's priority in its snapshot and view", () =>
    Effect.gen(function* () {
      const queue = yield* makeQueue({
        name: "priority-view",
        maxWorkers: 1,
        handler: () => Effect.never
      })
      const task = yield* queue.enqueueWith({ priority: 7 })
      expect((yield* queue.get(task.id)).priority).toBe(7)
      expect(queue.toView(yield* queue.get(task.id)).priority).toBe(7)
      expect(yield* invalidOption(queue.enqueueWith({ priority: 1.5 }))).toBe("priority")
    })
  )

  it.scoped("lets a delayed high-priority task jump the line when it falls due", () =>
    Effect.gen(function* () {
      const { starts, handler } = recorder()
      const queue = yield* makeQueue({ name: "priority-delay", maxWorkers: 1, handler })
      yield* queue.enqueue("busy", 100)
      yield* yieldUntil(statsAre(queue, { running: 1 }))
      for (const name of ["a", "b", "c"]) yield* queue.enqueue(name, 100)
      yield* queue.enqueueWith({ priority: 1, delay: "150 millis" }, "urgent", 100)
      yield* TestClock.adjust("1 second")
      yield* queue.awaitIdle
      expect(starts).toEqual([
        ["busy", 0],
        ["a", 100],
        ["urgent", 200],
        ["b", 300],
        ["c", 400]
      ])
    })
  )
})

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

describe("pause and resume", () => {
  it.scoped("starts nothing while paused; running tasks finish and enqueue still works", () =>
    Effect.gen(function* () {
      const { starts, handler } = recorder()
      const queue = yield* makeQueue({ name: "pause", maxWorkers: 2, handler })
      for (const name of ["a", "b", "c"]) yield* queue.enqueue(name, 100)
      yield* yieldUntil(statsAre(queue, { running: 2 }))
      yield* queue.pause
      expect(yield* queue.stats).toEqual({
        queued: 1,
        running: 2,
        delayed: 0,
        paused: true,
        maxWorkers: 2
      })
      const accepted = yield* queue.enqueue("d", 100)
      expect((yield* queue.get(accepted.id)).status).toBe("queued")

      yield* TestClock.adjust("100 millis")
      yield* yieldUntil(statsAre(queue, { running: 0 }))
      yield* TestClock.adjust("1 second")
      yield* settle
      expect(yield* queue.stats).toMatchObject({ queued: 2, running: 0, paused: true })
      expect(starts.map(([name]) => name)).toEqual(["a", "b"])

      yield* queue.resume
      yield* yieldUntil(statsAre(queue, { running: 2 }))
      expect((yield* queue.stats).paused).toBe(false)
      expect(starts).toEqual([
        ["a", 0],
        ["b", 0],
        ["c", 1100],
        ["d", 1100]
      ])
    })
  )

  it.scoped("loses no task paused while the drain waits, for work or for a worker", () =>
    Effect.gen(function* () {
      const { starts, handler } = recorder()
      const queue = yield* makeQueue({ name: "pause-drain", maxWorkers: 1, handler })
      // The drain waits for work: a task enqueued while paused waits for resume.
      yield* settle
      yield* queue.pause
      yield* queue.enqueue("a", 100)
      yield* settle
      expect(starts).toEqual([])
      expect(yield* queue.stats).toMatchObject({ queued: 1, running: 0 })
      yield* queue.resume
      yield* yieldUntil(() => starts.length === 1)

      // The drain waits for a worker: the task stays queued through the pause.
      yield* queue.enqueue("b", 100)
      yield* settle
      yield* queue.pause
      yield* TestClock.adjust("100 millis")
      yield* yieldUntil(statsAre(queue, { running: 0 }))
      yield* settle
      expect(yield* queue.stats).toMatchObject({ queued: 1, running: 0 })
      yield* queue.pause
      yield* queue.resume
      yield* queue.resume
      yield* TestClock.adjust("1 second")
      yield* queue.awaitIdle
      expect(starts).toEqual([
        ["a", 0],
        ["b", 100]
      ])
    })
  )

  it.scoped("moves delayed tasks while paused, and starts them on resume", () =>
    Effect.gen(function* () {
      const { starts, handler } = recorder()
      const queue = yield* makeQueue({ name: "pause-delay", maxWorkers: 1, handler })
      yield* queue.pause
      yield* queue.enqueueWith({ delay: "100 millis" }, "delayed", 10)
      yield* TestClock.adjust("200 millis")
      yield* settle
      expect(yield* queue.stats).toMatchObject({ queued: 1, delayed: 0, running: 0 })
      yield* queue.resume
      yield* yieldUntil(() => starts.length === 1)
      expect(starts).toEqual([["delayed", 200]])
    })
  )
  it.effect("shuts down while paused: tasks that never started end cancelled", () =>
    Effect.gen(function* () {
      const { starts, handler } = recorder()
      const scope = yield* Scope.make()
      const queue = yield* makeQueue({ name: "pause-shutdown", maxWorkers: 1, handler }).pipe(
        Scope.extend(scope)
      )
      yield* queue.pause
      const ready = yield* queue.enqueue("ready")
      const delayed = yield* queue.enqueueWith({ delay: "1 second" }, "delayed")
      const idle = yield* Effect.fork(queue.awaitIdle)
      yield* Scope.close(scope, Exit.void)
      yield* Fiber.join(idle)
      for (const task of [ready, delayed]) {
        expect(yield* queue.get(task.id)).toMatchObject({ status: "cancelled", reason: "shutdown" })
      }
      expect(starts).toEqual([])
      expect(yield* Effect.flip(queue.enqueue("late"))).toBeInstanceOf(TaskError.QueueShutdown)
    })
  )
})

describe("resize", () => {
  it.scoped("runs more tasks at once, at once, when resized up", () =>
    Effect.gen(function* () {
      const { starts, handler } = recorder()
      const queue = yield* makeQueue({ name: "resize-up", maxWorkers: 1, handler })
      for (const name of ["a", "b", "c", "d"]) yield* queue.enqueue(name, 100)
      yield* yieldUntil(statsAre(queue, { running: 1 }))
      yield* queue.resize(3)
      expect(queue.maxWorkers).toBe(3)
      yield* yieldUntil(statsAre(queue, { running: 3 }))
      expect(yield* queue.stats).toEqual({
        queued: 1,
        running: 3,
        delayed: 0,
        paused: false,
        maxWorkers: 3
      })
      yield* TestClock.adjust("1 second")
      yield* queue.awaitIdle
      expect(starts).toEqual([
        ["a", 0],
        ["b", 0],
        ["c", 0],
        ["d", 100]
      ])
    })
  )

  it.scoped("lets running tasks finish when resized down, then runs at most the new size", () =>
    Effect.gen(function* () {
      let running = 0
      let most = 0
      const { starts, handler } = recorder()
      const queue = yield* makeQueue({
        name: "resize-down",
        maxWorkers: 3,
        handler: (name: string) =>
          Effect.sync(() => {
            running += 1
            most = Math.max(most, running)
          }).pipe(
            Effect.zipRight(handler(name, 100)),
            Effect.ensuring(Effect.sync(() => (running -= 1)))
          )
      })
      for (const name of ["a", "b", "c", "d", "e", "f"]) yield* queue.enqueue(name)
      yield* yieldUntil(statsAre(queue, { running: 3 }))
      yield* queue.resize(1)
      yield* settle
      expect(yield* queue.stats).toMatchObject({ running: 3, queued: 3, maxWorkers: 1 })
      most = running
      yield* TestClock.adjust("100 millis")
      yield* yieldUntil(statsAre(queue, { running: 1 }))
      most = running
      yield* TestClock.adjust("1 second")
      yield* queue.awaitIdle
      expect(most).toBe(1)
      expect(starts.map(([, at]) => at)).toEqual([0, 0, 0, 100, 200, 300])
    })
  )

  it.scoped("starts no task on a worker slot taken before a resize down", () =>
    Effect.gen(function* () {
      const { starts, handler } = recorder()
      const queue = yield* makeQueue({ name: "resize-down-idle", maxWorkers: 2, handler })
      yield* queue.enqueue("a", 100)
      yield* yieldUntil(statsAre(queue, { running: 1 }))
      // The second slot is free, waiting for work, when the size drops to 1.
      yield* settle
      yield* queue.resize(1)
      yield* queue.enqueue("b", 100)
      yield* settle
      expect(yield* queue.stats).toMatchObject({ queued: 1, running: 1, maxWorkers: 1 })
      yield* TestClock.adjust("1 second")
      yield* queue.awaitIdle
      expect(starts).toEqual([
        ["a", 0],
        ["b", 100]
      ])
    })
  )

  it.scoped("refuses a size that is not a positive integer, keeping the old one", () =>
    Effect.gen(function* () {
      const queue = yield* makeQueue({
        name: "resize-invalid",
        maxWorkers: 2,
        handler: () => Effect.void
      })
      for (const bad of [0, 1.5, -1, Number.NaN]) {
        expect(yield* invalidOption(queue.resize(bad))).toBe("maxWorkers")
      }
      expect(queue.maxWorkers).toBe(2)
      expect((yield* queue.stats).maxWorkers).toBe(2)
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

describe("metrics", () => {
  const read = (name: string) => {
    const tagged = <T extends Metric.Metric<any, any, any>>(metric: T) =>
      Metric.value(Metric.tagged(metric, "queue", name) as T)
    return Effect.all({
      enqueued: Effect.map(tagged(TaskQueue.metrics.enqueued), (s) => s.count),
      started: Effect.map(tagged(TaskQueue.metrics.started), (s) => s.count),
      succeeded: Effect.map(tagged(TaskQueue.metrics.succeeded), (s) => s.count),
      failed: Effect.map(tagged(TaskQueue.metrics.failed), (s) => s.count),
      retried: Effect.map(tagged(TaskQueue.metrics.retried), (s) => s.count),
      cancelled: Effect.map(tagged(TaskQueue.metrics.cancelled), (s) => s.count),
      queued: Effect.map(tagged(TaskQueue.metrics.queued), (s) => s.value),
      running: Effect.map(tagged(TaskQueue.metrics.running), (s) => s.value),
      waitTime: Effect.map(tagged(TaskQueue.metrics.waitTime), ({ count, max, min, sum }) => ({
        count,
        sum,
        min,
        max
      })),
      runTime: Effect.map(tagged(TaskQueue.metrics.runTime), ({ count, max, min, sum }) => ({
        count,
        sum,
        min,
        max
      }))
    })
  }

  it.scoped("counts a known mix exactly: successes, a failure after retries, a cancel", () =>
    Effect.gen(function* () {
      const name = "metrics-mix"
      const queue = yield* makeQueue({
        name,
        maxWorkers: 1,
        retry: { maxAttempts: 3, schedule: Schedule.spaced("100 millis") },
        handler: (kind: "ok" | "fail", ms: number) =>
          Effect.sleep(ms).pipe(Effect.zipRight(kind === "ok" ? Effect.void : Effect.fail("no")))
      })
      yield* queue.enqueue("ok", 10)
      yield* queue.enqueue("ok", 30)
      const failing = yield* queue.enqueue("fail", 5)
      const cancelled = yield* queue.enqueue("ok", 1)
      yield* yieldUntil(statsAre(queue, { running: 1 }))
      expect(yield* read(name)).toMatchObject({ enqueued: 4, started: 1, queued: 3, running: 1 })
      yield* cancelled.cancel
      expect(yield* read(name)).toMatchObject({ cancelled: 1, queued: 2, running: 1 })

      // ok runs 0-10, ok 10-40, fail 40-45, 145-150 and 250-255.
      yield* TestClock.adjust("1 second")
      yield* queue.awaitIdle
      expect((yield* queue.get(failing.id)).attempt).toBe(3)
      expect(yield* read(name)).toEqual({
        enqueued: 4,
        started: 5,
        succeeded: 2,
        failed: 1,
        retried: 2,
        cancelled: 1,
        queued: 0,
        running: 0,
        waitTime: { count: 5, sum: 50, min: 0, max: 40 },
        runTime: { count: 5, sum: 55, min: 5, max: 30 }
      })
    })
  )

  it.scoped("keeps each queue's metrics apart", () =>
    Effect.gen(function* () {
      const one = yield* makeQueue({
        name: "metrics-one",
        maxWorkers: 1,
        handler: () => Effect.void
      })
      const two = yield* makeQueue({
        name: "metrics-two",
        maxWorkers: 1,
        handler: () => Effect.void
      })
      yield* one.enqueue()
      yield* one.enqueue()
      yield* two.enqueue()
      yield* one.awaitIdle
      yield* two.awaitIdle
      expect(yield* read("metrics-one")).toMatchObject({ enqueued: 2, succeeded: 2 })
      expect(yield* read("metrics-two")).toMatchObject({ enqueued: 1, succeeded: 1 })
    })
  )
})

/** A span as the capturing tracer keeps it. */
class TestSpan implements Tracer.Span {
  readonly _tag = "Span"
  readonly spanId: string
  readonly traceId = "trace"
  readonly sampled = true
  status: Tracer.SpanStatus
  readonly attributes = new Map<string, unknown>()
  readonly links: Array<Tracer.SpanLink>
  constructor(
    readonly name: string,
    readonly parent: Option.Option<Tracer.AnySpan>,
    readonly context: Context.Context<never>,
    links: ReadonlyArray<Tracer.SpanLink>,
    startTime: bigint,
    readonly kind: Tracer.SpanKind,
    count: number
  ) {
    this.spanId = `span-${count}`
    this.links = [...links]
    this.status = { _tag: "Started", startTime }
  }
  end(endTime: bigint, exit: Exit.Exit<unknown, unknown>): void {
    if (this.status._tag === "Ended") throw new Error(`span ${this.name} ended twice`)
    this.status = { _tag: "Ended", startTime: this.status.startTime, endTime, exit }
  }
  attribute(key: string, value: unknown): void {
    this.attributes.set(key, value)
  }
  event(): void {}
  addLinks(links: ReadonlyArray<Tracer.SpanLink>): void {
    this.links.push(...links)
  }
}

const capturingTracer = () => {
  const spans: Array<TestSpan> = []
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const span = new TestSpan(name, parent, context, links, startTime, kind, spans.length)
      spans.push(span)
      return span
    },
    context: (f) => f()
  })
  return { spans, tracer }
}

const millisToNanos = (ms: number) => BigInt(ms) * 1_000_000n

describe("spans", () => {
  it.scoped("makes one span per attempt, a child of the span that enqueued the task", () => {
    const { spans, tracer } = capturingTracer()
    return Effect.gen(function* () {
      let attempts = 0
      const queue = yield* makeQueue({
        name: "traced",
        maxWorkers: 1,
        retry: { maxAttempts: 2, schedule: Schedule.spaced("100 millis") },
        handler: (n: number) =>
          Effect.sleep("10 millis").pipe(
            Effect.zipRight(
              ++attempts === 1 ? Effect.fail("first attempt fails") : Effect.succeed(n)
            ),
            Effect.withSpan("inside the handler")
          )
      })
      const { request, task } = yield* Effect.gen(function* () {
        const request = yield* Effect.currentSpan
        const task = yield* queue.enqueue(7)
        return { request, task }
      }).pipe(Effect.withSpan("request"))
      yield* TestClock.adjust("1 second")
      expect(yield* task.await).toEqual(Exit.succeed(7))

      const attemptSpans = spans.filter((span) => span.name === "TaskQueue/traced/attempt")
      expect(attemptSpans).toHaveLength(2)
      expect(
        attemptSpans.map((span) => ({
          parent: Option.getOrUndefined(span.parent),
          kind: span.kind,
          attributes: Object.fromEntries(span.attributes),
          status: span.status
        }))
      ).toEqual([
        {
          parent: request,
          kind: "consumer",
          attributes: { "task.id": task.id, "task.queue": "traced", "task.attempt": 1 },
          status: {
            _tag: "Ended",
            startTime: millisToNanos(0),
            endTime: millisToNanos(10),
            exit: Exit.fail("first attempt fails")
          }
        },
        {
          parent: request,
          kind: "consumer",
          attributes: { "task.id": task.id, "task.queue": "traced", "task.attempt": 2 },
          status: {
            _tag: "Ended",
            startTime: millisToNanos(110),
            endTime: millisToNanos(120),
            exit: Exit.succeed(7)
          }
        }
      ])
      // The handler's own spans are children of its attempt's span.
      const inner = spans.filter((span) => span.name === "inside the handler")
      expect(inner.map((span) => Option.getOrUndefined(span.parent))).toEqual(attemptSpans)
    }).pipe(Effect.withTracer(tracer))
  })

  it.scoped(
    "parents an attempt's span on the queue's context when no span enqueued the task",
    () => {
      const { spans, tracer } = capturingTracer()
      return Effect.gen(function* () {
        const queue = yield* makeQueue({
          name: "traced-root",
          maxWorkers: 1,
          handler: () => Effect.void
        })
        const task = yield* queue.enqueue()
        yield* queue.awaitIdle
        const attempt = spans.filter((span) => span.name === "TaskQueue/traced-root/attempt")
        expect(attempt).toHaveLength(1)
        expect(attempt[0]!.parent).toEqual(Option.none())
        expect(attempt[0]!.attributes.get("task.id")).toBe(task.id)
        expect(attempt[0]!.status).toMatchObject({ _tag: "Ended", exit: Exit.void })
      }).pipe(Effect.withTracer(tracer))
    }
  )
})

interface Line {
  readonly level: LogLevel.LogLevel
  readonly message: string
  readonly annotations: Record<string, unknown>
}

const capturingLogger = () => {
  const lines: Array<Line> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    const parts = Array.isArray(message) ? message : [message]
    lines.push({
      level: logLevel,
      message: parts.map(String).join(" "),
      annotations: Object.fromEntries(HashMap.toEntries(annotations))
    })
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

describe("logs", () => {
  it.scoped("annotates the handler's logs and logs one line per task above Debug", () => {
    const { lines, layer } = capturingLogger()
    return Effect.gen(function* () {
      const queue = yield* makeQueue({
        name: "logged",
        maxWorkers: 2,
        handler: (n: number) =>
          Effect.logDebug(`handling ${n}`).pipe(Effect.zipRight(Effect.sleep(n)))
      })
      const tasks = []
      for (const n of [10, 20, 30]) tasks.push(yield* queue.enqueue(n))
      yield* TestClock.adjust("1 second")
      yield* queue.awaitIdle

      const handling = lines.filter((line) => line.message.startsWith("handling"))
      expect(handling.map((line) => [line.message, line.annotations])).toEqual(
        tasks.map((task, i) => [
          `handling ${[10, 20, 30][i]}`,
          { taskId: task.id, queue: "logged", attempt: 1 }
        ])
      )
      const loud = lines.filter((line) => LogLevel.greaterThan(line.level, LogLevel.Debug))
      expect(loud.map((line) => [line.level, line.message, line.annotations.taskId])).toEqual(
        tasks.map((task) => [LogLevel.Info, "task succeeded", task.id])
      )
      expect(loud.map((line) => line.annotations)).toEqual([
        { taskId: tasks[0]!.id, queue: "logged", attempt: 1, status: "succeeded", durationMs: 10 },
        { taskId: tasks[1]!.id, queue: "logged", attempt: 1, status: "succeeded", durationMs: 20 },
        { taskId: tasks[2]!.id, queue: "logged", attempt: 1, status: "succeeded", durationMs: 30 }
      ])
    }).pipe(Effect.provide(layer), Logger.withMinimumLogLevel(LogLevel.Debug))
  })

  it.scoped("logs a failed task once, at Warning, with its Cause and annotations", () => {
    const { lines, layer } = capturingLogger()
    const causes: Array<Cause.Cause<unknown>> = []
    const withCauses = Logger.make(({ cause }) => {
      if (!Cause.isEmpty(cause)) causes.push(cause)
    })
    return Effect.gen(function* () {
      const queue = yield* makeQueue({
        name: "logged-failure",
        maxWorkers: 1,
        retry: { maxAttempts: 1 },
        handler: () => Effect.fail("broken")
      })
      const task = yield* queue.enqueue()
      yield* queue.awaitIdle
      const loud = lines.filter((line) => LogLevel.greaterThan(line.level, LogLevel.Debug))
      expect(loud).toEqual([
        {
          level: LogLevel.Warning,
          message: "task failed",
          annotations: {
            taskId: task.id,
            queue: "logged-failure",
            attempt: 1,
            status: "failed",
            durationMs: 0
          }
        }
      ])
      expect(causes).toEqual([Cause.fail("broken")])
    }).pipe(
      Effect.provide(layer),
      Effect.provide(Logger.add(withCauses)),
      Logger.withMinimumLogLevel(LogLevel.Debug)
    )
  })
})
