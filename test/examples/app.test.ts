/**
 * The scraper app in-process, on the test clock: its HTTP API on 127.0.0.1,
 * its settings read through Effect Config, scraping pages from a local store
 * whose "gate" answers only when the test says so. Tests wait for retries and
 * shutdown through the app's log lines.
 */
import { HttpClient, HttpClientRequest, HttpServer } from "@effect/platform"
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import {
  Clock,
  ConfigError,
  ConfigProvider,
  Context,
  Effect,
  Exit,
  Fiber,
  Layer,
  Scope,
  TestClock
} from "effect"
import * as Http from "node:http"
import { Logs, LogsLive, RETRYING, SHUTTING_DOWN } from "../helpers.js"
import { startStore } from "./store.js"
import { ApiLive, AppLive, Scrapes } from "../../examples/scraper/app.js"

/** `settings` as the environment variables the app reads. */
const environment = (settings: Record<string, string>) =>
  Layer.setConfigProvider(
    ConfigProvider.fromMap(new Map(Object.entries({ DATABASE_URL: "memory:", ...settings })))
  )

/**
 * The app's API on 127.0.0.1 on a free port, configured by `settings` as if
 * they were environment variables, with an HttpClient whose relative URLs go
 * to it, and its log lines.
 */
const app = (settings: Record<string, string>) =>
  ApiLive.pipe(
    Layer.provideMerge(HttpServer.layerTestClient),
    Layer.provide(NodeHttpClient.layerUndici),
    Layer.provideMerge(NodeHttpServer.layer(Http.createServer, { host: "127.0.0.1", port: 0 })),
    Layer.provideMerge(LogsLive),
    Layer.provide(environment(settings))
  )

// The test clock does not move while a test's scope closes: no grace period
// unless a test asks for one.
const settings = { MAX_WORKERS: "2", SCRAPE_TIMEOUT: "5 seconds", SHUTDOWN_GRACE: "0 seconds" }

const post = (path: string, body: unknown) =>
  HttpClient.execute(HttpClientRequest.post(path).pipe(HttpClientRequest.bodyUnsafeJson(body)))

const get = (path: string) => HttpClient.execute(HttpClientRequest.get(path))

const json = (response: { readonly json: Effect.Effect<unknown, unknown> }) =>
  Effect.orDie(response.json) as Effect.Effect<any>

/** Enqueues a scrape of `url` and gives back the new task's id. */
const enqueue = (url: string) =>
  Effect.gen(function* () {
    const response = yield* post("/v0/scrapes", { url })
    expect(response.status).toBe(202)
    return (yield* json(response)).id as string
  })

const view = (id: string) => Effect.flatMap(get(`/v0/tasks/${id}`), json)

/**
 * Waits until the task ends or is set to be retried, whichever comes first,
 * and says which: a failure that must not be retried fails its test at once
 * rather than leaving it waiting for a retry the test clock never reaches.
 */
const outcome = (id: string, retries = 0) =>
  Effect.gen(function* () {
    const scrapes = yield* Scrapes
    const logs = yield* Logs
    return yield* Effect.raceFirst(
      Effect.as(Effect.orDie(scrapes.await(id)), "ended" as const),
      Effect.as(logs.logged(RETRYING, id, retries + 1), "retrying" as const)
    )
  })

/**
 * Waits until the task's `count`-th retry is set, then moves the test clock
 * to the time it is due; gives back the task's view while it waited.
 */
const untilRetry = (id: string, count = 1) =>
  Effect.gen(function* () {
    yield* (yield* Logs).logged(RETRYING, id, count)
    const waiting = yield* view(id)
    const now = yield* Clock.currentTimeMillis
    // The view shows the time to the millisecond; the jittered delay has a
    // fraction of one more.
    yield* TestClock.adjust(Date.parse(waiting.runAt) + 1 - now)
    return waiting
  })

describe("the scraper app", () => {
  it.scoped("scrapes a JSON-LD product page and shows the product in the task's view", () =>
    Effect.gen(function* () {
      const store = yield* startStore
      const scrapes = yield* Scrapes

      const response = yield* post("/v0/scrapes", { url: store.url("/products/barista-pro") })
      expect(response.status).toBe(202)
      const body = yield* json(response)
      expect(body).toEqual({ id: expect.any(String), status: "queued" })
      expect(response.headers["location"]).toBe(`/v0/tasks/${body.id}`)

      yield* scrapes.awaitIdle
      const read = yield* get(response.headers["location"]!)
      expect(read.status).toBe(200)
      expect(yield* json(read)).toEqual({
        id: body.id,
        queue: "scrapes",
        status: "succeeded",
        attempt: 1,
        maxAttempts: 3,
        priority: 0,
        createdAt: expect.any(String),
        startedAt: expect.any(String),
        runAt: null,
        finishedAt: expect.any(String),
        result: {
          url: store.url("/products/barista-pro"),
          name: "Barista Pro Espresso Machine",
          price: 1299,
          currency: "EUR",
          availability: "InStock",
          source: "json-ld"
        }
      })
    }).pipe(Effect.provide(app(settings)))
  )

  it.scoped("runs at most MAX_WORKERS scrapes at once and the rest in turn", () =>
    Effect.gen(function* () {
      const store = yield* startStore
      const scrapes = yield* Scrapes
      const paths = [1, 2, 3, 4, 5, 6].map((n) => `/gate/${n}`)
      const ids = yield* Effect.forEach(paths, (path) => enqueue(store.url(path)))

      // Two at a time reach the store; each pair is let through once both wait.
      for (const queued of [4, 2, 0]) {
        yield* store.held(2)
        expect(yield* scrapes.stats).toMatchObject({ running: 2, queued })
        expect(store.peak()).toBe(2)
        yield* store.release
      }

      yield* scrapes.awaitIdle
      const views = yield* Effect.forEach(ids, view)
      expect(views.map((v) => v.status)).toEqual(Array(6).fill("succeeded"))
      expect(views.map((v) => v.result.name)).toEqual(paths.map((path) => `Item ${path}`))
      expect(store.peak()).toBe(2)
    }).pipe(Effect.provide(app({ ...settings, MAX_WORKERS: "2" })))
  )

  it.scoped("fails the task with the ScrapeError after one attempt when the page answers 404", () =>
    Effect.gen(function* () {
      const store = yield* startStore
      const url = store.url("/products/gone")

      const id = yield* enqueue(url)
      expect(yield* outcome(id)).toBe("ended")

      const read = yield* view(id)
      expect(read).toMatchObject({ id, status: "failed", attempt: 1, maxAttempts: 3 })
      expect(store.requests("/products/gone")).toBe(1)
      expect(read.result).toBeUndefined()
      expect(read.error).toEqual({
        kind: "failure",
        message: expect.stringContaining("404"),
        value: {
          _tag: "ScrapeError",
          url,
          reason: "http-status",
          status: 404,
          message: `GET ${url} answered 404 Not Found`
        }
      })
    }).pipe(Effect.provide(app(settings)))
  )

  it.scoped("does not retry a failure another attempt could not mend", () =>
    Effect.gen(function* () {
      const store = yield* startStore
      const cases = [
        ["/status/410", "http-status"],
        ["/status/403", "http-status"],
        ["/feed.json", "not-html"],
        ["/blank", "no-product"]
      ] as const
      for (const [path, reason] of cases) {
        const id = yield* enqueue(store.url(path))
        expect(yield* outcome(id)).toBe("ended")
        expect(yield* view(id)).toMatchObject({
          status: "failed",
          attempt: 1,
          error: { kind: "failure", value: { reason } }
        })
        expect(store.requests(path)).toBe(1)
      }
    }).pipe(Effect.provide(app(settings)))
  )

  it.scoped("retries a page that answered 503 or 429, about a second later", () =>
    Effect.gen(function* () {
      const store = yield* startStore
      for (const status of [503, 429]) {
        const path = `/first/${status}/barista-pro`
        const id = yield* enqueue(store.url(path))

        const waiting = yield* untilRetry(id)
        expect(waiting).toMatchObject({ status: "queued", attempt: 1, maxAttempts: 3 })
        expect(waiting.error).toBeUndefined()
        // The default backoff: 1 second, jittered to between 0.8 and 1.2 seconds.
        const delay = Date.parse(waiting.runAt) - Date.parse(waiting.startedAt)
        expect(delay).toBeGreaterThanOrEqual(800)
        expect(delay).toBeLessThanOrEqual(1200)

        expect(yield* outcome(id, 1)).toBe("ended")
        expect(yield* view(id)).toMatchObject({
          status: "succeeded",
          attempt: 2,
          runAt: null,
          result: { name: "Barista Pro Espresso Machine" }
        })
        expect(store.requests(path)).toBe(2)
      }
    }).pipe(Effect.provide(app(settings)))
  )

  it.scoped("gives up after SCRAPE_ATTEMPTS (3 by default) at a page that keeps failing", () =>
    Effect.gen(function* () {
      const store = yield* startStore
      const id = yield* enqueue(store.url("/status/500"))

      yield* untilRetry(id, 1)
      yield* untilRetry(id, 2)
      expect(yield* outcome(id, 2)).toBe("ended")

      expect(yield* view(id)).toMatchObject({
        status: "failed",
        attempt: 3,
        maxAttempts: 3,
        error: { kind: "failure", value: { reason: "http-status", status: 500 } }
      })
      expect(store.requests("/status/500")).toBe(3)
    }).pipe(Effect.provide(app(settings)))
  )

  it.scoped("never retries with SCRAPE_ATTEMPTS=1", () =>
    Effect.gen(function* () {
      const store = yield* startStore
      const id = yield* enqueue(store.url("/status/503"))
      expect(yield* outcome(id)).toBe("ended")
      expect(yield* view(id)).toMatchObject({ status: "failed", attempt: 1, maxAttempts: 1 })
    }).pipe(Effect.provide(app({ ...settings, SCRAPE_ATTEMPTS: "1" })))
  )

  it.scoped("ends an attempt after SCRAPE_TIMEOUT, aborts its request and retries", () =>
    Effect.gen(function* () {
      const store = yield* startStore
      const id = yield* enqueue(store.url("/gate/slow"))
      yield* store.held(1)

      yield* TestClock.adjust("4999 millis")
      expect(yield* view(id)).toMatchObject({ status: "running", attempt: 1 })
      yield* TestClock.adjust("1 millis")
      yield* store.socketClosed("/gate/slow")

      yield* untilRetry(id)
      yield* store.held(1)
      yield* store.release
      expect(yield* outcome(id, 1)).toBe("ended")
      expect(yield* view(id)).toMatchObject({ status: "succeeded", attempt: 2 })
    }).pipe(Effect.provide(app({ ...settings, SCRAPE_TIMEOUT: "5 seconds" })))
  )

  it.scoped("fails with a timeout once every attempt has run out of time", () =>
    Effect.gen(function* () {
      const store = yield* startStore
      const id = yield* enqueue(store.url("/gate/never"))
      yield* store.held(1)
      yield* TestClock.adjust("2 seconds")
      expect(yield* outcome(id)).toBe("ended")
      expect(yield* view(id)).toMatchObject({
        status: "failed",
        attempt: 1,
        error: { kind: "timeout", message: "The task timed out after 2000 ms" }
      })
    }).pipe(Effect.provide(app({ ...settings, SCRAPE_TIMEOUT: "2 seconds", SCRAPE_ATTEMPTS: "1" })))
  )

  it.scoped("answers 429 with Retry-After when QUEUE_CAPACITY scrapes wait, storing nothing", () =>
    Effect.gen(function* () {
      const store = yield* startStore
      const running = yield* enqueue(store.url("/gate/1"))
      yield* store.held(1)
      const waiting = yield* enqueue(store.url("/gate/2"))

      const refused = yield* post("/v0/scrapes", { url: store.url("/gate/3") })
      expect(refused.status).toBe(429)
      expect(refused.headers["retry-after"]).toBe("5")
      expect(yield* json(refused)).toEqual({
        _tag: "QueueFull",
        queue: "scrapes",
        capacity: 1,
        message: "Queue scrapes is full: 1 tasks are queued"
      })
      const listed = yield* json(yield* get("/v0/tasks"))
      expect(listed.items.map((task: { id: string }) => task.id)).toEqual([running, waiting])

      // Once the waiting scrape has started, there is room again.
      yield* store.release
      yield* store.held(1)
      const accepted = yield* post("/v0/scrapes", { url: store.url("/gate/3") })
      expect(accepted.status).toBe(202)
    }).pipe(Effect.provide(app({ ...settings, MAX_WORKERS: "1", QUEUE_CAPACITY: "1" })))
  )

  it.scoped(
    "gives running scrapes SHUTDOWN_GRACE (10 s by default) on shutdown, then stops them",
    () =>
      Effect.gen(function* () {
        for (const [grace, millis] of [
          [undefined, 10_000],
          ["3 seconds", 3_000]
        ] as const) {
          const store = yield* startStore
          const scope = yield* Scope.make()
          const config = grace === undefined ? {} : { SHUTDOWN_GRACE: grace }
          const context = yield* Layer.buildWithScope(app(config), scope)
          const [scrapes, logs] = [Context.get(context, Scrapes), Context.get(context, Logs)]
          const id = yield* enqueue(store.url("/gate/slow")).pipe(Effect.provide(context))
          yield* store.held(1)

          const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
          yield* logs.logged(SHUTTING_DOWN)
          yield* TestClock.adjust(millis - 1)
          expect((yield* scrapes.get(id)).status).toBe("running")
          expect(closing.unsafePoll()).toBeNull()

          yield* TestClock.adjust(1)
          yield* Fiber.join(closing)
          const task = yield* scrapes.get(id)
          expect(task).toMatchObject({ status: "cancelled", reason: "shutdown" })
          yield* store.socketClosed("/gate/slow")
        }
      })
  )

  it.scoped(
    "on shutdown refuses scrapes with 503 at once, still answers reads while running scrapes finish, then closes",
    () =>
      Effect.gen(function* () {
        const store = yield* startStore
        const scope = yield* Scope.make()
        const env = { HOST: "127.0.0.1", PORT: "0", SHUTDOWN_GRACE: "30 seconds" }
        const context = yield* Layer.buildWithScope(
          AppLive.pipe(Layer.provideMerge(LogsLive), Layer.provide(environment(env))),
          scope
        )
        const [scrapes, logs] = [Context.get(context, Scrapes), Context.get(context, Logs)]
        const address = logs
          .messages()
          .map((message) => message.match(/^Listening on (http:\/\/127\.0\.0\.1:\d+)$/)?.[1])
          .find((base) => base !== undefined)
        expect(address).toBeDefined()
        const client = Layer.effect(
          HttpClient.HttpClient,
          Effect.map(
            HttpClient.HttpClient,
            HttpClient.mapRequest(HttpClientRequest.prependUrl(address!))
          )
        ).pipe(Layer.provide(NodeHttpClient.layerUndici))

        yield* Effect.gen(function* () {
          // On a connection of its own, which the shutdown's first step would close under a
          // request that reused it.
          const accepted = yield* HttpClient.execute(
            HttpClientRequest.post("/v0/scrapes").pipe(
              HttpClientRequest.bodyUnsafeJson({ url: store.url("/gate/slow") }),
              HttpClientRequest.setHeader("connection", "close")
            )
          )
          expect(accepted.status).toBe(202)
          const { id } = yield* json(accepted)
          yield* store.held(1)

          const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
          yield* logs.logged(SHUTTING_DOWN)
          // The queue takes no more and waits for the running scrape; the API
          // still answers, asking each client to close its connection.
          const refused = yield* post("/v0/scrapes", { url: store.url("/products/barista-pro") })
          expect(refused.status).toBe(503)
          expect(refused.headers["retry-after"]).toBe("5")
          expect(refused.headers["connection"]).toBe("close")
          expect(yield* json(refused)).toMatchObject({ _tag: "QueueShutdown", queue: "scrapes" })
          const read = yield* get(`/v0/tasks/${id}`)
          expect(read.status).toBe(200)
          expect(read.headers["connection"]).toBe("close")
          expect(yield* json(read)).toMatchObject({ id, status: "running" })
          expect((yield* scrapes.get(id)).status).toBe("running")

          yield* store.release
          yield* Fiber.join(closing)
          expect((yield* scrapes.get(id)).status).toBe("succeeded")
          expect(store.requests("/products/barista-pro")).toBe(0)
        }).pipe(Effect.provide(client))
      })
  )

  it.scoped("cancels a running scrape and aborts its request", () =>
    Effect.gen(function* () {
      const store = yield* startStore
      const id = yield* enqueue(store.url("/gate/slow"))
      yield* store.held(1)

      const response = yield* post(`/v0/tasks/${id}/cancel`, {})
      expect(response.status).toBe(202)
      expect(yield* json(response)).toEqual({ id, status: "cancelled" })

      yield* store.socketClosed("/gate/slow")
      expect(yield* view(id)).toMatchObject({
        status: "cancelled",
        error: { kind: "interrupted", message: "cancelled on request" }
      })
      expect(yield* (yield* Scrapes).stats).toMatchObject({ running: 0, queued: 0 })
    }).pipe(Effect.provide(app(settings)))
  )

  it.scoped("answers 400 naming the url field to a URL that is not http or https", () =>
    Effect.gen(function* () {
      for (const url of ["ftp://x", "file:///etc/passwd"]) {
        const response = yield* post("/v0/scrapes", { url })
        expect(response.status).toBe(400)
        const body = yield* json(response)
        expect(body._tag).toBe("HttpApiDecodeError")
        expect(body.issues).toEqual([
          expect.objectContaining({
            path: ["url"],
            message: "url must be an absolute http or https URL"
          })
        ])
      }

      expect(yield* (yield* Scrapes).stats).toMatchObject({ running: 0, queued: 0 })
      expect(yield* json(yield* get("/v0/tasks"))).toEqual({ items: [], next: null })
    }).pipe(Effect.provide(app(settings)))
  )

  it.scoped("answers an unknown route with a JSON 404", () =>
    Effect.gen(function* () {
      const response = yield* get("/v0/nothing-here")
      expect(response.status).toBe(404)
      expect(yield* json(response)).toEqual({
        _tag: "RouteNotFound",
        message: "No route for GET /v0/nothing-here"
      })
    }).pipe(Effect.provide(app(settings)))
  )

  it.scoped("refuses to start on a bad value, naming the variable, the value and the rule", () =>
    Effect.gen(function* () {
      const positive = "must be a positive integer"
      const grace =
        'must be a duration of zero or more with its unit, such as "10 seconds" or "0 seconds"'
      const timeout =
        'must be a positive duration with its unit, such as "10 seconds" or "1500 millis"'
      const database =
        "must be file:<path> (SQLite; a path without ? or #, relative to the working " +
        "directory, or file:///<absolute path>) or memory:"
      const cases = [
        ["MAX_WORKERS", "0", `${positive}; got 0`],
        ["MAX_WORKERS", "2.5", `${positive}; got 2.5`],
        ["SCRAPE_ATTEMPTS", "0", `${positive}; got 0`],
        ["SCRAPE_ATTEMPTS", "three", `${positive}; got three`],
        ["SCRAPE_ATTEMPTS", "2.5", `${positive}; got 2.5`],
        ["QUEUE_CAPACITY", "0", `${positive}; got 0`],
        ["QUEUE_CAPACITY", "", `${positive}; got an empty value`],
        ["QUEUE_CAPACITY", "1e3", `${positive}; got 1e3`],
        ["SHUTDOWN_GRACE", "10000", `${grace}; got 10000`],
        ["SHUTDOWN_GRACE", "-1 seconds", `${grace}; got -1 seconds`],
        ["SCRAPE_TIMEOUT", "0 seconds", `${timeout}; got 0 seconds`],
        ["SCRAPE_TIMEOUT", "soon", `${timeout}; got soon`],
        ["DATABASE_URL", "file:", `${database}; got file:`],
        ["DATABASE_URL", "mysql://localhost/tasks", `${database}; got mysql://localhost/tasks`],
        ["DATABASE_URL", "file:tasks.db?mode=ro", `${database}; got file:tasks.db?mode=ro`],
        ["DATABASE_URL", "file://host/tasks.db", `${database}; got file://host/tasks.db`],
        [
          "DATABASE_URL",
          "postgres://localhost/tasks",
          "PostgreSQL is not supported yet: use file:<path> or memory:; got postgres://localhost/tasks"
        ]
      ] as const
      for (const [name, value, message] of cases) {
        const error = yield* Effect.flip(Layer.build(app({ ...settings, [name]: value })))
        expect(ConfigError.isConfigError(error)).toBe(true)
        expect(String(error)).toBe(`(Invalid data at ${name}: "${message}")`)
      }
    })
  )

  it.scoped("refuses to start with a MAX_WORKERS that is not a number, naming it", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Layer.build(app({ ...settings, MAX_WORKERS: "abc" })))
      expect(ConfigError.isConfigError(error)).toBe(true)
      expect(String(error)).toContain("MAX_WORKERS")
      expect(String(error)).toContain("abc")
    })
  )
})
