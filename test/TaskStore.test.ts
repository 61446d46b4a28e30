import { describe, expect, it } from "@effect/vitest"
import type { Types } from "effect"
import { Effect, Exit, FastCheck, TestClock } from "effect"
import type { Task } from "effect-task-queue"
import { TaskStore } from "effect-task-queue"
import { IdIndex } from "../src/internal/idIndex.js"
import { record as conformanceRecord } from "./storeConformance.js"

/** A record as a queue would insert it, finishing at most one attempt. */
const record = (queue = "q") => conformanceRecord(queue, { createdAt: 0, maxAttempts: 1 })

const finish = (
  store: TaskStore.TaskStore["Type"],
  r: Types.Mutable<Task.TaskRecord>,
  at: number
) =>
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
      // A limit beyond 1,000 is capped; below 1 it reads as 1; one that is not a number as 100.
      expect((yield* store.list({ queue: "mine", limit: 0 })).items).toEqual([mine[0]])
      expect((yield* store.list({ queue: "mine", limit: 1.5 })).items).toEqual([mine[0]])
      expect((yield* store.list({ queue: "mine", limit: Number.NaN })).items).toEqual(mine)
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
      for (const bad of [-1, "-1 hour", Number.NaN]) {
        const error = yield* Effect.flip(TaskStore.makeMemory({ finishedTtl: bad as never }))
        expect(error.option).toBe("finishedTtl")
      }
      const none = yield* Effect.flip(TaskStore.makeMemory(null as never))
      expect(none.message).toBe("Invalid option options: null (must be an object)")
    })
  )
})

describe("IdIndex", () => {
  it("agrees with a sorted map over random adds, removes and scans", () => {
    type Op = { readonly kind: "add" | "remove"; readonly key: number }
    const op = FastCheck.record({
      kind: FastCheck.constantFrom("add" as const, "remove" as const),
      key: FastCheck.integer({ min: 0, max: 3000 })
    })
    FastCheck.assert(
      FastCheck.property(
        FastCheck.array(op, { maxLength: 4000 }),
        FastCheck.integer({ min: 0, max: 3000 }),
        (ops: ReadonlyArray<Op>, cursorKey) => {
          const index = new IdIndex<{ id: string }>()
          const model = new Map<string, { id: string }>()
          // Mostly ascending ids, as a generator makes them, with some out of order.
          let clock = 0
          for (const { kind, key } of ops) {
            const id = String(
              kind === "add" && key % 3 !== 0 ? (clock += 1) + 1_000_000 : key + 1_000_000
            )
            if (kind === "add") {
              const record = { id }
              index.add(record)
              model.set(id, record)
            } else {
              index.remove(id)
              model.delete(id)
            }
          }
          const sorted = [...model.keys()].sort()
          expect(index.size).toBe(model.size)
          for (const id of sorted) expect(index.get(id)).toBe(model.get(id))
          expect([...index.after(undefined)].map((r) => r.id)).toEqual(sorted)
          const cursor = String(cursorKey + 1_000_000)
          expect([...index.after(cursor)].map((r) => r.id)).toEqual(
            sorted.filter((id) => id > cursor)
          )
        }
      ),
      { numRuns: 200 }
    )
  })

  it("compacts once holes outnumber records, and still finds and scans the rest", () => {
    const index = new IdIndex<{ id: string }>()
    const ids = Array.from({ length: 5000 }, (_, i) => `id-${String(i).padStart(5, "0")}`)
    for (const id of ids) index.add({ id })
    for (const id of ids.slice(0, 4000)) index.remove(id)
    expect(index.size).toBe(1000)
    expect(index.get("id-03999")).toBeUndefined()
    expect(index.get("id-04000")?.id).toBe("id-04000")
    expect([...index.after("id-04997")].map((r) => r.id)).toEqual(["id-04998", "id-04999"])
  })
})
