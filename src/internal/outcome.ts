/**
 * A task's outcome as a durable store keeps it: JSON text, `{ "result": ... }`
 * or `{ "error": ... }` (`{}` for a result of `undefined`), encoded with the
 * queue's Schemas where it has them, and the Exit read back from it.
 */
import type { Schema } from "effect"
import { Cause, Either, Exit, FiberId, Option, ParseResult } from "effect"
import type { TaskRecord } from "../Task.js"
import * as Task from "../Task.js"
import { TaskTimeout } from "../TaskError.js"

/** The stored outcome of a task that succeeded with `undefined`, as most do. */
const NO_RESULT = "{}"

/** A failure stored without a Schema: it reads and shows as it was stored. */
class StoredFailure {
  constructor(
    readonly message: string,
    readonly value: unknown
  ) {}
  toJSON() {
    return this.value ?? null
  }
}

/**
 * The outcome of a record that has ended, as JSON text. Never throws: an
 * error that cannot be read or printed (a getter that throws, a cause that
 * is its own cause) is stored as a defect that says so.
 */
export const encodeOutcome = (record: TaskRecord, schemas: Task.ViewSchemas<any, any>): string => {
  try {
    return encode(record, schemas)
  } catch {
    const failed = record.exit !== undefined && Exit.isFailure(record.exit)
    return failed
      ? UNREADABLE_ERROR
      : JSON.stringify({ error: { kind: "defect", message: "the result could not be stored" } })
  }
}

const UNREADABLE_ERROR = JSON.stringify({
  error: { kind: "defect", message: "(an error that could not be read)" }
})

const encode = (record: TaskRecord, schemas: Task.ViewSchemas<any, any>): string => {
  const exit = record.exit!
  if (Exit.isSuccess(exit) && exit.value === undefined) return NO_RESULT
  const view = Task.toView(Task.snapshot(record), schemas)
  if (Exit.isSuccess(exit)) return JSON.stringify({ result: view.result ?? null })
  const failure = Cause.failureOption(exit.cause)
  const error: Record<string, unknown> = { ...view.error }
  if (Option.isSome(failure) && failure.value instanceof TaskTimeout) {
    error.timeoutMs = failure.value.timeoutMs
  } else if (view.error?.kind !== "interrupted" && schemas.failure === undefined) {
    // Without an error Schema, the Cause is kept as readable text.
    error.cause = Cause.pretty(exit.cause)
  }
  return JSON.stringify({ error })
}

const decodeWith = (
  schema: Schema.Schema<any, any> | undefined,
  value: unknown,
  what: string
): Either.Either<unknown, string> => {
  if (schema === undefined) return Either.right(value)
  return Either.mapLeft(
    ParseResult.decodeUnknownEither(schema)(value),
    (error) =>
      `the stored ${what} no longer decodes: ${ParseResult.TreeFormatter.formatIssueSync(error)}`
  )
}

/**
 * The Exit of a stored outcome, decoded with the queue's Schemas: a result or
 * error that no longer decodes reads as a defect that says why. `undefined`
 * while the task has not ended.
 */
export const decodeOutcome = (
  status: Task.TaskStatus,
  outcome: string | undefined,
  schemas: Task.ViewSchemas<any, any>
): Exit.Exit<unknown, unknown> | undefined => {
  if (!Task.isTerminal(status)) return undefined
  if (outcome === undefined) return Exit.interrupt(FiberId.none)
  let parsed: { result?: unknown; error?: Record<string, any> }
  try {
    parsed = JSON.parse(outcome)
  } catch {
    return Exit.die("the stored outcome is not JSON")
  }
  if (typeof parsed !== "object" || parsed === null) {
    return Exit.die("the stored outcome is not a JSON object")
  }
  if (parsed.error === undefined) {
    const value = "result" in parsed ? parsed.result : undefined
    if (value === undefined && schemas.success === undefined) return Exit.void
    return Either.match(decodeWith(schemas.success, value, "result"), {
      onLeft: (message) => Exit.die(message),
      onRight: (value) => Exit.succeed(value)
    })
  }
  const error = parsed.error
  const message = typeof error.message === "string" ? error.message : "(no message)"
  switch (error.kind) {
    case "timeout":
      return Exit.fail(TaskTimeout.of(Number(error.timeoutMs)))
    case "failure":
      if (schemas.failure === undefined) return Exit.fail(new StoredFailure(message, error.value))
      return Either.match(decodeWith(schemas.failure, error.value, "error"), {
        onLeft: (message) => Exit.die(message),
        onRight: (value) => Exit.fail(value)
      })
    case "interrupted":
      return Exit.interrupt(FiberId.none)
    default:
      return Exit.die(message)
  }
}
