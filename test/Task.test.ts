import { describe, expect, it } from "@effect/vitest"
import { Cause, Exit, Schema } from "effect"
import { Task } from "effect-task-queue"
import { makeIdGenerator } from "../src/internal/id.js"

const task = (
  exit: Exit.Exit<unknown, unknown> | undefined,
  reason?: string
): Task.Task<unknown, unknown> => ({
  id: "01M911GZG6AACDRQW4H5D5J2EX" as Task.TaskId,
  queue: "q",
  status: exit === undefined ? "running" : Exit.isSuccess(exit) ? "succeeded" : "failed",
  attempt: 1,
  createdAt: new Date(0),
  startedAt: new Date(1),
  finishedAt: exit === undefined ? undefined : new Date(2),
  exit,
  reason,
  priority: 0,
  runAt: undefined,
  maxAttempts: 3
})

class Boom extends Schema.TaggedError<Boom>()("Boom", {
  code: Schema.Number,
  message: Schema.String
}) {}

describe("Task ids", () => {
  it("are 26 Crockford base32 characters that sort in the order they were made", () => {
    const next = makeIdGenerator()
    const ids = []
    // A clock that stands still, moves on, and steps back.
    for (const millis of [5, 5, 5, 6, 6, 4, 4, 7, 1_700_000_000_000, 1_700_000_000_000])
      ids.push(next(millis))
    for (const id of ids) expect(Schema.is(Task.TaskId)(id)).toBe(true)
    expect([...ids].sort()).toEqual(ids)
    expect(new Set(ids).size).toBe(ids.length)
    // The first ten characters are the time, as in a ULID.
    expect(ids[8]!.slice(0, 10)).toBe("01HF7YAT00")
  })
})

describe("Task.toView", () => {
  it("shows times in ISO-8601 UTC and the result, without the payload", () => {
    expect(Task.toView(task(Exit.succeed({ ok: true })))).toEqual({
      id: "01M911GZG6AACDRQW4H5D5J2EX",
      queue: "q",
      status: "succeeded",
      attempt: 1,
      maxAttempts: 3,
      priority: 0,
      createdAt: "1970-01-01T00:00:00.000Z",
      startedAt: "1970-01-01T00:00:00.001Z",
      runAt: null,
      finishedAt: "1970-01-01T00:00:00.002Z",
      result: { ok: true }
    })
    expect(Task.toView(task(undefined))).toMatchObject({ status: "running", finishedAt: null })
    expect(Task.toView(task(undefined))).not.toHaveProperty("result")
  })

  it("encodes results and typed errors with the queue's schemas", () => {
    const schemas: Task.ViewSchemas<Date, Boom> = { success: Schema.DateFromString, failure: Boom }
    const succeeded = task(Exit.succeed(new Date(0))) as Task.Task<Date, Boom>
    expect(Task.toView(succeeded, schemas).result).toBe("1970-01-01T00:00:00.000Z")
    const boom = new Boom({ code: 7, message: "it broke" })
    const failed = Task.toView(task(Exit.fail(boom)) as Task.Task<Date, Boom>, schemas)
    expect(failed.error).toEqual({
      kind: "failure",
      message: "it broke",
      value: { _tag: "Boom", code: 7, message: "it broke" }
    })
  })

  it("names defects and interruptions by their message", () => {
    expect(Task.toView(task(Exit.die(new Error("bad state")))).error).toEqual({
      kind: "defect",
      message: "bad state"
    })
    expect(Task.toView(task(Exit.failCause(Cause.die("a string")))).error).toEqual({
      kind: "defect",
      message: "a string"
    })
    expect(Task.toView(task(Exit.interrupt(0 as never), "shutdown")).error).toEqual({
      kind: "interrupted",
      message: "cancelled: the queue shut down before the task finished",
      reason: "shutdown"
    })
  })

  it("always gives JSON, whatever the result or error holds", () => {
    const cyclic: { self?: unknown; n: bigint } = { n: 10n }
    cyclic.self = cyclic
    expect(Task.toView(task(Exit.succeed(cyclic))).result).toEqual({ n: "10", self: "[Circular]" })
    expect(Task.toView(task(Exit.succeed(undefined))).result).toBeNull()
    const bare = Object.create(null) as object
    const view = Task.toView(task(Exit.fail(bare)))
    expect(view.error?.kind).toBe("failure")
    expect(typeof view.error?.message).toBe("string")
    expect(JSON.parse(JSON.stringify(view))).toEqual(view)
    const hostile = new Proxy(
      {},
      {
        get: () => {
          throw new Error("no reading me")
        },
        ownKeys: () => {
          throw new Error("no listing me")
        }
      }
    )
    const died = Task.toView(task(Exit.die(hostile)))
    expect(died.error).toEqual({ kind: "defect", message: "(a value that could not be read)" })
  })
})
