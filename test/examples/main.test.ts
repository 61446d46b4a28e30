/**
 * The scraper app as a user runs it: `node --import tsx examples/scraper/main.ts`
 * in a child process, configured by environment variables, stopped by SIGTERM.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import * as Http from "node:http"
import * as Net from "node:net"
import { fileURLToPath } from "node:url"
import { afterEach, describe, expect, it } from "vitest"

const root = fileURLToPath(new URL("../../", import.meta.url))
const page = readFileSync(new URL("../fixtures/pages/graph-offers.html", import.meta.url), "utf8")

/** Things to undo after each test, newest first. */
const cleanups: Array<() => Promise<void>> = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A store on 127.0.0.1 with one product page, closed after the test. */
const startStore = async (): Promise<string> => {
  const server = Http.createServer((req, res) => {
    if (req.url === "/products/barista-pro") {
      res.writeHead(200, { "content-type": "text/html" }).end(page)
    } else {
      res.writeHead(404, { "content-type": "text/html" }).end("<h1>Not found</h1>")
    }
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  )
  return `http://127.0.0.1:${(server.address() as Net.AddressInfo).port}/products/barista-pro`
}

interface App {
  readonly child: ChildProcess
  /** Everything the app has written to stdout so far. */
  readonly stdout: () => string
  /** Resolves with the first match of `pattern` on stdout, waiting for more output. */
  readonly output: (pattern: RegExp) => Promise<RegExpMatchArray>
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Resolves once the app has exited and all its output has been read. */
  readonly closed: Promise<void>
}

/** Starts the app; it is killed by its pid after the test if it is still running. */
const startApp = (env: Record<string, string>): App => {
  const folder = mkdtempSync(Path.join(tmpdir(), "scraper-app-"))
  cleanups.push(async () => rmSync(folder, { recursive: true, force: true }))
  const child = spawn(process.execPath, ["--import", "tsx", "examples/scraper/main.ts"], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: `file:${Path.join(folder, "tasks.db")}`, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal }))
  )
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()))
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid!, "SIGKILL")
      await exited
    }
  })

  const output = (pattern: RegExp) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const match = stdout.match(pattern)
        if (match === null) return
        child.stdout!.off("data", check)
        resolve(match)
      }
      child.stdout!.on("data", check)
      check()
      void exited.then(({ code, signal }) => {
        const status = `code ${code}, signal ${signal}`
        reject(
          new Error(`the app exited (${status}) before printing ${pattern}:\n${stdout}${stderr}`)
        )
      })
    })

  return { child, stdout: () => stdout, output, exited, closed }
}

/** Fails with `what` unless `promise` settles within `ms` milliseconds. */
const within = <A>(ms: number, what: string, promise: Promise<A>): Promise<A> => {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

/** Reads a task until it leaves queued and running: at most 200 reads, 25 ms apart. */
const settled = async (base: string, id: string): Promise<any> => {
  let view: any
  for (let attempt = 0; attempt < 200; attempt++) {
    view = await (await fetch(`${base}/v0/tasks/${id}`)).json()
    if (view.status !== "queued" && view.status !== "running") return view
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`task ${id} had not finished after 200 reads: ${JSON.stringify(view)}`)
}

/** Whether a TCP connection to 127.0.0.1:`port` is refused. */
const refused = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = Net.connect(port, "127.0.0.1")
    socket.once("connect", () => {
      socket.destroy()
      resolve(false)
    })
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"))
  })

describe("examples/scraper/main.ts", () => {
  it("serves scrapes on HOST:PORT, logs each finished task and exits 0 on SIGTERM", async () => {
    const product = await startStore()
    // PORT=0: the app listens on a free port and says which in its first log line.
    const app = startApp({ HOST: "127.0.0.1", PORT: "0", MAX_WORKERS: "2" })

    const listening = await app.output(/Listening on http:\/\/127\.0\.0\.1:(\d+)/)
    const port = Number(listening[1])
    expect(port).toBeGreaterThan(0)
    const base = `http://127.0.0.1:${port}`

    const response = await fetch(`${base}/v0/scrapes`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ url: product })
    })
    expect(response.status).toBe(202)
    const { id } = (await response.json()) as { id: string }

    const view = await settled(base, id)
    expect(view).toMatchObject({
      id,
      status: "succeeded",
      attempt: 1,
      result: { name: "Barista Pro Espresso Machine", price: 1299, currency: "EUR" }
    })
    // The line is written just after the task is stored as finished.
    await app.output(new RegExp(`taskId: ${id}`))

    app.child.kill("SIGTERM")
    expect(await within(10_000, "shutting down on SIGTERM", app.exited)).toEqual({
      code: 0,
      signal: null
    })
    expect(await refused(port)).toBe(true)

    // The pretty logger writes a line, then one indented line per annotation.
    const entries = app.stdout().split(/\n(?=\[)/)
    const finished = entries.filter((entry) => entry.includes(`taskId: ${id}`))
    expect(finished).toHaveLength(1)
    const entry = finished[0]!
    expect(entry).toMatch(/^\[[\d:.]+\] INFO \(#\d+\): task succeeded\n/)
    expect(entry).toMatch(/^ {2}attempt: 1$/m)
    expect(entry).toMatch(/^ {2}status: succeeded$/m)
    expect(entry).toMatch(/^ {2}queue: scrapes$/m)
    expect(entry).toMatch(/^ {2}durationMs: \d+$/m)
  })

  it("refuses to start on a bad setting: exits 1 naming the variable, value and rule", async () => {
    const cases = [
      [{ SCRAPE_ATTEMPTS: "0" }, 'SCRAPE_ATTEMPTS: "must be a positive integer; got 0"'],
      [{ PORT: "70000" }, 'PORT: "must be a port number from 0 to 65535; got 70000"']
    ] as const
    for (const [env, message] of cases) {
      const app = startApp({ HOST: "127.0.0.1", PORT: "0", ...env })
      expect(await within(10_000, "refusing to start", app.exited)).toEqual({
        code: 1,
        signal: null
      })
      await app.closed
      expect(app.stdout()).toContain(`(Invalid data at ${message})`)
      expect(app.stdout()).not.toContain("Listening on")
    }
  })

  it("exits on SIGTERM even with a client stuck halfway through a request", async () => {
    const app = startApp({ HOST: "127.0.0.1", PORT: "0", MAX_WORKERS: "2" })
    const listening = await app.output(/Listening on http:\/\/127\.0\.0\.1:(\d+)/)
    const port = Number(listening[1])

    // A keep-alive connection that sends headers and half its body, then waits.
    const socket = Net.connect(port, "127.0.0.1")
    cleanups.push(async () => void socket.destroy())
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()))
    let received = ""
    socket.setEncoding("utf8").on("data", (chunk: string) => (received += chunk))
    socket.on("error", () => {})
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()))
    socket.write(
      "POST /v0/scrapes HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" +
        'content-length: 40\r\n\r\n{"url":'
    )

    app.child.kill("SIGTERM")
    expect(await within(10_000, "shutting down on SIGTERM", app.exited)).toEqual({
      code: 0,
      signal: null
    })
    await within(1_000, "the stuck connection to close", closed)
    // The request is either answered 503 (if its headers arrived after the API
    // went away) or cut when the two seconds of grace run out.
    if (received !== "") expect(received).toMatch(/^HTTP\/1\.1 503 /)
  })
})
