/**
 * The durable engine against what a store, a caller or the system can do to it:
 * each case here broke it once.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Context,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Logger,
  LogLevel,
  Option,
  Schedule,
  Schema,
  TestClock
} from "effect"
import { TaskQueue, TaskStore } from "effect-task-queue"
import {
  insertRow,
  makeDurableQueue,
  memoryDb,
  readRow,
  settle,
  sqliteStore,
  tempDatabase,
  yieldUntil
} from "./helpers.js"

/**
 * An enqueue in the application's transaction after it has read, when
 * another connection committed in between: SQLite answers the insert
 * SQLITE_BUSY_SNAPSHOT, which no retry inside that transaction can get past.
 * The enqueue must end at once (the application begins its transaction
 * again), not hold the connection while it retries.
 */

describe("durable: an enqueue in a transaction whose snapshot is stale", () => {
  it.scoped("ends at once rather than retrying for 30 seconds", () =>
    Effect.gen(function* () {
      const filename = yield* tempDatabase
      const mine = yield* sqliteStore(filename)
      const other = yield* sqliteStore(filename)
      const options = {
        name: "snapshot",
        maxWorkers: 1,
        payload: Schema.String,
        handler: (_: string) => Effect.void
      }
      const queue = yield* makeDurableQueue(mine, options)
      const elsewhere = yield* makeDurableQueue(other, options)
      yield* queue.pause
      yield* elsewhere.pause
      const sql = Context.get(mine, SqlClient.SqlClient)
      // The other process's enqueue runs on a fiber of its own, outside the transaction.
      const go = yield* Deferred.make<void>()
      const otherEnqueue = yield* Effect.fork(
        Effect.zipRight(Deferred.await(go), elsewhere.enqueue("committed elsewhere"))
      )
      const transaction = yield* Effect.fork(
        sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`SELECT COUNT(*) FROM tasks`
            yield* Deferred.succeed(go, undefined)
            yield* Fiber.join(otherEnqueue)
            return yield* queue.enqueue("in my transaction")
          })
        )
      )
      yield* settle
      yield* TestClock.adjust("100 millis")
      yield* settle
      const early = yield* Fiber.poll(transaction)
      // Let the retries run out, so that the scope can close either way.
      yield* TestClock.adjust("1 minute")
      const exit = yield* Fiber.await(transaction)
      // The enqueue ends with a defect whose cause is SQLITE_BUSY_SNAPSHOT.
      const code = Exit.isFailure(exit)
        ? (Cause.squash(exit.cause) as { cause?: { code?: string } }).cause?.code
        : undefined
      expect({ endedAtOnce: Option.isSome(early), code }).toEqual({
        endedAtOnce: true,
        code: "SQLITE_BUSY_SNAPSHOT"
      })
    })
  )
})

/**
 * A cancel asked through the store (by another process) while the attempt
 * runs, when that attempt then fails with attempts left: the task must end
 * cancelled and never run again.
 */

describe("durable cancel across instances while the attempt fails", () => {
  it.scoped("a task whose cancel was asked while its attempt ran never runs again", () =>
    Effect.gen(function* () {
      const context = yield* sqliteStore(":memory:")
      const attempts: Array<number> = []
      const options = {
        name: "cancel-retry",
        maxWorkers: 1,
        payload: Schema.String,
        failure: Schema.String,
        lease: Duration.seconds(30),
        retry: { maxAttempts: 3, schedule: Schedule.spaced("1 second") },
        handler: (_: string) =>
          Effect.gen(function* () {
            attempts.push(attempts.length + 1)
            yield* Effect.sleep("2 seconds")
            if (attempts.length === 1) return yield* Effect.fail("first attempt fails")
            return "done"
          })
      }
      const runner = yield* makeDurableQueue(context, options)
      const task = yield* runner.enqueue("x")
      yield* yieldUntil(() => attempts.length === 1)
      // Another instance on the same store (as another process would) cancels it.
      const other = yield* makeDurableQueue(context, {
        ...options,
        handler: (_: string) => Effect.never
      })
      yield* other.pause
      const cancel = yield* Effect.fork(other.cancel(task.id))
      yield* settle
      expect((yield* readRow(task.id).pipe(Effect.provide(context)))?.cancel_requested).toBe(1)

      // The attempt fails before any lease renewal: the task now waits for its retry.
      yield* TestClock.adjust("2 seconds")
      yield* settle

      yield* TestClock.adjust("10 seconds")
      yield* settle
      const result = yield* Fiber.join(cancel).pipe(Effect.either)
      const after = yield* runner.get(task.id)
      expect(attempts).toEqual([1])
      expect(after.status).toBe("cancelled")
      expect(result).toEqual(Either.right("cancelled"))
    })
  )
})

/**
 * A database error that lasts (a full disk, a read-only or corrupt file, a
 * table renamed under the app) makes every feeder step fail: the feeder must
 * log it and back off, not retry in a loop. Here the store's step fails for
 * its first 50 calls, and the calls made while the test yields are counted.
 */

describe("durable: a database error that lasts", () => {
  it.scoped("does not make the feeder retry without pause", () =>
    Effect.gen(function* () {
      const context = yield* sqliteStore(":memory:")
      const store = Context.get(context, TaskStore.TaskStore)
      let steps = 0
      const failing = TaskStore.TaskStore.of({
        ...store,
        durable: {
          ...store.durable!,
          step: (input) =>
            (steps += 1) <= 50
              ? Effect.die(new Error("SQLITE_FULL: database or disk is full"))
              : store.durable!.step(input)
        }
      })
      yield* TaskQueue.make({
        name: "db-error",
        maxWorkers: 1,
        payload: Schema.String,
        shutdownGrace: 0,
        handler: (_: string) => Effect.void
      }).pipe(
        Effect.provide(Context.add(context, TaskStore.TaskStore, failing)),
        Effect.provide(Logger.minimumLogLevel(LogLevel.None))
      )
      yield* settle
      expect(steps).toBeLessThan(5)
    })
  )

  it.scoped(
    "keeps the outcome of a task that ended while the store failed, and writes it later",
    () =>
      Effect.gen(function* () {
        const context = yield* sqliteStore(":memory:")
        const store = Context.get(context, TaskStore.TaskStore)
        let failing = false
        const flaky = TaskStore.TaskStore.of({
          ...store,
          durable: {
            ...store.durable!,
            step: (input) =>
              failing
                ? Effect.die(new Error("SQLITE_ERROR: no such table: tasks"))
                : store.durable!.step(input)
          }
        })
        const release = yield* Deferred.make<void>()
        const queue = yield* TaskQueue.make({
          name: "db-error-outcome",
          maxWorkers: 1,
          payload: Schema.String,
          handler: (label: string) => Effect.as(Deferred.await(release), label)
        }).pipe(
          Effect.provide(Context.add(context, TaskStore.TaskStore, flaky)),
          Effect.provide(Logger.minimumLogLevel(LogLevel.None))
        )
        const task = yield* queue.enqueue("kept")
        yield* yieldUntil(() =>
          Effect.map(
            readRow(task.id).pipe(Effect.provide(context)),
            (row) => row?.status === "running"
          )
        )
        // The task ends while every step fails: its outcome waits, then is written.
        failing = true
        yield* Deferred.succeed(release, undefined)
        yield* settle
        yield* TestClock.adjust("3 seconds")
        expect((yield* readRow(task.id).pipe(Effect.provide(context)))?.status).toBe("running")
        failing = false
        yield* TestClock.adjust("1 second")
        yield* yieldUntil(() =>
          Effect.map(
            readRow(task.id).pipe(Effect.provide(context)),
            (row) => row?.status === "succeeded"
          )
        )
        expect(yield* task.await).toEqual(Exit.succeed("kept"))
      })
  )
})

/**
 * A queued row whose due_at is not a number (written past the store): the
 * feeder must not read the store in a loop (with a real clock that starves
 * the process). The feeder's reads of `nextDue` are counted while the test
 * yields; after 50 the row is mended so that the test ends either way.
 */

describe("durable: a queued row whose due_at is not a number", () => {
  it.scoped("does not make the feeder read the store without pause", () =>
    Effect.gen(function* () {
      const context = yield* sqliteStore(":memory:")
      const sql = Context.get(context, SqlClient.SqlClient)
      const row = yield* insertRow({
        queue: "due-text",
        payload: '"x"',
        due_at: "soon" as never
      }).pipe(Effect.provide(context))
      const store = Context.get(context, TaskStore.TaskStore)
      let reads = 0
      const mend = Effect.orDie(sql`UPDATE tasks SET due_at = 0 WHERE id = ${row.id}`)
      const counted = TaskStore.TaskStore.of({
        ...store,
        durable: {
          ...store.durable!,
          nextDue: (queue) =>
            Effect.zipLeft(
              store.durable!.nextDue(queue),
              Effect.suspend(() => ((reads += 1) === 50 ? mend : Effect.void))
            )
        }
      })
      yield* TaskQueue.make({
        name: "due-text",
        maxWorkers: 1,
        payload: Schema.String,
        shutdownGrace: 0,
        handler: (_: string) => Effect.void
      }).pipe(Effect.provide(Context.add(context, TaskStore.TaskStore, counted)))
      yield* settle
      expect(reads).toBeLessThan(5)
    })
  )
})

/**
 * A task that ends during the shutdown grace has its outcome committed when
 * it ends, not when the grace is over: a crash meanwhile (SIGKILL after
 * SIGTERM) must not run it again.
 */

describe("durable: a task that ends during the shutdown grace", () => {
  it.scoped("has its outcome committed when it ends, not when the grace is over", () =>
    Effect.gen(function* () {
      const context = yield* memoryDb
      const started: Array<string> = []
      const queue = yield* TaskQueue.make({
        name: "grace-commit",
        maxWorkers: 2,
        payload: Schema.String,
        shutdownGrace: "10 seconds",
        handler: (label: string) =>
          Effect.zipRight(
            Effect.sync(() => started.push(label)),
            Effect.sleep(label === "quick" ? "1 second" : "8 seconds")
          )
      }).pipe(Effect.provide(context))
      const quick = yield* queue.enqueue("quick")
      yield* queue.enqueue("slow")
      yield* yieldUntil(() => started.length === 2)
      const shutdown = yield* Effect.fork(queue.shutdown)
      yield* settle
      yield* TestClock.adjust("2 seconds")
      yield* settle
      // The quick task ended a second ago; the slow one still runs.
      const row = yield* readRow(quick.id).pipe(Effect.provide(context))
      const view = yield* queue.get(quick.id)
      // The grace runs out and the shutdown ends before the checks, so that a
      // failed check does not leave the scope waiting on the test clock.
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(shutdown)
      expect(row?.status).toBe("succeeded")
      expect(view.status).toBe("succeeded")
    })
  )

  it.scoped(
    "keeps queued a task whose attempt fails as the grace ends, its cleanup still running",
    () =>
      Effect.gen(function* () {
        const context = yield* memoryDb
        let started = 0
        const queue = yield* TaskQueue.make({
          name: "grace-cleanup",
          maxWorkers: 1,
          payload: Schema.String,
          shutdownGrace: "50 millis",
          handler: (_: string) =>
            Effect.gen(function* () {
              // A release that outlasts the grace: the grace ends while the
              // failed attempt's retry is being decided.
              yield* Effect.acquireRelease(Effect.void, () => Effect.sleep("100 millis"))
              started += 1
              yield* Effect.sleep("10 millis")
              return yield* Effect.fail("boom")
            })
        }).pipe(Effect.provide(context))
        const task = yield* queue.enqueue("x")
        yield* yieldUntil(() => started === 1)
        const shutdown = yield* Effect.fork(queue.shutdown)
        yield* settle
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(shutdown)
        const row = yield* readRow(task.id).pipe(Effect.provide(context))
        expect(row).toMatchObject({ status: "queued", attempt: 0, owner: null })
      })
  )
})

/**
 * A durable queue without a `failure` Schema stores a failed task's Cause as
 * text. When that cannot be printed (an Error whose `cause` is itself, a
 * `message` getter that throws), the task must still end, and the next one
 * run.
 */

const selfCaused = () => {
  const error = new Error("self-caused")
  ;(error as { cause?: unknown }).cause = error
  return error
}

describe("durable: a failure whose Cause cannot be printed", () => {
  it.scoped("ends the task failed and goes on with the next one", () =>
    Effect.gen(function* () {
      const context = yield* memoryDb
      const queue = yield* makeDurableQueue(context, {
        name: "outcome-wedge",
        maxWorkers: 1,
        payload: Schema.String,
        retry: { maxAttempts: 1 },
        handler: (label: string) =>
          label === "bad" ? Effect.die(selfCaused()) : Effect.succeed(label)
      })
      const bad = yield* queue.enqueue("bad")
      const next = yield* queue.enqueue("next")
      const ended = (id: string) => () =>
        Effect.map(
          readRow(id).pipe(Effect.provide(context)),
          (row) => row !== undefined && row.status !== "queued" && row.status !== "running"
        )
      yield* yieldUntil(ended(bad.id)).pipe(Effect.catchAllDefect(() => Effect.void))
      const row = yield* readRow(bad.id).pipe(Effect.provide(context))
      expect(row?.status).toBe("failed")
      expect(row?.owner).toBeNull()
      yield* yieldUntil(ended(next.id)).pipe(Effect.catchAllDefect(() => Effect.void))
      expect((yield* queue.get(next.id)).status).toBe("succeeded")
    })
  )
})

/**
 * A pause that lands while a feeder step waits for the connection (held by
 * the application's transaction): the tasks that step claims must go back to
 * the store and show as queued for the whole pause.
 */

describe("durable: a pause while a claim waits for the connection", () => {
  it.scoped("leaves no task claimed while paused", () =>
    Effect.gen(function* () {
      const context = yield* memoryDb
      const sql = Context.get(context, SqlClient.SqlClient)
      const started: Array<string> = []
      const queue = yield* makeDurableQueue(context, {
        name: "pause-claim",
        maxWorkers: 2,
        payload: Schema.String,
        handler: (label: string) => Effect.sync(() => started.push(label))
      })
      yield* queue.pause
      yield* queue.enqueue("a")
      yield* queue.enqueue("b")
      // A transaction of the application's own holds the connection.
      const transaction = yield* Effect.fork(
        sql.withTransaction(Effect.zipRight(sql`SELECT 1`, Effect.sleep("300 millis")))
      )
      yield* settle
      yield* queue.resume
      yield* settle
      yield* queue.pause
      yield* TestClock.adjust("300 millis")
      yield* Fiber.join(transaction)
      yield* settle
      yield* TestClock.adjust("5 seconds")
      yield* settle
      const rows = yield* Effect.orDie(sql<{ status: string; owner: string | null }>`
        SELECT status, owner FROM tasks ORDER BY id`)
      const stats = yield* queue.stats
      yield* queue.resume
      expect(started).toEqual([])
      expect(rows.map((r) => [r.status, r.owner])).toEqual([
        ["queued", null],
        ["queued", null]
      ])
      expect(stats).toMatchObject({ running: 0, queued: 2, paused: true })
    })
  )
})
