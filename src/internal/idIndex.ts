/**
 * Records by id, in id order, for ids that mostly arrive in ascending order
 * (as time-sortable ids made in one process do).
 *
 * Adding in order is an append, with no hashing; finding an id is a binary
 * search. A removed record leaves a hole that the next compaction drops, and
 * compaction runs once holes outnumber records, so the arrays stay within
 * twice the live count and each removal costs O(1) amortized beyond its search.
 */
export class IdIndex<T extends { readonly id: string }> {
  private ids: Array<string> = []
  private slots: Array<T | undefined> = []
  private holes = 0

  /** Records held. */
  get size(): number {
    return this.slots.length - this.holes
  }

  add(record: T): void {
    const last = this.ids.length - 1
    if (last < 0 || this.ids[last]! < record.id) {
      this.ids.push(record.id)
      this.slots.push(record)
      return
    }
    // Out of order (an id made elsewhere): insert at its place.
    const at = this.search(record.id)
    if (this.ids[at] === record.id) {
      if (this.slots[at] === undefined) this.holes -= 1
      this.slots[at] = record
      return
    }
    this.ids.splice(at, 0, record.id)
    this.slots.splice(at, 0, record)
  }

  get(id: string): T | undefined {
    const at = this.search(id)
    return this.ids[at] === id ? this.slots[at] : undefined
  }

  remove(id: string): void {
    const at = this.search(id)
    if (this.ids[at] !== id || this.slots[at] === undefined) return
    this.slots[at] = undefined
    this.holes += 1
    if (this.holes > 1024 && this.holes * 2 > this.slots.length) this.compact()
  }

  /**
   * Records with an id after `cursor` (all when it is undefined), in id
   * order. Read it to the end, or as far as needed, before changing the index.
   */
  *after(cursor: string | undefined): IterableIterator<T> {
    let at = cursor === undefined ? 0 : this.search(cursor)
    if (cursor !== undefined && this.ids[at] === cursor) at += 1
    const slots = this.slots
    for (; at < slots.length; at++) {
      const record = slots[at]
      if (record !== undefined) yield record
    }
  }

  /** The first position whose id is not below `id`. */
  private search(id: string): number {
    let low = 0
    let high = this.ids.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (this.ids[middle]! < id) low = middle + 1
      else high = middle
    }
    return low
  }

  private compact(): void {
    const ids: Array<string> = []
    const slots: Array<T> = []
    for (let i = 0; i < this.slots.length; i++) {
      const record = this.slots[i]
      if (record === undefined) continue
      ids.push(this.ids[i]!)
      slots.push(record)
    }
    this.ids = ids
    this.slots = slots
    this.holes = 0
  }
}
