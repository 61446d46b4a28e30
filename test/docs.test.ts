import { execFile } from "node:child_process"
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"

const root = fileURLToPath(new URL("..", import.meta.url))
const run = promisify(execFile)

/** The ```ts blocks of the JSDoc comments in src/, with the file they come from. */
const examples = (): Array<{ readonly file: string; readonly code: string }> => {
  const found = []
  for (const file of readdirSync(join(root, "src")).filter((name) => name.endsWith(".ts"))) {
    const text = readFileSync(join(root, "src", file), "utf8")
    for (const block of text.matchAll(/```ts\n([\s\S]*?)```/g)) {
      const code = block[1]!
        .split("\n")
        .map((line) => line.replace(/^\s*\* ?/, ""))
        .join("\n")
      found.push({ file, code })
    }
  }
  return found
}

describe("docs", () => {
  it("type-checks every example in the JSDoc of src/", async () => {
    const all = examples()
    expect(all.length).toBeGreaterThanOrEqual(4)
    const dir = join(root, "node_modules", ".cache", "doc-examples")
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    all.forEach(({ file, code }, i) =>
      writeFileSync(join(dir, `${file.replace(".ts", "")}-${i}.ts`), `${code}\nexport {}\n`)
    )
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        extends: "../../../tsconfig.base.json",
        compilerOptions: {
          noEmit: true,
          noUnusedLocals: false,
          paths: { "effect-task-queue": ["../../../src/index.ts"] }
        },
        include: ["*.ts"]
      })
    )
    const result = await run("npx", ["tsc", "-p", dir], { cwd: root }).then(
      () => "",
      (error: { stdout: string }) => error.stdout
    )
    expect(result).toBe("")
  })
})
