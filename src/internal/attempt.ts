/**
 * How an attempt's end reads: whether it is worth a retry, and the lines
 * logged for it.
 */
import { Cause, Effect, Exit, LogLevel, Option } from "effect"
import { TaskTimeout } from "../TaskError.js"
import type { Entry, Settings } from "./entry.js"

/** A cause in one line: its first error's message. */
export const describeCause = (cause: Cause.Cause<unknown>): string => {
  try {
    const error = Cause.squash(cause)
    return error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  } catch {
    return "(an error that could not be read)"
  }
}

/** The annotations of every line logged about a task. */
export const annotations = (entry: Entry) => ({
  taskId: entry.id,
  queue: entry.queue,
  attempt: entry.attempt
})

/** The one line logged per finished task: at Info, or at Warning with the Cause when it failed. */
export const logEnd = (entry: Entry, minimum: LogLevel.LogLevel): Effect.Effect<void> => {
  const exit = entry.exit!
  const failed = entry.status === "failed" && Exit.isFailure(exit)
  if (LogLevel.lessThan(failed ? LogLevel.Warning : LogLevel.Info, minimum)) return Effect.void
  const log = failed
    ? Effect.logWarning("task failed", exit.cause)
    : Effect.logInfo(`task ${entry.status}`)
  return Effect.annotateLogs(log, {
    ...annotations(entry),
    status: entry.status,
    durationMs: entry.finishedAt! - (entry.startedAt ?? entry.createdAt)
  })
}

/**
 * The error a failed attempt is retried for, if it is: a typed error the
 * task's settings do not call permanent, a timeout, or a defect; never an
 * interruption or the last attempt. `isPermanent` may throw: the caller
 * handles it.
 */
export const retryInput = (
  entry: Entry,
  cause: Cause.Cause<unknown>,
  queueSettings: Settings
): Option.Option<unknown> => {
  const progress = entry.p
  const { maxAttempts, isPermanent } = progress.extras?.settings ?? queueSettings
  if (progress.attempt >= maxAttempts) return Option.none()
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const permanent =
      isPermanent !== undefined &&
      !(failure.value instanceof TaskTimeout) &&
      isPermanent(failure.value)
    return permanent ? Option.none() : failure
  }
  return Cause.dieOption(cause)
}
