/**
 * Case 5, the durable SQLite store, for one `--impl`, on a fresh SQLite file
 * of its own (WAL, `synchronous = NORMAL`) that is removed at the end:
 *
 * - `task-queue`: this library, `TaskQueue.make` with a `payload` Schema on
 *   `SqlTaskStore.layer()` over `SqliteClient.layer` (@effect/sql-sqlite-node);
 * - `raw`: a minimal queue written here directly on better-sqlite3, doing the
 *   same durable work (the floor for SQLite);
 * - `raw-table`: the same minimal queue on the library's own `tasks` table
 *   (made by the library's migrations) with the library's statements (its
 *   insert columns, its claim, its completions in one statement per step):
 *   what SQLite costs the library's table and statements, without the rest of
 *   the library.
 *
 * Four figures, one after the other on the same file:
 *
 * 1. `--one` enqueues one at a time, each its own commit, the queue paused;
 * 2. `--batch` enqueues in transactions of `--batch-size`, still paused;
 * 3. the file is topped up (untimed) to `--tasks` queued tasks, then the
 *    queue runs them at `--workers` from resume to the last completion
 *    committed; every row must then say `succeeded`;
 * 4. on the idle queue, `--samples` single enqueues, each timed from the
 *    enqueue call to the start of its handler and waited to completion.
 */
import { SqliteClient } from "@effect/sql-sqlite-node"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Statement } from "better-sqlite3"
import Database from "better-sqlite3"
import { Deferred, Effect, Exit, Layer, Logger, LogLevel, Schema } from "effect"
import type { TaskStore } from "effect-task-queue"
import { TaskQueue } from "effect-task-queue"
import * as SqlTaskStore from "effect-task-queue/SqlTaskStore"
import { mkdtempSync, rmSync } from "node:fs"
import os from "node:os"
import path from "node:path"
import { emitResult, intOption, option, requiredOption, runMain, settleHeap } from "../lib/child.js"
import type { Breakdown } from "../lib/profile.js"
import { startProfile } from "../lib/profile.js"
import { percentileOfSorted } from "../lib/stats.js"
// Not exported by the package: the store's migrations and statement texts, as it runs them.
import { dialect, runMigrations, writeParams } from "../../src/internal/sqlTable.js"

const impl = requiredOption("impl")
const one = intOption("one")
const batch = intOption("batch")
const batchSize = intOption("batch-size")
const tasks = intOption("tasks")
const workers = intOption("workers")
const samples = intOption("samples")
/** With `--profile=true`, a CPU profile covers the processing stretch. */
const profiling = option("profile") === "true"
const processing = {
  breakdown: undefined as Breakdown | undefined,
  stop: async () => {},
  start: async () => {
    if (!profiling) return
    const profile = await startProfile()
    processing.stop = async () => {
      processing.breakdown = await profile.stop()
    }
  }
}

/** Latency samples taken first and discarded. */
const WARM_UP = 50
const QUEUE = "bench"
/** How long a claim holds, as the library's default. */
const LEASE_MS = 30_000

if (tasks < one + batch) throw new Error("--tasks must cover the --one and --batch enqueues")

interface Outcome {
  readonly enqueueOneMs: number
  readonly enqueueBatchMs: number
  readonly processMs: number
  /** Enqueue-to-start latencies of the kept samples, in milliseconds. */
  readonly latencies: Float64Array
  /** Rows of the queue that say `succeeded` once processing has ended. */
  readonly succeeded: number
  /** Handler starts during processing: each task exactly once. */
  readonly handled: number
  readonly journalMode: string
  readonly synchronous: number
}

/** The payloads `from` .. `from + count - 1`, cut in batches of `batchSize`. */
const batches = (from: number, count: number): Array<Array<number>> => {
  const out: Array<Array<number>> = []
  for (let at = from; at < from + count; at += batchSize) {
    const size = Math.min(batchSize, from + count - at)
    out.push(Array.from({ length: size }, (_, i) => at + i))
  }
  return out
}

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------
// This library.

const taskQueue = (filename: string): Promise<Outcome> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    let onStart: () => void = () => {}
    const queue = yield* TaskQueue.make({
      name: QUEUE,
      maxWorkers: workers,
      payload: Schema.Number,
      handler: (_n: number) => Effect.sync(() => onStart())
    })
    const enqueueBatch = (payloads: ReadonlyArray<number>) =>
      sql.withTransaction(Effect.forEach(payloads, (n) => queue.enqueue(n), { discard: true }))

    yield* queue.pause
    yield* Effect.promise(settleHeap)
    let start = performance.now()
    for (let i = 0; i < one; i++) yield* queue.enqueue(i)
    const enqueueOneMs = performance.now() - start

    yield* Effect.promise(settleHeap)
    start = performance.now()
    for (const payloads of batches(one, batch)) yield* enqueueBatch(payloads)
    const enqueueBatchMs = performance.now() - start

    for (const payloads of batches(one + batch, tasks - one - batch)) {
      yield* enqueueBatch(payloads)
    }
    let handled = 0
    const allStarted = yield* Deferred.make<void>()
    onStart = () => {
      handled += 1
      if (handled === tasks) Deferred.unsafeDone(allStarted, Exit.void)
    }
    yield* Effect.promise(settleHeap)
    yield* Effect.promise(processing.start)
    start = performance.now()
    yield* queue.resume
    yield* Deferred.await(allStarted)
    yield* queue.awaitIdle
    const processMs = performance.now() - start
    yield* Effect.promise(processing.stop)
    const count = yield* sql<{ readonly n: number | bigint }>`SELECT COUNT(*) AS n FROM tasks
      WHERE queue = ${QUEUE} AND status = 'succeeded'`
    const succeeded = Number(count[0]?.n ?? 0)

    let startedAt = 0
    onStart = () => {
      startedAt = performance.now()
    }
    const latencies = new Float64Array(samples)
    for (let i = 0; i < WARM_UP + samples; i++) {
      yield* Effect.sleep("1 millis")
      const enqueuedAt = performance.now()
      const handle = yield* queue.enqueue(tasks + i)
      const exit = yield* handle.await
      if (Exit.isFailure(exit) || startedAt < enqueuedAt) {
        return yield* Effect.dieMessage(`latency sample ${i}: the task did not run as expected`)
      }
      if (i >= WARM_UP) latencies[i - WARM_UP] = startedAt - enqueuedAt
    }

    const journal = yield* sql<{ readonly journal_mode: string }>`PRAGMA journal_mode`
    const sync = yield* sql<{ readonly synchronous: number | bigint }>`PRAGMA synchronous`
    return {
      enqueueOneMs,
      enqueueBatchMs,
      processMs,
      latencies,
      succeeded,
      handled,
      journalMode: String(journal[0]?.journal_mode),
      synchronous: Number(sync[0]?.synchronous)
    }
  }).pipe(
    Effect.scoped,
    Effect.provide(SqlTaskStore.layer().pipe(Layer.provideMerge(SqliteClient.layer({ filename })))),
    Logger.withMinimumLogLevel(LogLevel.Warning),
    Effect.runPromise
  )

// ---------------------------------------------------------------------------
// A minimal durable queue on better-sqlite3: on a table of its own (`raw`), or
// on the library's table with the library's statements (`raw-table`).

interface ClaimedRow {
  readonly id: string
  readonly attempt: number
  readonly payload: string
}

interface Completion {
  readonly id: string
  readonly attempt: number
  readonly status: "succeeded" | "failed"
  /** The handler's value or error as the table keeps it (JSON text). */
  readonly result: string
  readonly finishedAt: number
}

/** What a RawQueue says to its table: the statements, prepared once on its connection. */
interface RawStatements {
  /** Writes one new task, queued and due at `now`. */
  readonly insert: (id: string, payload: string, now: number) => void
  /** Marks at most `limit` due tasks running for `owner`, highest priority first. */
  readonly claim: (
    owner: string,
    leaseUntil: number,
    now: number,
    limit: number
  ) => ReadonlyArray<ClaimedRow>
  /**
   * Writes completions, each a compare-and-set on id, owner and attempt;
   * gives back how many were refused.
   */
  readonly complete: (owner: string, done: ReadonlyArray<Completion>) => number
  /** A handler's value (`succeeded`) or error (`failed`) as the table keeps it. */
  readonly result: (status: Completion["status"], value: unknown) => string
}

/** Where a RawQueue keeps its tasks: how the file gets its table, and the statements on it. */
interface RawTable {
  /** Runs before the queue opens the file: makes the table on a connection of its own, if it does. */
  readonly beforeOpen: (filename: string) => Promise<void>
  /** Run on the queue's connection once its PRAGMAs are set. */
  readonly schema: ReadonlyArray<string>
  readonly prepare: (db: Database) => RawStatements
}

/** `raw`: a table with the columns the queue needs and one index, which serves the claim. */
const minimalTable: RawTable = {
  beforeOpen: async () => {},
  schema: [
    `CREATE TABLE tasks (
      id TEXT PRIMARY KEY NOT NULL,
      queue TEXT NOT NULL,
      status TEXT NOT NULL,
      payload TEXT NOT NULL,
      attempt INTEGER NOT NULL DEFAULT 0,
      priority INTEGER NOT NULL DEFAULT 0,
      due_at INTEGER NOT NULL,
      owner TEXT,
      lease_until INTEGER,
      result TEXT,
      finished_at INTEGER
    )`,
    `CREATE INDEX tasks_claim ON tasks (queue, priority DESC, due_at, id) WHERE status = 'queued'`
  ],
  prepare: (db) => {
    const insert = db.prepare(
      "INSERT INTO tasks (id, queue, status, payload, priority, due_at) VALUES (?, ?, 'queued', ?, 0, ?)"
    )
    const claim = db.prepare(
      `UPDATE tasks SET status = 'running', owner = ?, lease_until = ?, attempt = attempt + 1
      WHERE id IN (
        SELECT id FROM tasks WHERE queue = ? AND status = 'queued' AND due_at <= ?
        ORDER BY priority DESC, due_at, id LIMIT ?
      )
      RETURNING id, attempt, payload`
    )
    const complete = db.prepare(
      `UPDATE tasks SET status = ?, result = ?, finished_at = ?, owner = NULL, lease_until = NULL
      WHERE id = ? AND owner = ? AND attempt = ? AND status = 'running'`
    )
    return {
      insert: (id, payload, now) => {
        insert.run(id, QUEUE, payload, now)
      },
      claim: (owner, leaseUntil, now, limit) =>
        claim.all(owner, leaseUntil, QUEUE, now, limit) as Array<ClaimedRow>,
      complete: (owner, done) => {
        let refused = 0
        for (const c of done) {
          const { changes } = complete.run(c.status, c.result, c.finishedAt, c.id, owner, c.attempt)
          if (changes !== 1) refused += 1
        }
        return refused
      },
      result: (status, value) =>
        status === "succeeded" ? JSON.stringify(value ?? null) : JSON.stringify(String(value))
    }
  }
}

/** Rows per statement of completions at most, as the library's store. */
const MAX_WRITES = 200

/**
 * `raw-table`: the library's `tasks` table, made by its migrations, and its
 * statements: its claim, and its completions, one statement per step.
 */
const libraryTable: RawTable = {
  beforeOpen: (filename) =>
    runMigrations.pipe(
      Effect.provide(SqliteClient.layer({ filename })),
      Logger.withMinimumLogLevel(LogLevel.Warning),
      Effect.asVoid,
      Effect.runPromise
    ),
  schema: [],
  prepare: (db) => {
    const insert = db.prepare(
      `INSERT INTO tasks (id, queue, status, payload, attempt, max_attempts, priority,
        created_at, due_at)
      VALUES (?, ?, 'queued', ?, 0, 3, 0, ?, ?)`
    )
    const claim = db.prepare(dialect.claim)
    /** The statement for `n` completions, prepared the first time a step has `n`. */
    const writes = new Map<number, Statement>()
    const writesOf = (n: number) => {
      let statement = writes.get(n)
      if (statement === undefined) {
        statement = db.prepare(dialect.writes(n))
        writes.set(n, statement)
      }
      return statement
    }
    return {
      insert: (id, payload, now) => {
        insert.run(id, QUEUE, payload, now, now)
      },
      claim: (owner, leaseUntil, now, limit) =>
        claim.all(owner, leaseUntil, now, QUEUE, now, limit) as Array<ClaimedRow>,
      complete: (owner, done) => {
        const took = new Set<string>()
        for (let from = 0; from < done.length; from += MAX_WRITES) {
          const batch = done.slice(from, from + MAX_WRITES).map((c): TaskStore.Write => ({
            _tag: "end",
            id: c.id,
            owner,
            attempt: c.attempt,
            status: c.status,
            finishedAt: c.finishedAt,
            outcome: c.result,
            reason: undefined
          }))
          const rows = writesOf(batch.length).all(...batch.flatMap(writeParams)) as Array<{
            readonly id: string
          }>
          for (const row of rows) took.add(row.id)
        }
        let refused = 0
        for (const c of done) if (!took.has(c.id)) refused += 1
        return refused
      },
      result: (status, value) =>
        status === "succeeded"
          ? JSON.stringify({ result: value ?? null })
          : JSON.stringify({ error: { kind: "defect", message: String(value) } })
    }
  }
}

/** Ids that sort by creation: milliseconds and a counter, 26 characters as the library's. */
const makeIds = () => {
  let counter = 0
  return () =>
    Date.now().toString(36).padStart(10, "0") + (counter++).toString(36).padStart(16, "0")
}

/**
 * Tasks are rows of `table`; a step is one transaction that writes the
 * completions of the tasks that ended since the last step (each a
 * compare-and-set on id, owner and attempt) and claims up to
 * `workers - claimed` due tasks, highest priority first, marking them
 * running with this owner and a lease. Claimed tasks run their (promise)
 * handler at once; a completion or an enqueue asks for a step, which runs on
 * the next `setImmediate` turn, so the event loop gets its turn between
 * batches.
 */
class RawQueue {
  private readonly owner = `${os.hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 10)}`
  private readonly nextId = makeIds()
  private readonly statements: RawStatements
  private readonly insertMany
  private readonly step
  private paused = true
  private scheduled = false
  /** Claimed here and not yet ended. */
  private claimed = 0
  private completions: Array<Completion> = []
  private readonly waiters = new Map<string, () => void>()
  /** Completions committed, and those the store refused (a lost claim: none expected). */
  committed = 0
  refused = 0
  /** Called after each step that committed completions. */
  onCommit: () => void = () => {}

  constructor(
    db: Database,
    table: RawTable,
    private readonly workers: number,
    private readonly handler: (payload: unknown) => Promise<unknown>
  ) {
    const statements = table.prepare(db)
    this.statements = statements
    this.insertMany = db.transaction((payloads: ReadonlyArray<unknown>) => {
      const now = Date.now()
      return payloads.map((payload) => {
        const id = this.nextId()
        statements.insert(id, JSON.stringify(payload), now)
        return id
      })
    })
    this.step = db.transaction(
      (done: ReadonlyArray<Completion>, free: number, now: number): ReadonlyArray<ClaimedRow> => {
        if (done.length > 0) this.refused += statements.complete(this.owner, done)
        if (free <= 0) return []
        return statements.claim(this.owner, now + LEASE_MS, now, free)
      }
    )
  }

  /** One task, its own commit. */
  enqueue(payload: unknown): string {
    const id = this.nextId()
    this.statements.insert(id, JSON.stringify(payload), Date.now())
    this.wake()
    return id
  }

  /** Several tasks in one transaction. */
  enqueueAll(payloads: ReadonlyArray<unknown>): Array<string> {
    const ids = this.insertMany(payloads)
    this.wake()
    return ids
  }

  pause(): void {
    this.paused = true
  }

  resume(): void {
    this.paused = false
    this.wake()
  }

  /** Resolves once the task's completion is committed. */
  awaitTask(id: string): Promise<void> {
    return new Promise((resolve) => this.waiters.set(id, resolve))
  }

  private wake(): void {
    if (this.scheduled || this.paused) return
    this.scheduled = true
    setImmediate(this.runStep)
  }

  private readonly runStep = (): void => {
    this.scheduled = false
    const free = this.paused ? 0 : this.workers - this.claimed
    if (free <= 0 && this.completions.length === 0) return
    const done = this.completions
    this.completions = []
    const rows = this.step(done, free, Date.now())
    if (done.length > 0) {
      this.committed += done.length
      for (const c of done) {
        const waiter = this.waiters.get(c.id)
        if (waiter !== undefined) {
          this.waiters.delete(c.id)
          waiter()
        }
      }
      this.onCommit()
    }
    this.claimed += rows.length
    for (const row of rows) this.run(row)
    // A full claim: there may be more due tasks.
    if (rows.length > 0 && rows.length === free) this.wake()
  }

  private run(row: ClaimedRow): void {
    const finish = (status: Completion["status"], value: unknown) => {
      this.claimed -= 1
      this.completions.push({
        id: row.id,
        attempt: row.attempt,
        status,
        result: this.statements.result(status, value),
        finishedAt: Date.now()
      })
      this.wake()
    }
    let started: Promise<unknown>
    try {
      started = this.handler(JSON.parse(row.payload))
    } catch (error) {
      started = Promise.reject(error)
    }
    started.then(
      (value) => finish("succeeded", value),
      (error: unknown) => finish("failed", error)
    )
  }
}

/** A RawQueue on `table`, through the four figures. */
const rawOn =
  (table: RawTable) =>
  async (filename: string): Promise<Outcome> => {
    await table.beforeOpen(filename)
    const db = new Database(filename)
    try {
      db.pragma("journal_mode = WAL")
      db.pragma("synchronous = NORMAL")
      db.pragma("busy_timeout = 5000")
      for (const statement of table.schema) db.exec(statement)

      let onStart: () => void = () => {}
      const queue = new RawQueue(db, table, workers, async () => {
        onStart()
      })

      queue.pause()
      await settleHeap()
      let start = performance.now()
      for (let i = 0; i < one; i++) queue.enqueue(i)
      const enqueueOneMs = performance.now() - start

      await settleHeap()
      start = performance.now()
      for (const payloads of batches(one, batch)) queue.enqueueAll(payloads)
      const enqueueBatchMs = performance.now() - start

      for (const payloads of batches(one + batch, tasks - one - batch)) queue.enqueueAll(payloads)
      let handled = 0
      onStart = () => {
        handled += 1
      }
      const allCommitted = new Promise<void>((resolve) => {
        queue.onCommit = () => {
          if (queue.committed >= tasks) resolve()
        }
      })
      await settleHeap()
      await processing.start()
      start = performance.now()
      queue.resume()
      await allCommitted
      const processMs = performance.now() - start
      await processing.stop()
      queue.onCommit = () => {}
      const count = db
        .prepare("SELECT COUNT(*) AS n FROM tasks WHERE queue = ? AND status = 'succeeded'")
        .get(QUEUE) as { readonly n: number }
      if (queue.refused > 0) throw new Error(`${queue.refused} completions were refused`)

      let startedAt = 0
      onStart = () => {
        startedAt = performance.now()
      }
      const latencies = new Float64Array(samples)
      for (let i = 0; i < WARM_UP + samples; i++) {
        await pause(1)
        const enqueuedAt = performance.now()
        const id = queue.enqueue(tasks + i)
        await queue.awaitTask(id)
        if (startedAt < enqueuedAt) throw new Error(`latency sample ${i}: the task did not run`)
        if (i >= WARM_UP) latencies[i - WARM_UP] = startedAt - enqueuedAt
      }

      return {
        enqueueOneMs,
        enqueueBatchMs,
        processMs,
        latencies,
        succeeded: count.n,
        handled,
        journalMode: String(db.pragma("journal_mode", { simple: true })),
        synchronous: Number(db.pragma("synchronous", { simple: true }))
      }
    } finally {
      db.close()
    }
  }

const impls: Record<string, (filename: string) => Promise<Outcome>> = {
  "task-queue": taskQueue,
  raw: rawOn(minimalTable),
  "raw-table": rawOn(libraryTable)
}

/** `PRAGMA synchronous` reads 1 for NORMAL. */
const NORMAL = 1

/** The processing profile as microseconds per task in each category, when there is one. */
const breakdownFigures = (ms: number) => {
  const b = processing.breakdown
  if (b === undefined) return {}
  const usPerTask = (ms * 1000) / tasks
  return {
    usPerTask,
    sqliteUs: b.sqlite * usPerTask,
    sqlUs: b.sql * usPerTask,
    effectUs: b.effect * usPerTask,
    libraryUs: b.library * usPerTask,
    gcUs: b.gc * usPerTask,
    otherUs: b.other * usPerTask
  }
}

runMain(async () => {
  const run = impls[impl]
  if (run === undefined) throw new Error(`unknown --impl=${impl}`)
  const dir = mkdtempSync(path.join(os.tmpdir(), "task-queue-bench-"))
  let outcome: Outcome
  try {
    outcome = await run(path.join(dir, "tasks.db"))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  if (outcome.succeeded !== tasks || outcome.handled !== tasks) {
    throw new Error(
      `expected ${tasks} tasks run once and succeeded; ` +
        `${outcome.handled} handler starts, ${outcome.succeeded} rows succeeded`
    )
  }
  if (outcome.journalMode !== "wal" || outcome.synchronous !== NORMAL) {
    throw new Error(
      `expected WAL and synchronous NORMAL, got ${outcome.journalMode}, ${outcome.synchronous}`
    )
  }
  const times = outcome.latencies.sort()
  const us = (ms: number) => ms * 1000
  let total = 0
  for (const t of times) total += t
  emitResult({
    impl,
    one,
    batch,
    batchSize,
    tasks,
    workers,
    samples,
    enqueueOnePerSec: (one / outcome.enqueueOneMs) * 1000,
    enqueueBatchPerSec: (batch / outcome.enqueueBatchMs) * 1000,
    processPerSec: (tasks / outcome.processMs) * 1000,
    processMs: outcome.processMs,
    p50us: us(percentileOfSorted(times, 50)),
    p99us: us(percentileOfSorted(times, 99)),
    meanus: us(total / samples),
    maxus: us(times[times.length - 1]!),
    succeeded: outcome.succeeded,
    ...breakdownFigures(outcome.processMs),
    journalMode: outcome.journalMode,
    synchronous: outcome.synchronous
  })
})
