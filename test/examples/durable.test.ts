/**
 * The scraper app on a SQLite file, as a child process: tasks outlive a
 * killed process and a clean shutdown, and many enqueues at once while
 * workers write do not trip over the file's lock. Pages come from a store on
 * 127.0.0.1 with a URL per task, so the test counts how often each was
 * fetched.
 */
import { readFileSync } from "node:fs"
import type * as Http from "node:http"
import { afterEach, describe, expect, it } from "vitest"
import {
  type App,
  baseUrl,
  cleanUp,
  listenLocal,
  poll,
  sqliteUrl,
  startApp,
  within
} from "./process.js"

afterEach(cleanUp)

const fixture = readFileSync(
  new URL("../fixtures/pages/graph-offers.html", import.meta.url),
  "utf8"
)

/** The product on page `n`: the fixture's product, named after its page. */
const productName = (n: number) => `Barista Pro Espresso Machine p-${n}`
const pageHtml = (n: number) => fixture.replaceAll("Barista Pro Espresso Machine", productName(n))

interface Pages {
  /** The URL of page `n`: `/products/p-<n>`. */
  readonly url: (n: number) => string
  /** How many requests page `n` has had. */
  readonly fetches: (n: number) => number
  /** How many answers to page `n` were sent in full. */
  readonly answered: (n: number) => number
  /** Answers sent in full, all pages together. */
  readonly answeredInAll: () => number
  /** The pages with a request that has not been answered (nor given up) yet. */
  readonly inFlight: () => ReadonlyArray<number>
  /**
   * Runs `action` as soon as `count` requests are in flight (at once if they
   * already are), before any of them can be answered, and gives back the
   * pages that were in flight then.
   */
  readonly whenInFlight: (count: number, action: () => void) => Promise<ReadonlyArray<number>>
  /** Sets how long each page takes to answer from now on. */
  readonly setDelay: (delay: (n: number) => number) => void
  /** Holds every request from now on, unanswered, until `release`. */
  readonly hold: () => void
  /** Answers the held requests, each after its delay, and stops holding. */
  readonly release: () => void
}

/** A store on 127.0.0.1 whose page `n` answers after `delay(n)` milliseconds. */
const startPages = async (delay: (n: number) => number): Promise<Pages> => {
  let delayOf = delay
  let holding = false
  let held: Array<() => void> = []
  let answeredInAll = 0
  let trigger: (() => void) | undefined
  const fetches = new Map<number, number>()
  const answered = new Map<number, number>()
  const inFlight = new Map<Http.ServerResponse, number>()

  const port = await listenLocal((req, res) => {
    const match = /^\/products\/p-(\d+)$/.exec(req.url ?? "")
    if (match === null) {
      res.writeHead(404, { "content-type": "text/html" }).end("<h1>Not found</h1>")
      return
    }
    const n = Number(match[1])
    fetches.set(n, (fetches.get(n) ?? 0) + 1)
    inFlight.set(res, n)
    // Done, or given up by its client (a killed app): either way no longer in flight.
    res.once("close", () => inFlight.delete(res))
    res.once("finish", () => {
      inFlight.delete(res)
      answered.set(n, (answered.get(n) ?? 0) + 1)
      answeredInAll += 1
    })
    res.on("error", () => {})
    const answer = () => {
      if (res.destroyed || res.writableEnded) return
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(pageHtml(n))
    }
    const later = () => setTimeout(answer, delayOf(n))
    if (holding) held.push(later)
    else later()
    trigger?.()
  })

  return {
    url: (n) => `http://127.0.0.1:${port}/products/p-${n}`,
    fetches: (n) => fetches.get(n) ?? 0,
    answered: (n) => answered.get(n) ?? 0,
    answeredInAll: () => answeredInAll,
    inFlight: () => [...inFlight.values()],
    whenInFlight: (count, action) =>
      new Promise((resolve) => {
        const check = () => {
          if (inFlight.size < count) return false
          trigger = undefined
          const pages = [...inFlight.values()]
          action()
          resolve(pages)
          return true
        }
        if (!check()) trigger = check
      }),
    setDelay: (delay) => {
      delayOf = delay
    },
    hold: () => {
      holding = true
    },
    release: () => {
      holding = false
      const answers = held
      held = []
      for (const answer of answers) answer()
    }
  }
}

const range = (count: number) => Array.from({ length: count }, (_, i) => i + 1)

interface Posted {
  readonly status: number
  readonly body: string
}

/** POSTs a scrape of `url`; a request that fails outright shows as status 0. */
const postScrape = async (base: string, url: string): Promise<Posted> => {
  try {
    const response = await fetch(`${base}/v0/scrapes`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ url })
    })
    return { status: response.status, body: await response.text() }
  } catch (error) {
    return { status: 0, body: String((error as Error).cause ?? error) }
  }
}

/** POSTs a scrape of each URL, `parallel` at a time; the answers in order. */
const postAll = async (
  base: string,
  urls: ReadonlyArray<string>,
  parallel: number
): Promise<Array<Posted>> => {
  const answers: Array<Posted> = []
  for (let i = 0; i < urls.length; i += parallel) {
    const batch = urls.slice(i, i + parallel)
    answers.push(...(await Promise.all(batch.map((url) => postScrape(base, url)))))
  }
  return answers
}

/**
 * Enqueues a scrape of page `n` for each of `pages`, `parallel` at a time;
 * every POST must be accepted. Gives back the page of each task id.
 */
const enqueuePages = async (
  base: string,
  pages: Pages,
  numbers: ReadonlyArray<number>,
  parallel: number
): Promise<Map<string, number>> => {
  const answers = await postAll(base, numbers.map(pages.url), parallel)
  const refused = answers.filter((answer) => answer.status !== 202)
  expect(refused).toEqual([])
  const ids = new Map<string, number>()
  answers.forEach((answer, i) => {
    const body = JSON.parse(answer.body) as { id: string; status: string }
    expect(body.status).toBe("queued")
    ids.set(body.id, numbers[i]!)
  })
  expect(ids.size).toBe(numbers.length)
  return ids
}

/** Every task of the queue (of one status, if given), read a page of 100 at a time. */
const listAll = async (base: string, status?: string): Promise<Array<any>> => {
  const items: Array<any> = []
  let cursor: string | null = null
  for (let page = 0; page < 100; page++) {
    const query = new URLSearchParams({ limit: "100" })
    if (status !== undefined) query.set("status", status)
    if (cursor !== null) query.set("cursor", cursor)
    const response = await fetch(`${base}/v0/tasks?${query}`)
    if (response.status !== 200) {
      throw new Error(
        `GET /v0/tasks?${query} answered ${response.status}: ${await response.text()}`
      )
    }
    const body = (await response.json()) as { items: Array<any>; next: string | null }
    items.push(...body.items)
    if (body.next === null) return items
    cursor = body.next
  }
  throw new Error("the task list did not end within 100 pages")
}

const isActive = (task: { readonly status: string }) =>
  task.status === "queued" || task.status === "running"

/** How many tasks have each status. */
const countByStatus = (tasks: ReadonlyArray<{ readonly status: string }>) => {
  const counts: Record<string, number> = {}
  for (const task of tasks) counts[task.status] = (counts[task.status] ?? 0) + 1
  return counts
}

/** Waits (at most `ms`) until the app lists no queued or running task; gives back the list. */
const allEnded = async (base: string, ms: number): Promise<Array<any>> => {
  let last: Array<any> = []
  return poll(
    ms,
    "every task to end",
    async () => {
      last = await listAll(base)
      return last.some(isActive) ? undefined : last
    },
    { every: 100, describe: () => JSON.stringify(countByStatus(last)) }
  )
}

/** Checks that `listed` holds exactly the enqueued task ids: none missing, none extra. */
const expectSameTasks = (listed: ReadonlyArray<string>, enqueued: ReadonlyMap<string, number>) => {
  const missing = [...enqueued.keys()].filter((id) => !listed.includes(id))
  const extra = listed.filter((id) => !enqueued.has(id))
  expect(
    { missing: missing.length, extra },
    `of ${enqueued.size} tasks, missing: ${missing.slice(0, 5).join(", ")}`
  ).toEqual({ missing: 0, extra: [] })
}

/**
 * Checks that the listed tasks are exactly the enqueued ones, each listed
 * once, each succeeded with the product of its own page.
 */
const expectAllSucceeded = (
  tasks: ReadonlyArray<any>,
  enqueued: ReadonlyMap<string, number>,
  pages: Pages
) => {
  const listed = tasks.map((task) => task.id as string)
  expect(new Set(listed).size).toBe(listed.length)
  expectSameTasks(listed, enqueued)
  const wrong = tasks
    .filter((task) => {
      const n = enqueued.get(task.id)!
      return (
        task.status !== "succeeded" ||
        task.result?.name !== productName(n) ||
        task.result?.url !== pages.url(n)
      )
    })
    .map((task) => ({ id: task.id, status: task.status, result: task.result, error: task.error }))
  expect(wrong).toEqual([])
}

/** Sends `signal` to the app by its pid; resolves with how it exited. */
const signal = (app: App, name: NodeJS.Signals, ms = 15_000) => {
  process.kill(app.child.pid!, name)
  return within(ms, `the app to exit on ${name}`, app.exited)
}

const HOST = "127.0.0.1"

describe("examples/scraper/main.ts on a SQLite file", () => {
  it("takes back the tasks of a killed app: all end succeeded, only those in flight ran again", async () => {
    // 20 to 50 ms per page, so that scrapes are in flight when the app is killed.
    const pages = await startPages((n) => 20 + ((n * 7) % 31))
    const env = { HOST, PORT: "0", MAX_WORKERS: "2", DATABASE_URL: sqliteUrl() }
    const first = startApp(env)
    const base = await baseUrl(first)

    const enqueued = await enqueuePages(base, pages, range(200), 20)

    await poll(20_000, "10 scrapes to succeed", async () =>
      (await listAll(base, "succeeded")).length >= 10 ? true : undefined
    )
    // Killed as the second scrape in flight reaches the store: no answer can
    // reach the app in between.
    const cut = await within(
      10_000,
      "two scrapes in flight",
      pages.whenInFlight(2, () => process.kill(first.child.pid!, "SIGKILL"))
    )
    expect(await within(10_000, "the app to die", first.exited)).toEqual({
      code: null,
      signal: "SIGKILL"
    })
    expect(cut).toHaveLength(2)

    // The tasks left running are taken back at start, not when their 30-second
    // lease runs out: everything ends well within 20 seconds.
    const second = startApp(env)
    const tasks = await allEnded(await baseUrl(second), 20_000)

    expectAllSucceeded(tasks, enqueued, pages)
    // A page in flight at the kill ran at most once more; every other page ran once.
    const fetchedWrongly = range(200)
      .map((n) => ({ page: n, inFlight: cut.includes(n), fetches: pages.fetches(n) }))
      .filter(({ inFlight, fetches }) => (inFlight ? fetches < 1 || fetches > 2 : fetches !== 1))
    expect(fetchedWrongly).toEqual([])
    // The kill cut at least one scrape short, and it ran again.
    expect(cut.some((n) => pages.fetches(n) === 2)).toBe(true)
    // Each task's attempt counts its runs, the one cut short included.
    const miscounted = tasks
      .map((task) => ({
        id: task.id,
        attempt: task.attempt,
        fetches: pages.fetches(enqueued.get(task.id)!)
      }))
      .filter(({ attempt, fetches }) => attempt !== fetches)
    expect(miscounted).toEqual([])
  }, 60_000)

  it("keeps the tasks still queued at SIGTERM in the file, and a restart runs them", async () => {
    const pages = await startPages(() => 400)
    const env = {
      HOST,
      PORT: "0",
      MAX_WORKERS: "1",
      SHUTDOWN_GRACE: "10 seconds",
      DATABASE_URL: sqliteUrl()
    }
    const first = startApp(env)
    const base = await baseUrl(first)
    const enqueued = await enqueuePages(base, pages, range(20), 5)

    // SIGTERM while one scrape runs and the others wait.
    const [running] = await within(
      10_000,
      "a scrape in flight",
      pages.whenInFlight(1, () => process.kill(first.child.pid!, "SIGTERM"))
    )
    expect(await within(15_000, "the app to exit on SIGTERM", first.exited)).toEqual({
      code: 0,
      signal: null
    })
    // The running scrape had its grace period to finish; nothing was cut.
    expect(pages.inFlight()).toEqual([])
    expect(pages.answered(running!)).toBe(1)
    const done = range(20).filter((n) => pages.fetches(n) > 0)
    expect(done.every((n) => pages.answered(n) === 1)).toBe(true)
    expect(done.length).toBeLessThan(20)

    // Restarted with the store holding every request: what the file kept shows
    // before the scrapes can finish.
    pages.hold()
    const second = startApp(env)
    const secondBase = await baseUrl(second)
    const kept = await listAll(secondBase)
    expectSameTasks(
      kept.map((task) => task.id),
      enqueued
    )
    const byPage = (task: any) => enqueued.get(task.id)!
    const finished = kept.filter((task) => done.includes(byPage(task)))
    expect(finished.map((task) => [task.status, task.attempt])).toEqual(
      done.map(() => ["succeeded", 1])
    )
    const rest = kept.filter((task) => !done.includes(byPage(task)))
    expect(rest).toHaveLength(20 - done.length)
    // The restart may have started one of them; the others wait, never run.
    const startedAgain = rest.filter((task) => task.status === "running")
    expect(startedAgain.length).toBeLessThanOrEqual(1)
    expect(startedAgain.every((task) => task.attempt === 1)).toBe(true)
    const waiting = rest.filter((task) => task.status !== "running")
    expect(waiting.map((task) => [task.status, task.attempt, task.startedAt])).toEqual(
      waiting.map(() => ["queued", 0, null])
    )

    pages.setDelay(() => 5)
    pages.release()
    const tasks = await allEnded(secondBase, 40_000)
    expectAllSucceeded(tasks, enqueued, pages)
    // None ran twice: the one running at SIGTERM finished then, before the exit.
    expect(range(20).filter((n) => pages.fetches(n) !== 1)).toEqual([])
    expect(tasks.filter((task) => task.attempt !== 1)).toEqual([])

    expect(await signal(second, "SIGTERM")).toEqual({ code: 0, signal: null })
  }, 60_000)

  it("accepts 500 enqueues fired 50 at a time while 8 workers write, and runs them all", async () => {
    const pages = await startPages(() => 0)
    const app = startApp({ HOST, PORT: "0", MAX_WORKERS: "8", DATABASE_URL: sqliteUrl() })
    const base = await baseUrl(app)

    const answers = await postAll(
      base,
      range(500).map((n) => pages.url(n)),
      50
    )
    // Workers finished scrapes (and wrote to the file) while the POSTs came in.
    expect(pages.answeredInAll()).toBeGreaterThan(0)
    const refused = answers
      .map((answer, i) => ({ page: i + 1, ...answer }))
      .filter((answer) => answer.status !== 202)
    expect(refused).toEqual([])
    const enqueued = new Map<string, number>(
      answers.map((answer, i) => [(JSON.parse(answer.body) as { id: string }).id, i + 1])
    )
    expect(enqueued.size).toBe(500)

    const tasks = await allEnded(base, 40_000)
    expectAllSucceeded(tasks, enqueued, pages)
    expect(range(500).filter((n) => pages.fetches(n) !== 1)).toEqual([])
    expect(app.stdout() + app.stderr()).not.toMatch(/database is locked|SQLITE_BUSY/i)
  }, 60_000)
})
