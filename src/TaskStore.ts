/**
 * The store seam: where task records live, and the in-memory store.
 *
 * @since 0.1.0
 */
import { Context, Duration, Effect, Layer } from "effect"
import { IdIndex } from "./internal/idIndex.js"
import { isNonNegativeDuration, isObject, validate } from "./internal/options.js"
import type { InvalidOption } from "./TaskError.js"
import type { TaskRecord, TaskStatus } from "./Task.js"
import { isTerminal } from "./Task.js"

/**
 * A page of a listing: oldest task first, and the cursor of the next page
 * (`undefined` on the last page).
 *
 * @since 0.1.0
 * @category models
 */
export interface TaskPage {
  readonly items: ReadonlyArray<TaskRecord>
  readonly next: string | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ListQuery {
  readonly queue: string
  readonly status?: TaskStatus | undefined
  /** At most this many items; the store caps it at 1,000. */
  readonly limit: number
  /** The `next` cursor of the previous page. */
  readonly cursor?: string | undefined
}

/**
 * Where a queue keeps its task records. The queue calls `insert` when a task
 * is enqueued and `update` after each change of status.
 *
 * @since 0.1.0
 * @category services
 */
export class TaskStore extends Context.Tag("effect-task-queue/TaskStore")<
  TaskStore,
  {
    /**
     * Keeps a new task; done before `enqueue` returns. When the record has an
     * idempotency key that a kept task of the same queue already has, it keeps
     * nothing and returns that task.
     */
    readonly insert: (record: TaskRecord) => Effect.Effect<TaskRecord | undefined>
    /**
     * Keeps a change of a task: called when an attempt failed and the task
     * waits for its retry, and once when it reaches a terminal status.
     */
    readonly update: (record: TaskRecord) => Effect.Effect<void>
    readonly get: (id: string) => Effect.Effect<TaskRecord | undefined>
    /** The kept task of `queue` enqueued with this idempotency key, if any. */
    readonly findKey: (queue: string, key: string) => Effect.Effect<TaskRecord | undefined>
    readonly list: (query: ListQuery) => Effect.Effect<TaskPage>
    /**
     * Synchronous `insert` and `update`, for stores that keep records in this
     * process. The queue calls them on its hot path in place of the effects,
     * which saves an effect per task.
     */
    readonly unsafeInsert?: ((record: TaskRecord) => TaskRecord | undefined) | undefined
    readonly unsafeUpdate?: ((record: TaskRecord) => void) | undefined
    /**
     * Present on stores that keep tasks across restarts: queues then claim
     * their work from the store rather than keeping it in memory.
     */
    readonly durable?: Durable | undefined
  }
>() {}

/**
 * A task as a durable store keeps it: the record, with its payload and
 * outcome as JSON text, and its claim.
 *
 * @since 0.2.0
 * @category models
 */
export interface StoredTask extends TaskRecord {
  /** The payload, encoded by the queue's payload Schema, as JSON text. */
  readonly payload: string
  /** `{ "result": ... }` or `{ "error": ... }` as JSON text, once the task ended. */
  readonly outcome: string | undefined
  /** The instance (and boot) that claimed the task, while it runs. */
  readonly owner: string | undefined
  /** Until when the owner's claim holds unless renewed, in epoch milliseconds. */
  readonly leaseUntil: number | undefined
  /** The task's own timeout per attempt in milliseconds (0: none, where the queue has one). */
  readonly timeout: number | undefined
  /** When the task is next due: its `runAt`, else when it was enqueued. */
  readonly dueAt: number
  /** Whether a cancel was asked for by an instance that does not run it. */
  readonly cancelRequested: boolean
}

/**
 * A queue's change of a task it claimed, kept only while the claim is still
 * its own (owner and attempt unchanged): a late write from a lost claim is
 * refused. A task going back to queued whose cancel another process asked
 * for ends `cancelled` instead.
 *
 * @since 0.2.0
 * @category models
 */
export type Write =
  | {
      readonly _tag: "end"
      readonly id: string
      readonly owner: string
      readonly attempt: number
      readonly status: TaskStatus
      readonly finishedAt: number
      readonly outcome: string
      readonly reason: string | undefined
      /** Ended before it started (cancelled while claimed): the claim's attempt is given back. */
      readonly unstarted?: boolean | undefined
    }
  | {
      /**
       * Queued again after a failed attempt, due at `runAt`; without one, in
       * its old place (a claim of a stopped process taken back).
       */
      readonly _tag: "retry"
      readonly id: string
      readonly owner: string
      readonly attempt: number
      readonly at: number
      readonly runAt: number | undefined
    }
  | {
      /** Back to queued without counting the attempt: the claim is given up. */
      readonly _tag: "release"
      readonly id: string
      readonly owner: string
      readonly attempt: number
      readonly at: number
    }

/**
 * What a durable store does for the queues that claim from it. Every write
 * is durable when its effect succeeds.
 *
 * @since 0.2.0
 * @category models
 */
export interface Durable {
  /**
   * Keeps a new task with its encoded payload, in the caller's transaction
   * if it has one; or gives back the task that already holds its key.
   */
  readonly insert: (
    record: TaskRecord,
    payload: string,
    timeout: number | undefined
  ) => Effect.Effect<StoredTask | undefined>
  /**
   * One step of a queue's feeder, in one transaction: applies its writes,
   * then claims at most `claim` due tasks for `owner`.
   */
  readonly step: (input: {
    readonly queue: string
    readonly owner: string
    readonly now: number
    readonly leaseUntil: number
    readonly claim: number
    readonly writes: ReadonlyArray<Write>
  }) => Effect.Effect<{
    readonly claimed: ReadonlyArray<StoredTask>
    readonly refused: ReadonlyArray<Write>
  }>
  /** Applies writes in one transaction; gives back those refused. */
  readonly apply: (writes: ReadonlyArray<Write>) => Effect.Effect<ReadonlyArray<Write>>
  /** When the queue's next queued task is due, if it has one. */
  readonly nextDue: (queue: string) => Effect.Effect<number | undefined>
  /** Cancels a task that is queued; false when it is not (any more). */
  readonly cancelQueued: (id: string, now: number, outcome: string) => Effect.Effect<boolean>
  /** Asks the instance running a task to cancel it; false when it is not running. */
  readonly requestCancel: (id: string) => Effect.Effect<boolean>
  /** Extends the claims of `owner`; gives back the ids whose cancel was asked for. */
  readonly renew: (
    queue: string,
    owner: string,
    leaseUntil: number
  ) => Effect.Effect<ReadonlyArray<string>>
  /** The ids of the tasks `owner` runs whose cancel another process asked for. */
  readonly cancelRequests: (queue: string, owner: string) => Effect.Effect<ReadonlyArray<string>>
  /** The queue's running tasks, whoever runs them. */
  readonly running: (queue: string) => Effect.Effect<ReadonlyArray<StoredTask>>
  readonly counts: (
    queue: string,
    now: number
  ) => Effect.Effect<{
    readonly queued: number
    readonly delayed: number
    readonly running: number
  }>
}

/**
 * How long the in-memory store keeps finished tasks.
 *
 * @since 0.1.0
 * @category options
 */
export interface MemoryOptions {
  /** Finished tasks kept at most; the oldest go first. Default 10,000. */
  readonly maxFinished?: number | undefined
  /** Finished tasks are dropped this long after they finish. Default 1 hour. */
  readonly finishedTtl?: Duration.DurationInput | undefined
}

const MAX_PAGE = 1_000
const DEFAULT_PAGE = 100

/**
 * A store that keeps records in this process. Queued and running tasks are
 * always kept; finished ones within `maxFinished` and `finishedTtl`, checked
 * each time a task finishes or the store is read, so memory stays flat
 * however many tasks pass through.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory = (
  input: MemoryOptions = {}
): Effect.Effect<TaskStore["Type"], InvalidOption> =>
  Effect.gen(function* () {
    const options = yield* validate("options", input, "must be an object", isObject)
    const maxFinished = yield* validate(
      "maxFinished",
      options.maxFinished ?? 10_000,
      "must be a non-negative integer",
      (n) => Number.isSafeInteger(n) && n >= 0
    )
    const ttl = yield* validate(
      "finishedTtl",
      options.finishedTtl ?? "1 hour",
      "must be a non-negative duration",
      isNonNegativeDuration
    ).pipe(Effect.map((input) => Duration.toMillis(input)))
    const clock = yield* Effect.clock

    const records = new IdIndex<TaskRecord>()
    // Tasks by queue and idempotency key, for those enqueued with one.
    const keys = new Map<string, TaskRecord>()
    const keyOf = (record: TaskRecord) => `${record.queue}\u0000${record.idempotencyKey}`
    // Finished records in the order they finished: a queue read from `head`.
    let finished: Array<TaskRecord> = []
    let head = 0

    /** Drops the finished records past `maxFinished` or older than `now - ttl`. */
    const prune = (now: number) => {
      const oldest = now - ttl
      while (head < finished.length) {
        const record = finished[head]!
        if (finished.length - head <= maxFinished && record.finishedAt! > oldest) break
        records.remove(record.id)
        if (record.idempotencyKey !== undefined) keys.delete(keyOf(record))
        finished[head++] = undefined as never
      }
      if (head > 1024 && head * 2 > finished.length) {
        finished = finished.slice(head)
        head = 0
      }
    }

    const unsafeInsert = (record: TaskRecord): TaskRecord | undefined => {
      if (record.idempotencyKey !== undefined) {
        // A finished task past its time no longer holds its key.
        prune(clock.unsafeCurrentTimeMillis())
        const key = keyOf(record)
        const existing = keys.get(key)
        if (existing !== undefined) return existing
        keys.set(key, record)
      }
      records.add(record)
      return undefined
    }
    const unsafeUpdate = (record: TaskRecord) => {
      if (!isTerminal(record.status)) return
      finished.push(record)
      prune(record.finishedAt!)
    }

    return TaskStore.of({
      insert: (record) => Effect.sync(() => unsafeInsert(record)),
      update: (record) => Effect.sync(() => unsafeUpdate(record)),
      unsafeInsert,
      unsafeUpdate,
      get: (id) =>
        Effect.sync(() => {
          prune(clock.unsafeCurrentTimeMillis())
          return records.get(id)
        }),
      findKey: (queue, key) =>
        Effect.sync(() => {
          prune(clock.unsafeCurrentTimeMillis())
          return keys.get(`${queue}\u0000${key}`)
        }),
      list: (query) =>
        Effect.sync(() => {
          prune(clock.unsafeCurrentTimeMillis())
          const limit = Number.isFinite(query.limit)
            ? Math.max(1, Math.min(Math.floor(query.limit), MAX_PAGE))
            : DEFAULT_PAGE
          const items: Array<TaskRecord> = []
          let next: string | undefined
          for (const record of records.after(query.cursor)) {
            if (record.queue !== query.queue) continue
            if (query.status !== undefined && record.status !== query.status) continue
            if (items.length === limit) {
              next = items[items.length - 1]!.id
              break
            }
            items.push(record)
          }
          return { items, next }
        })
    })
  })

/**
 * The in-memory store as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options?: MemoryOptions): Layer.Layer<TaskStore, InvalidOption> =>
  Layer.effect(TaskStore, makeMemory(options))
