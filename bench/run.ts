/**
 * The benchmark runner: `npm run bench` (full) or `npm run bench -- --quick`.
 *
 * For each case it runs every variant in a fresh child process per round,
 * starting each round one variant further on and reversing the order on odd
 * rounds, so that no variant keeps the same place, then summarizes each metric across
 * rounds (median, min, max, spread), checks the targets, and writes:
 *
 * - full: bench/results/latest.json and BENCHMARKS.md;
 * - quick: bench/results/quick.json, with the report printed instead.
 *
 * `--case=throughput,memory` runs only those cases and writes nothing; an
 * unknown case id stops the run before anything runs, listing the valid ids.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import os from "node:os"
import path from "node:path"
import type { CaseResult, Figures, Results } from "./lib/results.js"
import { describeMachine } from "./lib/machine.js"
import { ROOT } from "./lib/spawn.js"
import { summarize } from "./lib/stats.js"
import { checkTargets } from "./lib/targets.js"
import type { CasePlan, Variant } from "./plan.js"
import { FULL, NOT_MEASURED, plan, QUICK } from "./plan.js"
import { renderMarkdown } from "./report.js"

const quick = process.argv.includes("--quick")
const only = process.argv
  .find((arg) => arg.startsWith("--case="))
  ?.slice("--case=".length)
  .split(",")
const settings = quick ? QUICK : FULL

const describe = (variant: Variant) =>
  [variant.impl, ...Object.entries(variant.params).map(([k, v]) => `${k}=${v}`)].join(" ")

const brief = (figures: Figures, metrics: ReadonlyArray<string>) =>
  metrics.map((m) => `${m}=${Number(figures[m]).toFixed(1)}`).join(" ")

const runCase = async (plan: CasePlan): Promise<CaseResult> => {
  const rounds = plan.variants.map((): Array<Figures> => [])
  for (let round = 0; round < settings.rounds; round++) {
    const count = plan.variants.length
    const order = plan.variants.map((_, i) => (i + round) % count)
    if (round % 2 === 1) order.reverse()
    for (const i of order) {
      const variant = plan.variants[i]!
      const started = performance.now()
      const figures = await variant.run()
      rounds[i]!.push(figures)
      const seconds = ((performance.now() - started) / 1000).toFixed(1)
      console.log(
        `[${plan.id}] round ${round + 1}/${settings.rounds} ${describe(variant)}: ` +
          `${brief(figures, plan.metrics)} (${seconds} s)`
      )
    }
  }
  return {
    id: plan.id,
    title: plan.title,
    variants: plan.variants.map((variant, i) => ({
      impl: variant.impl,
      params: variant.params,
      rounds: rounds[i]!,
      summary: Object.fromEntries(
        plan.metrics.map((m) => [m, summarize(rounds[i]!.map((f) => Number(f[m])))])
      )
    }))
  }
}

/** The plans to run, or a message naming the unknown ids and listing the valid ones. */
const selectPlans = (): ReadonlyArray<CasePlan> | string => {
  const plans = plan(settings)
  if (only === undefined) return plans
  const ids = plans.map((p) => p.id)
  const unknown = only.filter((id) => !ids.includes(id))
  if (unknown.length > 0) {
    return (
      `unknown case id ${unknown.map((id) => JSON.stringify(id)).join(", ")} in --case; ` +
      `valid ids: ${ids.join(", ")}`
    )
  }
  return plans.filter((p) => only.includes(p.id))
}

const main = async () => {
  const plans = selectPlans()
  if (typeof plans === "string") {
    console.error(plans)
    process.exitCode = 2
    return
  }
  const startedAt = new Date()
  const clock = performance.now()
  const machine = describeMachine(ROOT)
  const loadAtStart = os.loadavg()
  const mode = quick ? "quick" : "full"
  console.log(`${mode} run, ${settings.rounds} rounds, on ${machine.cpuModel} × ${machine.cores}`)
  if (loadAtStart[0]! > 0.5) {
    console.log(`load average is ${loadAtStart[0]!.toFixed(2)}: other work will add noise`)
  }

  const cases: Array<CaseResult> = []
  for (const casePlan of plans) cases.push(await runCase(casePlan))

  const results: Results = {
    mode,
    startedAt: startedAt.toISOString(),
    durationSeconds: (performance.now() - clock) / 1000,
    machine,
    loadAverage: { start: loadAtStart, end: os.loadavg() },
    settings,
    cases,
    notMeasured: NOT_MEASURED,
    targets: checkTargets(cases, settings)
  }
  const markdown = renderMarkdown(results, { written: only === undefined })
  if (only !== undefined) {
    console.log(`\n${markdown}`)
    return
  }
  mkdirSync(path.join(ROOT, "bench", "results"), { recursive: true })
  const json = path.join(ROOT, "bench", "results", quick ? "quick.json" : "latest.json")
  writeFileSync(json, JSON.stringify(results, null, 2) + "\n")
  if (quick) {
    console.log(`\n${markdown}`)
  } else {
    writeFileSync(path.join(ROOT, "BENCHMARKS.md"), markdown)
  }
  console.log(
    `wrote ${path.relative(ROOT, json)}${quick ? "" : " and BENCHMARKS.md"} ` +
      `in ${results.durationSeconds.toFixed(0)} s`
  )
}

main().catch((error: unknown) => {
  console.error("benchmark run failed:", error)
  process.exitCode = 1
})
