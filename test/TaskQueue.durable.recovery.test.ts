/**
 * What only a durable queue has to get right, on SQLite and the test clock:
 * an enqueue in the caller's own transaction, a restart on the same file,
 * tasks that instances gone away left running, a late write from a lost
 * claim, a cancel asked through the store, and rows written straight into
 * the table that the queue cannot read.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import {
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Schedule,
  Schema,
  TestClock
} from "effect"
import { TaskError } from "effect-task-queue"
import { hostId } from "../src/internal/ownership.js"
import {
  captureLogs,
  insertRow,
  isDone,
  makeDurableQueue,
  readRow,
  settle,
  sqliteStore,
  starts,
  tempDatabase,
  yieldUntil
} from "./helpers.js"

/** What the queue logs when the store refuses a write of a claim it lost. */
const LOST_CLAIM = "a task's claim was lost before its change was kept; the change was dropped"

/** An owner that no process on any host can have: a pid over every system's maximum. */
const DEAD_PID = 4_194_305

describe("TaskQueue on SQLite: transactions and restarts", () => {
  it.scoped("keeps a task enqueued in the caller's transaction only if it commits", () =>
    Effect.gen(function* () {
      const context = yield* sqliteStore(":memory:")
      const sql = Context.get(context, SqlClient.SqlClient)
      const seen: Array<string> = []
      const queue = yield* makeDurableQueue(context, {
        name: "in-transaction",
        maxWorkers: 1,
        payload: Schema.String,
        handler: (label: string) => Effect.sync(() => seen.push(label))
      })
      const ids: Array<string> = []
      const inside = (label: string) =>
        Effect.gen(function* () {
          const task = yield* queue.enqueue(label)
          ids.push(task.id)
          // Seen inside the transaction; the feeder waits for it to end.
          expect((yield* queue.get(task.id)).status).toBe("queued")
          yield* settle
          expect(seen).toEqual([])
        })

      const error = yield* Effect.flip(
        sql.withTransaction(Effect.zipRight(inside("rolled back"), Effect.fail("no")))
      )
      expect(error).toBe("no")
      const gone = yield* Effect.flip(queue.get(ids[0]!))
      expect(gone).toBeInstanceOf(TaskError.TaskNotFound)
      expect(yield* readRow(ids[0]!).pipe(Effect.provide(context))).toBeUndefined()

      yield* sql.withTransaction(inside("committed"))
      yield* queue.awaitIdle
      yield* TestClock.adjust("1 minute")
      yield* queue.awaitIdle
      expect(seen).toEqual(["committed"])
      expect((yield* queue.get(ids[1]!)).status).toBe("succeeded")
    })
  )

  it.scoped(
    "keeps waiting tasks queued through a shutdown; the next queue on the file runs them",
    () =>
      Effect.gen(function* () {
        const filename = yield* tempDatabase
        let interrupted = 0
        const first = yield* Effect.scoped(
          Effect.gen(function* () {
            const context = yield* sqliteStore(filename)
            const probe = starts()
            const queue = yield* makeDurableQueue(context, {
              name: "restart",
              maxWorkers: 1,
              payload: Schema.String,
              retry: { maxAttempts: 3, schedule: Schedule.spaced("10 seconds") },
              handler: (label: string) =>
                Effect.zipRight(
                  probe.record(label),
                  label === "flaky"
                    ? Effect.fail("not yet")
                    : Effect.onInterrupt(Effect.never, () => Effect.sync(() => (interrupted += 1)))
                )
            })
            const flaky = yield* queue.enqueue("flaky")
            yield* yieldUntil(() =>
              Effect.map(
                Effect.orDie(queue.get(flaky.id)),
                (t) => t.status === "queued" && t.attempt === 1
              )
            )
            const running = yield* queue.enqueue("running")
            yield* yieldUntil(() => probe.of("running").length === 1)
            const queued = yield* queue.enqueue("queued")
            const delayed = yield* queue.enqueueWith({ delay: "1 minute" }, "delayed")
            yield* queue.shutdown
            expect(interrupted).toBe(1)
            expect(yield* Effect.flip(queue.enqueue("late"))).toBeInstanceOf(
              TaskError.QueueShutdown
            )
            // Reads go on: nothing ended; the interrupted attempt is not counted.
            const status = (id: string) => Effect.map(queue.get(id), (t) => [t.status, t.attempt])
            expect(yield* status(flaky.id)).toEqual(["queued", 1])
            expect(yield* status(running.id)).toEqual(["queued", 0])
            expect(yield* status(queued.id)).toEqual(["queued", 0])
            expect(yield* status(delayed.id)).toEqual(["queued", 0])
            const row = yield* readRow(running.id).pipe(Effect.provide(context))
            expect(row).toMatchObject({ owner: null, lease_until: null, outcome: null })
            return { flaky, running, queued, delayed }
          })
        )

        yield* TestClock.adjust("5 seconds")
        const context = yield* sqliteStore(filename)
        const probe = starts()
        const queue = yield* makeDurableQueue(context, {
          name: "restart",
          maxWorkers: 1,
          payload: Schema.String,
          retry: { maxAttempts: 3, schedule: Schedule.spaced("10 seconds") },
          handler: (label: string) => Effect.as(probe.record(label), label)
        })
        yield* yieldUntil(() => probe.of("queued").length === 1)
        yield* TestClock.adjust("1 minute")
        yield* queue.awaitIdle
        expect([...probe.at.entries()]).toEqual([
          ["running", [5_000]],
          ["queued", [5_000]],
          ["flaky", [10_000]],
          ["delayed", [60_000]]
        ])
        for (const [label, task] of Object.entries(first)) {
          expect(yield* queue.await(task.id)).toEqual(Exit.succeed(label))
        }
        expect((yield* queue.get(first.flaky.id)).attempt).toBe(2)
        expect((yield* queue.get(first.running.id)).attempt).toBe(1)
        expect(interrupted).toBe(1)
      })
  )
})

describe("TaskQueue on SQLite: claims of instances gone away", () => {
  it.scoped("takes back the tasks of gone owners, counting the attempt, and leaves live ones", () =>
    Effect.gen(function* () {
      const context = yield* sqliteStore(":memory:")
      const here = hostId
      const running = (label: string, owner: string, leaseUntil: number, attempt = 1) =>
        insertRow({
          queue: "reclaim",
          payload: JSON.stringify(label),
          status: "running",
          attempt,
          started_at: 0,
          owner,
          lease_until: leaseUntil
        }).pipe(Effect.provide(context))
      const rows = {
        expired: yield* running("expired", "somehost:1:x", -1),
        deadPid: yield* running("deadPid", `${here}:${DEAD_PID}:x`, 60_000),
        stoppedQueue: yield* running("stoppedQueue", `${here}:${process.pid}:stopped`, 60_000),
        livePid: yield* running("livePid", `${here}:${process.ppid}:x`, 25_000),
        otherHost: yield* running("otherHost", "otherhost:1:x", 25_000),
        last: yield* running("last", "somehost:1:x", -1, 3)
      }
      const probe = starts()
      const queue = yield* makeDurableQueue(context, {
        name: "reclaim",
        maxWorkers: 4,
        payload: Schema.String,
        handler: (label: string) => Effect.as(probe.record(label), label)
      })
      const statusOf = (label: keyof typeof rows) =>
        Effect.map(Effect.orDie(queue.get(rows[label].id)), (t) => [t.status, t.attempt])

      yield* yieldUntil(() => probe.at.size === 3)
      yield* yieldUntil(() => Effect.map(statusOf("stoppedQueue"), ([s]) => s === "succeeded"))
      for (const label of ["expired", "deadPid", "stoppedQueue"] as const) {
        expect(probe.of(label)).toEqual([0])
        expect(yield* statusOf(label)).toEqual(["succeeded", 2])
        expect(yield* queue.await(rows[label].id)).toEqual(Exit.succeed(label))
      }
      // Running in each of its attempts when its owner went: failed, never run again.
      const last = yield* queue.get(rows.last.id)
      expect(last).toMatchObject({ status: "failed", attempt: 3 })
      expect(queue.toView(last).error).toEqual({
        kind: "defect",
        message: "the process running the task stopped during each of its 3 attempts"
      })
      expect(probe.of("last")).toEqual([])

      // A live process of this host, and another host, hold theirs until their lease ends.
      yield* TestClock.adjust("20 seconds")
      yield* settle
      expect(yield* readRow(rows.livePid.id).pipe(Effect.provide(context))).toEqual(rows.livePid)
      expect(yield* readRow(rows.otherHost.id).pipe(Effect.provide(context))).toEqual(
        rows.otherHost
      )
      yield* TestClock.adjust("10 seconds")
      yield* yieldUntil(() => probe.at.size === 5)
      yield* queue.awaitIdle
      expect(probe.of("livePid")).toEqual([30_000])
      expect(probe.of("otherHost")).toEqual([30_000])
      expect(yield* statusOf("livePid")).toEqual(["succeeded", 2])
      expect(yield* statusOf("otherHost")).toEqual(["succeeded", 2])
    })
  )

  it.scoped("refuses the late write of a claim another instance took", () =>
    Effect.gen(function* () {
      const context = yield* sqliteStore(":memory:")
      const sql = Context.get(context, SqlClient.SqlClient)
      const logs = yield* captureLogs
      const gate = yield* Deferred.make<void>()
      let finished = 0
      const queue = yield* makeDurableQueue(context, {
        name: "lost-claim",
        maxWorkers: 1,
        payload: Schema.String,
        handler: (_: string) =>
          Effect.zipRight(
            Deferred.await(gate),
            Effect.sync(() => (finished += 1))
          )
      }).pipe(Effect.provide(logs.layer))
      const task = yield* queue.enqueue("x")
      yield* yieldUntil(() =>
        Effect.map(readRow(task.id).pipe(Effect.provide(context)), (r) => r?.status === "running")
      )
      yield* settle
      yield* Effect.orDie(
        sql`UPDATE tasks SET owner = 'thief:1:y', lease_until = ${9e12} WHERE id = ${task.id}`
      )
      const stolen = yield* readRow(task.id).pipe(Effect.provide(context))
      yield* Deferred.succeed(gate, undefined)
      yield* yieldUntil(() => logs.messages().includes(LOST_CLAIM))
      expect(finished).toBe(1)
      expect(yield* readRow(task.id).pipe(Effect.provide(context))).toEqual(stolen)
      expect(stolen).toMatchObject({ status: "running", owner: "thief:1:y", outcome: null })
      // Lease renewals and take-backs leave the thief's claim alone too.
      yield* TestClock.adjust("1 minute")
      yield* settle
      expect(yield* readRow(task.id).pipe(Effect.provide(context))).toEqual(stolen)
      expect(yield* queue.get(task.id)).toMatchObject({ status: "running", attempt: 1 })
      expect(yield* queue.stats).toMatchObject({ running: 1, queued: 0 })
    })
  )

  it.scoped("cancels through the store a task another instance runs, at its next renewal", () =>
    Effect.gen(function* () {
      const context = yield* sqliteStore(":memory:")
      let interrupted = 0
      const options = {
        name: "shared",
        maxWorkers: 1,
        payload: Schema.String,
        lease: Duration.seconds(3),
        handler: (_: string) =>
          Effect.onInterrupt(Effect.never, () => Effect.sync(() => (interrupted += 1)))
      }
      const runner = yield* makeDurableQueue(context, options)
      const task = yield* runner.enqueue("x")
      yield* yieldUntil(() =>
        Effect.map(readRow(task.id).pipe(Effect.provide(context)), (r) => r?.status === "running")
      )
      const other = yield* makeDurableQueue(context, options)
      const cancel = yield* Effect.fork(other.cancel(task.id))
      yield* settle
      expect(interrupted).toBe(0)
      expect((yield* readRow(task.id).pipe(Effect.provide(context)))?.cancel_requested).toBe(1)
      yield* TestClock.adjust("1 second")
      yield* yieldUntil(() => interrupted === 1)
      yield* TestClock.adjust("1 second")
      yield* yieldUntil(isDone(cancel))
      expect(yield* Fiber.join(cancel)).toBe("cancelled")
      expect(yield* other.get(task.id)).toMatchObject({ status: "cancelled", reason: "cancelled" })
    })
  )
})

describe("TaskQueue on SQLite: rows it cannot read", () => {
  it.scoped("fails a row whose payload is not JSON or not of its Schema, once, and goes on", () =>
    Effect.gen(function* () {
      const context = yield* sqliteStore(":memory:")
      const seen: Array<number> = []
      const row = (queue: string, payload: string) =>
        insertRow({ queue, payload }).pipe(Effect.provide(context))
      const notJson = yield* row("rows", "{not json")
      const wrongShape = yield* row("rows", '{"n":"one"}')
      const ghost = yield* row("ghost", '{"n":1}')
      const queue = yield* makeDurableQueue(context, {
        name: "rows",
        maxWorkers: 1,
        payload: Schema.Struct({ n: Schema.Number }),
        handler: ({ n }: { readonly n: number }) =>
          Effect.sync(() => {
            seen.push(n)
            return n * 2
          })
      })
      yield* queue.awaitIdle
      yield* TestClock.adjust("1 minute")
      yield* settle

      const failed = (id: string) =>
        Effect.map(queue.get(id), (task) => {
          expect(task).toMatchObject({ status: "failed", attempt: 1 })
          return queue.toView(task).error
        })
      const unreadable = yield* failed(notJson.id)
      expect(unreadable?.kind).toBe("defect")
      expect(unreadable?.message).toBe("the stored payload is not JSON")
      const misshapen = yield* failed(wrongShape.id)
      expect(misshapen?.kind).toBe("defect")
      expect(misshapen?.message).toContain("the stored payload no longer decodes")
      expect(misshapen?.message).toContain('"one"')
      expect(seen).toEqual([])
      // A row of a queue no one serves here is left as it was.
      expect(yield* readRow(ghost.id).pipe(Effect.provide(context))).toEqual(ghost)

      const valid = yield* queue.enqueue({ n: 7 })
      expect(yield* valid.await).toEqual(Exit.succeed(14))
      expect(seen).toEqual([7])
      expect((yield* queue.get(notJson.id)).attempt).toBe(1)
    })
  )
})
