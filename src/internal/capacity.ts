/**
 * A bound on queued tasks, with enqueues waiting for room in arrival order.
 */
import { Effect } from "effect"

interface Waiter {
  readonly resume: (effect: Effect.Effect<void>) => void
  woken: boolean
}

/**
 * Room is counted as `queued + reserved < size`, where `queued` comes from
 * the queue. When room is made, the first waiter is woken and the room is
 * reserved for it, so an enqueue that arrives meanwhile cannot take it; the
 * waiter claims it as it enqueues, or passes it on if it was interrupted.
 */
export class Capacity {
  private readonly waiters: Array<Waiter> = []
  private reserved = 0

  constructor(
    readonly size: number,
    private readonly queued: () => number,
    /** Called when a reservation ends, used or not. */
    private readonly onRelease: () => void
  ) {}

  /** Enqueues let in that have not stored their task yet. */
  get reservations(): number {
    return this.reserved
  }

  /** Whether an enqueue may go ahead now: room, and no one waiting before it. */
  hasRoom(): boolean {
    return this.waiters.length === 0 && this.queued() + this.reserved < this.size
  }

  /** Called whenever a queued task starts or ends: wakes waiters while there is room. */
  roomMade(): void {
    while (this.waiters.length > 0 && this.queued() + this.reserved < this.size) {
      this.wake(this.waiters.shift()!)
    }
  }

  /** Wakes every waiter (the queue is shutting down; they will find it closed). */
  wakeAll(): void {
    while (this.waiters.length > 0) this.wake(this.waiters.shift()!)
  }

  /**
   * Waits for room, then runs `enqueue` with the room reserved for it:
   * `enqueue` must not check for room again, and runs uninterruptibly, so
   * no other enqueue can take the room first. Room it left unused goes to
   * the next waiter.
   */
  waitForRoom<A, E>(enqueue: Effect.Effect<A, E>): Effect.Effect<A, E> {
    return Effect.uninterruptibleMask((restore) => {
      const waiter: Waiter = { resume: () => {}, woken: false }
      const wait = Effect.async<void>((resume) => {
        ;(waiter as { resume: Waiter["resume"] }).resume = resume
        this.waiters.push(waiter)
        // Room made between the caller's look and this registration woke
        // no one: look again, or this waiter could wait for good.
        this.roomMade()
      })
      return restore(wait).pipe(
        Effect.onInterrupt(() =>
          Effect.sync(() => {
            // Taken out here, not by a canceler of the async: Effect can
            // interrupt the wait after it registered and before its canceler
            // is in place, or before it registered at all.
            if (!waiter.woken) {
              const at = this.waiters.indexOf(waiter)
              if (at >= 0) this.waiters.splice(at, 1)
              return
            }
            this.reserved -= 1
            this.roomMade()
            this.onRelease()
          })
        ),
        Effect.zipRight(
          // The room stays reserved until the task is in, so that the queue
          // never looks idle between the two.
          Effect.ensuring(
            enqueue,
            Effect.sync(() => {
              this.reserved -= 1
              this.roomMade()
              this.onRelease()
            })
          )
        )
      )
    })
  }

  private wake(waiter: Waiter): void {
    waiter.woken = true
    this.reserved += 1
    waiter.resume(Effect.void)
  }
}
