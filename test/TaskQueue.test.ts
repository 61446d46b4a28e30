/**
 * The queue's core: running at most maxWorkers, order, a task's record,
 * failures, cancel, listing, idle, shutdown, options, layers, and a store
 * whose writes take time.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Context,
  Effect,
  Exit,
  Fiber,
  Layer,
  Option,
  Schema,
  Scope,
  Supervisor,
  TestClock
} from "effect"
import { TaskError, TaskQueue, TaskStore } from "effect-task-queue"
import { inspect } from "node:util"
import { makeDurableQueue, makeQueue, memory, memoryDb, statsAre, yieldUntil } from "./helpers.js"

/** For `yieldUntil`: `n` tasks are running. */
const runningIs = (queue: { readonly stats: Effect.Effect<TaskQueue.Stats> }, n: number) =>
  statsAre(queue, { running: n })

/** A handler that sleeps `ms` on the test clock and tracks how many run at once. */
const tracked = () => {
  const state = {
    running: 0,
    maxRunning: 0,
    done: [] as Array<number>,
    started: [] as Array<number>
  }
  const handler = (n: number, ms = 100) =>
    Effect.gen(function* () {
      state.started.push(n)
      state.running += 1
      state.maxRunning = Math.max(state.maxRunning, state.running)
      yield* Effect.sleep(ms).pipe(Effect.ensuring(Effect.sync(() => (state.running -= 1))))
      state.done.push(n)
      return n
    })
  return { state, handler }
}

describe("TaskQueue", () => {
  it.scoped("runs the design example: two workers, a 10 ms handler, three tasks", () =>
    Effect.gen(function* () {
      const results: Array<number> = []
      const queue = yield* makeQueue({
        name: "sums",
        maxWorkers: 2,
        handler: (x: number, y: number) =>
          Effect.sleep("10 millis").pipe(Effect.andThen(() => results.push(x + y)))
      })
      const tasks = [
        yield* queue.enqueue(1, 2),
        yield* queue.enqueue(3, 4),
        yield* queue.enqueue(5, 6)
      ]
      yield* TestClock.adjust("100 millis")
      // (1, 2) and (3, 4) both end at 10 ms; TestClock wakes sleeps due at the
      // same instant newest first, so those two may be appended in either order.
      expect(results.slice(0, 2).sort()).toEqual([3, 7])
      expect(results[2]).toBe(11)
      const ends = []
      for (const task of tasks) ends.push((yield* queue.get(task.id)).finishedAt?.getTime())
      expect(ends).toEqual([10, 10, 20])
      for (const task of tasks) expect((yield* queue.get(task.id)).status).toBe("succeeded")
    })
  )

  it.scoped("runs at most maxWorkers at once: five 100 ms tasks on two workers", () =>
    Effect.gen(function* () {
      const { state, handler } = tracked()
      const queue = yield* makeQueue({ name: "five", maxWorkers: 2, handler })
      for (let n = 1; n <= 5; n++) yield* queue.enqueue(n)
      yield* TestClock.adjust("99 millis")
      expect(state.done).toEqual([])
      yield* TestClock.adjust("1 millis")
      expect(state.done.toSorted()).toEqual([1, 2])
      yield* TestClock.adjust("100 millis")
      expect(state.done.toSorted()).toEqual([1, 2, 3, 4])
      yield* TestClock.adjust("100 millis")
      expect(state.done.toSorted()).toEqual([1, 2, 3, 4, 5])
      expect(state.maxRunning).toBe(2)
      expect(yield* queue.stats).toEqual({
        queued: 0,
        running: 0,
        delayed: 0,
        paused: false,
        maxWorkers: 2
      })
    })
  )

  it.scoped("prints and serializes a handle as its id, never the task's input", () =>
    Effect.gen(function* () {
      const secret = { password: "hunter2" }
      const inMemory = yield* makeQueue({
        name: "handle-memory",
        maxWorkers: 1,
        handler: (_: typeof secret) => Effect.never
      })
      const context = yield* memoryDb
      const durable = yield* makeDurableQueue(context, {
        name: "handle-durable",
        maxWorkers: 1,
        payload: Schema.Struct({ password: Schema.String }),
        handler: (_: typeof secret) => Effect.never
      })
      for (const handle of [yield* inMemory.enqueue(secret), yield* durable.enqueue(secret)]) {
        const shown = [JSON.stringify(handle), String(handle), inspect(handle)]
        for (const text of shown) {
          expect(text).toContain(handle.id)
          expect(text).not.toContain("hunter2")
        }
        expect(JSON.parse(shown[0]!)).toEqual({ _id: "TaskHandle", id: handle.id })
      }
    })
  )

  it.scoped("starts tasks in the order they were enqueued", () =>
    Effect.gen(function* () {
      const { state, handler } = tracked()
      const queue = yield* makeQueue({ name: "fifo", maxWorkers: 3, handler })
      const order = [5, 3, 9, 1, 7, 2, 8, 6, 4, 10]
      for (const n of order) yield* queue.enqueue(n, n * 10)
      yield* TestClock.adjust("1 second")
      yield* queue.awaitIdle
      expect(state.started).toEqual(order)
    })
  )

  it.scoped("records the task's life: queued, running, succeeded with its result", () =>
    Effect.gen(function* () {
      const queue = yield* makeQueue({
        name: "life",
        maxWorkers: 1,
        handler: (s: string) => Effect.as(Effect.sleep("50 millis"), s.toUpperCase())
      })
      yield* TestClock.adjust("1 second")
      const first = yield* queue.enqueue("a")
      const second = yield* queue.enqueue("b")
      yield* yieldUntil(runningIs(queue, 1))
      expect((yield* queue.get(second.id)).status).toBe("queued")
      const running = yield* queue.get(first.id)
      expect(running.status).toBe("running")
      expect(running.attempt).toBe(1)
      expect(running.startedAt?.getTime()).toBe(1000)
      yield* TestClock.adjust("50 millis")
      const done = yield* queue.get(first.id)
      expect(done.status).toBe("succeeded")
      expect(done.finishedAt?.getTime()).toBe(1050)
      expect(done.exit).toEqual(Exit.succeed("A"))
      expect(yield* first.await).toEqual(Exit.succeed("A"))
      expect(queue.toView(done)).toEqual({
        id: first.id,
        queue: "life",
        status: "succeeded",
        attempt: 1,
        maxAttempts: 3,
        priority: 0,
        createdAt: "1970-01-01T00:00:01.000Z",
        startedAt: "1970-01-01T00:00:01.000Z",
        runAt: null,
        finishedAt: "1970-01-01T00:00:01.050Z",
        result: "A"
      })
    })
  )

  it.scoped("records a typed error, a defect and a throw, and goes on with the next task", () =>
    Effect.gen(function* () {
      class Boom extends TaskError.TaskNotFound {}
      const queue = yield* makeQueue({
        name: "faults",
        maxWorkers: 1,
        // One attempt each: the first failure is the task's end.
        retry: { maxAttempts: 1 },
        handler: (kind: "fail" | "die" | "throw" | "ok"): Effect.Effect<string, Boom> => {
          switch (kind) {
            case "fail":
              return Effect.fail(new Boom({ id: "x", message: "typed failure" }))
            case "die":
              return Effect.die(new Error("a defect"))
            case "throw":
              throw new Error("thrown synchronously")
            case "ok":
              return Effect.succeed("fine")
          }
        }
      })
      const fail = yield* queue.enqueue("fail")
      const die = yield* queue.enqueue("die")
      const thrown = yield* queue.enqueue("throw")
      const ok = yield* queue.enqueue("ok")
      yield* queue.awaitIdle

      const failed = yield* queue.get(fail.id)
      expect(failed.status).toBe("failed")
      expect(Exit.isFailure(failed.exit!) && Cause.failureOption(failed.exit.cause)).toEqual(
        Option.some(new Boom({ id: "x", message: "typed failure" }))
      )
      expect(queue.toView(failed).error).toMatchObject({
        kind: "failure",
        message: "typed failure"
      })

      const died = yield* queue.get(die.id)
      expect(died.status).toBe("failed")
      expect(queue.toView(died).error).toEqual({ kind: "defect", message: "a defect" })

      const threw = yield* queue.get(thrown.id)
      expect(threw.status).toBe("failed")
      expect(queue.toView(threw).error).toEqual({ kind: "defect", message: "thrown synchronously" })

      expect((yield* queue.get(ok.id)).status).toBe("succeeded")
    })
  )

  it.scoped("cancels a queued task: it never starts", () =>
    Effect.gen(function* () {
      const { state, handler } = tracked()
      const queue = yield* makeQueue({ name: "cancel-queued", maxWorkers: 1, handler })
      yield* queue.enqueue(1)
      const second = yield* queue.enqueue(2)
      yield* queue.enqueue(3)
      expect(yield* queue.cancel(second.id)).toBe("cancelled")
      yield* TestClock.adjust("1 second")
      yield* queue.awaitIdle
      expect(state.started).toEqual([1, 3])
      const cancelled = yield* queue.get(second.id)
      expect(cancelled.status).toBe("cancelled")
      expect(cancelled.attempt).toBe(0)
      expect(cancelled.reason).toBe("cancelled")
      expect(Exit.isInterrupted(yield* second.await)).toBe(true)
    })
  )

  it.scoped("cancels a running task: it is interrupted and its slot is free at once", () =>
    Effect.gen(function* () {
      const { state, handler } = tracked()
      let interrupted = false
      const queue = yield* makeQueue({
        name: "cancel-running",
        maxWorkers: 1,
        handler: (n: number) =>
          handler(n, 1000).pipe(Effect.onInterrupt(() => Effect.sync(() => (interrupted = true))))
      })
      const first = yield* queue.enqueue(1)
      yield* queue.enqueue(2)
      yield* yieldUntil(runningIs(queue, 1))
      expect((yield* queue.get(first.id)).status).toBe("running")
      expect(yield* first.cancel).toBe("cancelled")
      expect(interrupted).toBe(true)
      yield* yieldUntil(() => state.started.length === 2)
      expect(state.started).toEqual([1, 2])
      expect(yield* queue.stats).toEqual({
        queued: 0,
        running: 1,
        delayed: 0,
        paused: false,
        maxWorkers: 1
      })
      const view = queue.toView(yield* queue.get(first.id))
      expect(view.status).toBe("cancelled")
      expect(view.error).toEqual({
        kind: "interrupted",
        message: "cancelled on request",
        reason: "cancelled"
      })
    })
  )

  it.scoped("refuses to cancel a finished task and changes nothing", () =>
    Effect.gen(function* () {
      const queue = yield* makeQueue({
        name: "finished",
        maxWorkers: 1,
        handler: () => Effect.succeed(1)
      })
      const task = yield* queue.enqueue()
      yield* queue.awaitIdle
      const error = yield* Effect.flip(queue.cancel(task.id))
      expect(error).toBeInstanceOf(TaskError.TaskFinished)
      expect(error.message).toContain("succeeded")
      expect((yield* queue.get(task.id)).status).toBe("succeeded")
    })
  )

  it.scoped("answers TaskNotFound for an unknown id or another queue's task", () =>
    Effect.gen(function* () {
      const store = yield* TaskStore.makeMemory()
      const one = yield* TaskQueue.make({
        name: "one",
        maxWorkers: 1,
        handler: () => Effect.void
      }).pipe(Effect.provideService(TaskStore.TaskStore, store))
      const two = yield* TaskQueue.make({
        name: "two",
        maxWorkers: 1,
        handler: () => Effect.void
      }).pipe(Effect.provideService(TaskStore.TaskStore, store))
      const task = yield* one.enqueue()
      expect(yield* Effect.flip(two.get(task.id))).toBeInstanceOf(TaskError.TaskNotFound)
      expect(yield* Effect.flip(one.get("nope"))).toBeInstanceOf(TaskError.TaskNotFound)
      expect(yield* Effect.flip(one.cancel("nope"))).toBeInstanceOf(TaskError.TaskNotFound)
      expect(yield* Effect.flip(one.await("nope"))).toBeInstanceOf(TaskError.TaskNotFound)
    })
  )

  it.scoped("lists tasks by status, in pages", () =>
    Effect.gen(function* () {
      const queue = yield* makeQueue({
        name: "pages",
        maxWorkers: 1,
        handler: (n: number) => (n % 2 === 0 ? Effect.succeed(n) : Effect.never)
      })
      const ids: Array<string> = []
      for (let n = 0; n < 7; n++) ids.push((yield* queue.enqueue(n)).id)
      yield* yieldUntil(runningIs(queue, 1))
      // Task 0 succeeds, task 1 runs forever, the rest wait.
      const queued = yield* queue.list({ status: "queued", limit: 3 })
      expect(queued.items.map((t) => t.id)).toEqual(ids.slice(2, 5))
      const rest = yield* queue.list({ status: "queued", limit: 3, cursor: queued.next })
      expect(rest.items.map((t) => t.id)).toEqual(ids.slice(5, 7))
      expect(rest.next).toBeUndefined()
      const all = yield* queue.list()
      expect(all.items.map((t) => t.status)).toEqual([
        "succeeded",
        "running",
        "queued",
        "queued",
        "queued",
        "queued",
        "queued"
      ])
    })
  )

  it.scoped("waits for idle: at once when empty, after the last task otherwise", () =>
    Effect.gen(function* () {
      const { state, handler } = tracked()
      const queue = yield* makeQueue({ name: "idle", maxWorkers: 2, handler })
      yield* queue.awaitIdle
      for (let n = 1; n <= 3; n++) yield* queue.enqueue(n)
      const waiters = yield* Effect.forkAll(Array.from({ length: 1000 }, () => queue.awaitIdle))
      yield* TestClock.adjust("199 millis")
      expect(yield* Fiber.poll(waiters)).toEqual(Option.none())
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(waiters)
      expect(state.done.toSorted()).toEqual([1, 2, 3])
    })
  )

  it.effect(
    "shuts down with its scope: enqueue refused, queued cancelled, running given 10 s",
    () =>
      Effect.gen(function* () {
        const supervisor = yield* Supervisor.track
        let interrupted = 0
        const scope = yield* Scope.make()
        const queue = yield* TaskQueue.make({
          name: "shutdown",
          maxWorkers: 3,
          handler: (ms: number) =>
            Effect.sleep(ms).pipe(
              Effect.as(ms),
              Effect.onInterrupt(() => Effect.sync(() => (interrupted += 1)))
            )
        }).pipe(Effect.provide(memory), Scope.extend(scope), Effect.supervised(supervisor))
        // Two tasks end within the 10 s grace, one never would; two wait.
        const handles: Array<TaskQueue.TaskHandle<number, TaskError.TaskTimeout>> = []
        for (const ms of [1_000, 9_999, 3_600_000, 10, 10]) handles.push(yield* queue.enqueue(ms))
        yield* yieldUntil(runningIs(queue, 3))

        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        yield* yieldUntil(() =>
          Effect.map(Effect.orDie(queue.get(handles[3]!.id)), (t) => t.status === "cancelled")
        )
        expect(yield* Effect.flip(queue.enqueue(1))).toBeInstanceOf(TaskError.QueueShutdown)
        for (const waiting of handles.slice(3)) {
          expect(yield* queue.get(waiting.id)).toMatchObject({
            status: "cancelled",
            reason: "shutdown"
          })
        }
        yield* TestClock.adjust("9999 millis")
        expect((yield* queue.get(handles[0]!.id)).status).toBe("succeeded")
        expect((yield* queue.get(handles[1]!.id)).status).toBe("succeeded")
        expect((yield* queue.get(handles[2]!.id)).status).toBe("running")
        expect(interrupted).toBe(0)
        // The grace period ends at 10 s: what still runs is interrupted.
        yield* TestClock.adjust("1 millis")
        yield* Fiber.join(closing)
        expect(interrupted).toBe(1)
        expect(yield* queue.get(handles[2]!.id)).toMatchObject({
          status: "cancelled",
          reason: "shutdown"
        })
        const fibers = yield* supervisor.value
        expect(fibers.filter((fiber) => fiber.unsafePoll() === null)).toEqual([])
      })
  )

  it.effect("shuts down at once with a grace of 0: running tasks are interrupted", () =>
    Effect.gen(function* () {
      let interrupted = 0
      const { queue, handles } = yield* Effect.gen(function* () {
        const queue = yield* makeQueue({
          name: "shutdown-now",
          maxWorkers: 2,
          handler: (n: number) =>
            Effect.sleep("1 hour").pipe(
              Effect.as(n),
              Effect.onInterrupt(() => Effect.sync(() => (interrupted += 1)))
            )
        })
        const handles = []
        for (let n = 0; n < 5; n++) handles.push(yield* queue.enqueue(n))
        yield* yieldUntil(runningIs(queue, 2))
        return { queue, handles }
      }).pipe(Effect.scoped)
      expect(interrupted).toBe(2)
      for (const handle of handles) {
        expect(yield* queue.get(handle.id)).toMatchObject({
          status: "cancelled",
          reason: "shutdown"
        })
      }
    })
  )

  it.scoped("shuts down on request before its scope closes, and still answers reads", () =>
    Effect.gen(function* () {
      const queue = yield* makeQueue({
        name: "shutdown-call",
        maxWorkers: 1,
        shutdownGrace: "10 seconds",
        handler: (ms: number) => Effect.as(Effect.sleep(ms), ms)
      })
      const running = yield* queue.enqueue(3_000)
      const waiting = yield* queue.enqueue(10)
      yield* yieldUntil(runningIs(queue, 1))

      // Two callers: both return once the queue is done, at the running task's end.
      const first = yield* Effect.fork(queue.shutdown)
      const second = yield* Effect.fork(queue.shutdown)
      yield* yieldUntil(() =>
        Effect.map(Effect.orDie(queue.get(waiting.id)), (task) => task.status === "cancelled")
      )
      expect(yield* Effect.flip(queue.enqueue(1))).toBeInstanceOf(TaskError.QueueShutdown)
      expect((yield* queue.get(running.id)).status).toBe("running")
      expect((yield* queue.list()).items).toHaveLength(2)
      expect(first.unsafePoll()).toBeNull()

      yield* TestClock.adjust("3 seconds")
      yield* Fiber.join(first)
      yield* Fiber.join(second)
      expect(yield* queue.await(running.id)).toEqual(Exit.succeed(3_000))
      expect(yield* queue.get(waiting.id)).toMatchObject({
        status: "cancelled",
        reason: "shutdown"
      })
      // Closing the scope later finds nothing left to do.
    })
  )

  it.effect("rejects bad options when the layer is built, naming option, value and rule", () =>
    Effect.gen(function* () {
      class Q extends Context.Tag("test/Q")<Q, TaskQueue.TaskQueue<[], void, never>>() {}
      const build = (maxWorkers: number) =>
        Layer.build(
          TaskQueue.layerMemory(Q, { name: "q", maxWorkers, handler: () => Effect.void })
        ).pipe(Effect.scoped, Effect.flip)
      for (const bad of [0, -1, 1.5, Number.NaN, Infinity]) {
        const error = yield* build(bad)
        expect(error).toBeInstanceOf(TaskError.InvalidOption)
        expect(error.option).toBe("maxWorkers")
        expect(error.message).toBe(`Invalid option maxWorkers: ${bad} (must be a positive integer)`)
      }
      const empty = yield* TaskQueue.make({
        name: "",
        maxWorkers: 1,
        handler: () => Effect.void
      }).pipe(Effect.provide(memory), Effect.scoped, Effect.flip)
      expect(empty.option).toBe("name")
      const store = yield* Effect.flip(TaskStore.makeMemory({ maxFinished: -1 }))
      expect(store.message).toBe("Invalid option maxFinished: -1 (must be a non-negative integer)")
    })
  )

  it.effect("is declared as a Tag and provided with one Layer", () =>
    Effect.gen(function* () {
      class Greeter extends Effect.Service<Greeter>()("test/Greeter", {
        succeed: { greet: (name: string) => Effect.succeed(`hello ${name}`) }
      }) {}
      class Greetings extends Context.Tag("test/Greetings")<
        Greetings,
        TaskQueue.TaskQueue<[name: string], string, never>
      >() {}
      const GreetingsLive = TaskQueue.layerMemory(Greetings, {
        name: "greetings",
        maxWorkers: 2,
        handler: (name) => Effect.flatMap(Greeter, (g) => g.greet(name))
      })
      const exit = yield* Effect.gen(function* () {
        const queue = yield* Greetings
        const task = yield* queue.enqueue("ada")
        return yield* task.await
      }).pipe(Effect.provide(GreetingsLive.pipe(Layer.provide(Greeter.Default))))
      expect(exit).toEqual(Exit.succeed("hello ada"))
    })
  )

  it.effect("keeps its books with a store whose writes take time", () =>
    Effect.gen(function* () {
      const memory = yield* TaskStore.makeMemory()
      const updates: Array<string> = []
      // A store like a database's: every write is an effect that takes 10 ms.
      const slow = TaskStore.TaskStore.of({
        get: memory.get,
        findKey: memory.findKey,
        list: memory.list,
        insert: (record) => Effect.zipRight(Effect.sleep("10 millis"), memory.insert(record)),
        update: (record) =>
          Effect.zipRight(
            Effect.sleep("10 millis"),
            Effect.zipRight(
              memory.update(record),
              Effect.sync(() => updates.push(record.status))
            )
          )
      })
      const scope = yield* Scope.make()
      const queue = yield* TaskQueue.make({
        name: "slow-store",
        maxWorkers: 1,
        handler: (n: number) => Effect.sleep("5 millis").pipe(Effect.as(n))
      }).pipe(Effect.provideService(TaskStore.TaskStore, slow), Scope.extend(scope))

      // An enqueue interrupted while its write is in flight still ends with a
      // counted, queued task: the write is not cut in half.
      const interrupted = yield* Effect.fork(queue.enqueue(1))
      yield* Effect.yieldNow()
      yield* Fiber.interruptFork(interrupted)
      yield* TestClock.adjust("10 millis")
      const second = yield* Effect.fork(queue.enqueue(2))
      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(second)
      yield* queue.awaitIdle
      expect(yield* queue.stats).toEqual({
        queued: 0,
        running: 0,
        delayed: 0,
        paused: false,
        maxWorkers: 1
      })
      expect(updates).toEqual(["succeeded", "succeeded"])

      // An enqueue whose write lands after the queue closed ends the task and says so.
      const late = yield* Effect.fork(queue.enqueue(3))
      yield* Effect.yieldNow()
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(closing)
      const error = yield* Effect.flip(Fiber.join(late))
      expect(error).toBeInstanceOf(TaskError.QueueShutdown)
      const page = yield* memory.list({ queue: "slow-store", limit: 10 })
      expect(page.items.map((task) => [task.status, task.reason])).toEqual([
        ["succeeded", undefined],
        ["succeeded", undefined],
        ["cancelled", "shutdown"]
      ])
      yield* queue.awaitIdle
    })
  )
})
