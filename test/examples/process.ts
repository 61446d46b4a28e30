/**
 * Helpers for tests that run the scraper app as a user does: `node --import
 * tsx examples/scraper/main.ts` in a child process, configured by environment
 * variables. Everything a test starts here (children, servers, temp folders)
 * is undone by `cleanUp`, which each test file runs after each test.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import * as Http from "node:http"
import * as Net from "node:net"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../../", import.meta.url))

/** Things to undo after each test, newest first. */
const cleanups: Array<() => Promise<void>> = []

/** Registers `cleanup` to run after the current test. */
export const onCleanup = (cleanup: () => Promise<void>): void => {
  cleanups.push(cleanup)
}

/** Undoes what the test set up, newest first; for `afterEach`. */
export const cleanUp = async (): Promise<void> => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
}

/** A new temp folder, removed after the test. */
export const tempFolder = (prefix = "scraper-app-"): string => {
  const folder = mkdtempSync(Path.join(tmpdir(), prefix))
  onCleanup(async () => rmSync(folder, { recursive: true, force: true }))
  return folder
}

/** `DATABASE_URL` for a SQLite file in a temp folder of its own, removed after the test. */
export const sqliteUrl = (): string => `file:${Path.join(tempFolder(), "tasks.db")}`

/**
 * A node:http server on 127.0.0.1 with a free port; after the test, its
 * connections are cut and it is closed. Gives back its port.
 */
export const listenLocal = async (handler: Http.RequestListener): Promise<number> => {
  const server = Http.createServer(handler)
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve())
  })
  onCleanup(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  )
  return (server.address() as Net.AddressInfo).port
}

export interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface App {
  readonly child: ChildProcess
  /** Everything the app has written to stdout so far. */
  readonly stdout: () => string
  /** Everything the app has written to stderr so far. */
  readonly stderr: () => string
  /** Resolves with the first match of `pattern` on stdout, waiting for more output. */
  readonly output: (pattern: RegExp) => Promise<RegExpMatchArray>
  readonly exited: Promise<Exited>
  /** Resolves once the app has exited and all its output has been read. */
  readonly closed: Promise<void>
}

/**
 * Starts the app with `env` over the test's environment; `DATABASE_URL` is a
 * SQLite file in a temp folder of its own unless `env` names one. The app is
 * killed by its pid after the test if it is still running.
 */
export const startApp = (env: Record<string, string>): App => {
  const database = env["DATABASE_URL"] ?? sqliteUrl()
  const child = spawn(process.execPath, ["--import", "tsx", "examples/scraper/main.ts"], {
    cwd: root,
    env: { ...process.env, ...env, DATABASE_URL: database },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
  const exited = new Promise<Exited>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal }))
  )
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()))
  onCleanup(async () => {
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

  return { child, stdout: () => stdout, stderr: () => stderr, output, exited, closed }
}

/** The base URL of a started app, from the port its first log line names. */
export const baseUrl = async (app: App, ms = 20_000): Promise<string> => {
  const listening = await within(
    ms,
    "the app to listen",
    app.output(/Listening on http:\/\/127\.0\.0\.1:(\d+)/)
  )
  return `http://127.0.0.1:${Number(listening[1])}`
}

/** Fails with `what` unless `promise` settles within `ms` milliseconds. */
export const within = <A>(ms: number, what: string, promise: Promise<A>): Promise<A> => {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

/** Resolves after `ms` milliseconds. */
export const pause = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Calls `probe` every `every` ms until it gives something other than
 * `undefined`, and gives that back; fails naming `what` (and the last value
 * `describe` gives) after `ms` milliseconds.
 */
export const poll = async <A>(
  ms: number,
  what: string,
  probe: () => Promise<A | undefined>,
  options: { readonly every?: number; readonly describe?: () => string } = {}
): Promise<A> => {
  const deadline = Date.now() + ms
  while (true) {
    const found = await probe()
    if (found !== undefined) return found
    if (Date.now() >= deadline) {
      const last = options.describe === undefined ? "" : `; last seen: ${options.describe()}`
      throw new Error(`${what} did not happen within ${ms} ms${last}`)
    }
    await pause(options.every ?? 50)
  }
}

/** Reads a task until it leaves queued and running: at most 200 reads, 25 ms apart. */
export const settled = async (base: string, id: string): Promise<any> => {
  let view: any
  for (let attempt = 0; attempt < 200; attempt++) {
    view = await (await fetch(`${base}/v0/tasks/${id}`)).json()
    if (view.status !== "queued" && view.status !== "running") return view
    await pause(25)
  }
  throw new Error(`task ${id} had not finished after 200 reads: ${JSON.stringify(view)}`)
}

/** Whether a TCP connection to 127.0.0.1:`port` is refused. */
export const refused = (port: number): Promise<boolean> =>
  new Promise<boolean>((resolve) => {
    const socket = Net.connect(port, "127.0.0.1")
    socket.once("connect", () => {
      socket.destroy()
      resolve(false)
    })
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"))
  })
