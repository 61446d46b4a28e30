/**
 * What the tests share: a queue on the in-memory store, the SQL store on a
 * SQLite file of the test's own, ways to let the queue's fibers run until
 * something holds (never by moving the clock), handlers that note when they
 * started, and log lines kept as events a test can wait for.
 */
import { SqliteClient } from "@effect/sql-sqlite-node"
import * as SqlClient from "@effect/sql/SqlClient"
import { expect } from "@effect/vitest"
import type { Scope } from "effect"
import {
  Clock,
  Context,
  Deferred,
  Effect,
  Either,
  Exit,
  Fiber,
  FiberId,
  HashMap,
  Layer,
  Logger,
  LogLevel,
  Option
} from "effect"
import { TaskError, TaskQueue, TaskStore } from "effect-task-queue"
import * as SqlTaskStore from "effect-task-queue/SqlTaskStore"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** The in-memory store, as a layer. */
export const memory = TaskStore.layerMemory()

/**
 * Builds a queue in the test's scope with the in-memory store. Its shutdown
 * grace is 0 unless a test says otherwise: the test clock does not move
 * while a test's scope closes, so a grace period would never end there.
 */
export const makeQueue = <Args extends ReadonlyArray<any>, A, E, R>(
  options: TaskQueue.Options<Args, A, E, R>
) => TaskQueue.make({ shutdownGrace: 0, ...options }).pipe(Effect.provide(memory))

/** A directory of its own under the system's temporary directory, removed with the scope. */
export const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "task-queue-test-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

/** A SQLite file name in a temporary directory removed with the scope (the file is not made). */
export const tempDatabase = Effect.map(tempDir, (dir) => join(dir, "tasks.db"))

/**
 * The SQL store on SQLite (a file, or ":memory:"), built in the current
 * scope: the context holds the store and the `SqlClient` it writes with,
 * both closed when the scope closes.
 */
export const sqliteStore = (filename: string, options?: SqlTaskStore.Options) =>
  Layer.build(
    SqlTaskStore.layer(options).pipe(Layer.provideMerge(SqliteClient.layer({ filename })))
  ).pipe(Effect.orDie)

/** The SQL store on a SQLite database in memory, built in the current scope. */
export const memoryDb = sqliteStore(":memory:")

/** A SQLite store's context, as `sqliteStore` builds it. */
export type SqliteContext = Effect.Effect.Success<ReturnType<typeof sqliteStore>>

/** A durable queue in the current scope on a store's context; shutdown grace 0 as `makeQueue`. */
export const makeDurableQueue = <Args extends ReadonlyArray<any>, A, E, R>(
  context: SqliteContext,
  options: TaskQueue.Options<Args, A, E, R>
) => TaskQueue.make({ shutdownGrace: 0, ...options }).pipe(Effect.provide(context))

/** A `tasks` row as SQL sees it, for tests that write or read rows directly. */
export type TaskRow = SqlTaskStore.TaskRow

let rowCounter = 0

/** A row id, 26 characters, that sorts after every id a queue makes (those start with 0 to 7). */
export const rowId = () => `ROW${String(rowCounter++).padStart(23, "0")}`

/** Writes a row into `tasks` with SQL, past the store: a queued task due at 0 unless told. */
export const insertRow = (
  fields: Partial<TaskRow> & Pick<TaskRow, "queue" | "payload">
): Effect.Effect<TaskRow, never, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const row: TaskRow = {
      id: rowId(),
      status: "queued",
      attempt: 0,
      max_attempts: 3,
      timeout_ms: null,
      priority: 0,
      created_at: 0,
      due_at: 0,
      run_at: null,
      started_at: null,
      finished_at: null,
      owner: null,
      lease_until: null,
      cancel_requested: 0,
      outcome: null,
      reason: null,
      idempotency_key: null,
      ...fields
    }
    return Effect.as(Effect.orDie(sql`INSERT INTO tasks ${sql.insert({ ...row })}`), row)
  })

/** A task's row as it is in the table, read with SQL; `undefined` when there is none. */
export const readRow = (
  id: string
): Effect.Effect<TaskRow | undefined, never, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(Effect.orDie(sql<TaskRow>`SELECT * FROM tasks WHERE id = ${id}`), (rows) => rows[0])
  )

/**
 * Lets the queue's fibers run until `condition` holds. It yields to the
 * scheduler (no clock involved) and fails the test if the condition never
 * becomes true.
 */
export const yieldUntil = (condition: () => Effect.Effect<boolean> | boolean) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1000; i++) {
      const result = condition()
      if (typeof result === "boolean" ? result : yield* result) return
      yield* Effect.yieldNow()
    }
    return yield* Effect.dieMessage("condition never held")
  })

/** Gives the queue's fibers many turns, for checks that something did not happen. */
export const settle = Effect.repeatN(Effect.yieldNow(), 100)

type Stats = { readonly stats: Effect.Effect<TaskQueue.Stats> }

/** For `yieldUntil`: the queue's stats hold every value in `expected`. */
export const statsAre =
  (queue: Stats, expected: Partial<TaskQueue.Stats>) => (): Effect.Effect<boolean> =>
    Effect.map(queue.stats, (stats) =>
      Object.entries(expected).every(
        ([key, value]) => stats[key as keyof TaskQueue.Stats] === value
      )
    )

/** For `yieldUntil`: the fiber has ended. */
export const isDone = (fiber: Fiber.Fiber<unknown, unknown>) => () =>
  Effect.map(Fiber.poll(fiber), Option.isSome)

/** For `yieldUntil`: a forked fiber is suspended, such as an enqueue waiting for room. */
export const isSuspended = (fiber: Fiber.RuntimeFiber<unknown, unknown>) => () =>
  Effect.map(fiber.status, (status) => status._tag === "Suspended")

/** The option an `InvalidOption` names; any other outcome fails the test. */
export const invalidOption = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.map(Effect.flip(effect), (error) => {
    expect(error).toBeInstanceOf(TaskError.InvalidOption)
    return (error as TaskError.InvalidOption).option
  })

/**
 * A handler that takes a name and a duration: it notes the name and the
 * clock when it starts, sleeps that long on the test clock, and returns
 * the name.
 */
export const recorder = () => {
  const starts: Array<readonly [string, number]> = []
  const handler = (name: string, ms = 100) =>
    Effect.gen(function* () {
      starts.push([name, yield* Clock.currentTimeMillis])
      yield* Effect.sleep(ms)
      return name
    })
  const names = () => starts.map(([name]) => name)
  return { starts, handler, names }
}

/**
 * A one-argument handler, as a durable queue takes: it notes its payload
 * and the clock when it starts, sleeps `ms` on the test clock, and returns
 * the payload.
 */
export const sleeper = (ms: number) => {
  const started: Array<readonly [string, number]> = []
  const handler = (name: string) =>
    Effect.gen(function* () {
      started.push([name, yield* Clock.currentTimeMillis])
      yield* Effect.sleep(ms)
      return name
    })
  return { started, handler, names: () => started.map(([name]) => name) }
}

/**
 * Records, per label, the instants at which a handler started: a handler
 * calls `record(label)` first thing, and `of(label)` lists the instants.
 */
export const starts = () => {
  const at = new Map<string, Array<number>>()
  const record = (label: string) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync(() => {
        at.set(label, [...(at.get(label) ?? []), now])
      })
    )
  return { at, record, of: (label: string) => at.get(label) ?? [] }
}

/** Log lines, as events a test can wait for. */
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

/**
 * Keeps every log line's message and task id: `layer` puts the keeper in
 * place of the default logger, and `logged` and `messages` read what it
 * kept, as `Logs` does.
 */
export const captureLogs = Effect.sync(() => {
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
  const messages = () => lines.map((line) => line.message)
  return { logged, messages, layer: Logger.replace(Logger.defaultLogger, logger) }
})

/** Provides `Logs`, keeping every line from debug up in place of the default logger. */
export const LogsLive = Layer.unwrapEffect(
  Effect.map(captureLogs, ({ layer, logged, messages }) =>
    Layer.mergeAll(
      Layer.succeed(Logs, { logged, messages }),
      layer,
      Logger.minimumLogLevel(LogLevel.Debug)
    )
  )
)

/**
 * A cancel that comes as the task's attempt fails, with the scheduler
 * yielding every `budget` operations. With attempts left the cancel must win
 * over the retry at once (the retry is 3 s away and the clock stands
 * still); on the last attempt either may win, but the answer, the status and
 * the reason must agree.
 */
export const cancelAsAttemptFails = (
  make: (options: {
    readonly name: string
    readonly maxAttempts: number
    readonly handler: (_: string) => Effect.Effect<never, string>
  }) => Effect.Effect<TaskQueue.TaskQueue<[string], never, string>, unknown, Scope.Scope>
) =>
  Effect.gen(function* () {
    const wrong: Array<string> = []
    for (const maxAttempts of [1, 3]) {
      for (let budget = 10; budget <= 40; budget++) {
        const outcome = yield* Effect.gen(function* () {
          let calls = 0
          const started = yield* Deferred.make<void>()
          const queue = yield* make({
            name: `cancel-failing-${maxAttempts}-${budget}`,
            maxAttempts,
            handler: (_: string) =>
              Effect.gen(function* () {
                calls += 1
                yield* Deferred.succeed(started, undefined)
                yield* Effect.yieldNow()
                return yield* Effect.fail("boom")
              })
          })
          const task = yield* queue.enqueue("x")
          yield* Deferred.await(started)
          const cancel = yield* Effect.fork(Effect.either(task.cancel))
          yield* yieldUntil(() => cancel.unsafePoll() !== null)
          const answer = yield* Fiber.join(cancel)
          const view = yield* queue.get(task.id)
          return {
            answer: Either.isRight(answer) ? answer.right : answer.left._tag,
            status: view.status,
            reason: view.reason,
            attempt: view.attempt,
            calls
          }
        }).pipe(Effect.scoped, Effect.withMaxOpsBeforeYield(budget))
        const agrees =
          outcome.attempt === 1 &&
          outcome.calls === 1 &&
          (outcome.answer === "cancelled"
            ? outcome.status === "cancelled" && outcome.reason === "cancelled"
            : maxAttempts === 1 && outcome.status === "failed" && outcome.reason === undefined)
        if (!agrees)
          wrong.push(`maxAttempts ${maxAttempts}, budget ${budget}: ${JSON.stringify(outcome)}`)
      }
    }
    expect(wrong).toEqual([])
  })
