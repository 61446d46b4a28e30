/**
 * When tasks start: delays and `runAt`, priorities, pause and resume, and
 * resize. All on the test clock, with exact times.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, DateTime, Duration, Effect, Exit, Fiber, Scope, TestClock } from "effect"
import { TaskError } from "effect-task-queue"
import { invalidOption, makeQueue, recorder, settle, statsAre, yieldUntil } from "./helpers.js"

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
