/**
 * What the SQL store says to the database: the migrations that make the
 * `tasks` table, the feeder's statements (SQLite's; what differs for
 * another dialect is kept together in `dialect`), and how a row is read
 * back.
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import type { TaskRow } from "../SqlTaskStore.js"
import type { TaskId, TaskStatus } from "../Task.js"
import type { StoredTask, Write } from "../TaskStore.js"
import { decodeOutcome } from "./outcome.js"

/** A task going back to queued whose cancel was asked for: it ends cancelled instead. */
const cancelAsked = "v.column4 = 'queued' AND tasks.cancel_requested = 1"
/** The outcome of a task cancelled on request, as the queue stores it. */
const CANCELLED = JSON.stringify({
  error: { kind: "interrupted", message: "cancelled on request", reason: "cancelled" }
})

const migrations = Migrator.fromRecord({
  "1_create_tasks": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.all([
      sql`CREATE TABLE tasks (
        id TEXT PRIMARY KEY NOT NULL,
        queue TEXT NOT NULL,
        status TEXT NOT NULL,
        payload TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        timeout_ms INTEGER,
        priority INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        due_at INTEGER NOT NULL,
        run_at INTEGER,
        started_at INTEGER,
        finished_at INTEGER,
        owner TEXT,
        lease_until INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        outcome TEXT,
        reason TEXT,
        idempotency_key TEXT
      )`,
      // The claim: the next due tasks of a queue, highest priority first.
      sql`CREATE INDEX tasks_claim ON tasks (queue, priority DESC, due_at, id)
        WHERE status = 'queued'`,
      sql`CREATE INDEX tasks_list ON tasks (queue, id)`,
      // The running tasks of a queue: counts, and claims of stopped processes
      // taken back. Partial, as the claim's: a task is in at most one of them
      // until it ends, so each change of status touches few index entries.
      sql`CREATE INDEX tasks_running ON tasks (queue) WHERE status = 'running'`,
      sql`CREATE INDEX tasks_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL`,
      sql`CREATE UNIQUE INDEX tasks_key ON tasks (queue, idempotency_key)
        WHERE idempotency_key IS NOT NULL`
    ])
  )
})

export const runMigrations = Migrator.make({})({
  loader: migrations,
  table: "task_queue_migrations"
})

const orUndefined = <A>(value: A | null): A | undefined => (value === null ? undefined : value)

const STATUSES: ReadonlySet<string> = new Set([
  "queued",
  "running",
  "succeeded",
  "failed",
  "cancelled"
])

/** A number of a row, or `fallback` where a row written past the store holds something else. */
const numberOr = (value: unknown, fallback: number): number => {
  const n = Number(value)
  return Number.isFinite(n) && Math.abs(n) <= 8.64e15 ? n : fallback
}
const timeOrUndefined = (value: unknown): number | undefined =>
  value === null || value === undefined ? undefined : numberOr(value, Number.NaN)

/**
 * A row as the queue reads it. A row written past the store may hold
 * anything: a status that is none of the five reads as `failed` with an
 * outcome that says so, and numbers that are not numbers read as defaults,
 * so that reading and listing such a row never fails.
 */
export const fromRow = (row: TaskRow): StoredTask => {
  const known = STATUSES.has(row.status)
  const status = (known ? row.status : "failed") as TaskStatus
  const outcome = known
    ? orUndefined(row.outcome)
    : JSON.stringify({
        error: {
          kind: "defect",
          message: `the stored status ${JSON.stringify(row.status)} is unknown`
        }
      })
  return {
    id: row.id as TaskId,
    queue: row.queue,
    status,
    attempt: numberOr(row.attempt, 0),
    createdAt: numberOr(row.created_at, 0),
    startedAt: timeOrUndefined(row.started_at),
    finishedAt: timeOrUndefined(row.finished_at),
    // Read without the queue's Schemas: a durable queue reads `outcome` again with them.
    exit: decodeOutcome(status, outcome, {}),
    reason: orUndefined(row.reason),
    priority: numberOr(row.priority, 0),
    runAt: timeOrUndefined(row.run_at),
    maxAttempts: numberOr(row.max_attempts, 1),
    idempotencyKey: orUndefined(row.idempotency_key),
    payload: row.payload,
    outcome,
    owner: orUndefined(row.owner),
    leaseUntil: orUndefined(row.lease_until),
    timeout: orUndefined(row.timeout_ms),
    dueAt: numberOr(row.due_at, 0),
    cancelRequested: Number(row.cancel_requested) !== 0
  }
}

/** Orders claimed rows as the claim picked them: priority, then due time, then id. */
export const claimOrder = (a: StoredTask, b: StoredTask) =>
  b.priority - a.priority || a.dueAt - b.dueAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

/** The message of the innermost cause of an error. */
export const rootMessage = (error: unknown): string => {
  let message = String(error)
  for (let e = error, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    const text = (e as { readonly message?: unknown }).message
    if (typeof text === "string" && text !== "") message = text
    e = (e as { readonly cause?: unknown }).cause
  }
  return message
}

/**
 * Whether a statement found the file locked by another connection, so that
 * trying again later can succeed. Not SQLITE_BUSY_SNAPSHOT: a transaction
 * that read before another connection wrote can never write; only the whole
 * transaction, begun again, can.
 */
export const isBusy = (error: SqlError): boolean => {
  const cause = error.cause as { readonly code?: unknown } | undefined
  const code = typeof cause?.code === "string" ? cause.code : ""
  return (
    (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) &&
    code !== "SQLITE_BUSY_SNAPSHOT"
  )
}

/**
 * How long SQLite itself waits for a lock, in milliseconds. better-sqlite3
 * waits on the main thread, so a long wait would stall every fiber and the
 * HTTP server: it waits briefly, and the store tries again asynchronously.
 */
export const BUSY_TIMEOUT = 10

/**
 * The feeder's statements, as text for the transaction's own connection:
 * they run thousands of times a second, so they skip the statement
 * compiler and the span per statement. SQLite's; PostgreSQL's will differ
 * in placeholders, `VALUES` column names and `FOR UPDATE SKIP LOCKED`.
 */
export const dialect = {
  /** Claims the next due tasks of a queue, at most `limit`: one statement. */
  claim: `UPDATE tasks
    SET status = 'running', owner = ?, lease_until = ?, attempt = attempt + 1,
      started_at = ?, run_at = NULL
    WHERE id IN (
      SELECT id FROM tasks
      WHERE queue = ? AND status = 'queued' AND due_at <= ?
      ORDER BY priority DESC, due_at, id LIMIT ?
    )
    RETURNING *`,
  /**
   * Applies `n` writes in one statement, each a compare-and-set on id,
   * owner and attempt; gives back the ids it changed. The columns of
   * each row are `writeParams`'.
   */
  writes: (n: number) => `UPDATE tasks
    SET status = CASE WHEN ${cancelAsked} THEN 'cancelled' ELSE v.column4 END,
      attempt = tasks.attempt - v.column5,
      started_at = CASE WHEN v.column5 = 1 AND tasks.attempt = 1 THEN NULL
        ELSE tasks.started_at END,
      finished_at = CASE WHEN ${cancelAsked} THEN v.column6 ELSE v.column7 END,
      outcome = CASE WHEN ${cancelAsked} THEN '${CANCELLED}' ELSE v.column8 END,
      reason = CASE WHEN ${cancelAsked} THEN 'cancelled' ELSE v.column9 END,
      due_at = COALESCE(v.column10, tasks.due_at),
      run_at = CASE WHEN ${cancelAsked} THEN NULL ELSE v.column11 END,
      owner = NULL, lease_until = NULL
    FROM (VALUES ${Array.from({ length: n }, () => "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)").join(", ")}) AS v
    WHERE tasks.id = v.column1 AND COALESCE(tasks.owner, '') = v.column2
      AND tasks.attempt = v.column3
      AND tasks.status = 'running'
    RETURNING tasks.id AS id`
}

/**
 * A write's row of `VALUES`: id, owner, attempt, status, uncount (1 gives
 * the attempt back), at (when it is written), finished_at, outcome,
 * reason, due_at (`NULL` keeps it), run_at.
 */
export const writeParams = (write: Write): Array<unknown> => {
  switch (write._tag) {
    case "end":
      return [
        write.id,
        write.owner,
        write.attempt,
        write.status,
        write.unstarted === true ? 1 : 0,
        write.finishedAt,
        write.finishedAt,
        write.outcome,
        write.reason ?? null,
        null,
        null
      ]
    case "retry":
      return [
        write.id,
        write.owner,
        write.attempt,
        "queued",
        0,
        write.at,
        null,
        null,
        null,
        write.runAt ?? null,
        write.runAt ?? null
      ]
    case "release":
      return [
        write.id,
        write.owner,
        write.attempt,
        "queued",
        1,
        write.at,
        null,
        null,
        null,
        null,
        null
      ]
  }
}
