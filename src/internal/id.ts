import type { TaskId } from "../Task.js"

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
/** Every pair of base32 digits, so that 40 bits encode in four lookups. */
const PAIRS: Array<string> = []
for (const a of ALPHABET) for (const b of ALPHABET) PAIRS.push(a + b)

const HALF = 2 ** 40
const TEN_BITS = 1024

/** Eight base32 digits of a 40-bit number. */
const encode40 = (value: number): string => {
  const high = Math.floor(value / 2 ** 20)
  const low = value % 2 ** 20
  return (
    PAIRS[Math.floor(high / TEN_BITS)]! +
    PAIRS[high % TEN_BITS]! +
    PAIRS[Math.floor(low / TEN_BITS)]! +
    PAIRS[low % TEN_BITS]!
  )
}

/** `length` base32 digits of `value`; used once per millisecond. */
const encode = (value: number, length: number): string => {
  let out = ""
  for (let i = 0; i < length; i++) {
    out = ALPHABET[value % 32]! + out
    value = Math.floor(value / 32)
  }
  return out
}

const words = new Uint32Array(4)

/** Two random 40-bit numbers, from one call to the system's random source. */
const random40x2 = (): readonly [number, number] => {
  globalThis.crypto.getRandomValues(words)
  return [(words[0]! % 256) * 2 ** 32 + words[1]!, (words[2]! % 256) * 2 ** 32 + words[3]!]
}

/**
 * Makes ULID-shaped ids: 48 bits of milliseconds, then 80 bits that start
 * random in each millisecond and count up within it, so that ids made by one
 * generator always sort in the order they were made, even when the clock
 * stands still (as a test clock does) or steps back.
 */
export const makeIdGenerator = (): ((millis: number) => TaskId) => {
  let lastTime = -1
  let prefix = ""
  let high = 0
  let low = 0
  return (millis) => {
    if (millis > lastTime) {
      lastTime = millis
      const [first, second] = random40x2()
      high = first
      low = second
      prefix = encode(millis, 10) + encode40(high)
    } else if (++low === HALF) {
      low = 0
      if (++high === HALF) {
        // 2^80 ids in one millisecond: move the time part on by one.
        lastTime += 1
        high = 0
      }
      prefix = encode(lastTime, 10) + encode40(high)
    }
    return (prefix + encode40(low)) as TaskId
  }
}
