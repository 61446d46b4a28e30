import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"

const root = fileURLToPath(new URL("..", import.meta.url))
const run = promisify(execFile)

/** Imports by package name in a plain Node process, as a dependent would. */
const probe = `
const lib = await import("effect-task-queue")
const sql = await import("effect-task-queue/SqlTaskStore")
const out = { namespaces: Object.keys(lib).sort(), sql: Object.keys(sql).sort(), blocked: [] }
const internals = [
  "effect-task-queue/internal/id",
  "effect-task-queue/dist/internal/id.js",
  "effect-task-queue/src/index.ts"
]
for (const path of internals) {
  try { await import(path) } catch (error) { out.blocked.push(error.code) }
}
console.log(JSON.stringify(out))
`

describe("package", () => {
  it("builds ESM with type declarations, both entries exported by name, internals unreachable", async () => {
    await run("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: root })
    for (const file of [
      "index.js",
      "index.d.ts",
      "TaskQueue.js",
      "TaskQueue.d.ts",
      "TaskApi.d.ts",
      "SqlTaskStore.js",
      "SqlTaskStore.d.ts"
    ]) {
      expect(existsSync(`${root}/dist/${file}`)).toBe(true)
    }
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", probe], {
      cwd: root
    })
    expect(JSON.parse(stdout)).toEqual({
      namespaces: ["Task", "TaskApi", "TaskError", "TaskQueue", "TaskStore"],
      sql: ["layer", "make"],
      blocked: [
        "ERR_PACKAGE_PATH_NOT_EXPORTED",
        "ERR_PACKAGE_PATH_NOT_EXPORTED",
        "ERR_PACKAGE_PATH_NOT_EXPORTED"
      ]
    })
  })
})
