/**
 * Random sequences of enqueues, cancels and clock moves, with handlers that
 * succeed, fail, die, throw, hang, interrupt their own fiber or run
 * uninterruptibly for a while; then the queue either drains or shuts down.
 * Checked after every sequence: never more than maxWorkers running, every
 * task stored as ended exactly once and never started twice, the books back
 * at zero, and no fiber left once the scope is closed.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  Effect,
  Exit,
  FastCheck,
  Fiber,
  Logger,
  LogLevel,
  Scope,
  Supervisor,
  TestClock,
  TestContext
} from "effect"
import type { TaskError } from "effect-task-queue"
import { TaskQueue, TaskStore } from "effect-task-queue"

const kinds = ["ok", "fail", "die", "throw", "hang", "self-interrupt", "uninterruptible"] as const
type Kind = (typeof kinds)[number]

type Command =
  | { readonly _tag: "enqueue"; readonly kind: Kind; readonly ms: number }
  | { readonly _tag: "cancel"; readonly index: number }
  | { readonly _tag: "advance"; readonly ms: number }

const command: FastCheck.Arbitrary<Command> = FastCheck.oneof(
  FastCheck.record({
    _tag: FastCheck.constant("enqueue" as const),
    kind: FastCheck.constantFrom(...kinds),
    ms: FastCheck.integer({ min: 0, max: 50 })
  }),
  FastCheck.record({
    _tag: FastCheck.constant("cancel" as const),
    index: FastCheck.nat({ max: 40 })
  }),
  FastCheck.record({
    _tag: FastCheck.constant("advance" as const),
    ms: FastCheck.integer({ min: 0, max: 60 })
  })
)

const run = (maxWorkers: number, commands: ReadonlyArray<Command>, shutdown: boolean) =>
  Effect.gen(function* () {
    const supervisor = yield* Supervisor.track
    const memory = yield* TaskStore.makeMemory()
    const ended = new Map<string, number>()
    const countEnd = (record: { readonly id: string; readonly status: string }) => {
      if (record.status !== "queued" && record.status !== "running") {
        ended.set(record.id, (ended.get(record.id) ?? 0) + 1)
      }
    }
    const store = TaskStore.TaskStore.of({
      ...memory,
      update: (record) =>
        Effect.zipRight(
          Effect.sync(() => countEnd(record)),
          memory.update(record)
        ),
      unsafeUpdate: (record) => {
        countEnd(record)
        memory.unsafeUpdate!(record)
      }
    })
    let running = 0
    let maxRunning = 0
    const starts = new Map<number, number>()

    const handler = (n: number, kind: Kind, ms: number): Effect.Effect<number, string> => {
      const body: Effect.Effect<number, string> = Effect.gen(function* () {
        starts.set(n, (starts.get(n) ?? 0) + 1)
        running += 1
        maxRunning = Math.max(maxRunning, running)
        yield* Effect.sleep(ms)
        switch (kind) {
          case "ok":
            return n
          case "fail":
            return yield* Effect.fail(`failed ${n}`)
          case "die":
            return yield* Effect.die(new Error(`died ${n}`))
          case "throw":
            throw new Error(`threw ${n}`)
          case "hang":
            return yield* Effect.never
          case "self-interrupt":
            yield* Effect.withFiberRuntime((fiber) => Fiber.interruptFork(fiber))
            return n
          case "uninterruptible":
            return yield* Effect.uninterruptible(Effect.as(Effect.sleep(ms), n))
        }
      }).pipe(Effect.ensuring(Effect.sync(() => (running -= 1))))
      return body
    }

    const scope = yield* Scope.make()
    const queue = yield* TaskQueue.make({ name: "property", maxWorkers, handler }).pipe(
      Effect.provideService(TaskStore.TaskStore, store),
      Scope.extend(scope),
      Effect.supervised(supervisor)
    )
    const handles: Array<TaskQueue.TaskHandle<number, string | TaskError.TaskTimeout>> = []
    const cancels: Array<Fiber.RuntimeFiber<unknown, unknown>> = []
    for (const c of commands) {
      if (c._tag === "enqueue") handles.push(yield* queue.enqueue(handles.length, c.kind, c.ms))
      else if (c._tag === "cancel" && handles.length > 0) {
        const handle = handles[c.index % handles.length]!
        cancels.push(yield* Effect.fork(Effect.either(handle.cancel)))
      } else if (c._tag === "advance") yield* TestClock.adjust(c.ms)
    }

    if (shutdown) {
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("1 hour")
      yield* Fiber.join(closing)
    } else {
      // Hanging tasks never end on their own: cancel them, then let time run.
      for (const handle of handles) {
        const task = yield* queue.get(handle.id).pipe(Effect.option)
        if (task._tag === "Some" && task.value.status !== "succeeded") {
          cancels.push(yield* Effect.fork(Effect.either(handle.cancel)))
        }
      }
      yield* TestClock.adjust("1 hour")
      yield* queue.awaitIdle
      expect(yield* queue.stats).toEqual({ queued: 0, running: 0 })
      yield* Scope.close(scope, Exit.void)
    }
    for (const fiber of cancels) yield* Fiber.await(fiber)

    expect(maxRunning).toBeLessThanOrEqual(maxWorkers)
    expect(running).toBe(0)
    for (const handle of handles) {
      expect(ended.get(handle.id)).toBe(1)
      const exit = yield* handle.await
      expect(Exit.isExit(exit)).toBe(true)
    }
    for (const count of starts.values()) expect(count).toBe(1)
    const left = (yield* supervisor.value).filter((fiber) => fiber.unsafePoll() === null)
    expect(left).toEqual([])
  }).pipe(Effect.scoped)

describe("TaskQueue properties", () => {
  it("holds its invariants over random sequences of work, cancels and shutdowns", async () => {
    await FastCheck.assert(
      FastCheck.asyncProperty(
        FastCheck.integer({ min: 1, max: 3 }),
        FastCheck.array(command, { maxLength: 40 }),
        FastCheck.boolean(),
        (maxWorkers, commands, shutdown) =>
          Effect.runPromise(
            run(maxWorkers, commands, shutdown).pipe(
              // Thousands of tasks end here; their log lines would drown the test output.
              Logger.withMinimumLogLevel(LogLevel.None),
              Effect.provide(TestContext.TestContext)
            )
          )
      ),
      { numRuns: 300 }
    )
  }, 120_000)
})
