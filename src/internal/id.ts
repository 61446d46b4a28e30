import type { TaskId } from "../Task.js"

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
const RANDOM_HALF = 2 ** 40

const encode = (value: number, length: number): string => {
  let out = ""
  for (let i = 0; i < length; i++) {
    out = ALPHABET[value % 32]! + out
    value = Math.floor(value / 32)
  }
  return out
}

const random40 = (): number => {
  const words = new Uint32Array(2)
  globalThis.crypto.getRandomValues(words)
  return (words[0]! % 256) * 2 ** 32 + words[1]!
}

/**
 * Makes ULID-shaped ids: 48 bits of milliseconds, then 80 bits that start
 * random in each millisecond and count up within it, so that ids made by one
 * generator always sort in the order they were made, even when the clock
 * stands still (as a test clock does) or steps back.
 */
export const makeIdGenerator = (): ((millis: number) => TaskId) => {
  let lastTime = -1
  let timePart = ""
  let high = 0
  let low = 0
  return (millis) => {
    if (millis > lastTime) {
      lastTime = millis
      timePart = encode(millis, 10)
      high = random40()
      low = random40()
    } else if (++low === RANDOM_HALF) {
      low = 0
      if (++high === RANDOM_HALF) {
        // 2^80 ids in one millisecond: move the time part on by one.
        lastTime += 1
        timePart = encode(lastTime, 10)
        high = 0
      }
    }
    return (timePart + encode(high, 8) + encode(low, 8)) as TaskId
  }
}
