/**
 * The structures waiting tasks wait in: ReadyLanes (by priority, then first
 * in first out) and DelayHeap (by due time, then id), each checked against a
 * plain sorted-array model as well as by example.
 */
import { describe, expect, it } from "@effect/vitest"
import { FastCheck } from "effect"
import { DelayHeap, ReadyLanes } from "../src/internal/ready.js"

interface Item {
  readonly dueAt: number
  readonly id: string
  heapIndex: number
}

const item = (dueAt: number, id: string): Item => ({ dueAt, id, heapIndex: -1 })
const ids = (items: ReadonlyArray<Item>) => items.map((i) => i.id)

const drain = <T>(lanes: ReadyLanes<T>): Array<T> => {
  const all: Array<T> = []
  for (let next = lanes.shift(); next !== undefined; next = lanes.shift()) all.push(next)
  return all
}

describe("ReadyLanes", () => {
  it("gives the highest priority first, first in first out within a priority", () => {
    const lanes = new ReadyLanes<string>()
    const pushed: Array<readonly [string, number]> = [
      ["a", 0],
      ["b", 3],
      ["c", -2],
      ["d", 3],
      ["e", 0],
      ["f", 9],
      ["g", -2]
    ]
    for (const [name, priority] of pushed) lanes.push(name, priority)
    expect(lanes.size).toBe(7)
    expect(drain(lanes)).toEqual(["f", "b", "d", "a", "e", "c", "g"])
    expect(lanes.size).toBe(0)
    expect(lanes.shift()).toBeUndefined()
  })

  it("takes a priority that arrives between two shifts before the rest", () => {
    const lanes = new ReadyLanes<string>()
    lanes.push("a", 0)
    lanes.push("b", 0)
    expect(lanes.shift()).toBe("a")
    lanes.push("urgent", 1)
    lanes.push("low", -1)
    expect(lanes.shift()).toBe("urgent")
    // The emptied lane is gone and made again: order still holds.
    lanes.push("urgent again", 1)
    expect(drain(lanes)).toEqual(["urgent again", "b", "low"])
  })

  it("keeps first in first out across its compaction of a long lane", () => {
    const lanes = new ReadyLanes<number>()
    for (let n = 0; n < 5000; n++) lanes.push(n, 0)
    const taken: Array<number> = []
    // Past 2,500 of 5,000 taken, the lane drops the slots it has read.
    for (let n = 0; n < 3000; n++) taken.push(lanes.shift()!)
    for (let n = 5000; n < 6000; n++) lanes.push(n, 0)
    lanes.push(-1, 1)
    expect(lanes.size).toBe(3001)
    taken.push(...lanes.takeAll())
    expect(taken).toEqual([
      ...Array.from({ length: 3000 }, (_, i) => i),
      -1,
      ...Array.from({ length: 3000 }, (_, i) => 3000 + i)
    ])
    expect(lanes.size).toBe(0)
  })

  it("takes everything out with takeAll, highest priority first", () => {
    const lanes = new ReadyLanes<string>()
    lanes.push("a", 0)
    lanes.push("b", 1)
    lanes.push("c", 0)
    expect(lanes.takeAll()).toEqual(["b", "a", "c"])
    expect(lanes.size).toBe(0)
    lanes.push("d", 0)
    expect(lanes.takeAll()).toEqual(["d"])
  })

  it("matches a stable sort by priority for any pushes and shifts", () => {
    const op = FastCheck.oneof(
      FastCheck.record({ push: FastCheck.integer({ min: -3, max: 3 }) }),
      FastCheck.constant({ shift: true as const })
    )
    FastCheck.assert(
      FastCheck.property(FastCheck.array(op, { maxLength: 200 }), (ops) => {
        const lanes = new ReadyLanes<number>()
        let model: Array<{ readonly n: number; readonly priority: number }> = []
        let n = 0
        for (const step of ops) {
          if ("push" in step) {
            lanes.push(n, step.push)
            model.push({ n, priority: step.push })
            n += 1
          } else {
            // Highest priority first; among equals the earliest pushed.
            const best = model.reduce<number>(
              (at, x, i) => (at === -1 || x.priority > model[at]!.priority ? i : at),
              -1
            )
            const expected = best === -1 ? undefined : model[best]!.n
            model = model.filter((_, i) => i !== best)
            expect(lanes.shift()).toBe(expected)
          }
          expect(lanes.size).toBe(model.length)
        }
        const rest = model.toSorted((a, b) => b.priority - a.priority || a.n - b.n)
        expect(lanes.takeAll()).toEqual(rest.map((x) => x.n))
      })
    )
  })
})

describe("DelayHeap", () => {
  it("gives items by due time, then by id, and only once due", () => {
    const heap = new DelayHeap<Item>()
    for (const [dueAt, id] of [
      [300, "c"],
      [100, "b"],
      [200, "a"],
      [100, "a"],
      [300, "a"]
    ] as const) {
      heap.push(item(dueAt, id))
    }
    expect(heap.size).toBe(5)
    expect(heap.peek()).toMatchObject({ dueAt: 100, id: "a" })
    expect(heap.popDue(99)).toBeUndefined()
    const due: Array<string> = []
    for (let next = heap.popDue(200); next !== undefined; next = heap.popDue(200)) {
      due.push(`${next.dueAt}${next.id}`)
      expect(next.heapIndex).toBe(-1)
    }
    expect(due).toEqual(["100a", "100b", "200a"])
    expect(heap.size).toBe(2)
  })

  it("removes an item from the middle and keeps the rest in order", () => {
    const heap = new DelayHeap<Item>()
    const items = Array.from({ length: 10 }, (_, i) => item(((i * 7) % 10) * 10, `i${i}`))
    for (const i of items) heap.push(i)
    const middle = items.find((i) => i.heapIndex > 2 && i.heapIndex < 8)!
    heap.remove(middle)
    expect(middle.heapIndex).toBe(-1)
    heap.remove(middle)
    heap.remove(item(0, "never pushed"))
    expect(heap.size).toBe(9)
    const expected = items
      .filter((i) => i !== middle)
      .toSorted((a, b) => a.dueAt - b.dueAt)
      .map((i) => i.id)
    expect(ids(heap.takeAll())).toEqual(expected)
    expect(heap.size).toBe(0)
    expect(heap.peek()).toBeUndefined()
  })

  it("takes everything out with takeAll, in order, leaving no item marked as in it", () => {
    const heap = new DelayHeap<Item>()
    const items = [item(5, "b"), item(1, "z"), item(5, "a"), item(3, "m")]
    for (const i of items) heap.push(i)
    expect(ids(heap.takeAll())).toEqual(["z", "m", "a", "b"])
    expect(items.every((i) => i.heapIndex === -1)).toBe(true)
    heap.push(items[0]!)
    expect(heap.popDue(5)).toBe(items[0])
  })

  it("matches a sorted array for any pushes, removals and pops", () => {
    const op = FastCheck.oneof(
      // Few distinct due times, so that ties (ordered by id) are common.
      FastCheck.record({ push: FastCheck.integer({ min: 0, max: 4 }) }),
      FastCheck.record({ remove: FastCheck.nat({ max: 50 }) }),
      FastCheck.record({ popDue: FastCheck.integer({ min: 0, max: 5 }) })
    )
    const order = (a: Item, b: Item) => a.dueAt - b.dueAt || (a.id < b.id ? -1 : 1)
    FastCheck.assert(
      FastCheck.property(FastCheck.array(op, { maxLength: 200 }), (ops) => {
        const heap = new DelayHeap<Item>()
        let model: Array<Item> = []
        let n = 0
        for (const step of ops) {
          if ("push" in step) {
            // Ids sort as numbers do: zero-padded.
            const pushed = item(step.push, String(n++).padStart(4, "0"))
            heap.push(pushed)
            model = [...model, pushed].toSorted(order)
          } else if ("remove" in step) {
            const target = model[step.remove % Math.max(model.length, 1)]
            if (target === undefined) continue
            heap.remove(target)
            expect(target.heapIndex).toBe(-1)
            model = model.filter((i) => i !== target)
          } else {
            const first = model[0]
            const expected = first !== undefined && first.dueAt <= step.popDue ? first : undefined
            expect(heap.popDue(step.popDue)).toBe(expected)
            if (expected !== undefined) model = model.slice(1)
          }
          expect(heap.size).toBe(model.length)
          expect(heap.peek()).toBe(model[0])
        }
        expect(heap.takeAll()).toEqual(model)
      })
    )
  })
})
