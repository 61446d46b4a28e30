/**
 * Where waiting tasks wait: ready ones by priority, delayed ones by time.
 */

/** A FIFO of one priority: an array read from `head`, compacted as it drains. */
class Lane<T> {
  items: Array<T | undefined> = []
  head = 0
  constructor(readonly priority: number) {}

  get size(): number {
    return this.items.length - this.head
  }

  shift(): T | undefined {
    if (this.head === this.items.length) return undefined
    const item = this.items[this.head]
    this.items[this.head++] = undefined
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return item
  }
}

/**
 * Ready tasks: the highest priority first, first in first out within a
 * priority. One lane per priority in use; the default priority's lane is
 * always there, the others go when they empty.
 */
export class ReadyLanes<T> {
  private readonly base = new Lane<T>(0)
  /** Lanes in use, highest priority first. */
  private lanes: Array<Lane<T>> = [this.base]
  private count = 0

  get size(): number {
    return this.count
  }

  push(item: T, priority: number): void {
    this.count += 1
    if (priority === 0 && this.lanes.length === 1) {
      this.base.items.push(item)
      return
    }
    this.lane(priority).items.push(item)
  }

  /** Puts an item back at the front of its lane, as if it had never been taken. */
  unshift(item: T, priority: number): void {
    this.count += 1
    const lane = this.lane(priority)
    if (lane.head > 0) lane.items[--lane.head] = item
    else lane.items.unshift(item)
  }

  shift(): T | undefined {
    const lanes = this.lanes
    for (let i = 0; i < lanes.length; i++) {
      const lane = lanes[i]!
      if (lane.size === 0) continue
      const item = lane.shift()
      this.count -= 1
      if (lane.size === 0 && lane !== this.base) lanes.splice(i, 1)
      return item
    }
    return undefined
  }

  /** Takes every item out, highest priority first. */
  takeAll(): Array<T> {
    const all: Array<T> = []
    for (let item = this.shift(); item !== undefined; item = this.shift()) all.push(item)
    return all
  }

  private lane(priority: number): Lane<T> {
    const lanes = this.lanes
    let at = 0
    while (at < lanes.length && lanes[at]!.priority > priority) at++
    if (at < lanes.length && lanes[at]!.priority === priority) return lanes[at]!
    const lane = new Lane<T>(priority)
    lanes.splice(at, 0, lane)
    return lane
  }
}

/** What the delay heap needs of an item: its due time and its place in the heap. */
export interface Timed {
  /** Epoch milliseconds at which the item is due. */
  readonly dueAt: number
  /** Order among items due at the same instant: lower first. */
  readonly id: string
  /** The item's index in the heap; -1 when not in it. */
  heapIndex: number
}

const before = (a: Timed, b: Timed): boolean =>
  a.dueAt < b.dueAt || (a.dueAt === b.dueAt && a.id < b.id)

/** A binary min-heap by due time; an item can be removed from the middle. */
export class DelayHeap<T extends Timed> {
  private items: Array<T> = []

  get size(): number {
    return this.items.length
  }

  /** The earliest item, without taking it. */
  peek(): T | undefined {
    return this.items[0]
  }

  push(item: T): void {
    item.heapIndex = this.items.length
    this.items.push(item)
    this.up(item.heapIndex)
  }

  /** Takes the earliest item if it is due at `now` or before. */
  popDue(now: number): T | undefined {
    const first = this.items[0]
    if (first === undefined || first.dueAt > now) return undefined
    this.removeAt(0)
    return first
  }

  /** Takes the item out if it is in the heap. */
  remove(item: T): void {
    const at = item.heapIndex
    if (at >= 0 && this.items[at] === item) this.removeAt(at)
  }

  takeAll(): Array<T> {
    const all = this.items
    this.items = []
    for (const item of all) item.heapIndex = -1
    return all.sort((a, b) => (before(a, b) ? -1 : 1))
  }

  private removeAt(at: number): void {
    const items = this.items
    const item = items[at]!
    const last = items.pop()!
    item.heapIndex = -1
    if (at === items.length) return
    items[at] = last
    last.heapIndex = at
    this.down(at)
    this.up(last.heapIndex)
  }

  private up(at: number): void {
    const items = this.items
    while (at > 0) {
      const parent = (at - 1) >> 1
      if (!before(items[at]!, items[parent]!)) break
      this.swap(at, parent)
      at = parent
    }
  }

  private down(at: number): void {
    const items = this.items
    while (true) {
      const left = at * 2 + 1
      const right = left + 1
      let least = at
      if (left < items.length && before(items[left]!, items[least]!)) least = left
      if (right < items.length && before(items[right]!, items[least]!)) least = right
      if (least === at) return
      this.swap(at, least)
      at = least
    }
  }

  private swap(a: number, b: number): void {
    const items = this.items
    const x = items[a]!
    const y = items[b]!
    items[a] = y
    items[b] = x
    x.heapIndex = b
    y.heapIndex = a
  }
}
