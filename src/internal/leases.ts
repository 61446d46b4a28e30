/**
 * The durable engine's claims over time: each claim renewed while its task
 * runs here, tasks that a gone instance left running taken back, and cancels
 * that other processes asked for of tasks running here.
 */
import { Effect, Queue } from "effect"
import type { Entry } from "./entry.js"
import type { StoreFiberHost } from "./feeder.js"
import { isGone, takeBack } from "./ownership.js"

/** What the lease fibers need of their queue. */
export interface LeaseHost extends StoreFiberHost {
  /** Tasks claimed here, by id. */
  readonly local: ReadonlyMap<string, Entry>
  /** Handlers running here. */
  readonly running: () => number
  readonly cancel: (entry: Entry) => Effect.Effect<unknown, unknown>
}

export const makeLeases = (host: LeaseHost) => {
  const { name, owner, lease, pollInterval, durable, clock, wake, local } = host

  /** Tasks a gone instance left running: queued again with the attempt counted, or failed. */
  const reclaim = Effect.gen(function* () {
    const now = clock.unsafeCurrentTimeMillis()
    const lost = (yield* durable.running(name)).filter(
      (task) => task.owner !== owner && isGone(task, now)
    )
    if (lost.length === 0) return
    const changes = lost.map((task) => takeBack(task, now))
    const refused = yield* durable.apply(changes)
    host.applied(changes)
    yield* Effect.logWarning("tasks of a stopped process were taken back").pipe(
      Effect.annotateLogs({
        queue: name,
        requeued: changes.filter((c) => c._tag === "retry").length - refused.length,
        failed: changes.filter((c) => c._tag === "end").length
      })
    )
    Queue.unsafeOffer(wake, undefined)
  })

  /** Cancels the tasks running here whose cancel another process asked for. */
  const cancelAsked = (ids: ReadonlyArray<string>) =>
    Effect.forEach(
      ids,
      (id) => {
        const entry = local.get(id)
        return entry === undefined || entry.reason !== undefined
          ? Effect.void
          : Effect.fork(Effect.ignore(host.cancel(entry)))
      },
      { discard: true }
    )

  const renew = Effect.gen(function* () {
    const now = clock.unsafeCurrentTimeMillis()
    if (local.size > 0) {
      yield* cancelAsked(yield* durable.renew(name, owner, now + lease))
    }
    yield* reclaim
  })

  return {
    reclaim,
    /** Renews this instance's claims and takes back those of gone ones, every third of a lease. */
    loop: renew.pipe(
      Effect.catchAllCause(host.recover("lease renewal")),
      Effect.zipRight(Effect.sleep(Math.max(1, Math.floor(lease / 3)))),
      Effect.forever
    ),
    /**
     * Each poll interval: wakes the feeder, and looks for cancels other
     * processes asked for of the tasks running here.
     */
    ticker: Effect.gen(function* () {
      yield* Effect.sleep(pollInterval)
      Queue.unsafeOffer(wake, undefined)
      if (host.running() > 0) yield* cancelAsked(yield* durable.cancelRequests(name, owner))
    }).pipe(Effect.catchAllCause(host.recover("ticker")), Effect.forever)
  }
}
