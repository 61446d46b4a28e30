/**
 * How a durable queue writes a task for its store, and reads a claimed one
 * back: the payload as its Schema's encoded JSON, the task's own settings
 * as the columns keep them.
 */
import type { Schema } from "effect"
import { Either, ParseResult } from "effect"
import type { TaskId, TaskRecord } from "../Task.js"
import { InvalidOption } from "../TaskError.js"
import type { EnqueueOptions } from "../TaskQueue.js"
import type { StoredTask } from "../TaskStore.js"
import type { Settings } from "./entry.js"
import { resolveEnqueueOptions } from "./options.js"

/** A new task as the store keeps it. */
export interface NewTask {
  readonly record: TaskRecord
  /** The payload, encoded by the queue's payload Schema, as JSON text. */
  readonly payload: string
  /** The task's own timeout when it differs from the queue's; 0 for none. */
  readonly timeout: number | undefined
}

const refuse = (option: string, value: unknown, rule: string) =>
  Either.left(InvalidOption.of(option, value, rule))

/**
 * Checks an enqueue's arguments and options and makes the task to store:
 * one argument, encoded with the payload Schema to JSON; per task, only what
 * the store keeps (a retry schedule or isPermanent of its own is refused).
 */
export const newTask = (
  id: TaskId,
  queue: string,
  now: number,
  args: ReadonlyArray<unknown>,
  options: EnqueueOptions<unknown> | undefined,
  settings: Settings,
  payloadSchema: Schema.Schema<any, any>
): Either.Either<NewTask, InvalidOption> => {
  if (args.length !== 1) {
    return refuse("payload", args, "a durable queue's handler takes one argument, its payload")
  }
  let placement = undefined
  if (options !== undefined) {
    const resolved = resolveEnqueueOptions(options, settings, now)
    if (Either.isLeft(resolved)) return Either.left(resolved.left)
    placement = resolved.right
  }
  const own = placement?.settings
  if (
    own !== undefined &&
    (own.schedule !== settings.schedule || own.isPermanent !== settings.isPermanent)
  ) {
    const field = own.schedule !== settings.schedule ? "schedule" : "isPermanent"
    return refuse(
      `retry.${field}`,
      field === "schedule" ? "a Schedule of this task's own" : own.isPermanent,
      "a durable queue keeps maxAttempts per task; schedule and isPermanent are set on the queue"
    )
  }
  const encoded = ParseResult.encodeEither(payloadSchema)(args[0])
  if (Either.isLeft(encoded)) {
    return refuse(
      "payload",
      args[0],
      `must match the queue's payload Schema: ${ParseResult.TreeFormatter.formatIssueSync(encoded.left)}`
    )
  }
  const json = Either.try(() => JSON.stringify(encoded.right))
  if (Either.isLeft(json) || json.right === undefined) {
    return refuse("payload", args[0], "must encode to JSON with the queue's payload Schema")
  }
  return Either.right({
    record: {
      id,
      queue,
      status: "queued",
      attempt: 0,
      createdAt: now,
      startedAt: undefined,
      finishedAt: undefined,
      exit: undefined,
      reason: undefined,
      priority: placement?.priority ?? 0,
      runAt: placement?.runAt,
      maxAttempts: (own ?? settings).maxAttempts,
      idempotencyKey: placement?.idempotencyKey
    },
    payload: json.right,
    timeout: own !== undefined && own.timeout !== settings.timeout ? (own.timeout ?? 0) : undefined
  })
}

/** A claimed task's payload, decoded; or why it cannot be read. */
export const readPayload = (
  task: StoredTask,
  decode: (json: unknown) => Either.Either<unknown, ParseResult.ParseIssue>
): Either.Either<unknown, string> => {
  try {
    return Either.flatMap(
      Either.try({
        try: () => JSON.parse(task.payload) as unknown,
        catch: () => "the stored payload is not JSON"
      }),
      (json) =>
        Either.mapLeft(
          decode(json),
          (error) =>
            `the stored payload no longer decodes: ${ParseResult.TreeFormatter.formatIssueSync(error)}`
        )
    )
  } catch (error) {
    return Either.left(`the stored payload could not be read: ${String(error)}`)
  }
}

/** A claimed task's own settings, where they differ from the queue's. */
export const settingsOf = (task: StoredTask, settings: Settings): Settings | undefined =>
  task.maxAttempts === settings.maxAttempts &&
  (task.timeout === undefined || task.timeout === settings.timeout)
    ? undefined
    : {
        ...settings,
        maxAttempts: task.maxAttempts,
        // 0 stands for no timeout, where the queue has one.
        timeout: task.timeout === 0 ? undefined : (task.timeout ?? settings.timeout)
      }
