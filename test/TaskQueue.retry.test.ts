/**
 * Retries, all on the test clock: the schedule's exact gaps, the default
 * policy's seeded jitter and its cap, errors the policy calls permanent, a
 * throwing `isPermanent` or a dying schedule, what a task shows and holds
 * while it waits for its retry, and a task's own policy over the queue's.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Option, Random, Schedule, TestClock } from "effect"
import { makeQueue, starts, yieldUntil } from "./helpers.js"

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
