/**
 * The SQL store on SQLite files of the tests' own: its migrations, the
 * connection settings it makes, which finished tasks its retention fiber
 * deletes (by age and by count, on the test clock) and which it never
 * touches, and its listing by status and in pages. What every store must
 * do is in the conformance suite; this is what is the SQL store's own.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, TestClock } from "effect"
import { TaskStore } from "effect-task-queue"
import * as SqlTaskStore from "effect-task-queue/SqlTaskStore"
import type { TaskRow } from "./helpers.js"
import {
  insertRow,
  invalidOption,
  readRow,
  settle,
  sqliteStore,
  tempDatabase,
  yieldUntil
} from "./helpers.js"

const names = (sql: SqlClient.SqlClient, type: "table") =>
  Effect.map(
    Effect.orDie(
      sql<{
        readonly name: string
      }>`SELECT name FROM sqlite_master WHERE type = ${type} AND name NOT LIKE 'sqlite_%' ORDER BY name`
    ),
    (rows) => rows.map((r) => r.name)
  )

const columns = (sql: SqlClient.SqlClient) =>
  Effect.map(
    Effect.orDie(sql<{ readonly name: string }>`SELECT name FROM pragma_table_info('tasks')`),
    (rows) => rows.map((r) => r.name)
  )

/** The columns of each unique index of `tasks`. */
const uniqueIndexes = (sql: SqlClient.SqlClient) =>
  Effect.flatMap(
    Effect.orDie(
      sql<{ readonly name: string }>`SELECT name FROM pragma_index_list('tasks') WHERE "unique" = 1`
    ),
    (indexes) =>
      Effect.forEach(indexes, (index) =>
        Effect.map(
          Effect.orDie(
            sql<{
              readonly name: string
            }>`SELECT name FROM pragma_index_info(${index.name}) ORDER BY seqno`
          ),
          (rows) => rows.map((r) => r.name)
        )
      )
  )

const migrationsRun = (sql: SqlClient.SqlClient) =>
  Effect.orDie(
    sql<{
      readonly migration_id: number
      readonly name: string
    }>`SELECT migration_id, name FROM task_queue_migrations ORDER BY migration_id`
  )

/** Whether the row is still in the table. */
const kept = (row: TaskRow) => Effect.map(readRow(row.id), (found) => found !== undefined)

/** The ids, of those given, whose rows are still in the table. */
const keptOf = (rows: ReadonlyArray<TaskRow>) =>
  Effect.map(
    Effect.forEach(rows, (row) => kept(row)),
    (found) => rows.filter((_, i) => found[i]).map((row) => row.id)
  )

const finishedRow = (finishedAt: number, fields: Partial<TaskRow> = {}) =>
  insertRow({
    queue: "q",
    payload: "null",
    status: "succeeded",
    attempt: 1,
    started_at: finishedAt,
    finished_at: finishedAt,
    outcome: '{"result":null}',
    ...fields
  })

describe("SqlTaskStore on SQLite", () => {
  it.scoped("creates its table and indexes once; a second open of the file migrates nothing", () =>
    Effect.gen(function* () {
      const filename = yield* tempDatabase
      const first = yield* Effect.scoped(
        Effect.gen(function* () {
          const context = yield* sqliteStore(filename)
          const sql = Context.get(context, SqlClient.SqlClient)
          expect(yield* names(sql, "table")).toEqual(["task_queue_migrations", "tasks"])
          expect(yield* columns(sql)).toEqual([
            "id",
            "queue",
            "status",
            "payload",
            "attempt",
            "max_attempts",
            "timeout_ms",
            "priority",
            "created_at",
            "due_at",
            "run_at",
            "started_at",
            "finished_at",
            "owner",
            "lease_until",
            "cancel_requested",
            "outcome",
            "reason",
            "idempotency_key"
          ])
          expect(yield* uniqueIndexes(sql)).toContainEqual(["queue", "idempotency_key"])
          expect(yield* migrationsRun(sql)).toEqual([{ migration_id: 1, name: "create_tasks" }])
          return yield* insertRow({ queue: "q", payload: '"kept"' }).pipe(Effect.provide(context))
        })
      )
      // The file again, as after a restart: the table and its row are there as they were.
      yield* Effect.scoped(
        Effect.gen(function* () {
          const context = yield* sqliteStore(filename)
          const sql = Context.get(context, SqlClient.SqlClient)
          expect(yield* migrationsRun(sql)).toEqual([{ migration_id: 1, name: "create_tasks" }])
          expect(yield* names(sql, "table")).toEqual(["task_queue_migrations", "tasks"])
          expect(yield* readRow(first.id).pipe(Effect.provide(context))).toEqual(first)
          const store = Context.get(context, TaskStore.TaskStore)
          expect(yield* store.get(first.id)).toMatchObject({ id: first.id, status: "queued" })
        })
      )
    })
  )

  it.scoped(
    "runs SQLite in WAL mode with a 10 ms busy timeout (retried asynchronously) and synchronous NORMAL",
    () =>
      Effect.gen(function* () {
        const context = yield* sqliteStore(yield* tempDatabase)
        const sql = Context.get(context, SqlClient.SqlClient)
        const pragma = (name: string) =>
          Effect.orDie(sql.unsafe<Record<string, unknown>>(`PRAGMA ${name}`))
        expect(yield* pragma("journal_mode")).toEqual([{ journal_mode: "wal" }])
        expect(yield* pragma("busy_timeout")).toEqual([{ timeout: 10 }])
        // 1 is NORMAL; SQLite's default is FULL (2).
        expect(yield* pragma("synchronous")).toEqual([{ synchronous: 1 }])
      })
  )

  it.scoped(
    "undoes a whole feeder step when its claim fails, and keeps the connection usable",
    () =>
      Effect.gen(function* () {
        const context = yield* sqliteStore(":memory:")
        const durable = Context.get(context, TaskStore.TaskStore).durable!
        const sql = Context.get(context, SqlClient.SqlClient)
        const running = yield* insertRow({
          queue: "q",
          payload: "null",
          status: "running",
          attempt: 1,
          owner: "me",
          started_at: 5
        }).pipe(Effect.provide(context))
        const queued = yield* insertRow({ queue: "q", payload: "null" }).pipe(
          Effect.provide(context)
        )
        const ended = {
          _tag: "end",
          id: running.id,
          owner: "me",
          attempt: 1,
          status: "succeeded",
          finishedAt: 10,
          outcome: '{"result":null}',
          reason: undefined
        } as const
        const step = durable.step({
          queue: "q",
          owner: "me",
          now: 10,
          leaseUntil: 100,
          claim: 1,
          writes: [ended]
        })
        // The write goes through; the claim after it in the same transaction fails.
        yield* Effect.orDie(
          sql.unsafe(`CREATE TRIGGER refuse_claim BEFORE UPDATE OF status ON tasks
          WHEN NEW.status = 'running' BEGIN SELECT RAISE(ABORT, 'claim refused'); END`)
        )
        const failed = yield* Effect.exit(step)
        expect(failed._tag).toBe("Failure")
        const afterFailure = yield* Effect.all([readRow(running.id), readRow(queued.id)]).pipe(
          Effect.provide(context)
        )
        expect(afterFailure.map((row) => row?.status)).toEqual(["running", "queued"])

        yield* Effect.orDie(sql.unsafe("DROP TRIGGER refuse_claim"))
        const done = yield* step
        expect(done.refused).toEqual([])
        expect(done.claimed.map((task) => task.id)).toEqual([queued.id])
        const afterRetry = yield* Effect.all([readRow(running.id), readRow(queued.id)]).pipe(
          Effect.provide(context)
        )
        expect(afterRetry.map((row) => row?.status)).toEqual(["succeeded", "running"])
      })
  )

  it.scoped("refuses retention options out of their range, naming each", () =>
    Effect.gen(function* () {
      const filename = yield* tempDatabase
      const refused = (options: SqlTaskStore.Options) =>
        invalidOption(Effect.scoped(SqlTaskStore.make(options)).pipe(Effect.provide(context)))
      const context = yield* sqliteStore(filename)
      expect(yield* refused({ maxFinished: -1 })).toBe("maxFinished")
      expect(yield* refused({ maxFinished: 1.5 })).toBe("maxFinished")
      expect(yield* refused({ finishedTtl: "-1 hour" })).toBe("finishedTtl")
      expect(yield* refused({ pruneInterval: 0 })).toBe("pruneInterval")
      expect(yield* refused({ pruneInterval: "soon" as never })).toBe("pruneInterval")
    })
  )

  it.scoped(
    "deletes finished tasks older than finishedTtl, each prune interval, and no other",
    () =>
      Effect.gen(function* () {
        const context = yield* sqliteStore(yield* tempDatabase, {
          finishedTtl: "1 hour",
          pruneInterval: "1 minute"
        })
        const store = Context.get(context, TaskStore.TaskStore)
        // The store prunes once as it starts: let that pass before rows are written.
        yield* settle
        const rows = yield* Effect.all({
          succeeded: finishedRow(0, { idempotency_key: "k" }),
          cancelled: finishedRow(0, { status: "cancelled", attempt: 0, started_at: null }),
          failedLater: finishedRow(30 * 60_000, { status: "failed" }),
          queued: insertRow({ queue: "q", payload: "null" }),
          delayed: insertRow({ queue: "q", payload: "null", due_at: 9e12, run_at: 9e12 }),
          retrying: insertRow({
            queue: "q",
            payload: "null",
            attempt: 1,
            started_at: 0,
            due_at: 9e12,
            run_at: 9e12
          }),
          running: insertRow({
            queue: "q",
            payload: "null",
            status: "running",
            attempt: 1,
            started_at: 0,
            owner: "elsewhere:1:a",
            lease_until: 9e12
          })
        }).pipe(Effect.provide(context))
        const all = Object.values(rows)
        const alive = [rows.queued, rows.delayed, rows.retrying, rows.running].map((r) => r.id)
        const check = keptOf(all).pipe(Effect.provide(context))

        // Kept up to exactly one hour after they finished.
        yield* TestClock.adjust("60 minutes")
        yield* settle
        expect(yield* check).toEqual(all.map((r) => r.id))

        yield* TestClock.adjust("1 minute")
        yield* yieldUntil(() => Effect.map(check, (ids) => ids.length === all.length - 2))
        expect(yield* check).toEqual([rows.failedLater.id, ...alive])
        // The deleted task's idempotency key is free again.
        expect(yield* store.findKey("q", "k")).toBeUndefined()

        yield* TestClock.adjust("29 minutes")
        yield* settle
        expect(yield* check).toEqual([rows.failedLater.id, ...alive])
        yield* TestClock.adjust("1 minute")
        yield* yieldUntil(() => Effect.map(check, (ids) => ids.length === alive.length))
        expect(yield* check).toEqual(alive)

        // Tasks that have not finished stay, however old.
        yield* TestClock.adjust("3 hours")
        yield* settle
        expect(yield* check).toEqual(alive)
      })
  )

  it.scoped("keeps the maxFinished most recently finished tasks, and every unfinished one", () =>
    Effect.gen(function* () {
      const context = yield* sqliteStore(yield* tempDatabase, {
        maxFinished: 2,
        pruneInterval: "1 minute"
      })
      yield* settle
      const finished = yield* Effect.forEach([5, 1, 4, 2, 3], (at) => finishedRow(at)).pipe(
        Effect.provide(context)
      )
      const waiting = yield* insertRow({ queue: "q", payload: "null" }).pipe(
        Effect.provide(context)
      )
      const running = yield* insertRow({
        queue: "other",
        payload: "null",
        status: "running",
        attempt: 1,
        owner: "elsewhere:1:a",
        lease_until: 9e12
      }).pipe(Effect.provide(context))
      const all = [...finished, waiting, running]
      const check = keptOf(all).pipe(Effect.provide(context))

      yield* settle
      expect(yield* check).toHaveLength(all.length)
      yield* TestClock.adjust("1 minute")
      yield* yieldUntil(() => Effect.map(check, (ids) => ids.length === 4))
      // Finished at 5 and 4: the two newest.
      expect(yield* check).toEqual([finished[0]!.id, finished[2]!.id, waiting.id, running.id])
    })
  )

  it.scoped("deletes past maxFinished in batches until only maxFinished are left", () =>
    Effect.gen(function* () {
      const context = yield* sqliteStore(yield* tempDatabase, {
        maxFinished: 100,
        pruneInterval: "1 minute"
      })
      yield* settle
      const sql = Context.get(context, SqlClient.SqlClient)
      // 1,234 finished tasks, more than two of the store's delete batches.
      const rows = yield* Effect.forEach(
        Array.from({ length: 1_234 }, (_, i) => i),
        (i) => finishedRow(1_000 + i)
      ).pipe(Effect.provide(context))
      const count = Effect.map(
        Effect.orDie(sql<{ readonly n: number }>`SELECT COUNT(*) AS n FROM tasks`),
        (r) => r[0]!.n
      )
      expect(yield* count).toBe(1_234)
      yield* TestClock.adjust("1 minute")
      yield* yieldUntil(() => Effect.map(count, (n) => n === 100))
      yield* settle
      expect(yield* count).toBe(100)
      const left = yield* sql<{ readonly id: string }>`SELECT id FROM tasks ORDER BY finished_at`
      expect(left.map((r) => r.id)).toEqual(rows.slice(-100).map((r) => r.id))
    })
  )

  it.scoped("lists by each status, pages within a status, and caps a page at 1,000", () =>
    Effect.gen(function* () {
      const context = yield* sqliteStore(yield* tempDatabase)
      const store = Context.get(context, TaskStore.TaskStore)
      const statuses = ["queued", "running", "succeeded", "failed", "cancelled"] as const
      // Three of each status in queue "q", interleaved, and one of each in "other".
      const rows: Array<TaskRow> = []
      for (let round = 0; round < 3; round++) {
        for (const status of statuses) {
          rows.push(
            yield* insertRow({ queue: "q", payload: "null", status }).pipe(Effect.provide(context))
          )
          if (round === 1)
            yield* insertRow({ queue: "other", payload: "null", status }).pipe(
              Effect.provide(context)
            )
        }
      }
      const ids = (page: TaskStore.TaskPage) => page.items.map((r) => r.id)
      for (const status of statuses) {
        const mine = rows.filter((r) => r.status === status).map((r) => r.id)
        expect(ids(yield* store.list({ queue: "q", status, limit: 10 }))).toEqual(mine)
        const first = yield* store.list({ queue: "q", status, limit: 2 })
        expect(ids(first)).toEqual(mine.slice(0, 2))
        expect(first.next).toBe(mine[1])
        const second = yield* store.list({ queue: "q", status, limit: 2, cursor: first.next })
        expect(ids(second)).toEqual(mine.slice(2))
        expect(second.next).toBeUndefined()
        expect(
          (yield* store.list({ queue: "q", status, limit: 2 })).items.every(
            (r) => r.status === status
          )
        ).toBe(true)
      }
      // A page that holds exactly the rest has no next page.
      const exact = yield* store.list({ queue: "q", limit: 15 })
      expect(ids(exact)).toEqual(rows.map((r) => r.id))
      expect(exact.next).toBeUndefined()

      for (let i = 0; i < 1_000; i++) {
        yield* insertRow({ queue: "big", payload: "null" }).pipe(Effect.provide(context))
      }
      const big = yield* store.list({ queue: "big", limit: 5_000 })
      expect(big.items).toHaveLength(1_000)
      expect(big.next).toBeUndefined()
      const extra = yield* insertRow({ queue: "big", payload: "null" }).pipe(
        Effect.provide(context)
      )
      const capped = yield* store.list({ queue: "big", limit: 5_000 })
      expect(capped.items).toHaveLength(1_000)
      expect(capped.next).toBe(capped.items[999]!.id)
      expect(ids(yield* store.list({ queue: "big", limit: 5_000, cursor: capped.next }))).toEqual([
        extra.id
      ])
    })
  )
})
