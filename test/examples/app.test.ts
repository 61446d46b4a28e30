/**
 * The scraper app in-process: its HTTP API on 127.0.0.1, its settings read
 * through Effect Config, scraping pages from a local store whose "gate"
 * answers only when the test says so.
 */
import { HttpClient, HttpClientRequest, HttpServer } from "@effect/platform"
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import {
  ConfigError,
  ConfigProvider,
  Deferred,
  Effect,
  Exit,
  FiberId,
  Layer,
  type Scope
} from "effect"
import { TaskError } from "effect-task-queue"
import { readFileSync } from "node:fs"
import * as Http from "node:http"
import { listenLocal } from "./localServer.js"
import { ApiLive, Scrapes } from "../../examples/scraper/app.js"

const fixture = (name: string): string =>
  readFileSync(new URL(`../fixtures/pages/${name}.html`, import.meta.url), "utf8")

/**
 * The app's API on 127.0.0.1 on a free port, configured by `settings` as if
 * they were environment variables, with an HttpClient whose relative URLs go
 * to it.
 */
const app = (settings: Record<string, string>) =>
  ApiLive.pipe(
    Layer.provideMerge(HttpServer.layerTestClient),
    Layer.provide(NodeHttpClient.layerUndici),
    Layer.provideMerge(NodeHttpServer.layer(Http.createServer, { host: "127.0.0.1", port: 0 })),
    Layer.provide(
      Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(settings))))
    )
  )

const settings = { MAX_WORKERS: "2", SCRAPE_TIMEOUT: "5 seconds" }

interface Store {
  readonly url: (path: string) => string
  /** Completes once `count` requests under `/gate/` are held unanswered at once. */
  readonly held: (count: number) => Effect.Effect<void>
  /** Answers every held request with a product page named after its path. */
  readonly release: Effect.Effect<void>
  /** The most requests the gate has held at once. */
  readonly peak: () => number
  /** Completes when the socket of the gated request to `path` has closed. */
  readonly socketClosed: (path: string) => Effect.Effect<void>
}

/** A store on 127.0.0.1 with a port of its own, closed with the test's scope. */
const startStore: Effect.Effect<Store, never, Scope.Scope> = Effect.gen(function* () {
  const held = new Map<Http.ServerResponse, string>()
  const waiters: Array<{ readonly count: number; readonly done: Deferred.Deferred<void> }> = []
  const sockets = new Map<string, Deferred.Deferred<void>>()
  let peak = 0

  const hold = (req: Http.IncomingMessage, res: Http.ServerResponse, path: string) => {
    const closed = Deferred.unsafeMake<void>(FiberId.none)
    sockets.set(path, closed)
    req.socket.once("close", () => Deferred.unsafeDone(closed, Exit.void))
    // A request the client gave up on is no longer held.
    res.once("close", () => held.delete(res))
    held.set(res, path)
    peak = Math.max(peak, held.size)
    for (const waiter of waiters) {
      if (held.size >= waiter.count) Deferred.unsafeDone(waiter.done, Exit.void)
    }
  }

  const { url } = yield* listenLocal((req, res) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname
    if (path === "/products/barista-pro") {
      res.writeHead(200, { "content-type": "text/html" }).end(fixture("graph-offers"))
    } else if (path.startsWith("/gate/")) {
      hold(req, res, path)
    } else {
      res.writeHead(404, { "content-type": "text/html" }).end("<h1>Not found</h1>")
    }
  })

  return {
    url,
    held: (count) =>
      Effect.suspend(() => {
        const done = Deferred.unsafeMake<void>(FiberId.none)
        if (held.size >= count) Deferred.unsafeDone(done, Exit.void)
        else waiters.push({ count, done })
        return Deferred.await(done)
      }),
    release: Effect.sync(() => {
      const answered = [...held]
      held.clear()
      for (const [res, path] of answered) {
        res
          .writeHead(200, { "content-type": "text/html" })
          .end(`<html><head><title>Item ${path}</title></head></html>`)
      }
    }),
    peak: () => peak,
    socketClosed: (path) =>
      Effect.suspend(() => {
        const closed = sockets.get(path)
        return closed === undefined ? Effect.dieMessage(`no request to ${path}`) : closed
      })
  }
})

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
        createdAt: expect.any(String),
        startedAt: expect.any(String),
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
        expect(yield* scrapes.stats).toEqual({ running: 2, queued })
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

  it.scoped("fails the task with the ScrapeError when the page answers 404", () =>
    Effect.gen(function* () {
      const store = yield* startStore
      const scrapes = yield* Scrapes
      const url = store.url("/products/gone")

      const id = yield* enqueue(url)
      yield* scrapes.awaitIdle

      const read = yield* view(id)
      expect(read).toMatchObject({ id, status: "failed", attempt: 1 })
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
      expect(yield* (yield* Scrapes).stats).toEqual({ running: 0, queued: 0 })
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

      expect(yield* (yield* Scrapes).stats).toEqual({ running: 0, queued: 0 })
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

  it.scoped("refuses to start with a MAX_WORKERS of 0, naming the option, value and rule", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Layer.build(app({ ...settings, MAX_WORKERS: "0" })))
      expect(error).toBeInstanceOf(TaskError.InvalidOption)
      expect(error).toMatchObject({ option: "maxWorkers", value: "0" })
      expect(error.message).toBe("Invalid option maxWorkers: 0 (must be a positive integer)")
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
