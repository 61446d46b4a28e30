import { Duration, Effect, Option } from "effect"
import { InvalidOption } from "../TaskError.js"

/** Succeeds with the value when it keeps the rule, else fails naming all three. */
export const validate = <A>(
  option: string,
  value: A,
  rule: string,
  test: (value: A) => boolean
): Effect.Effect<A, InvalidOption> =>
  test(value) ? Effect.succeed(value) : Effect.fail(InvalidOption.of(option, value, rule))

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
