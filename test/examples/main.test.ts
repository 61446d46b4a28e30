/**
 * The scraper app as a user runs it: `node --import tsx examples/scraper/main.ts`
 * in a child process, configured by environment variables, stopped by SIGTERM.
 */
import { readFileSync } from "node:fs"
import * as Net from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { cleanUp, listenLocal, onCleanup, refused, settled, startApp, within } from "./process.js"

const page = readFileSync(new URL("../fixtures/pages/graph-offers.html", import.meta.url), "utf8")

afterEach(cleanUp)

/** A store on 127.0.0.1 with one product page, closed after the test. */
const startStore = async (): Promise<string> => {
  const port = await listenLocal((req, res) => {
    if (req.url === "/products/barista-pro") {
      res.writeHead(200, { "content-type": "text/html" }).end(page)
    } else {
      res.writeHead(404, { "content-type": "text/html" }).end("<h1>Not found</h1>")
    }
  })
  return `http://127.0.0.1:${port}/products/barista-pro`
}

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
    onCleanup(async () => void socket.destroy())
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
