/**
 * A CPU profile of one stretch of a child's run, taken with V8's sampling
 * profiler through `node:inspector`, and summed by where the time went:
 * garbage collection, Effect's runtime (`node_modules/effect`), this
 * library (`src/`), and everything else (Node, the benchmark's own loop).
 * Idle samples are left out.
 */
import { Session } from "node:inspector/promises"

export interface Breakdown {
  readonly gc: number
  readonly effect: number
  readonly library: number
  readonly other: number
}

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string }
}

interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const categoryOf = (node: ProfileNode): keyof Breakdown | "idle" => {
  const { functionName, url } = node.callFrame
  if (functionName === "(garbage collector)") return "gc"
  if (functionName === "(idle)") return "idle"
  if (url.includes("/node_modules/effect/")) return "effect"
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
      const category = new Map(profile.nodes.map((node) => [node.id, categoryOf(node)]))
      const time = { gc: 0, effect: 0, library: 0, other: 0, idle: 0 }
      profile.samples.forEach((id, i) => {
        time[category.get(id) ?? "other"] += profile.timeDeltas[i] ?? 0
      })
      const busy = time.gc + time.effect + time.library + time.other
      return {
        gc: time.gc / busy,
        effect: time.effect / busy,
        library: time.library / busy,
        other: time.other / busy
      }
    }
  }
}
