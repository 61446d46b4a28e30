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
  }
>() {}

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
