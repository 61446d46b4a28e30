/**
 * The queue: enqueue work, run it in the background with at most
 * `maxWorkers` handlers at a time, read its status, await it, cancel it.
 *
 * @since 0.1.0
 */
import type { Context, Exit, Schema, Scope } from "effect"
import { Duration, Effect, Layer } from "effect"
import * as Engine from "./internal/engine.js"
import { isNonNegativeDuration, isObject, isPositiveInteger, validate } from "./internal/options.js"
import type { TaskId, TaskStatus, TaskView } from "./Task.js"
import type * as Task from "./Task.js"
import type { InvalidOption, QueueShutdown, TaskFinished, TaskNotFound } from "./TaskError.js"
import * as TaskStore from "./TaskStore.js"

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
  /** Tasks waiting for a worker. */
  readonly queued: number
  /** Tasks whose handler is running. */
  readonly running: number
}

/**
 * A queue of tasks that run `(...args: Args) => Effect<A, E>`.
 *
 * @since 0.1.0
 * @category models
 */
export interface TaskQueue<Args extends ReadonlyArray<any>, A, E> {
  readonly name: string
  readonly maxWorkers: number
  /** Stores the task and returns at once; it never waits for a worker. */
  readonly enqueue: (...args: Args) => Effect.Effect<TaskHandle<A, E>, QueueShutdown>
  readonly get: (id: string) => Effect.Effect<Task.Task<A, E>, TaskNotFound>
  /** Tasks of this queue, oldest first, optionally of one status. */
  readonly list: (query?: {
    readonly status?: TaskStatus | undefined
    readonly limit?: number | undefined
    readonly cursor?: string | undefined
  }) => Effect.Effect<Page<A, E>>
  /** Waits until the task ends and gives back how it ended. */
  readonly await: (id: string) => Effect.Effect<Exit.Exit<A, E>, TaskNotFound>
  /**
   * Cancels a task. A queued task never starts; a running one is interrupted
   * and its worker slot is free when this returns. Fails with `TaskFinished`,
   * changing nothing, when the task had already ended.
   */
  readonly cancel: (id: string) => Effect.Effect<TaskStatus, TaskNotFound | TaskFinished>
  /** Resolves once no task is queued or running (at once if none is). */
  readonly awaitIdle: Effect.Effect<void>
  readonly stats: Effect.Effect<Stats>
  /** The JSON view of a task, with the queue's result and error schemas. */
  readonly toView: (task: Task.Task<A, E>) => TaskView
}

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
      options.shutdownGrace ?? "10 seconds",
      "must be a non-negative duration",
      isNonNegativeDuration
    )
    return yield* Engine.make({
      name,
      maxWorkers,
      handler,
      schemas,
      shutdownGrace: Duration.toMillis(shutdownGrace)
    })
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
