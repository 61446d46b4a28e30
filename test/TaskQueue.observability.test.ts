/**
 * What a queue reports while its tasks run: its metrics, counted exactly
 * and kept apart per queue; one span per attempt, parented on the span that
 * enqueued the task; and its log lines, with each task's annotations and
 * one line per task's end. All on the test clock.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Effect,
  Exit,
  HashMap,
  Logger,
  LogLevel,
  Metric,
  Option,
  Schedule,
  TestClock,
  Tracer
} from "effect"
import type { Context } from "effect"
import { TaskQueue } from "effect-task-queue"
import { makeQueue, statsAre, yieldUntil } from "./helpers.js"

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
