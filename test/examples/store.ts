/**
 * A store on 127.0.0.1 for the app under test: product pages, pages that
 * fail, and a "gate" that holds requests until the test lets them through.
 */
import { Deferred, Effect, Exit, FiberId, type Scope } from "effect"
import { readFileSync } from "node:fs"
import * as Http from "node:http"
import { listenLocal } from "./localServer.js"

const fixture = (name: string): string =>
  readFileSync(new URL(`../fixtures/pages/${name}.html`, import.meta.url), "utf8")

export interface Store {
  readonly url: (path: string) => string
  /** Completes once `count` requests under `/gate/` are held unanswered at once. */
  readonly held: (count: number) => Effect.Effect<void>
  /** Answers every held request with a product page named after its path. */
  readonly release: Effect.Effect<void>
  /** The most requests the gate has held at once. */
  readonly peak: () => number
  /** Completes when the socket of the gated request to `path` has closed. */
  readonly socketClosed: (path: string) => Effect.Effect<void>
  /** How many requests for `path` the store has had. */
  readonly requests: (path: string) => number
}

/** A store on 127.0.0.1 with a port of its own, closed with the test's scope. */
export const startStore: Effect.Effect<Store, never, Scope.Scope> = Effect.gen(function* () {
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

  const requests = new Map<string, number>()
  const { url } = yield* listenLocal((req, res) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname
    const seen = (requests.get(path) ?? 0) + 1
    requests.set(path, seen)
    // `/first/<status>/...` answers its first request with that status, then
    // the product page; `/status/<status>` always answers with its status.
    const [, kind, status] = path.split("/")
    const failing =
      (kind === "first" && seen === 1) || kind === "status" ? Number(status) : undefined
    if (failing !== undefined) {
      res.writeHead(failing, { "content-type": "text/html" }).end("<h1>Not now</h1>")
    } else if (path === "/products/barista-pro" || kind === "first") {
      res.writeHead(200, { "content-type": "text/html" }).end(fixture("graph-offers"))
    } else if (path === "/feed.json") {
      res.writeHead(200, { "content-type": "application/json" }).end("{}")
    } else if (path === "/blank") {
      res.writeHead(200, { "content-type": "text/html" }).end("<html><body></body></html>")
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
      }),
    requests: (path) => requests.get(path) ?? 0
  }
})
