/**
 * Tasks: ids, statuses, the record a store keeps, and the JSON view of a task.
 *
 * @since 0.1.0
 */
import { Cause, Exit, Inspectable, Option, ParseResult, Predicate, Schema } from "effect"

/**
 * A task id: 26 characters of Crockford base32, time-sortable like a ULID.
 * Ids made by one process sort in the order they were made.
 *
 * @since 0.1.0
 * @category ids
 */
export const TaskId = Schema.String.pipe(
  Schema.pattern(/^[0-9A-HJKMNP-TV-Z]{26}$/, {
    message: () => "a task id is 26 characters of Crockford base32"
  }),
  Schema.brand("TaskId")
)

/**
 * @since 0.1.0
 * @category ids
 */
export type TaskId = typeof TaskId.Type

/**
 * The life of a task: `queued`, then `running`, then exactly one of the
 * terminal statuses `succeeded`, `failed` or `cancelled`, which it never
 * leaves.
 *
 * @since 0.1.0
 * @category status
 */
export const TaskStatus = Schema.Literal("queued", "running", "succeeded", "failed", "cancelled")

/**
 * @since 0.1.0
 * @category status
 */
export type TaskStatus = typeof TaskStatus.Type

/**
 * @since 0.1.0
 * @category status
 */
export const isTerminal = (status: TaskStatus): boolean =>
  status === "succeeded" || status === "failed" || status === "cancelled"

/**
 * What a store keeps of a task. The queue changes its status, attempt and
 * times as the task moves on, and sets `exit` once, when the task ends; a
 * store reads them.
 *
 * @since 0.1.0
 * @category records
 */
export interface TaskRecord {
  readonly id: TaskId
  readonly queue: string
  readonly status: TaskStatus
  readonly attempt: number
  readonly createdAt: number
  readonly startedAt: number | undefined
  readonly finishedAt: number | undefined
  readonly exit: Exit.Exit<unknown, unknown> | undefined
  readonly reason: string | undefined
  /** Higher runs first; 0 by default. */
  readonly priority: number
  /** When a delayed task, or one waiting for its retry, runs next (epoch ms). */
  readonly runAt: number | undefined
  /** Attempts the task may have in all. */
  readonly maxAttempts: number
  readonly idempotencyKey: string | undefined
}

/**
 * A snapshot of one task, as a caller of the queue sees it.
 *
 * @since 0.1.0
 * @category records
 */
export interface Task<A, E> {
  readonly id: TaskId
  readonly queue: string
  readonly status: TaskStatus
  readonly attempt: number
  readonly createdAt: Date
  readonly startedAt: Date | undefined
  readonly finishedAt: Date | undefined
  /** How the task ended; `undefined` until it reaches a terminal status. */
  readonly exit: Exit.Exit<A, E> | undefined
  /** Why a task was cancelled (`"cancelled"` or `"shutdown"`), when it was. */
  readonly reason: string | undefined
  /** Higher runs first; 0 by default. */
  readonly priority: number
  /** When a delayed task, or one waiting for its retry, runs next. */
  readonly runAt: Date | undefined
  /** Attempts the task may have in all, the first included. */
  readonly maxAttempts: number
}

/**
 * @since 0.1.0
 * @category records
 */
export const snapshot = <A, E>(record: TaskRecord): Task<A, E> => ({
  id: record.id,
  queue: record.queue,
  status: record.status,
  attempt: record.attempt,
  createdAt: new Date(record.createdAt),
  startedAt: record.startedAt === undefined ? undefined : new Date(record.startedAt),
  finishedAt: record.finishedAt === undefined ? undefined : new Date(record.finishedAt),
  exit: record.exit as Exit.Exit<A, E> | undefined,
  reason: record.reason,
  priority: record.priority,
  runAt: record.runAt === undefined ? undefined : new Date(record.runAt),
  maxAttempts: record.maxAttempts
})

/**
 * How a failed or cancelled task's error reads in a view: `failure` is the
 * handler's typed error, `timeout` an attempt that ran out of time, `defect`
 * an unexpected error or a throw, and `interrupted` a cancel, a shutdown or
 * an interruption. `value` is the typed error encoded with the queue's
 * failure Schema, when it has one.
 *
 * @since 0.1.0
 * @category views
 */
export const TaskErrorView = Schema.Struct({
  kind: Schema.Literal("failure", "timeout", "defect", "interrupted"),
  message: Schema.String,
  value: Schema.optional(Schema.Unknown),
  /** Why a cancelled task was cancelled: `"cancelled"` (on request) or `"shutdown"`. */
  reason: Schema.optional(Schema.String)
})

/**
 * @since 0.1.0
 * @category views
 */
export type TaskErrorView = typeof TaskErrorView.Type

/**
 * The JSON view of a task. It never carries the payload, which may hold
 * secrets.
 *
 * @since 0.1.0
 * @category views
 */
export const TaskView = Schema.Struct({
  id: Schema.String,
  queue: Schema.String,
  status: TaskStatus,
  attempt: Schema.Number,
  maxAttempts: Schema.Number,
  priority: Schema.Number,
  createdAt: Schema.String,
  startedAt: Schema.NullOr(Schema.String),
  /** When a delayed task, or one waiting for its retry, runs next. */
  runAt: Schema.NullOr(Schema.String),
  finishedAt: Schema.NullOr(Schema.String),
  result: Schema.optional(Schema.Unknown),
  error: Schema.optional(TaskErrorView)
}).annotations({ identifier: "TaskView" })

/**
 * @since 0.1.0
 * @category views
 */
export type TaskView = typeof TaskView.Type

/**
 * Schemas that turn a task's result and typed error into JSON. Without them
 * a result is shown as it is and an error by its message.
 *
 * @since 0.1.0
 * @category views
 */
export interface ViewSchemas<A, E> {
  readonly success?: Schema.Schema<A, any> | undefined
  readonly failure?: Schema.Schema<E, any> | undefined
}

const isoOrNull = (date: Date | undefined): string | null =>
  date === undefined || Number.isNaN(date.getTime()) ? null : date.toISOString()

/** A value as JSON can carry it: bigints as strings, cycles and functions named. */
const toJson = (value: unknown): unknown => {
  if (value === undefined) return null
  const seen = new WeakSet<object>()
  try {
    const text = JSON.stringify(value, (_key, item: unknown) => {
      if (typeof item === "bigint") return item.toString()
      if (typeof item === "function" || typeof item === "symbol") return String(item)
      if (typeof item === "object" && item !== null) {
        if (seen.has(item)) return "[Circular]"
        seen.add(item)
      }
      return item
    })
    return text === undefined ? null : JSON.parse(text)
  } catch {
    return messageOf(value)
  }
}

/** A readable message for any value, even one whose properties throw when read. */
const messageOf = (value: unknown): string => {
  try {
    if (Predicate.hasProperty(value, "message") && typeof value.message === "string") {
      return value.message
    }
    return typeof value === "string" ? value : Inspectable.format(value)
  } catch {
    return "(a value that could not be read)"
  }
}

const encodeWith = (schema: Schema.Schema<any, any> | undefined, value: unknown): unknown => {
  if (schema === undefined) return toJson(value)
  return Option.match(ParseResult.encodeOption(schema)(value), {
    onNone: () => messageOf(value),
    onSome: toJson
  })
}

const isTimeout = (error: unknown): error is { readonly message: string } =>
  Predicate.isTagged(error, "TaskTimeout") &&
  Predicate.hasProperty(error, "message") &&
  typeof error.message === "string"

const errorView = (
  cause: Cause.Cause<unknown>,
  reason: string | undefined,
  schemas: ViewSchemas<any, any>
): TaskErrorView => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure) && isTimeout(failure.value)) {
    return { kind: "timeout", message: failure.value.message }
  }
  if (Option.isSome(failure)) {
    return {
      kind: "failure",
      message: messageOf(failure.value),
      value: encodeWith(schemas.failure, failure.value)
    }
  }
  const defect = Cause.dieOption(cause)
  if (Option.isSome(defect)) {
    return { kind: "defect", message: messageOf(defect.value) }
  }
  const message =
    reason === "shutdown"
      ? "cancelled: the queue shut down before the task finished"
      : reason === "cancelled"
        ? "cancelled on request"
        : "interrupted"
  return reason === undefined
    ? { kind: "interrupted", message }
    : { kind: "interrupted", message, reason }
}

/**
 * The JSON view of a task: times as ISO-8601 strings in UTC, the result
 * and the error encoded with the given schemas.
 *
 * @since 0.1.0
 * @category views
 */
export const toView = <A, E>(task: Task<A, E>, schemas: ViewSchemas<A, E> = {}): TaskView => {
  const view: {
    -readonly [K in keyof TaskView]: TaskView[K]
  } = {
    id: task.id,
    queue: task.queue,
    status: task.status,
    attempt: task.attempt,
    maxAttempts: task.maxAttempts,
    priority: task.priority,
    createdAt: task.createdAt.toISOString(),
    startedAt: isoOrNull(task.startedAt),
    runAt: isoOrNull(task.runAt),
    finishedAt: isoOrNull(task.finishedAt)
  }
  const exit = task.exit
  if (exit !== undefined) {
    if (Exit.isSuccess(exit)) view.result = encodeWith(schemas.success, exit.value)
    else view.error = errorView(exit.cause, task.reason, schemas)
  }
  return view
}
