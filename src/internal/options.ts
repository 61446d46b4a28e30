import { DateTime, Duration, Effect, Either, Option, Schedule } from "effect"
import { InvalidOption } from "../TaskError.js"
import type { EnqueueOptions, RetryOptions } from "../TaskQueue.js"
import type { Settings } from "./entry.js"

/** Succeeds with the value when it keeps the rule, else fails naming all three. */
export const validate = <A>(
  option: string,
  value: A,
  rule: string,
  test: (value: A) => boolean
): Effect.Effect<A, InvalidOption> =>
  test(value) ? Effect.succeed(value) : Effect.fail(InvalidOption.of(option, value, rule))

/**
 * The value, or the default when it is missing (`undefined`): a `null` is
 * kept, so that the option's rule refuses it rather than taking the default.
 */
export const orDefault = <A, B>(value: A | undefined, fallback: B): A | B =>
  value === undefined ? fallback : value

export const isPositiveInteger = (n: unknown): boolean =>
  typeof n === "number" && Number.isSafeInteger(n) && n >= 1

export const isObject = (value: unknown): boolean => typeof value === "object" && value !== null

/**
 * Whether the input reads as a duration of zero or more. Duration reads a
 * negative or NaN number, and a string such as "-1 hour", as zero: those are
 * refused here rather than taken as zero.
 */
export const isNonNegativeDuration = (input: unknown): boolean => {
  if (typeof input === "number") return input >= 0
  if (typeof input === "bigint") return input >= 0n
  if (typeof input === "string" && input.trim().startsWith("-")) return false
  if (Array.isArray(input) && !input.every((part) => typeof part === "number" && part >= 0)) {
    return false
  }
  return Option.isSome(Duration.decodeUnknown(input))
}

/** How `enqueueWith`'s options are applied to a task's progress. */
export interface Placement {
  priority: number
  runAt: number | undefined
  settings: Settings | undefined
  idempotencyKey: string | undefined
}

const MAX_PRIORITY = 1_000_000
/** The latest instant a `Date` can hold, in epoch milliseconds. */
export const MAX_TIME = 8.64e15
const MAX_KEY_LENGTH = 255

const fail = (option: string, value: unknown, rule: string) =>
  Either.left(InvalidOption.of(option, value, rule))

/** A timeout option in milliseconds; infinity means none. */
export const timeoutMillis = (input: Duration.DurationInput): number | undefined => {
  const millis = Duration.toMillis(input)
  return Number.isFinite(millis) ? millis : undefined
}

/** Checks a retry policy and merges it over `base`. */
export const resolveRetry = (
  input: unknown,
  base: Settings,
  prefix: string
): Either.Either<Settings, InvalidOption> => {
  if (input === undefined) return Either.right(base)
  if (!isObject(input)) return fail(prefix, input, "must be an object")
  const retry = input as RetryOptions<unknown>
  const maxAttempts = orDefault(retry.maxAttempts, base.maxAttempts)
  if (!isPositiveInteger(maxAttempts)) {
    return fail(`${prefix}.maxAttempts`, maxAttempts, "must be a positive integer")
  }
  if (retry.schedule !== undefined && !Schedule.isSchedule(retry.schedule)) {
    return fail(`${prefix}.schedule`, retry.schedule, "must be a Schedule")
  }
  if (retry.isPermanent !== undefined && typeof retry.isPermanent !== "function") {
    return fail(`${prefix}.isPermanent`, retry.isPermanent, "must be a function")
  }
  return Either.right({
    ...base,
    maxAttempts,
    schedule: retry.schedule ?? base.schedule,
    isPermanent: (retry.isPermanent as Settings["isPermanent"]) ?? base.isPermanent
  })
}

/** Checks the options of one enqueue; `now` is when the task is enqueued. */
export const resolveEnqueueOptions = (
  input: unknown,
  base: Settings,
  now: number
): Either.Either<Placement, InvalidOption> => {
  if (!isObject(input)) return fail("options", input, "must be an object")
  const options = input as EnqueueOptions<unknown>
  const priority = orDefault(options.priority, 0)
  if (!Number.isSafeInteger(priority) || Math.abs(priority) > MAX_PRIORITY) {
    return fail("priority", priority, `must be an integer from -${MAX_PRIORITY} to ${MAX_PRIORITY}`)
  }
  let runAt: number | undefined
  if (options.delay !== undefined && options.runAt !== undefined) {
    return fail("runAt", options.runAt, "cannot be given with delay")
  }
  if (options.delay !== undefined) {
    if (!isNonNegativeDuration(options.delay)) {
      return fail("delay", options.delay, "must be a non-negative duration")
    }
    const millis = Duration.toMillis(options.delay)
    if (!(now + millis <= MAX_TIME)) {
      return fail("delay", options.delay, "must end before the year 275760, as a Date can")
    }
    runAt = now + millis
  }
  if (options.runAt !== undefined) {
    const at = options.runAt
    const millis =
      at instanceof Date ? at.getTime() : DateTime.isDateTime(at) ? DateTime.toEpochMillis(at) : at
    if (typeof millis !== "number" || !(Math.abs(millis) <= MAX_TIME)) {
      return fail("runAt", at, "must be a valid Date, DateTime or epoch milliseconds")
    }
    runAt = millis
  }
  let settings = base
  if (options.timeout !== undefined) {
    if (!isNonNegativeDuration(options.timeout) || Duration.toMillis(options.timeout) === 0) {
      return fail("timeout", options.timeout, "must be a positive duration")
    }
    settings = { ...settings, timeout: timeoutMillis(options.timeout) }
  }
  const retry = resolveRetry(options.retry, settings, "retry")
  if (Either.isLeft(retry)) return Either.left(retry.left)
  const key = options.idempotencyKey
  if (
    key !== undefined &&
    (typeof key !== "string" || key.length === 0 || key.length > MAX_KEY_LENGTH)
  ) {
    return fail("idempotencyKey", key, `must be a string of 1 to ${MAX_KEY_LENGTH} characters`)
  }
  return Either.right({
    priority,
    runAt,
    settings: retry.right === base ? undefined : retry.right,
    idempotencyKey: key
  })
}
