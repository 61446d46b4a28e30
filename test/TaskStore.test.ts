import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, TestClock } from "effect"
import type { Task } from "effect-task-queue"
import { TaskStore } from "effect-task-queue"

let counter = 0
/** A record as a queue would insert it; ids sort in the order they are made. */
const record = (queue = "q"): Task.TaskRecord => ({
  id: `01TEST${String(counter++).padStart(20, "0")}` as Task.TaskId,
  queue,
  status: "queued",
  attempt: 0,
  createdAt: 0,
  startedAt: undefined,
  finishedAt: undefined,
  exit: undefined,
  reason: undefined
})

const finish = (store: TaskStore.TaskStore["Type"], r: Task.TaskRecord, at: number) =>
  Effect.suspend(() => {
    r.status = "succeeded"
    r.finishedAt = at
    r.exit = Exit.void
    return store.update(r)
  })

describe("TaskStore.makeMemory", () => {
  it.effect("keeps queued and running tasks, and at most maxFinished finished ones", () =>
    Effect.gen(function* () {
      const store = yield* TaskStore.makeMemory({ maxFinished: 3 })
      const waiting = record()
      yield* store.insert(waiting)
      const done = Array.from({ length: 5 }, () => record())
      for (const r of done) yield* store.insert(r)
      for (const r of done) yield* finish(store, r, 0)
      expect(yield* store.get(waiting.id)).toBe(waiting)
      // The two that finished first are gone; the last three stay.
      expect(yield* store.get(done[0]!.id)).toBeUndefined()
      expect(yield* store.get(done[1]!.id)).toBeUndefined()
      for (const r of done.slice(2)) expect(yield* store.get(r.id)).toBe(r)
      const page = yield* store.list({ queue: "q", limit: 10 })
      expect(page.items).toEqual([waiting, ...done.slice(2)])
    })
  )

  it.effect("drops finished tasks once they are older than finishedTtl", () =>
    Effect.gen(function* () {
      const store = yield* TaskStore.makeMemory({ finishedTtl: "1 minute" })
      const early = record()
      const late = record()
      yield* store.insert(early)
      yield* store.insert(late)
      yield* finish(store, early, 0)
      yield* TestClock.adjust("30 seconds")
      yield* finish(store, late, 30_000)
      yield* TestClock.adjust("29999 millis")
      // `early` is kept until exactly one minute after it finished.
      expect(yield* store.get(early.id)).toBe(early)
      yield* TestClock.adjust("1 millis")
      expect(yield* store.get(early.id)).toBeUndefined()
      expect(yield* store.get(late.id)).toBe(late)
      yield* TestClock.adjust("30 seconds")
      expect((yield* store.list({ queue: "q", limit: 10 })).items).toEqual([])
    })
  )

  it.effect("lists one queue's tasks, oldest first, by status, a page at a time", () =>
    Effect.gen(function* () {
      const store = yield* TaskStore.makeMemory()
      const mine = Array.from({ length: 5 }, () => record("mine"))
      const other = record("other")
      yield* store.insert(mine[0]!)
      yield* store.insert(other)
      for (const r of mine.slice(1)) yield* store.insert(r)
      yield* finish(store, mine[1]!, 0)

      const first = yield* store.list({ queue: "mine", status: "queued", limit: 2 })
      expect(first.items).toEqual([mine[0], mine[2]])
      expect(first.next).toBe(mine[2]!.id)
      const second = yield* store.list({
        queue: "mine",
        status: "queued",
        limit: 2,
        cursor: first.next
      })
      expect(second).toEqual({ items: [mine[3], mine[4]], next: undefined })
      const all = yield* store.list({ queue: "mine", limit: 1000 })
      expect(all.items).toEqual(mine)
      // A limit beyond 1,000 is capped; below 1 it reads as 1.
      expect((yield* store.list({ queue: "mine", limit: 0 })).items).toEqual([mine[0]])
    })
  )

  it.effect("rejects bad retention options", () =>
    Effect.gen(function* () {
      const count = yield* Effect.flip(TaskStore.makeMemory({ maxFinished: 1.5 }))
      expect(count.message).toBe("Invalid option maxFinished: 1.5 (must be a non-negative integer)")
      const ttl = yield* Effect.flip(TaskStore.makeMemory({ finishedTtl: "soon" as never }))
      expect(ttl.message).toBe(
        'Invalid option finishedTtl: "soon" (must be a non-negative duration)'
      )
    })
  )
})
