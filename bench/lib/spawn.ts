/**
 * Runs one case in a fresh child process: `node --expose-gc --import tsx`,
 * with the project root as working directory (so tsx maps
 * `effect-task-queue` to src/ through tsconfig.json's paths). A child that
 * exits badly, prints no result, or outlives its time limit fails the run;
 * one over its limit is killed first.
 */
import type { ChildProcess } from "node:child_process"
import { spawn } from "node:child_process"
import path from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { READY_PREFIX, RESULT_PREFIX } from "./child.js"

export const ROOT = fileURLToPath(new URL("../..", import.meta.url))
export const NODE_FLAGS = ["--expose-gc", "--import", "tsx"] as const

export type ChildResult = Record<string, unknown>

interface Running {
  readonly child: ChildProcess
  /** Resolves with the `BENCH_READY` payload. */
  readonly ready: Promise<ChildResult>
  /** Resolves with the `BENCH_RESULT` payload once the child has exited cleanly. */
  readonly done: Promise<ChildResult>
}

const start = (file: string, args: ReadonlyArray<string>, timeoutMs: number): Running => {
  const script = path.join(ROOT, "bench", "cases", file)
  const child = spawn(process.execPath, [...NODE_FLAGS, script, ...args], {
    cwd: ROOT,
    stdio: ["pipe", "pipe", "pipe"]
  })
  const label = `${file} ${args.join(" ")}`
  let stderr = ""
  child.stderr!.setEncoding("utf8")
  child.stderr!.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-8000)
  })

  let result: ChildResult | undefined
  let onReady!: (info: ChildResult) => void
  const ready = new Promise<ChildResult>((resolve) => (onReady = resolve))
  createInterface({ input: child.stdout! }).on("line", (line) => {
    if (line.startsWith(READY_PREFIX)) onReady(JSON.parse(line.slice(READY_PREFIX.length)))
    if (line.startsWith(RESULT_PREFIX)) result = JSON.parse(line.slice(RESULT_PREFIX.length))
  })

  const done = new Promise<ChildResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`${label}: no result within ${timeoutMs / 1000} s; killed\n${stderr}`))
    }, timeoutMs)
    child.on("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      if (code === 0 && result !== undefined) resolve(result)
      else reject(new Error(`${label}: exited ${code ?? signal} without a result\n${stderr}`))
    })
  })
  return { child, ready, done }
}

/** Runs a child to its end and gives back its result. */
export const runChild = (
  file: string,
  args: ReadonlyArray<string>,
  timeoutMs: number
): Promise<ChildResult> => {
  const running = start(file, args, timeoutMs)
  running.child.stdin!.end()
  return running.done
}

export interface Server {
  readonly info: ChildResult
  /** Asks the server to stop and gives back its final result. */
  readonly stop: () => Promise<ChildResult>
}

/** Starts a server child and waits until it has printed its port. */
export const startServer = async (
  file: string,
  args: ReadonlyArray<string>,
  timeoutMs: number
): Promise<Server> => {
  const running = start(file, args, timeoutMs)
  // A child that dies before it is ready must not leave the wait hanging.
  const dead = running.done.then(() => Promise.reject(new Error(`${file} ended before ready`)))
  const info = await Promise.race([running.ready, dead])
  return {
    info,
    stop: () => {
      running.child.stdin!.end("stop\n")
      return running.done
    }
  }
}
