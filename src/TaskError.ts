/**
 * The errors a caller of the queue can act on.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { TaskStatus } from "./Task.js"

/**
 * No task has this id in the queue (it never existed, belongs to another
 * queue, or was pruned after it finished).
 *
 * @since 0.1.0
 * @category errors
 */
export class TaskNotFound extends Schema.TaggedError<TaskNotFound>()("TaskNotFound", {
  id: Schema.String,
  message: Schema.String
}) {
  static of(id: string): TaskNotFound {
    return new TaskNotFound({ id, message: `No task with id ${JSON.stringify(id)}` })
  }
}

/**
 * The task has already reached a terminal status, so it cannot be
 * cancelled; nothing was changed.
 *
 * @since 0.1.0
 * @category errors
 */
export class TaskFinished extends Schema.TaggedError<TaskFinished>()("TaskFinished", {
  id: Schema.String,
  status: TaskStatus,
  message: Schema.String
}) {
  static of(id: string, status: TaskStatus): TaskFinished {
    return new TaskFinished({
      id,
      status,
      message: `Task ${id} already finished with status ${status}`
    })
  }
}

/**
 * The queue is shutting down or closed: it takes no more tasks.
 *
 * @since 0.1.0
 * @category errors
 */
export class QueueShutdown extends Schema.TaggedError<QueueShutdown>()("QueueShutdown", {
  queue: Schema.String,
  message: Schema.String
}) {
  static of(queue: string): QueueShutdown {
    return new QueueShutdown({ queue, message: `Queue ${queue} is shutting down` })
  }
}

/**
 * The queue holds as many queued tasks as its `capacity` allows and its
 * `whenFull` strategy is `"refuse"`: the task was not enqueued.
 *
 * @since 0.2.0
 * @category errors
 */
export class QueueFull extends Schema.TaggedError<QueueFull>()("QueueFull", {
  queue: Schema.String,
  capacity: Schema.Number,
  message: Schema.String
}) {
  static of(queue: string, capacity: number): QueueFull {
    return new QueueFull({
      queue,
      capacity,
      message: `Queue ${queue} is full: ${capacity} tasks are queued`
    })
  }
}

/**
 * A task's attempt ran longer than its timeout: its handler was interrupted
 * and had stopped before this error was recorded. It is the attempt's typed
 * failure, and is retried like one.
 *
 * @since 0.2.0
 * @category errors
 */
export class TaskTimeout extends Schema.TaggedError<TaskTimeout>()("TaskTimeout", {
  timeoutMs: Schema.Number,
  message: Schema.String
}) {
  static of(timeoutMs: number): TaskTimeout {
    return new TaskTimeout({ timeoutMs, message: `The task timed out after ${timeoutMs} ms` })
  }
}

/** A value as an error message shows it: JSON where it can be, cut at 200 characters. */
const show = (value: unknown): string => {
  if (typeof value === "function") return `[function ${value.name || "anonymous"}]`
  if (typeof value !== "object" || value === null) {
    return typeof value === "string" ? JSON.stringify(value) : String(value)
  }
  let text: string | undefined
  try {
    text = JSON.stringify(value, (_key, item: unknown) =>
      typeof item === "bigint"
        ? `${item}n`
        : typeof item === "function"
          ? `[function ${(item as { name?: string }).name || "anonymous"}]`
          : item
    )
  } catch {
    text = undefined
  }
  if (text === undefined) return Object.prototype.toString.call(value)
  return text.length > 200 ? `${text.slice(0, 200)}…` : text
}

/**
 * An option given to a queue or a store breaks its rule; raised when the
 * layer is built, before anything runs, or by the call that was given it.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidOption extends Schema.TaggedError<InvalidOption>()("InvalidOption", {
  option: Schema.String,
  value: Schema.String,
  rule: Schema.String,
  message: Schema.String
}) {
  static of(option: string, value: unknown, rule: string): InvalidOption {
    const shown = show(value)
    return new InvalidOption({
      option,
      value: shown,
      rule,
      message: `Invalid option ${option}: ${shown} (${rule})`
    })
  }
}
