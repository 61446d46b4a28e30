/**
 * The store on `@effect/sql`: task records in a `tasks` table, created by
 * numbered migrations, that queues claim work from in transactions. Written
 * for SQLite; the statements and the migrations are in `internal/sqlTable.ts`,
 * where what differs between dialects is kept together.
 *
 * @since 0.2.0
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { Scope } from "effect"
import { Duration, Effect, Exit, Layer, Option, Schedule } from "effect"
import { isNonNegativeDuration, isObject, validate } from "./internal/options.js"
import { encodeOutcome } from "./internal/outcome.js"
import {
  BUSY_TIMEOUT,
  claimOrder,
  dialect,
  fromRow,
  isBusy,
  rootMessage,
  runMigrations,
  writeParams
} from "./internal/sqlTable.js"
import type { TaskRecord } from "./Task.js"
import type { InvalidOption } from "./TaskError.js"
import { TaskStore } from "./TaskStore.js"
import type { ListQuery, TaskPage, Durable, StoredTask, Write } from "./TaskStore.js"

/**
 * @since 0.2.0
 * @category options
 */
export interface Options {
  /** Finished tasks kept at most; the oldest go first. Default 100,000. */
  readonly maxFinished?: number | undefined
  /** Finished tasks are deleted this long after they finish. Default 7 days. */
  readonly finishedTtl?: Duration.DurationInput | undefined
  /** How often the retention fiber looks for finished tasks to delete. Default 1 minute. */
  readonly pruneInterval?: Duration.DurationInput | undefined
}

const MAX_PAGE = 1_000
const DEFAULT_PAGE = 100
/** Rows deleted per statement by the retention fiber, which yields between them. */
const PRUNE_BATCH = 500

/**
 * A row of the `tasks` table as SQL gives it back, for those who read or
 * write the table directly (migrations of their own, operations scripts).
 *
 * @since 0.2.0
 * @category models
 */
export interface TaskRow {
  readonly id: string
  readonly queue: string
  readonly status: string
  readonly payload: string
  readonly attempt: number
  readonly max_attempts: number
  readonly timeout_ms: number | null
  readonly priority: number
  readonly created_at: number
  readonly due_at: number
  readonly run_at: number | null
  readonly started_at: number | null
  readonly finished_at: number | null
  readonly owner: string | null
  readonly lease_until: number | null
  readonly cancel_requested: number
  readonly outcome: string | null
  readonly reason: string | null
  readonly idempotency_key: string | null
}

/**
 * Makes the store: runs the migrations, then starts the retention fiber in
 * the caller's scope.
 *
 * SQLite is set up for a server: WAL, `synchronous = NORMAL` (a commit is
 * durable once the WAL is checkpointed; a power cut can lose the last
 * commits, a process crash cannot), and a busy timeout of 10 ms: a
 * statement that still finds the file locked is tried again asynchronously,
 * so "database is locked" never reaches a caller; any other database error
 * is a defect.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (
  input: Options = {}
): Effect.Effect<
  TaskStore["Type"],
  InvalidOption | SqlError | Migrator.MigrationError,
  SqlClient.SqlClient | Scope.Scope
> =>
  Effect.gen(function* () {
    const options = yield* validate("options", input, "must be an object", isObject)
    const maxFinished = yield* validate(
      "maxFinished",
      options.maxFinished ?? 100_000,
      "must be a non-negative integer",
      (n) => Number.isSafeInteger(n) && n >= 0
    )
    const ttl = yield* validate(
      "finishedTtl",
      options.finishedTtl ?? "7 days",
      "must be a non-negative duration",
      isNonNegativeDuration
    ).pipe(Effect.map(Duration.toMillis))
    const pruneEvery = yield* validate(
      "pruneInterval",
      options.pruneInterval ?? "1 minute",
      "must be a positive duration",
      (d) => isNonNegativeDuration(d) && Duration.toMillis(d) > 0
    )
    const sql = yield* SqlClient.SqlClient
    const clock = yield* Effect.clock

    yield* sql.onDialectOrElse({
      sqlite: () =>
        Effect.all([
          sql.unsafe("PRAGMA journal_mode = WAL"),
          sql.unsafe(`PRAGMA busy_timeout = ${BUSY_TIMEOUT}`),
          sql.unsafe("PRAGMA synchronous = NORMAL")
        ]),
      orElse: () => Effect.void
    })
    yield* runMigrations.pipe(
      Effect.retry({ while: (e) => e._tag === "SqlError" && isBusy(e), times: 20 }),
      // A migration that fails is a defect in @effect/sql; here it is the
      // store's typed error, with the database's reason in its message (a
      // table named `tasks` that is not the store's, say).
      Effect.catchAllDefect((defect) =>
        defect instanceof Migrator.MigrationError
          ? Effect.fail(
              new Migrator.MigrationError({
                reason: defect.reason,
                message: `${defect.message}: ${rootMessage(defect)}`
              })
            )
          : Effect.die(defect)
      )
    )

    /**
     * Runs a statement or a transaction: tried again while the file is
     * locked by another process, then any other error is a defect.
     */
    // Jittered, so that writes waiting for the same lock do not all try at once.
    const busyRetry = Schedule.exponential("10 millis").pipe(
      Schedule.modifyDelay((delay) => Duration.min(delay, Duration.millis(500))),
      Schedule.jittered,
      Schedule.upTo("30 seconds")
    )
    /**
     * Runs a statement or a transaction of the store's own, tried again while
     * the file is locked; inside the caller's transaction (an enqueue in it),
     * once: that transaction holds the connection, and only it can be begun
     * again. Any other error is a defect.
     */
    const run = <A>(effect: Effect.Effect<A, SqlError>): Effect.Effect<A> =>
      Effect.catchAll(effect, (error) =>
        isBusy(error)
          ? Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (inside) =>
              Option.isSome(inside)
                ? Effect.die(error)
                : Effect.orDie(Effect.retry(effect, { while: isBusy, schedule: busyRetry }))
            )
          : Effect.die(error)
      )

    const writesText = new Map<number, string>()
    /** Runs statement text on the transaction's connection. */
    const exec = <A>(text: string, params: ReadonlyArray<unknown>) =>
      Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (transaction) =>
        Option.isNone(transaction)
          ? Effect.dieMessage("a feeder statement ran outside its transaction")
          : (transaction.value[0].execute(text, params, undefined) as Effect.Effect<
              ReadonlyArray<A>,
              SqlError
            >)
      )

    /** Applies writes, a statement per batch of at most 200; gives back those refused. */
    const applyWrites = (writes: ReadonlyArray<Write>) =>
      Effect.gen(function* () {
        const took = new Set<string>()
        for (let from = 0; from < writes.length; from += 200) {
          const batch = writes.slice(from, from + 200)
          let text = writesText.get(batch.length)
          if (text === undefined) {
            text = dialect.writes(batch.length)
            writesText.set(batch.length, text)
          }
          const rows = yield* exec<{ readonly id: string }>(text, batch.flatMap(writeParams))
          for (const row of rows) took.add(row.id)
        }
        return writes.filter((w) => !took.has(w.id))
      })

    const getRow = (id: string) =>
      Effect.map(sql<TaskRow>`SELECT * FROM tasks WHERE id = ${id}`, (rows) =>
        rows.length === 0 ? undefined : fromRow(rows[0]!)
      )
    const findKeyRow = (queue: string, key: string) =>
      Effect.map(
        sql<TaskRow>`SELECT * FROM tasks WHERE queue = ${queue} AND idempotency_key = ${key}`,
        (rows) => (rows.length === 0 ? undefined : fromRow(rows[0]!))
      )

    /** Writes one new task, or gives back the task that already holds its key. */
    const insertRow = (record: TaskRecord, payload: string, timeout: number | undefined) =>
      Effect.flatMap(
        sql<{ readonly id: string }>`INSERT INTO tasks (id, queue, status, payload, attempt,
            max_attempts, timeout_ms, priority, created_at, due_at, run_at, started_at,
            finished_at, outcome, reason, idempotency_key)
          VALUES (${record.id}, ${record.queue}, ${record.status}, ${payload}, ${record.attempt},
            ${record.maxAttempts}, ${timeout ?? null}, ${record.priority}, ${record.createdAt},
            ${record.runAt ?? record.createdAt}, ${record.runAt ?? null},
            ${record.startedAt ?? null}, ${record.finishedAt ?? null},
            ${record.exit === undefined ? null : encodeOutcome(record, {})},
            ${record.reason ?? null}, ${record.idempotencyKey ?? null})
          ON CONFLICT DO NOTHING
          RETURNING id`,
        (rows): Effect.Effect<StoredTask | undefined, SqlError> => {
          if (rows.length > 0) return Effect.succeed(undefined)
          if (record.idempotencyKey === undefined) return Effect.die(`task ${record.id} exists`)
          return Effect.flatMap(findKeyRow(record.queue, record.idempotencyKey), (existing) =>
            existing === undefined
              ? Effect.die(`task ${record.id} exists`)
              : Effect.succeed(existing)
          )
        }
      )

    /**
     * The feeder's transaction, thousands a second: its connection held for
     * the step, and BEGIN, COMMIT and ROLLBACK run as the prepared
     * statements the connection keeps. `sql.withTransaction` would also
     * make a span and prepare BEGIN and COMMIT again each time; the feeder
     * never nests transactions, so it needs neither.
     */
    const feederTransaction = <A>(body: Effect.Effect<A, SqlError>) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.scoped(
          Effect.flatMap(sql.reserve, (conn) =>
            Effect.zipRight(
              conn.execute("BEGIN", [], undefined),
              Effect.flatMap(
                Effect.exit(
                  restore(Effect.provideService(body, SqlClient.TransactionConnection, [conn, 0]))
                ),
                (exit) =>
                  Effect.zipRight(
                    Effect.orDie(
                      conn.execute(Exit.isSuccess(exit) ? "COMMIT" : "ROLLBACK", [], undefined)
                    ),
                    exit
                  )
              )
            )
          )
        )
      )

    const durable: Durable = {
      insert: (record, payload, timeout) => run(insertRow(record, payload, timeout)),
      step: ({ queue, owner, now, leaseUntil, claim, writes }) =>
        run(
          feederTransaction(
            Effect.gen(function* () {
              // Writes first: the transaction takes the write lock at its
              // first statement, so another process makes it wait rather
              // than fail.
              const refused = writes.length === 0 ? [] : yield* applyWrites(writes)
              const claimed =
                claim > 0
                  ? (yield* exec<TaskRow>(dialect.claim, [
                      owner,
                      leaseUntil,
                      now,
                      queue,
                      now,
                      claim
                    ]))
                      .map(fromRow)
                      .sort(claimOrder)
                  : []
              return { claimed, refused }
            })
          )
        ),
      nextDue: (queue) =>
        run(
          Effect.map(
            sql<{ readonly due: number | null }>`SELECT MIN(due_at) AS due FROM tasks
              WHERE queue = ${queue} AND status = 'queued'`,
            // A due time that is not a number (a row written past the store)
            // cannot be waited for.
            (rows) => {
              const due = Number(rows[0]?.due ?? NaN)
              return Number.isFinite(due) ? due : undefined
            }
          )
        ),
      cancelQueued: (id, now, outcome) =>
        run(
          Effect.map(
            sql<{ readonly id: string }>`UPDATE tasks
              SET status = 'cancelled', finished_at = ${now}, reason = 'cancelled',
                outcome = ${outcome}, run_at = NULL
              WHERE id = ${id} AND status = 'queued' RETURNING id`,
            (rows) => rows.length > 0
          )
        ),
      requestCancel: (id) =>
        run(
          Effect.map(
            sql<{ readonly id: string }>`UPDATE tasks SET cancel_requested = 1
              WHERE id = ${id} AND status = 'running' RETURNING id`,
            (rows) => rows.length > 0
          )
        ),
      renew: (queue, owner, leaseUntil) =>
        run(
          Effect.map(
            sql<{ readonly id: string; readonly cancel_requested: number }>`UPDATE tasks
              SET lease_until = ${leaseUntil}
              WHERE queue = ${queue} AND owner = ${owner} AND status = 'running'
              RETURNING id, cancel_requested`,
            (rows) => rows.filter((r) => Number(r.cancel_requested) !== 0).map((r) => r.id)
          )
        ),
      cancelRequests: (queue, owner) =>
        run(
          Effect.map(
            sql<{ readonly id: string }>`SELECT id FROM tasks
              WHERE queue = ${queue} AND status = 'running' AND owner = ${owner}
                AND cancel_requested = 1`,
            (rows) => rows.map((r) => r.id)
          )
        ),
      running: (queue) =>
        run(
          Effect.map(
            sql<TaskRow>`SELECT * FROM tasks WHERE queue = ${queue} AND status = 'running'`,
            (rows) => rows.map(fromRow)
          )
        ),
      apply: (writes) => run(sql.withTransaction(applyWrites(writes))),
      counts: (queue, now) =>
        run(
          Effect.map(
            sql<{
              readonly queued: number | null
              readonly delayed: number | null
              readonly running: number | null
            }>`SELECT
                (SELECT COUNT(*) FROM tasks WHERE queue = ${queue} AND status = 'queued')
                  AS queued,
                (SELECT COUNT(*) FROM tasks
                  WHERE queue = ${queue} AND status = 'queued' AND due_at > ${now}) AS delayed,
                (SELECT COUNT(*) FROM tasks WHERE queue = ${queue} AND status = 'running')
                  AS running`,
            (rows) => ({
              queued: Number(rows[0]?.queued ?? 0),
              delayed: Number(rows[0]?.delayed ?? 0),
              running: Number(rows[0]?.running ?? 0)
            })
          )
        )
    }

    /** Deletes finished tasks past the age or the count, a batch at a time. */
    /** Runs a delete of at most PRUNE_BATCH rows until one deletes fewer, yielding between. */
    const deleteInBatches = (
      statement: () => Effect.Effect<ReadonlyArray<unknown>, SqlError>
    ): Effect.Effect<void> =>
      Effect.flatMap(run(statement()), (deleted) =>
        deleted.length < PRUNE_BATCH
          ? Effect.void
          : Effect.zipRight(Effect.yieldNow(), deleteInBatches(statement))
      )

    const prune = Effect.suspend(() => {
      const oldest = clock.unsafeCurrentTimeMillis() - ttl
      return Effect.zipRight(
        deleteInBatches(
          () => sql`DELETE FROM tasks WHERE id IN (
              SELECT id FROM tasks WHERE finished_at IS NOT NULL AND finished_at < ${oldest}
              LIMIT ${PRUNE_BATCH}
            ) RETURNING id`
        ),
        deleteInBatches(
          () => sql`DELETE FROM tasks WHERE id IN (
              SELECT id FROM tasks WHERE finished_at IS NOT NULL
              ORDER BY finished_at DESC, id DESC LIMIT ${PRUNE_BATCH} OFFSET ${maxFinished}
            ) RETURNING id`
        )
      )
    })
    yield* prune.pipe(
      Effect.catchAllCause((cause) => Effect.logError("task store pruning failed", cause)),
      Effect.zipRight(Effect.sleep(pruneEvery)),
      Effect.forever,
      Effect.forkScoped,
      Effect.interruptible
    )

    const list = (query: ListQuery): Effect.Effect<TaskPage> => {
      const limit = Number.isFinite(query.limit)
        ? Math.max(1, Math.min(Math.floor(query.limit), MAX_PAGE))
        : DEFAULT_PAGE
      const after = query.cursor === undefined ? sql`` : sql`AND id > ${query.cursor}`
      const status = query.status === undefined ? sql`` : sql`AND status = ${query.status}`
      return run(
        Effect.map(
          sql<TaskRow>`SELECT * FROM tasks WHERE queue = ${query.queue} ${status} ${after}
            ORDER BY id LIMIT ${limit + 1}`,
          (rows) => {
            const items = rows.slice(0, limit).map(fromRow)
            return { items, next: rows.length > limit ? items[items.length - 1]!.id : undefined }
          }
        )
      )
    }

    return TaskStore.of({
      insert: (record) => run(insertRow(record, "null", undefined)),
      update: (record) =>
        run(
          sql`UPDATE tasks SET status = ${record.status}, attempt = ${record.attempt},
              started_at = ${record.startedAt ?? null}, finished_at = ${record.finishedAt ?? null},
              run_at = ${record.runAt ?? null}, due_at = ${record.runAt ?? record.createdAt},
              reason = ${record.reason ?? null},
              outcome = ${record.exit === undefined ? null : encodeOutcome(record, {})}
            WHERE id = ${record.id}`.pipe(Effect.asVoid)
        ),
      get: (id) => run(getRow(id)),
      findKey: (queue, key) => run(findKeyRow(queue, key)),
      list,
      durable
    })
  })

/**
 * The store as a layer, on the `SqlClient` the application provides.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<
  TaskStore,
  InvalidOption | SqlError | Migrator.MigrationError,
  SqlClient.SqlClient
> => Layer.scoped(TaskStore, make(options))
