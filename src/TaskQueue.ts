/**
 * The queue: enqueue work, run it in the background with at most
 * `maxWorkers` handlers at a time, read its status, await it, cancel it.
 *
 * @since 0.1.0
 */
import type { Context, DateTime, Exit, Scope } from "effect"
import { Duration, Effect, Either, Layer, Schedule, Schema } from "effect"
import * as Durable from "./internal/durable.js"
import * as Engine from "./internal/engine.js"
import { metrics as queueMetrics } from "./internal/observe.js"
import {
  orDefault,
  isNonNegativeDuration,
  isObject,
  isPositiveInteger,
  resolveRetry,
  timeoutMillis,
  validate
} from "./internal/options.js"
import type { TaskId, TaskStatus, TaskView } from "./Task.js"
import type * as Task from "./Task.js"
import type {
  InvalidOption,
  QueueFull,
  QueueShutdown,
  TaskFinished,
  TaskNotFound,
  TaskTimeout
} from "./TaskError.js"
import * as TaskStore from "./TaskStore.js"

/**
 * How failed attempts are retried.
 *
 * @since 0.2.0
 * @category options
 */
export interface RetryOptions<E> {
  /** Attempts in all, the first included: a positive integer. 1 never retries. */
  readonly maxAttempts?: number | undefined
  /**
   * The delay before each retry, from an Effect `Schedule` stepped once per
   * failed attempt with the attempt's error (a typed error, a `TaskTimeout`
   * or a defect's value). When the schedule ends, so do the retries.
   */
  readonly schedule?: Schedule.Schedule<unknown, unknown> | undefined
  /** Typed errors for which another attempt would not help: the task fails at once. */
  readonly isPermanent?: ((error: E) => boolean) | undefined
}

/**
 * The default retry schedule: exponential from 1 second (1 s, 2 s, 4 s, ...)
 * with each delay capped at 60 seconds, then jittered to between 0.8 and 1.2
 * times itself.
 *
 * @since 0.2.0
 * @category options
 */
export const defaultRetrySchedule: Schedule.Schedule<unknown, unknown> = Schedule.exponential(
  "1 second"
).pipe(
  Schedule.modifyDelay((delay) => Duration.min(delay, Duration.seconds(60))),
  Schedule.jittered
)

/**
 * Options of one enqueue, for `enqueueWith`.
 *
 * @since 0.2.0
 * @category options
 */
export interface EnqueueOptions<E> {
  /** Higher runs first, FIFO within a priority: an integer, default 0. */
  readonly priority?: number | undefined
  /** Runs the task no sooner than this long from now. */
  readonly delay?: Duration.DurationInput | undefined
  /** Runs the task no sooner than this instant (UTC); not with `delay`. */
  readonly runAt?: Date | DateTime.DateTime | number | undefined
  /** This task's attempt timeout, in place of the queue's; `Duration.infinity` for none. */
  readonly timeout?: Duration.DurationInput | undefined
  /** This task's retry policy, over the queue's. */
  readonly retry?: RetryOptions<E> | undefined
  /**
   * Enqueuing twice with the same key gives back the first task, never a
   * second one, for as long as the store keeps that task.
   */
  readonly idempotencyKey?: string | undefined
}

/**
 * @since 0.1.0
 * @category options
 */
export interface Options<Args extends ReadonlyArray<any>, A, E, R> {
  /** The queue's name: it tags every task, log line and view. */
  readonly name: string
  /** How many handlers may run at once: a positive integer. */
  readonly maxWorkers: number
  /**
   * Runs one task. Its error type is the task's typed failure; a defect or a
   * synchronous throw is recorded as a defect. Its requirements are provided
   * by the queue's layer.
   */
  readonly handler: (...args: Args) => Effect.Effect<A, E, R>
  /** Encodes results in task views; without it results are shown as they are. */
  readonly success?: Schema.Schema<A, any> | undefined
  /** Encodes typed errors in task views; without it an error shows its message. */
  readonly failure?: Schema.Schema<E, any> | undefined
  /**
   * When the queue shuts down, how long running tasks may go on to finish
   * before they are interrupted. Default 10 seconds; 0 interrupts at once.
   */
  readonly shutdownGrace?: Duration.DurationInput | undefined
  /** How failed attempts are retried. Default: 3 attempts, {@link defaultRetrySchedule}. */
  readonly retry?: RetryOptions<E> | undefined
  /**
   * How long one attempt may run before it is interrupted and fails with
   * `TaskTimeout`; the clock starts when the attempt starts. Default: no limit.
   */
  readonly timeout?: Duration.DurationInput | undefined
  /** Queued tasks at most (delayed and retry-waiting ones count). Default: no bound. */
  readonly capacity?: number | undefined
  /**
   * What enqueue does when `capacity` tasks are queued: `"wait"` (the
   * default) suspends until there is room; `"refuse"` fails with `QueueFull`.
   */
  readonly whenFull?: "wait" | "refuse" | undefined
  /**
   * The Schema of the handler's one argument. Required on a durable store,
   * which keeps payloads as this Schema's encoded JSON.
   */
  readonly payload?: Schema.Schema<Args[0], any> | undefined
  /**
   * Durable stores: how long a claim holds without renewal; a running task
   * whose claim runs out is taken back by any instance. The owner renews it
   * every third of this. Default 30 seconds.
   */
  readonly lease?: Duration.DurationInput | undefined
  /**
   * Durable stores: how often the store is read for tasks that no enqueue of
   * this process announced (enqueued by another process). Default 1 second.
   */
  readonly pollInterval?: Duration.DurationInput | undefined
}

/**
 * What `enqueue` gives back: the task's id, and effects to await or cancel
 * that very task.
 *
 * @since 0.1.0
 * @category models
 */
export interface TaskHandle<A, E> {
  readonly id: TaskId
  /** Waits until the task ends and gives back how it ended. */
  readonly await: Effect.Effect<Exit.Exit<A, E>>
  /** Cancels the task; see {@link TaskQueue.cancel}. */
  readonly cancel: Effect.Effect<TaskStatus, TaskFinished>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Page<A, E> {
  readonly items: ReadonlyArray<Task.Task<A, E>>
  /** Pass it as `cursor` to read the next page; `undefined` on the last one. */
  readonly next: string | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** Tasks waiting: ready, delayed, or waiting for a retry. */
  readonly queued: number
  /** Tasks whose handler is running. */
  readonly running: number
  /** Of the queued tasks, those not due yet (delayed or waiting for a retry). */
  readonly delayed: number
  readonly paused: boolean
  readonly maxWorkers: number
}

/**
 * A queue of tasks that run `(...args: Args) => Effect<A, E>`.
 *
 * @since 0.1.0
 * @category models
 */
export interface TaskQueue<Args extends ReadonlyArray<any>, A, E> {
  readonly name: string
  /** How many handlers may run at once; see {@link TaskQueue.resize}. */
  readonly maxWorkers: number
  /**
   * Stores the task and returns at once; it never waits for a worker. With a
   * `capacity`, it waits for room or fails with `QueueFull`.
   */
  readonly enqueue: (
    ...args: Args
  ) => Effect.Effect<TaskHandle<A, E | TaskTimeout>, QueueShutdown | QueueFull>
  /** `enqueue` with options: priority, delay, timeout, retries, idempotency key. */
  readonly enqueueWith: (
    options: EnqueueOptions<E>,
    ...args: Args
  ) => Effect.Effect<TaskHandle<A, E | TaskTimeout>, QueueShutdown | QueueFull | InvalidOption>
  readonly get: (id: string) => Effect.Effect<Task.Task<A, E | TaskTimeout>, TaskNotFound>
  /** Tasks of this queue, oldest first, optionally of one status. */
  readonly list: (query?: {
    readonly status?: TaskStatus | undefined
    readonly limit?: number | undefined
    readonly cursor?: string | undefined
  }) => Effect.Effect<Page<A, E | TaskTimeout>>
  /** Waits until the task ends and gives back how it ended. */
  readonly await: (id: string) => Effect.Effect<Exit.Exit<A, E | TaskTimeout>, TaskNotFound>
  /**
   * Cancels a task. A queued task never starts; a running one is interrupted
   * and its worker slot is free when this returns. Fails with `TaskFinished`,
   * changing nothing, when the task had already ended.
   */
  readonly cancel: (id: string) => Effect.Effect<TaskStatus, TaskNotFound | TaskFinished>
  /**
   * Shuts the queue down now, as closing its scope would, and waits until it
   * is done: enqueue fails with `QueueShutdown` at once, waiting tasks end
   * `cancelled` (reason `"shutdown"`), running ones get `shutdownGrace`.
   * Reads (`get`, `list`, `await`) go on working. The scope's close then has
   * nothing left to do. Use it to drain a queue before what serves it stops.
   */
  readonly shutdown: Effect.Effect<void>
  /** Starts no more tasks until `resume`; running ones go on, enqueue still works. */
  readonly pause: Effect.Effect<void>
  readonly resume: Effect.Effect<void>
  /**
   * Changes `maxWorkers`. More workers start at once; with fewer, running
   * tasks finish and their workers stop until the count fits.
   */
  readonly resize: (maxWorkers: number) => Effect.Effect<void, InvalidOption>
  /**
   * Resolves once no task is queued or running (at once if none is). Delayed
   * tasks and tasks waiting for a retry count as queued. Once the queue has
   * shut down it resolves as soon as the tasks it ran have ended: a durable
   * queue leaves the tasks still queued in its store, for the next start.
   */
  readonly awaitIdle: Effect.Effect<void>
  readonly stats: Effect.Effect<Stats>
  /** The JSON view of a task, with the queue's result and error schemas. */
  readonly toView: (task: Task.Task<A, E | TaskTimeout>) => TaskView
}

/**
 * The queue's metrics, each tagged with `queue` (its name): counters
 * `enqueued`, `started` (attempts), `succeeded`, `failed`, `retried`,
 * `cancelled`; gauges `queued` and `running`; histograms `waitTime` (ready to
 * started) and `runTime` (per attempt), in milliseconds.
 *
 * @since 0.2.0
 * @category observability
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { TaskQueue } from "effect-task-queue"
 *
 * const succeeded = Metric.value(Metric.tagged(TaskQueue.metrics.succeeded, "queue", "emails"))
 * const program = Effect.map(succeeded, (state) => state.count)
 * ```
 */
export const metrics = queueMetrics

/**
 * Builds a queue in the current scope. Closing the scope shuts it down:
 * enqueue fails with `QueueShutdown` and tasks that never started end
 * `cancelled` with reason `"shutdown"` at once; running tasks may finish
 * within `shutdownGrace` (10 seconds), then are interrupted and end
 * `cancelled` the same way.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TaskQueue, TaskStore } from "effect-task-queue"
 *
 * const program = Effect.gen(function* () {
 *   const queue = yield* TaskQueue.make({
 *     name: "sums",
 *     maxWorkers: 2,
 *     handler: (x: number, y: number) => Effect.succeed(x + y)
 *   })
 *   const task = yield* queue.enqueue(1, 2)
 *   return yield* task.await
 * }).pipe(Effect.scoped, Effect.provide(TaskStore.layerMemory()))
 * ```
 */
export const make = <Args extends ReadonlyArray<any>, A, E, R>(
  input: Options<Args, A, E, R>
): Effect.Effect<TaskQueue<Args, A, E>, InvalidOption, Scope.Scope | TaskStore.TaskStore | R> =>
  Effect.gen(function* () {
    const options = yield* validate("options", input, "must be an object", isObject)
    const name = yield* validate(
      "name",
      options.name,
      "must be a non-empty string of at most 128 characters",
      (s) => typeof s === "string" && s.length > 0 && s.length <= 128
    )
    const maxWorkers = yield* validate(
      "maxWorkers",
      options.maxWorkers,
      "must be a positive integer",
      isPositiveInteger
    )
    const handler = yield* validate(
      "handler",
      options.handler,
      "must be a function returning an Effect",
      (f) => typeof f === "function"
    )
    const schemas = { success: options.success, failure: options.failure }

    const shutdownGrace = yield* validate(
      "shutdownGrace",
      orDefault(options.shutdownGrace, "10 seconds"),
      "must be a non-negative duration",
      isNonNegativeDuration
    )
    const timeout = yield* validate(
      "timeout",
      orDefault(options.timeout, Duration.infinity),
      "must be a positive duration",
      (input) => isNonNegativeDuration(input) && Duration.toMillis(input) > 0
    )
    const settings = yield* Either.match(
      resolveRetry(
        orDefault(options.retry, {}),
        {
          maxAttempts: 3,
          schedule: defaultRetrySchedule,
          isPermanent: undefined,
          timeout: timeoutMillis(timeout)
        },
        "retry"
      ),
      { onLeft: Effect.fail, onRight: Effect.succeed }
    )
    const capacity =
      options.capacity === undefined
        ? undefined
        : yield* validate(
            "capacity",
            options.capacity,
            "must be a positive integer",
            isPositiveInteger
          )
    const whenFull = yield* validate(
      "whenFull",
      orDefault(options.whenFull, "wait"),
      'must be "wait" or "refuse"',
      (s) => s === "wait" || s === "refuse"
    )
    const config = {
      name,
      maxWorkers,
      handler,
      schemas,
      shutdownGrace: Duration.toMillis(shutdownGrace),
      settings,
      capacity,
      whenFull
    }
    const store = yield* TaskStore.TaskStore
    if (store.durable === undefined) return yield* Engine.make(config)
    const payload = yield* validate(
      "payload",
      options.payload,
      "must be a Schema: a durable store keeps payloads as the Schema's encoded JSON",
      Schema.isSchema
    )
    const positive = (
      option: string,
      input: Duration.DurationInput | undefined,
      fallback: Duration.DurationInput
    ): Effect.Effect<number, InvalidOption> =>
      Effect.map(
        validate(
          option,
          orDefault(input, fallback),
          "must be a positive, finite duration",
          (d) =>
            isNonNegativeDuration(d) &&
            Duration.toMillis(d) > 0 &&
            Duration.isFinite(Duration.decode(d))
        ),
        Duration.toMillis
      )
    const lease = yield* positive("lease", options.lease, "30 seconds")
    const pollInterval = yield* positive("pollInterval", options.pollInterval, "1 second")
    return yield* Durable.makeDurable(
      config,
      { payload: payload as Schema.Schema<any, any>, lease, pollInterval },
      store,
      store.durable
    )
  })

/**
 * A queue as a layer for a tag of the user's own. The store comes from a
 * `TaskStore` layer; the handler's requirements from the layer's context.
 *
 * @since 0.1.0
 * @category layers
 * @example
 * ```ts
 * import { Context, Effect } from "effect"
 * import { TaskQueue } from "effect-task-queue"
 *
 * class Emails extends Context.Tag("app/Emails")<
 *   Emails,
 *   TaskQueue.TaskQueue<[to: string], void, never>
 * >() {}
 *
 * const EmailsLive = TaskQueue.layerMemory(Emails, {
 *   name: "emails",
 *   maxWorkers: 4,
 *   handler: (to) => Effect.log(`sending to ${to}`)
 * })
 * ```
 */
export const layer = <I, Args extends ReadonlyArray<any>, A, E, R>(
  tag: Context.Tag<I, TaskQueue<Args, A, E>>,
  options: Options<Args, A, E, R>
): Layer.Layer<I, InvalidOption, TaskStore.TaskStore | Exclude<R, Scope.Scope>> =>
  Layer.scoped(tag, make(options))

/**
 * Like {@link layer}, with its own in-memory store.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = <I, Args extends ReadonlyArray<any>, A, E, R>(
  tag: Context.Tag<I, TaskQueue<Args, A, E>>,
  options: Options<Args, A, E, R> & { readonly store?: TaskStore.MemoryOptions | undefined }
): Layer.Layer<I, InvalidOption, Exclude<R, Scope.Scope>> =>
  layer(tag, options).pipe(Layer.provide(TaskStore.layerMemory(options.store)))
