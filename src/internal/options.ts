import { Effect } from "effect"
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
