/**
 * A CPU profile of one stretch of a child's run, taken with V8's sampling
 * profiler through `node:inspector`, and summed by where the time went:
 * garbage collection, Effect's runtime (`node_modules/effect`), this
 * library (`src/`), SQLite (native code and the driver's calls into it),
 * `@effect/sql`, and everything else (Node, the benchmark's own loop).
 * Idle samples, and those taken while the profiler itself starts and stops,
 * are left out.
 */
import { writeFileSync } from "node:fs"
import { Session } from "node:inspector/promises"

export interface Breakdown {
  readonly gc: number
  readonly effect: number
  readonly library: number
  /** SQLite itself and the better-sqlite3 / @effect/sql-sqlite-node calls into it. */
  readonly sqlite: number
  /**
   * `@effect/sql` itself: `sql.reserve`, compiling `sql` templates,
   * `sql.withTransaction`. The connection's prepared-statement cache is
   * @effect/sql-sqlite-node's, so it counts as SQLite.
   */
  readonly sql: number
  readonly other: number
}

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string }
  readonly children?: ReadonlyArray<number>
}

interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

/** The names of better-sqlite3's native methods that run statements. */
const SQLITE_NATIVE = new Set(["all", "run", "get", "iterate", "exec", "prepare", "pragma"])

const categoryOf = (node: ProfileNode): keyof Breakdown | "idle" => {
  const { functionName, url } = node.callFrame
  if (functionName === "(garbage collector)") return "gc"
  if (functionName === "(idle)") return "idle"
  if (url.includes("/node_modules/effect/")) return "effect"
  if (url.includes("/better-sqlite3/") || url.includes("/@effect/sql-sqlite-node/")) {
    return "sqlite"
  }
  // better-sqlite3's native methods, where SQLite itself runs, have no script.
  if (url === "" && SQLITE_NATIVE.has(functionName)) return "sqlite"
  if (url.includes("/@effect/sql/")) return "sql"
  if (url.includes("/src/") && !url.includes("/node_modules/")) return "library"
  return "other"
}

/** Starts sampling every 100 µs; `stop` gives the share of busy time per category. */
export const startProfile = async (): Promise<{ readonly stop: () => Promise<Breakdown> }> => {
  const session = new Session()
  session.connect()
  await session.post("Profiler.enable")
  await session.post("Profiler.setSamplingInterval", { interval: 100 })
  await session.post("Profiler.start")
  return {
    stop: async () => {
      const { profile } = (await session.post("Profiler.stop")) as { profile: Profile }
      session.disconnect()
      // BENCH_PROFILE_OUT=<file> keeps the raw profile, to open in Chrome's DevTools.
      const out = process.env["BENCH_PROFILE_OUT"]
      if (out !== undefined && out !== "") writeFileSync(out, JSON.stringify(profile))
      const category = new Map(profile.nodes.map((node) => [node.id, categoryOf(node)]))
      // The profiler's own start and stop (tens of milliseconds under
      // `node:inspector`'s calls) are not the measured stretch: left out.
      const byId = new Map(profile.nodes.map((node) => [node.id, node]))
      const leaveOut = (node: ProfileNode) => {
        category.set(node.id, "idle")
        for (const child of node.children ?? []) leaveOut(byId.get(child)!)
      }
      for (const node of profile.nodes) {
        if (node.callFrame.url.startsWith("node:inspector")) leaveOut(node)
      }
      const time = { gc: 0, effect: 0, library: 0, sqlite: 0, sql: 0, other: 0, idle: 0 }
      profile.samples.forEach((id, i) => {
        time[category.get(id) ?? "other"] += profile.timeDeltas[i] ?? 0
      })
      const busy = time.gc + time.effect + time.library + time.sqlite + time.sql + time.other
      return {
        gc: time.gc / busy,
        effect: time.effect / busy,
        library: time.library / busy,
        sqlite: time.sqlite / busy,
        sql: time.sql / busy,
        other: time.other / busy
      }
    }
  }
}
