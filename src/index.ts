/**
 * effect-task-queue: a background task queue for Effect.
 *
 * @since 0.1.0
 */

/**
 * The queue over HTTP: an HttpApiGroup and its handlers.
 *
 * @since 0.1.0
 */
export * as TaskApi from "./TaskApi.js"

/**
 * Task ids, statuses, records and views.
 *
 * @since 0.1.0
 */
export * as Task from "./Task.js"

/**
 * The errors a caller can act on.
 *
 * @since 0.1.0
 */
export * as TaskError from "./TaskError.js"

/**
 * The queue service, its constructor and layers.
 *
 * @since 0.1.0
 */
export * as TaskQueue from "./TaskQueue.js"

/**
 * The store seam and the in-memory store.
 *
 * @since 0.1.0
 */
export * as TaskStore from "./TaskStore.js"
