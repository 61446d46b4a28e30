/**
 * Retries, attempt timeouts, cancel from every state, shutdown of waiting
 * tasks and the checks on `enqueueWith`'s options, all on the test clock.
 */
import { describe, expect, it } from "@effect/vitest"
import { assertInstanceOf } from "@effect/vitest/utils"
import {
  Cause,
  Clock,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Option,
  Random,
  Schedule,
  Scope,
  TestClock
} from "effect"
import type { Task } from "effect-task-queue"
import { TaskError, TaskQueue, TaskStore } from "effect-task-queue"

const memory = TaskStore.layerMemory()

/**
 * Builds a queue in the test's scope with the in-memory store and a shutdown
 * grace of 0: the test clock does not move while a test's scope closes.
 */
const makeQueue = <Args extends ReadonlyArray<any>, A, E, R>(
  options: TaskQueue.Options<Args, A, E, R>
) => TaskQueue.make({ shutdownGrace: 0, ...options }).pipe(Effect.provide(memory))

/** Lets the queue's fibers run (no clock involved) until `condition` holds. */
const yieldUntil = (condition: () => Effect.Effect<boolean> | boolean) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1000; i++) {
      const result = condition()
      if (typeof result === "boolean" ? result : yield* result) return
      yield* Effect.yieldNow()
    }
    return yield* Effect.dieMessage("condition never held")
  })

/** Records, per label, the instants at which the handler started. */
const starts = () => {
  const at = new Map<string, Array<number>>()
  const record = (label: string) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync(() => {
        at.set(label, [...(at.get(label) ?? []), now])
      })
    )
  return { at, record, of: (label: string) => at.get(label) ?? [] }
}

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

describe("TaskQueue retries", () => {
  it.scoped("retries on the schedule's exact gaps, then fails with the last error", () =>
    Effect.gen(function* () {
      const probe = starts()
      let attempt = 0
      const queue = yield* makeQueue({
        name: "exponential",
        maxWorkers: 1,
        retry: { maxAttempts: 4, schedule: Schedule.exponential("1 second") },
        handler: () =>
          Effect.zipRight(
            probe.record("t"),
            Effect.suspend(() => Effect.fail(`attempt ${(attempt += 1)}`))
          )
      })
      const task = yield* queue.enqueue()
      yield* yieldUntil(() => probe.of("t").length === 1)
      yield* TestClock.adjust("999 millis")
      expect(probe.of("t")).toEqual([0])
      yield* TestClock.adjust("1 millis")
      expect(probe.of("t")).toEqual([0, 1000])
      yield* TestClock.adjust("1999 millis")
      expect(probe.of("t")).toEqual([0, 1000])
      yield* TestClock.adjust("1 millis")
      expect(probe.of("t")).toEqual([0, 1000, 3000])
      yield* TestClock.adjust("4 seconds")
      expect(probe.of("t")).toEqual([0, 1000, 3000, 7000])
      // Four attempts in all: no fifth, however long we wait.
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

  it.scoped("calls the handler with the task's arguments on every attempt", () =>
    Effect.gen(function* () {
      const seen: Array<unknown> = []
      const retry = { maxAttempts: 3, schedule: Schedule.spaced("1 second") }
      // One argument and several are carried apart by the engine: check both.
      const one = yield* makeQueue({
        name: "one-argument",
        maxWorkers: 1,
        retry,
        handler: (order: { readonly id: number }) =>
          Effect.suspend(() => {
            seen.push(order)
            return seen.length < 3 ? Effect.fail("again") : Effect.succeed(order.id)
          })
      })
      const single = yield* one.enqueue({ id: 7 })
      yield* TestClock.adjust("5 seconds")
      expect(seen).toEqual([{ id: 7 }, { id: 7 }, { id: 7 }])
      expect(yield* single.await).toEqual(Exit.succeed(7))

      const calls: Array<ReadonlyArray<unknown>> = []
      const two = yield* makeQueue({
        name: "two-arguments",
        maxWorkers: 1,
        retry,
        handler: (to: string, times: number) =>
          Effect.suspend(() => {
            calls.push([to, times])
            return calls.length < 3 ? Effect.fail("again") : Effect.succeed(to.repeat(times))
          })
      })
      const spread = yield* two.enqueue("ab", 2)
      yield* TestClock.adjust("5 seconds")
      expect(calls).toEqual([
        ["ab", 2],
        ["ab", 2],
        ["ab", 2]
      ])
      expect(yield* spread.await).toEqual(Exit.succeed("abab"))
    })
  )

  it.effect("spaces the default retries 0.8 to 1.2 times 1 s, then 2 s, with seeded jitter", () =>
    Effect.gen(function* () {
      const seed = 20_260_412
      // The worker draws one number per retry from the Random it inherits.
      const draws = Random.make(seed)
      const r1 = yield* draws.next
      const r2 = yield* draws.next
      // A delay between 0.8 and 1.2 times the base, rounded up to whole milliseconds.
      const jitter = (millis: number, r: number) =>
        Math.ceil(millis * 0.8 * (1 - r) + millis * 1.2 * r)
      const firstGap = jitter(1000, r1)
      const secondGap = jitter(2000, r2)
      expect(firstGap).toBeGreaterThanOrEqual(800)
      expect(firstGap).toBeLessThanOrEqual(1200)
      expect(secondGap).toBeGreaterThanOrEqual(1600)
      expect(secondGap).toBeLessThanOrEqual(2400)

      const probe = starts()
      const queue = yield* makeQueue({
        name: "default-retry",
        maxWorkers: 1,
        handler: () => Effect.zipRight(probe.record("t"), Effect.fail("no luck"))
      }).pipe(Effect.withRandom(Random.make(seed)))
      const task = yield* queue.enqueue()
      yield* yieldUntil(() => probe.of("t").length === 1)
      const waiting = yield* queue.get(task.id)
      expect(waiting).toMatchObject({ status: "queued", attempt: 1, maxAttempts: 3 })
      expect(waiting.runAt?.getTime()).toBe(firstGap)

      yield* TestClock.adjust(firstGap - 1)
      expect(probe.of("t")).toEqual([0])
      yield* TestClock.adjust(1)
      expect(probe.of("t")).toEqual([0, firstGap])
      yield* TestClock.adjust(secondGap - 1)
      expect(probe.of("t")).toEqual([0, firstGap])
      yield* TestClock.adjust(1)
      expect(probe.of("t")).toEqual([0, firstGap, firstGap + secondGap])
      yield* TestClock.adjust("1 minute")
      expect(probe.of("t")).toHaveLength(3)
      expect(yield* task.await).toEqual(Exit.fail("no luck"))
    }).pipe(Effect.scoped)
  )

  it.effect("caps the default delay at 60 s before the jitter", () =>
    Effect.gen(function* () {
      const seed = 7
      const draws = Random.make(seed)
      const expected: Array<number> = []
      for (let retry = 1; retry <= 7; retry++) {
        const r = yield* draws.next
        const base = Math.min(1000 * 2 ** (retry - 1), 60_000)
        expected.push(Math.ceil(base * 0.8 * (1 - r) + base * 1.2 * r))
      }
      const probe = starts()
      const queue = yield* makeQueue({
        name: "default-cap",
        maxWorkers: 1,
        retry: { maxAttempts: 8 },
        handler: () => Effect.zipRight(probe.record("t"), Effect.fail("down"))
      }).pipe(Effect.withRandom(Random.make(seed)))
      yield* queue.enqueue()
      yield* TestClock.adjust("10 minutes")
      const at = probe.of("t")
      expect(at).toHaveLength(8)
      const gaps = at.slice(1).map((t, i) => t - at[i]!)
      expect(gaps).toEqual(expected)
      // The seventh retry would be 64 s without the cap.
      expect(gaps[6]).toBeGreaterThanOrEqual(48_000)
      expect(gaps[6]).toBeLessThanOrEqual(72_000)
    }).pipe(Effect.scoped)
  )

  it.scoped("fails at once, after one attempt, on an error the policy calls permanent", () =>
    Effect.gen(function* () {
      const probe = starts()
      const queue = yield* makeQueue({
        name: "permanent",
        maxWorkers: 2,
        retry: { schedule: Schedule.spaced("1 second"), isPermanent: (e) => e === "bad input" },
        handler: (error: "bad input" | "busy") =>
          Effect.zipRight(probe.record(error), Effect.fail(error))
      })
      const permanent = yield* queue.enqueue("bad input")
      const transient = yield* queue.enqueue("busy")
      yield* TestClock.adjust("10 seconds")
      expect(probe.of("bad input")).toEqual([0])
      expect(probe.of("busy")).toEqual([0, 1000, 2000])
      expect(yield* permanent.await).toEqual(Exit.fail("bad input"))
      expect(yield* queue.get(permanent.id)).toMatchObject({ status: "failed", attempt: 1 })
      expect(yield* queue.get(transient.id)).toMatchObject({ status: "failed", attempt: 3 })
    })
  )

  it.scoped("ends the retries when the schedule ends, before maxAttempts", () =>
    Effect.gen(function* () {
      const probe = starts()
      const queue = yield* makeQueue({
        name: "recurs",
        maxWorkers: 1,
        retry: {
          maxAttempts: 10,
          schedule: Schedule.spaced("1 second").pipe(Schedule.upTo("1.5 seconds"))
        },
        handler: () => Effect.zipRight(probe.record("t"), Effect.fail("down"))
      })
      const task = yield* queue.enqueue()
      yield* TestClock.adjust("1 minute")
      expect(probe.of("t")).toEqual([0, 1000, 2000])
      expect(yield* queue.get(task.id)).toMatchObject({ status: "failed", attempt: 3 })
    })
  )

  it.scoped("fails without retrying, and frees its worker, when isPermanent throws", () =>
    Effect.gen(function* () {
      let calls = 0
      const queue = yield* makeQueue({
        name: "permanent-throws",
        maxWorkers: 1,
        retry: {
          schedule: Schedule.spaced("1 second"),
          isPermanent: (): boolean => {
            throw new Error("predicate broke")
          }
        },
        handler: (n: number) =>
          Effect.suspend(() => {
            calls += 1
            return n === 1 ? Effect.fail("first fails") : Effect.succeed(n)
          })
      })
      const task = yield* queue.enqueue(1)
      const next = yield* queue.enqueue(2)
      const idle = yield* Effect.fork(queue.awaitIdle)
      yield* TestClock.adjust("1 minute")
      expect(idle.unsafePoll()).toEqual(Exit.void)
      expect(calls).toBe(2)
      expect(yield* queue.stats).toMatchObject({ queued: 0, running: 0 })
      const failed = yield* queue.get(task.id)
      expect(failed).toMatchObject({ status: "failed", attempt: 1 })
      expect(queue.toView(failed).error).toMatchObject({ kind: "failure", message: "first fails" })
      const exit = yield* task.await
      expect(Exit.isFailure(exit) && Cause.dieOption(exit.cause)).toEqual(
        Option.some(new Error("predicate broke"))
      )
      expect(yield* next.await).toEqual(Exit.succeed(2))
    })
  )

  it.scoped("fails without retrying, and frees its worker, when the retry schedule dies", () =>
    Effect.gen(function* () {
      let calls = 0
      const queue = yield* makeQueue({
        name: "schedule-dies",
        maxWorkers: 1,
        retry: {
          schedule: Schedule.spaced("1 second").pipe(
            Schedule.tapInput(() => Effect.dieMessage("schedule broke"))
          )
        },
        handler: (n: number) =>
          Effect.suspend(() => {
            calls += 1
            return n === 1 ? Effect.fail("first fails") : Effect.succeed(n)
          })
      })
      const task = yield* queue.enqueue(1)
      const next = yield* queue.enqueue(2)
      const idle = yield* Effect.fork(queue.awaitIdle)
      yield* TestClock.adjust("1 minute")
      expect(idle.unsafePoll()).toEqual(Exit.void)
      expect(calls).toBe(2)
      expect(yield* queue.get(task.id)).toMatchObject({ status: "failed", attempt: 1 })
      const exit = yield* task.await
      expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause)).toEqual(
        Option.some("first fails")
      )
      expect(Exit.isFailure(exit) && Option.isSome(Cause.dieOption(exit.cause))).toBe(true)
      expect(yield* next.await).toEqual(Exit.succeed(2))
    })
  )

  it.scoped("shows the attempt and when it runs next while a task waits for its retry", () =>
    Effect.gen(function* () {
      let calls = 0
      const queue = yield* makeQueue({
        name: "waiting",
        maxWorkers: 1,
        retry: { schedule: Schedule.spaced("5 seconds") },
        handler: () =>
          Effect.suspend(() => ((calls += 1) === 1 ? Effect.fail("flaky") : Effect.succeed("ok")))
      })
      yield* TestClock.adjust("1 second")
      const task = yield* queue.enqueue()
      yield* yieldUntil(() => calls === 1)
      const waiting = yield* queue.get(task.id)
      expect(waiting).toMatchObject({ status: "queued", attempt: 1, maxAttempts: 3 })
      expect(waiting.runAt?.getTime()).toBe(6000)
      expect(waiting.exit).toBeUndefined()
      expect(queue.toView(waiting)).toMatchObject({
        status: "queued",
        attempt: 1,
        maxAttempts: 3,
        startedAt: "1970-01-01T00:00:01.000Z",
        runAt: "1970-01-01T00:00:06.000Z",
        finishedAt: null
      })
      expect(yield* queue.stats).toEqual({
        queued: 1,
        running: 0,
        delayed: 1,
        paused: false,
        maxWorkers: 1
      })
      const idle = yield* Effect.fork(queue.awaitIdle)
      yield* TestClock.adjust("4999 millis")
      expect(idle.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(idle)
      const done = yield* queue.get(task.id)
      expect(done).toMatchObject({ status: "succeeded", attempt: 2, runAt: undefined })
      expect(done.startedAt?.getTime()).toBe(6000)
      expect(yield* task.await).toEqual(Exit.succeed("ok"))
    })
  )

  it.scoped("holds no worker slot while a task waits for its retry", () =>
    Effect.gen(function* () {
      const probe = starts()
      const queue = yield* makeQueue({
        name: "slot",
        maxWorkers: 1,
        retry: { schedule: Schedule.spaced("10 seconds") },
        handler: (label: string, ms: number) =>
          Effect.zipRight(
            probe.record(label),
            Effect.suspend(() =>
              label === "flaky" && probe.of(label).length === 1
                ? Effect.fail("first attempt fails")
                : Effect.sleep(ms)
            )
          )
      })
      const flaky = yield* queue.enqueue("flaky", 0)
      const other = yield* queue.enqueue("other", 3000)
      yield* TestClock.adjust("5 seconds")
      const late = yield* queue.enqueue("late", 1000)
      yield* TestClock.adjust("10 seconds")
      expect(probe.of("other")).toEqual([0])
      expect(probe.of("late")).toEqual([5000])
      expect(probe.of("flaky")).toEqual([0, 10_000])
      for (const task of [flaky, other, late]) {
        expect((yield* queue.get(task.id)).status).toBe("succeeded")
      }
    })
  )

  it.scoped("retries defects and synchronous throws, not a handler's own interruption", () =>
    Effect.gen(function* () {
      const probe = starts()
      let throws = 0
      const queue = yield* makeQueue({
        name: "kinds",
        maxWorkers: 3,
        retry: { maxAttempts: 2, schedule: Schedule.spaced("1 second") },
        handler: (kind: "die" | "throw" | "interrupt"): Effect.Effect<void> => {
          if (kind === "throw") {
            throws += 1
            throw new Error("thrown")
          }
          return Effect.zipRight(
            probe.record(kind),
            kind === "die" ? Effect.die(new Error("a defect")) : Effect.interrupt
          )
        }
      })
      const died = yield* queue.enqueue("die")
      const threw = yield* queue.enqueue("throw")
      const interrupted = yield* queue.enqueue("interrupt")
      yield* TestClock.adjust("10 seconds")
      expect(probe.of("die")).toEqual([0, 1000])
      expect(throws).toBe(2)
      expect(probe.of("interrupt")).toEqual([0])
      const diedView = queue.toView(yield* queue.get(died.id))
      expect(diedView).toMatchObject({ status: "failed", attempt: 2 })
      expect(diedView.error).toEqual({ kind: "defect", message: "a defect" })
      expect(yield* queue.get(threw.id)).toMatchObject({ status: "failed", attempt: 2 })
      const interruptedView = queue.toView(yield* queue.get(interrupted.id))
      expect(interruptedView).toMatchObject({ attempt: 1 })
      expect(interruptedView.error?.kind).toBe("interrupted")
    })
  )

  it.scoped("keeps a retried task's priority: it runs before lower ones that waited longer", () =>
    Effect.gen(function* () {
      const order: Array<string> = []
      let urgentCalls = 0
      const queue = yield* makeQueue({
        name: "priority",
        maxWorkers: 1,
        retry: { schedule: Schedule.spaced("700 millis") },
        handler: (label: string) =>
          Effect.suspend(() => {
            order.push(label)
            if (label !== "urgent") return Effect.sleep("500 millis")
            return (urgentCalls += 1) === 1 ? Effect.fail("once") : Effect.void
          })
      })
      yield* queue.enqueueWith({ priority: 5 }, "urgent")
      for (const label of ["a", "b", "c", "d"]) yield* queue.enqueue(label)
      // urgent fails at 0 and is due again at 700, while b runs (500 to 1000).
      yield* TestClock.adjust("3 seconds")
      expect(order).toEqual(["urgent", "a", "b", "urgent", "c", "d"])
    })
  )

  it.scoped("takes a task's own retry policy over the queue's", () =>
    Effect.gen(function* () {
      const probe = starts()
      const queue = yield* makeQueue({
        name: "override",
        maxWorkers: 2,
        retry: { maxAttempts: 1 },
        handler: (label: string) => Effect.zipRight(probe.record(label), Effect.fail(label))
      })
      const plain = yield* queue.enqueue("plain")
      const own = yield* queue.enqueueWith(
        { retry: { maxAttempts: 3, schedule: Schedule.spaced("2 seconds") } },
        "own"
      )
      yield* TestClock.adjust("1 minute")
      expect(probe.of("plain")).toEqual([0])
      expect(probe.of("own")).toEqual([0, 2000, 4000])
      expect(yield* queue.get(plain.id)).toMatchObject({ attempt: 1, maxAttempts: 1 })
      expect(yield* queue.get(own.id)).toMatchObject({ attempt: 3, maxAttempts: 3 })
    })
  )
})

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

  it.scoped("cancels a task whose retry schedule is still deciding: no retry follows", () =>
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
      const cancel = yield* Effect.fork(Effect.either(task.cancel))
      yield* TestClock.adjust("500 millis")
      // The cancel returns once the attempt is over, not when the retry falls due.
      const outcome = cancel.unsafePoll()
      expect(outcome).not.toBeNull()
      const ended = yield* queue.get(task.id)
      expect(["cancelled", "failed"]).toContain(ended.status)
      expect(ended.finishedAt?.getTime()).toBe(1000)
      expect(outcome).toEqual(
        Exit.succeed(
          ended.status === "cancelled"
            ? Either.right("cancelled")
            : Either.left(TaskError.TaskFinished.of(task.id, "failed"))
        )
      )
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
