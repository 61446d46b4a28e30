/**
 * The log lines of the app under test, kept in place of the default logger,
 * as events a test can wait for.
 */
import {
  Context,
  Deferred,
  Effect,
  Exit,
  FiberId,
  HashMap,
  Layer,
  Logger,
  LogLevel,
  Option
} from "effect"

/** The app's log lines, as events a test can wait for. */
export class Logs extends Context.Tag("test/Logs")<
  Logs,
  {
    /** Completes once `count` lines with `message` were logged (for `taskId`, if given). */
    readonly logged: (message: string, taskId?: string, count?: number) => Effect.Effect<void>
    /** Every message logged so far. */
    readonly messages: () => ReadonlyArray<string>
  }
>() {}

/** What the queue logs when an attempt failed and the task will be tried again. */
export const RETRYING = "task attempt failed; it will be retried"
/** What the queue logs (at debug) as it begins to shut down. */
export const SHUTTING_DOWN = "task queue shutting down"

/** Keeps every log line's message and task id, in place of the default logger. */
export const LogsLive = Layer.unwrapEffect(
  Effect.sync(() => {
    const lines: Array<{ readonly message: string; readonly taskId: unknown }> = []
    const waiters: Array<() => boolean> = []
    const count = (message: string, taskId: string | undefined) =>
      lines.filter(
        (line) => line.message === message && (taskId === undefined || line.taskId === taskId)
      ).length
    const logger = Logger.make(({ message, annotations }) => {
      const first = Array.isArray(message) ? message[0] : message
      lines.push({
        message: String(first),
        taskId: Option.getOrUndefined(HashMap.get(annotations, "taskId"))
      })
      waiters.splice(0, waiters.length, ...waiters.filter((check) => !check()))
    })
    const logged = (message: string, taskId?: string, times = 1) =>
      Effect.suspend(() => {
        const done = Deferred.unsafeMake<void>(FiberId.none)
        const check = () => {
          if (count(message, taskId) < times) return false
          Deferred.unsafeDone(done, Exit.void)
          return true
        }
        if (!check()) waiters.push(check)
        return Deferred.await(done)
      })
    return Layer.mergeAll(
      Layer.succeed(Logs, { logged, messages: () => lines.map((line) => line.message) }),
      Logger.replace(Logger.defaultLogger, logger),
      Logger.minimumLogLevel(LogLevel.Debug)
    )
  })
)
