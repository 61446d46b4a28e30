/**
 * How an attempt's end reads: whether it is worth a retry, and the lines
 * logged for it.
 */
import {
  Cause,
  Effect,
  Exit,
  FiberId,
  LogLevel,
  Option,
  ScheduleDecision,
  ScheduleIntervals
} from "effect"
import { TaskTimeout } from "../TaskError.js"
import type { Entry, Settings } from "./entry.js"
import { MAX_TIME } from "./options.js"

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

/** What becomes of a failed attempt: the task's end with this exit, or a retry. */
export type Decision =
  | { readonly _tag: "end"; readonly exit: Exit.Exit<unknown, unknown> }
  | { readonly _tag: "retry"; readonly runAt: number; readonly state: unknown }

const endWith = (exit: Exit.Exit<unknown, unknown>): Decision => ({ _tag: "end", exit })

/**
 * Decides a failed attempt: a retry when the policy allows one and the
 * retry schedule goes on from `state`, else the end. An `isPermanent` that
 * throws, or a schedule that dies, ends the task with that defect beside
 * the attempt's error; a cancel that came as the attempt failed wins over
 * its retry; a step that waits can be interrupted, like a handler.
 */
export const decide = (
  entry: Entry,
  failure: Exit.Failure<unknown, unknown>,
  queueSettings: Settings,
  now: number,
  state: (schedule: Settings["schedule"]) => unknown
): Effect.Effect<Decision> => {
  const broken = (cause: Cause.Cause<unknown>) =>
    endWith(Exit.failCause(Cause.sequential(failure.cause, cause)))
  let input: Option.Option<unknown>
  try {
    input = retryInput(entry, failure.cause, queueSettings)
  } catch (error) {
    return Effect.succeed(broken(Cause.die(error)))
  }
  if (Option.isNone(input)) return Effect.succeed(endWith(failure))
  const progress = entry.p
  const cancelled = endWith(Exit.interrupt(FiberId.none))
  if (progress.reason !== undefined) return Effect.succeed(cancelled)
  const { schedule } = progress.extras?.settings ?? queueSettings
  const step = Effect.interruptible(
    Effect.suspend(() => schedule.step(now, input.value, state(schedule)))
  )
  return Effect.matchCause(step, {
    onFailure: (cause): Decision =>
      Cause.isInterruptedOnly(cause) ? endWith(Exit.failCause(cause)) : broken(cause),
    onSuccess: ([next, _, decision]): Decision => {
      if (ScheduleDecision.isDone(decision)) return endWith(failure)
      if (progress.reason !== undefined) return cancelled
      // Whole milliseconds, as the record and its view show them; a time
      // past what a Date can hold ends the retries.
      const runAt = Math.max(now, Math.ceil(ScheduleIntervals.start(decision.intervals)))
      if (!(runAt <= MAX_TIME)) return endWith(failure)
      return { _tag: "retry", runAt, state: next }
    }
  })
}
