/**
 * What the figures were measured on: the machine, Node, the versions of the
 * packages compared (read from node_modules), and the commit of this library.
 */
import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"
import os from "node:os"
import path from "node:path"

export const COMPARED_PACKAGES = [
  "effect",
  "@effect/platform",
  "@effect/platform-node",
  "p-queue",
  "fastq",
  "autocannon",
  "@effect/sql",
  "@effect/sql-sqlite-node",
  "better-sqlite3",
  "tsx"
] as const

export interface Machine {
  readonly cpuModel: string
  readonly cores: number
  readonly memoryGiB: number
  readonly os: string
  readonly node: string
  readonly library: {
    readonly version: string
    readonly commit: string
    readonly srcDirty: boolean
  }
  readonly packages: Record<string, string>
}

const readVersion = (root: string, name: string): string => {
  const file = path.join(root, "node_modules", name, "package.json")
  return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version
}

const git = (root: string, args: ReadonlyArray<string>): string => {
  try {
    return execFileSync("git", args, { cwd: root, encoding: "utf8" }).trim()
  } catch {
    return "unknown"
  }
}

export const describeMachine = (root: string): Machine => {
  const own = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as {
    version: string
  }
  const cpus = os.cpus()
  return {
    cpuModel: cpus[0]?.model.trim() ?? "unknown",
    cores: cpus.length,
    memoryGiB: os.totalmem() / 2 ** 30,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    library: {
      version: own.version,
      commit: git(root, ["rev-parse", "--short", "HEAD"]),
      srcDirty: git(root, ["status", "--porcelain", "--", "src"]) !== ""
    },
    packages: Object.fromEntries(COMPARED_PACKAGES.map((name) => [name, readVersion(root, name)]))
  }
}
