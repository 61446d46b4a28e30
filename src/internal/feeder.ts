/**
 * The durable engine's feeder: the fiber that keeps the outcomes of the
 * tasks that ended here and claims due tasks for free workers, in one
 * transaction per step, with the writes that wait for its next step.
 */
import type { Cause, Clock } from "effect"
import { Effect, Queue } from "effect"
import type { Durable, StoredTask, Write } from "../TaskStore.js"

/** Writes applied per transaction at most. */
const MAX_WRITES = 500

/** What the durable queue's background fibers (feeder, leases) share. */
export interface StoreFiberHost {
  readonly name: string
  /** The claim owner of this queue's instance. */
  readonly owner: string
  /** How long a claim holds without renewal, in milliseconds. */
  readonly lease: number
  readonly pollInterval: number
  readonly durable: Durable
  readonly clock: Clock.Clock
  /** Wakes the feeder: offered to by local enqueues, ends of tasks and the ticker. */
  readonly wake: Queue.Queue<void>
  /** Called once writes are kept: callers waiting on them are told. */
  readonly applied: (done: ReadonlyArray<Write>) => void
  readonly recover: (what: string) => (cause: Cause.Cause<unknown>) => Effect.Effect<void>
}

/** What the feeder needs of its queue. */
export interface FeederHost extends StoreFiberHost {
  /** How many tasks a step may claim now: none while closing or paused. */
  readonly free: () => number
  /** Makes claimed tasks ready here. */
  readonly accept: (tasks: ReadonlyArray<StoredTask>) => Effect.Effect<void>
}

export interface Feeder {
  /** Queues a write for the next step, and wakes the feeder. */
  readonly write: (w: Write) => void
  /** Writes waiting for a step. */
  readonly waiting: () => number
  /** The feeder's fiber: steps while there is work, then waits to be woken. */
  readonly loop: Effect.Effect<never>
  /** Applies every waiting write, without claiming: the last thing shutdown does. */
  readonly flush: Effect.Effect<void>
}

export const makeFeeder = (host: FeederHost): Feeder => {
  const { name, owner, lease, pollInterval, durable, clock, wake } = host
  let writes: Array<Write> = []

  /** Logs the writes the store refused: their claim was lost. */
  const refusedLog = (refused: ReadonlyArray<Write>) =>
    refused.length === 0
      ? Effect.void
      : Effect.forEach(
          refused,
          (w) =>
            Effect.logWarning(
              "a task's claim was lost before its change was kept; the change was dropped"
            ).pipe(Effect.annotateLogs({ taskId: w.id, queue: name, change: w._tag })),
          { discard: true }
        )

  const takeWrites = () => {
    if (writes.length <= MAX_WRITES) {
      const taken = writes
      writes = []
      return taken
    }
    return writes.splice(0, MAX_WRITES)
  }

  /**
   * Writes that a failed step did not keep go back in front of the writes
   * that came since, for the next step: an outcome is never dropped.
   */
  const keepFor = <A, E>(pending: ReadonlyArray<Write>, effect: Effect.Effect<A, E>) =>
    Effect.onError(effect, () =>
      Effect.sync(() => {
        if (pending.length > 0) writes = [...pending, ...writes]
      })
    )

  const step = (free: number, pending: ReadonlyArray<Write>) =>
    Effect.suspend(() => {
      const now = clock.unsafeCurrentTimeMillis()
      return Effect.flatMap(
        keepFor(
          pending,
          durable.step({
            queue: name,
            owner,
            now,
            leaseUntil: now + lease,
            claim: Math.max(0, free),
            writes: pending
          })
        ),
        ({ claimed: tasks, refused }) => {
          host.applied(pending)
          return Effect.zipRight(
            Effect.zipRight(refusedLog(refused), host.accept(tasks)),
            Effect.succeed(tasks.length > 0 && tasks.length === free ? true : writes.length > 0)
          )
        }
      )
    })

  /** One step: keeps the pending writes and claims up to the free permits. Whether to go on. */
  const feedStep = Effect.uninterruptible(
    Effect.suspend(() => {
      const free = host.free()
      const pending = takeWrites()
      if (free <= 0 && pending.length === 0) return Effect.succeed(false)
      if (pending.length === 0) {
        // Nothing to write: a read first, so that an idle queue never takes
        // the file's write lock for a claim that would find nothing.
        return Effect.flatMap(durable.nextDue(name), (due) =>
          due !== undefined && due <= clock.unsafeCurrentTimeMillis()
            ? step(free, pending)
            : Effect.succeed(false)
        )
      }
      return step(free, pending)
    })
  )

  /** How long the feeder may sleep: until the next due task, at most the poll interval. */
  const idleFor = Effect.map(durable.nextDue(name), (due) => {
    const now = clock.unsafeCurrentTimeMillis()
    return due === undefined ? pollInterval : Math.max(0, Math.min(pollInterval, due - now))
  })

  const loop = Effect.gen(function* () {
    while (true) {
      const more = yield* feedStep
      if (more) {
        // Between two batches, the HTTP server and the workers get their turn.
        yield* Effect.yieldNow()
        continue
      }
      const wait = host.free() > 0 ? yield* idleFor : pollInterval
      // The ticker wakes the feeder at least every poll interval; a timer of
      // its own only for a task due sooner.
      if (wait >= pollInterval) yield* Queue.take(wake)
      else if (wait > 0) yield* Effect.timeoutOption(Queue.take(wake), wait)
    }
  }).pipe(
    // A store that keeps failing (a full disk, a file gone) is tried again
    // each second, not in a loop.
    Effect.catchAllCause((cause) =>
      Effect.zipRight(host.recover("feeder step")(cause), Effect.sleep("1 second"))
    ),
    Effect.forever
  )

  const flush = Effect.suspend(function next(): Effect.Effect<void> {
    if (writes.length === 0) return Effect.void
    const pending = takeWrites()
    return Effect.flatMap(keepFor(pending, durable.apply(pending)), (refused) => {
      host.applied(pending)
      return Effect.zipRight(refusedLog(refused), next())
    })
  })

  return {
    write: (w) => {
      writes.push(w)
      Queue.unsafeOffer(wake, undefined)
    },
    waiting: () => writes.length,
    loop,
    flush
  }
}
