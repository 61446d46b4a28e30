/**
 * What each task gets of its own although workers run one task after
 * another on one fiber: a Scope closed when it ends, the fibers it forked
 * interrupted, FiberRefs and self-interruption kept from the next task, and
 * what needs a Scope (forkScoped, pools, streams) working in handlers.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, FiberRef, Pool, Queue, Stream, TestClock } from "effect"
import { makeQueue } from "./helpers.js"

describe("TaskQueue per-task isolation", () => {
  it.scoped("gives each task a Scope of its own, closed when the task ends", () =>
    Effect.gen(function* () {
      const events: Array<string> = []
      const queue = yield* makeQueue({
        name: "scoped",
        maxWorkers: 1,
        handler: (n: number) =>
          Effect.acquireRelease(
            Effect.sync(() => events.push(`open ${n}`)),
            () => Effect.sync(() => events.push(`close ${n}`))
          ).pipe(Effect.andThen(Effect.sleep("10 millis")))
      })
      const first = yield* queue.enqueue(1)
      yield* queue.enqueue(2)
      yield* TestClock.adjust("10 millis")
      yield* first.await
      expect(events.slice(0, 2)).toEqual(["open 1", "close 1"])
      yield* TestClock.adjust("10 millis")
      yield* queue.awaitIdle
      expect(events).toEqual(["open 1", "close 1", "open 2", "close 2"])
    })
  )

  it.scoped("interrupts the fibers a task forked and left running when it ends", () =>
    Effect.gen(function* () {
      let alive = 0
      const queue = yield* makeQueue({
        name: "children",
        maxWorkers: 1,
        handler: () =>
          Effect.fork(
            Effect.sync(() => (alive += 1)).pipe(
              Effect.andThen(Effect.never),
              Effect.onInterrupt(() => Effect.sync(() => (alive -= 1)))
            )
          ).pipe(Effect.andThen(Effect.yieldNow()))
      })
      for (let n = 0; n < 5; n++) yield* queue.enqueue()
      yield* queue.awaitIdle
      expect(alive).toBe(0)
    })
  )

  it.scoped("does not let one task's FiberRefs or self-interruption reach the next", () =>
    Effect.gen(function* () {
      const tenant = FiberRef.unsafeMake("none")
      const seen: Array<string> = []
      const queue = yield* makeQueue({
        name: "isolation",
        maxWorkers: 1,
        handler: (kind: "set" | "read" | "interrupt-self") => {
          switch (kind) {
            case "set":
              return FiberRef.set(tenant, "tenant-a")
            case "read":
              return Effect.flatMap(FiberRef.get(tenant), (value) =>
                Effect.sync(() => seen.push(value))
              )
            case "interrupt-self":
              return Effect.withFiberRuntime((fiber) => Fiber.interruptFork(fiber))
          }
        }
      })
      yield* queue.enqueue("set")
      yield* queue.enqueue("read")
      const self = yield* queue.enqueue("interrupt-self")
      const after = yield* queue.enqueue("read")
      yield* queue.awaitIdle
      expect(seen).toEqual(["none", "none"])
      // The interruption reaches its own worker after the task returned; the
      // next task runs on a fresh worker instead of being interrupted.
      expect((yield* queue.get(self.id)).status).toBe("succeeded")
      expect((yield* queue.get(after.id)).status).toBe("succeeded")
    })
  )

  it.scoped("lets handlers use what needs a Scope: forkScoped, pools, streams to queues", () =>
    Effect.gen(function* () {
      let forked = 0
      let pooled = 0
      const queue = yield* makeQueue({
        name: "scope-users",
        maxWorkers: 1,
        handler: (kind: "fork" | "pool" | "stream") => {
          switch (kind) {
            case "fork":
              return Effect.forkScoped(
                Effect.sync(() => (forked += 1)).pipe(
                  Effect.andThen(Effect.never),
                  Effect.ensuring(Effect.sync(() => (forked -= 1)))
                )
              ).pipe(Effect.andThen(Effect.yieldNow()), Effect.as(kind))
            case "pool":
              return Pool.make({
                acquire: Effect.acquireRelease(
                  Effect.sync(() => (pooled += 1)),
                  () => Effect.sync(() => (pooled -= 1))
                ),
                size: 2
              }).pipe(
                Effect.flatMap((pool) => Effect.scoped(pool.get)),
                Effect.as(kind)
              )
            case "stream":
              return Stream.toQueue(Stream.make(1, 2, 3)).pipe(
                Effect.flatMap(Queue.take),
                Effect.as(kind)
              )
          }
        }
      })
      const tasks = [
        yield* queue.enqueue("fork"),
        yield* queue.enqueue("pool"),
        yield* queue.enqueue("stream")
      ]
      yield* queue.awaitIdle
      for (const task of tasks) expect((yield* queue.get(task.id)).status).toBe("succeeded")
      expect([forked, pooled]).toEqual([0, 0])
    })
  )
})
