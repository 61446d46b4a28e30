/**
 * What every `TaskStore` must do, written once: a store under test passes
 * `conformance(name, makeStore)`. A durable store may hand back copies of
 * the records it keeps, so records are compared by their fields, never by
 * identity. Retention (which finished tasks a store drops, and when) is each
 * store's own, tested beside it.
 */
import { describe, expect, it } from "@effect/vitest"
import type { Scope, Types } from "effect"
import { Effect, Exit } from "effect"
import type { Task } from "effect-task-queue"
import type { TaskStore } from "effect-task-queue"

type Store = TaskStore.TaskStore["Type"]

let counter = 0

/** A record as a queue would insert it; ids sort in the order they are made. */
export const record = (
  queue = "q",
  fields: Partial<Task.TaskRecord> = {}
): Types.Mutable<Task.TaskRecord> => ({
  id: `01CONF${String(counter++).padStart(20, "0")}` as Task.TaskId,
  queue,
  status: "queued",
  attempt: 0,
  createdAt: 1_000,
  startedAt: undefined,
  finishedAt: undefined,
  exit: undefined,
  reason: undefined,
  priority: 0,
  runAt: undefined,
  maxAttempts: 3,
  idempotencyKey: undefined,
  ...fields
})

/** The fields a store keeps, for comparing a record with what it gives back. */
const fields = (r: Task.TaskRecord | undefined) =>
  r === undefined
    ? undefined
    : {
        id: r.id,
        queue: r.queue,
        status: r.status,
        attempt: r.attempt,
        createdAt: r.createdAt,
        startedAt: r.startedAt,
        finishedAt: r.finishedAt,
        reason: r.reason,
        priority: r.priority,
        runAt: r.runAt,
        maxAttempts: r.maxAttempts,
        idempotencyKey: r.idempotencyKey
      }

const ids = (page: { readonly items: ReadonlyArray<Task.TaskRecord> }) =>
  page.items.map((r) => r.id)

export const conformance = (name: string, makeStore: Effect.Effect<Store, unknown, Scope.Scope>) =>
  describe(`${name} (store conformance)`, () => {
    it.scoped("keeps what it is given and gives it back by id", () =>
      Effect.gen(function* () {
        const store = yield* makeStore
        const a = record("q", { priority: 5, runAt: 9_000, maxAttempts: 7 })
        expect(yield* store.insert(a)).toBeUndefined()
        expect(fields(yield* store.get(a.id))).toEqual(fields(a))
        expect(yield* store.get("01CONFZZZZZZZZZZZZZZZZZZZZ")).toBeUndefined()
      })
    )

    it.scoped("keeps a retry's and an end's changes", () =>
      Effect.gen(function* () {
        const store = yield* makeStore
        const a = record()
        yield* store.insert(a)
        Object.assign(a, { status: "queued", attempt: 1, startedAt: 1_100, runAt: 2_100 })
        yield* store.update(a)
        expect(fields(yield* store.get(a.id))).toMatchObject({ attempt: 1, runAt: 2_100 })
        Object.assign(a, { status: "succeeded", attempt: 2, finishedAt: 2_200, runAt: undefined })
        a.exit = Exit.succeed("done")
        yield* store.update(a)
        const kept = yield* store.get(a.id)
        expect(fields(kept)).toEqual(fields(a))
        expect(kept?.exit).toEqual(Exit.succeed("done"))
      })
    )

    it.scoped("gives back the task of a repeated idempotency key and keeps nothing new", () =>
      Effect.gen(function* () {
        const store = yield* makeStore
        const first = record("q", { idempotencyKey: "k" })
        const again = record("q", { idempotencyKey: "k" })
        const otherQueue = record("other", { idempotencyKey: "k" })
        expect(yield* store.insert(first)).toBeUndefined()
        expect(fields(yield* store.insert(again))).toEqual(fields(first))
        expect(yield* store.get(again.id)).toBeUndefined()
        expect(yield* store.insert(otherQueue)).toBeUndefined()
        expect(fields(yield* store.findKey("q", "k"))).toEqual(fields(first))
        expect(fields(yield* store.findKey("other", "k"))).toEqual(fields(otherQueue))
        expect(yield* store.findKey("q", "missing")).toBeUndefined()
      })
    )

    it.scoped("lists one queue's tasks oldest first, by status, a page at a time", () =>
      Effect.gen(function* () {
        const store = yield* makeStore
        const mine = Array.from({ length: 5 }, () => record("mine"))
        const theirs = record("theirs")
        for (const r of [mine[0]!, theirs, ...mine.slice(1)]) yield* store.insert(r)
        Object.assign(mine[1]!, { status: "failed", finishedAt: 1_500, exit: Exit.fail("x") })
        yield* store.update(mine[1]!)

        expect(ids(yield* store.list({ queue: "mine", limit: 100 }))).toEqual(mine.map((r) => r.id))
        expect(ids(yield* store.list({ queue: "mine", status: "failed", limit: 100 }))).toEqual([
          mine[1]!.id
        ])
        const first = yield* store.list({ queue: "mine", limit: 2 })
        expect(ids(first)).toEqual([mine[0]!.id, mine[1]!.id])
        const second = yield* store.list({ queue: "mine", limit: 2, cursor: first.next })
        expect(ids(second)).toEqual([mine[2]!.id, mine[3]!.id])
        const last = yield* store.list({ queue: "mine", limit: 2, cursor: second.next })
        expect(ids(last)).toEqual([mine[4]!.id])
        expect(last.next).toBeUndefined()
        expect(ids(yield* store.list({ queue: "nobody", limit: 10 }))).toEqual([])
      })
    )

    it.scoped("brings a page's limit within 1 to 1,000", () =>
      Effect.gen(function* () {
        const store = yield* makeStore
        for (let i = 0; i < 3; i++) yield* store.insert(record("limits"))
        for (const limit of [0, -5, 0.5]) {
          expect((yield* store.list({ queue: "limits", limit })).items).toHaveLength(1)
        }
        expect((yield* store.list({ queue: "limits", limit: Number.NaN })).items).toHaveLength(3)
        expect((yield* store.list({ queue: "limits", limit: 1e9 })).items).toHaveLength(3)
      })
    )
  })
