/**
 * What both engines share: the ready queue of tokens with the lanes that say
 * which task each token runs, the `Semaphore(maxWorkers)` and the workers
 * holding its permits, the drain fiber's step, pause/resume/resize, a
 * shutdown that runs once, and the reads and the cancel of a running task
 * that do not depend on where tasks are kept.
 */
import type { Cause, Scope } from "effect"
import { Deferred, Effect, Exit, Fiber, FiberSet, Option, Queue } from "effect"
import type { TaskRecord, TaskStatus } from "../Task.js"
import * as Task from "../Task.js"
import type { InvalidOption } from "../TaskError.js"
import { TaskFinished, TaskNotFound } from "../TaskError.js"
import type { Page } from "../TaskQueue.js"
import type { TaskStore } from "../TaskStore.js"
import type { Entry } from "./entry.js"
import { isPositiveInteger, validate } from "./options.js"
import { ReadyLanes } from "./ready.js"
import type { Host } from "./worker.js"
import { work } from "./worker.js"

/** What the ready queue carries: one token per ready task; the lanes say which runs. */
export const TOKEN = true

export interface Pool {
  readonly ready: Queue.Queue<typeof TOKEN>
  readonly lanes: ReadyLanes<Entry>
  readonly workers: FiberSet.FiberSet<void>
  /** Workers running, each holding a permit. */
  live: number
  paused: boolean
  maxWorkers: number
  /** Makes a task ready: at the back of its lane, with its token. */
  readonly push: (entry: Entry) => void
  /** Puts a task taken too late back at the front of its lane, with its token. */
  readonly putBack: (entry: Entry) => void
  /**
   * Called after each token offered (a task made ready, put back, or a token
   * the drain fiber gives back): a durable queue wakes a waiting worker.
   */
  onToken: () => void
  /** Whether a token waits in the ready queue, with no taker before it. */
  readonly hasToken: () => boolean
  /**
   * One step of the drain fiber: a permit, then a token, then a worker
   * forked with the permit, which it gives back when it ends, however it ends.
   */
  readonly drainStep: <R>(host: Host<R>) => Effect.Effect<void, never, R>
  readonly pause: Effect.Effect<void>
  /** `onChange` runs once the new state is set: a durable queue's feeder wakes. */
  readonly resume: (onChange: () => void) => Effect.Effect<void>
  readonly resize: (n: number, onChange: () => void) => Effect.Effect<void, InvalidOption>
}

export const makePool = (maxWorkers: number): Effect.Effect<Pool, never, Scope.Scope> =>
  Effect.gen(function* () {
    const ready = yield* Queue.unbounded<typeof TOKEN>()
    const lanes = new ReadyLanes<Entry>()
    const permits = yield* Effect.makeSemaphore(maxWorkers)
    const gate = yield* Effect.makeLatch(true)
    const workers = yield* FiberSet.make<void>()

    const release = Effect.suspend(() => {
      pool.live -= 1
      return permits.release(1)
    })

    const pool: Pool = {
      ready,
      lanes,
      workers,
      live: 0,
      paused: false,
      maxWorkers,
      push: (entry) => {
        lanes.push(entry, entry.priority)
        Queue.unsafeOffer(ready, TOKEN)
        pool.onToken()
      },
      putBack: (entry) => {
        lanes.unshift(entry, entry.priority)
        Queue.unsafeOffer(ready, TOKEN)
        pool.onToken()
      },
      onToken: () => {},
      hasToken: () => Option.getOrElse(ready.unsafeSize(), () => 0) > 0,
      drainStep: <R>(host: Host<R>) =>
        Effect.uninterruptibleMask((restore) =>
          restore(gate.await).pipe(
            Effect.zipRight(restore(permits.take(1))),
            Effect.zipRight(
              restore(Queue.take(ready)).pipe(Effect.onInterrupt(() => permits.release(1)))
            ),
            Effect.flatMap((): Effect.Effect<unknown, never, R> => {
              if (pool.paused || pool.live >= pool.maxWorkers) {
                // Paused, or resized down, while this waited: the token goes
                // back for when work resumes or a permit is free under the new limit.
                Queue.unsafeOffer(ready, TOKEN)
                pool.onToken()
                return permits.release(1)
              }
              const first = lanes.shift()
              if (first === undefined) return permits.release(1)
              pool.live += 1
              return FiberSet.run(workers, Effect.ensuring(work(host, first), release))
            }),
            Effect.asVoid
          )
        ),
      pause: Effect.zipRight(
        Effect.sync(() => {
          pool.paused = true
        }),
        gate.close
      ),
      resume: (onChange) =>
        Effect.zipRight(
          Effect.sync(() => {
            pool.paused = false
            onChange()
          }),
          gate.open
        ),
      resize: (n, onChange) =>
        Effect.flatMap(
          validate("maxWorkers", n, "must be a positive integer", isPositiveInteger),
          (n) =>
            Effect.suspend(() => {
              pool.maxWorkers = n
              onChange()
              return permits.resize(n)
            })
        )
    }
    return pool
  })

/** Logs a background loop's failure with its Cause and goes on. */
export const logFailure =
  (queue: string, what: string) =>
  (cause: Cause.Cause<unknown>): Effect.Effect<void> =>
    Effect.logError(`task queue ${what} failed`, cause).pipe(Effect.annotateLogs({ queue }))

/**
 * Shutting down, done once: by a call or by the scope's close, whichever
 * comes first; the other waits for it to be over. The steps run on a fiber
 * of their own, so that a caller that is interrupted (a handler of this very
 * queue, at the grace's end) or stops waiting leaves them to finish.
 */
export const once = (steps: Effect.Effect<void>): Effect.Effect<Effect.Effect<void>> =>
  Effect.map(Deferred.make<void>(), (closed) => {
    let closing = false
    return Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        const done = restore(Deferred.await(closed))
        if (closing) return done
        closing = true
        const run = Effect.ensuring(steps, Deferred.done(closed, Exit.void))
        return Effect.zipRight(Effect.forkDaemon(run), done)
      })
    )
  })

/** A task of this queue in the store, or `TaskNotFound` (also for another queue's task). */
export const lookupIn =
  (store: TaskStore["Type"], queue: string) =>
  (id: string): Effect.Effect<TaskRecord, TaskNotFound> =>
    Effect.flatMap(store.get(id), (record) =>
      record === undefined || record.queue !== queue
        ? Effect.fail(TaskNotFound.of(id))
        : Effect.succeed(record)
    )

/** A page of this queue's tasks, each record read with `read`. */
export const listIn = <A, E>(
  store: TaskStore["Type"],
  queue: string,
  query: {
    readonly status?: TaskStatus | undefined
    readonly limit?: number | undefined
    readonly cursor?: string | undefined
  },
  read: (record: TaskRecord) => TaskRecord
): Effect.Effect<Page<A, E>> =>
  Effect.map(
    store.list({ queue, status: query.status, limit: query.limit ?? 100, cursor: query.cursor }),
    (page) => ({ items: page.items.map((r) => Task.snapshot<A, E>(read(r))), next: page.next })
  )

/**
 * Cancels a running task: interrupts its fiber and waits for its end (as
 * `awaitEnd` tells it); `TaskFinished` if it ended another way meanwhile.
 */
export const cancelRunning = (
  entry: Entry,
  awaitEnd: Effect.Effect<unknown>,
  /** Cancels the task as a queued one: it went back to wait for a retry meanwhile. */
  asQueued: Effect.Effect<TaskStatus, TaskFinished>
): Effect.Effect<TaskStatus, TaskFinished> =>
  Effect.withFiberRuntime<TaskStatus, TaskFinished>((caller) => {
    if (entry.status === "queued") return asQueued
    const fiber = entry.p.fiber
    if (entry.status !== "running" || fiber === undefined) {
      return Effect.fail(TaskFinished.of(entry.id, entry.status))
    }
    // Marked and sent in the same step as the look at the status: a worker
    // that has already moved past this task (and may be waiting for the
    // next) must not get it. It stops after this task, so waiting for it to
    // end frees the slot before the cancel returns.
    entry.p.reason ??= "cancelled"
    fiber.unsafeInterruptAsFork(caller.id())
    return Effect.zipRight(Fiber.await(fiber), awaitEnd).pipe(
      Effect.flatMap(() =>
        entry.status === "cancelled"
          ? Effect.succeed(entry.status)
          : Effect.fail(TaskFinished.of(entry.id, entry.status))
      )
    )
  })
