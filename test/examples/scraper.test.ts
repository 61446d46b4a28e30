import type { HttpClient } from "@effect/platform"
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import {
  Cause,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Schema,
  type Scope,
  TestClock
} from "effect"
import { readFileSync } from "node:fs"
import * as Http from "node:http"
import { listenLocal } from "./localServer.js"
import { extractProduct } from "../../examples/scraper/extract.js"
import { isPermanent, Product, ScrapeError, ScrapeRequest } from "../../examples/scraper/Product.js"
import { scrape } from "../../examples/scraper/scrape.js"

const fixture = (name: string): string =>
  readFileSync(new URL(`../fixtures/pages/${name}.html`, import.meta.url), "utf8")

const pageUrl = "https://shop.example/item"

const extracted = (html: string): Product => {
  const result = extractProduct(html, pageUrl)
  if (Either.isLeft(result)) {
    throw new Error(`expected a product, got: ${result.left.message}`)
  }
  return result.right
}

const metaPage = (tags: Record<string, string>, title = "A page"): string => {
  const metas = Object.entries(tags)
    .map(([property, content]) => `<meta property="${property}" content="${content}">`)
    .join("\n")
  return `<html><head><title>${title}</title>${metas}</head><body></body></html>`
}

const ldPage = (data: unknown): string =>
  `<html><head><script type="application/ld+json">${JSON.stringify(data)}</script></head></html>`

describe("extractProduct", () => {
  it("reads a Product from @graph and takes the first of its offers", () => {
    expect(extracted(fixture("graph-offers"))).toEqual(
      new Product({
        url: pageUrl,
        name: "Barista Pro Espresso Machine",
        price: 1299,
        currency: "EUR",
        availability: "InStock",
        source: "json-ld"
      })
    )
  })

  it("falls back to OpenGraph meta tags when there is no JSON-LD", () => {
    expect(extracted(fixture("meta-only"))).toEqual(
      new Product({
        url: pageUrl,
        name: "Trail Runner 2 & Gaiter Set",
        price: 89.95,
        currency: "USD",
        availability: "OutOfStock",
        source: "meta"
      })
    )
  })

  it("falls back to the page title, ignoring titles inside svg", () => {
    expect(extracted(fixture("title-only"))).toEqual(
      new Product({
        url: pageUrl,
        name: "Garden Hose & Reel, 25 m | Green Thumb",
        price: null,
        currency: null,
        availability: null,
        source: "title"
      })
    )
  })

  it("skips a JSON-LD block that is not valid JSON and reads the next one", () => {
    expect(extracted(fixture("invalid-then-valid"))).toEqual(
      new Product({
        url: pageUrl,
        name: "Lesesessel Nordlicht",
        price: 749.5,
        currency: "EUR",
        availability: "PreOrder",
        source: "json-ld"
      })
    )
  })

  it("takes lowPrice from an AggregateOffer", () => {
    expect(extracted(fixture("aggregate-offer"))).toEqual(
      new Product({
        url: pageUrl,
        name: "Linen Duvet Cover",
        price: 59,
        currency: "GBP",
        availability: "LimitedAvailability",
        source: "json-ld"
      })
    )
  })

  it("keeps the JSON-LD name and fills missing offer fields from meta tags", () => {
    expect(extracted(fixture("mixed"))).toEqual(
      new Product({
        url: pageUrl,
        name: "Ferro Cast Iron Skillet, 28 cm",
        price: 45,
        currency: "EUR",
        availability: "InStock",
        source: "json-ld"
      })
    )
  })

  it("takes price and currency from meta tags when the name comes from the title", () => {
    const html = metaPage({ "og:price:amount": "12,50", "og:price:currency": "EUR" }, "Mug")
    expect(extracted(html)).toMatchObject({ name: "Mug", price: 12.5, source: "title" })
  })

  it("uses twitter:title when og:title is missing", () => {
    const html = `<html><head><meta name="twitter:title" content="Desk Lamp"></head></html>`
    expect(extracted(html)).toMatchObject({ name: "Desk Lamp", source: "meta" })
  })

  it("finds a ProductGroup and the offer of its first variant", () => {
    const html = ldPage({
      "@context": "https://schema.org",
      "@type": "ProductGroup",
      name: "Wool Socks",
      hasVariant: [{ "@type": "Product", offers: { price: 14, priceCurrency: "chf" } }]
    })
    expect(extracted(html)).toMatchObject({ name: "Wool Socks", price: 14, currency: "CHF" })
  })

  it("decodes entities in a JSON-LD name", () => {
    const html = ldPage({ "@type": "Product", name: "Salt &amp; Pepper Mill" })
    expect(extracted(html).name).toBe("Salt & Pepper Mill")
  })

  it("reads prices written in the usual ways and rejects what is not a price", () => {
    const priceOf = (price: unknown) =>
      extracted(ldPage({ "@type": "Product", name: "Item", offers: { price } })).price
    expect(priceOf("19.99")).toBe(19.99)
    expect(priceOf("1,299.00")).toBe(1299)
    expect(priceOf("1.299,00")).toBe(1299)
    expect(priceOf("19,99")).toBe(19.99)
    expect(priceOf("1,299")).toBe(1299)
    expect(priceOf("€ 1 299,95")).toBe(1299.95)
    expect(priceOf(0)).toBe(0)
    expect(priceOf("free")).toBe(null)
    expect(priceOf("")).toBe(null)
    expect(priceOf("1.2.3,4,5")).toBe(null)
    expect(priceOf(-5)).toBe(null)
    expect(priceOf({ value: 3 })).toBe(null)
  })

  it("normalises availability and keeps unknown values as given", () => {
    const availabilityOf = (value: string) =>
      extracted(metaPage({ "og:title": "Item", "product:availability": value })).availability
    expect(availabilityOf("https://schema.org/InStock")).toBe("InStock")
    expect(availabilityOf("http://schema.org/SoldOut")).toBe("SoldOut")
    expect(availabilityOf("BackOrder")).toBe("BackOrder")
    expect(availabilityOf("instock")).toBe("InStock")
    expect(availabilityOf("in stock")).toBe("InStock")
    expect(availabilityOf("out of stock")).toBe("OutOfStock")
    expect(availabilityOf("oos")).toBe("OutOfStock")
    expect(availabilityOf("pre-order")).toBe("PreOrder")
    expect(availabilityOf("Ships in 3 weeks")).toBe("Ships in 3 weeks")
  })

  it("fails with no-product when nothing names a product", () => {
    const html = `<html><head><title>  </title></head><body><p>Hello</p></body></html>`
    const result = extractProduct(html, pageUrl)
    expect(Either.isLeft(result) && result.left.reason).toBe("no-product")
  })
})

describe("ScrapeRequest", () => {
  const decode = Schema.decodeUnknownEither(ScrapeRequest)
  const problem = (input: unknown): string | undefined =>
    Either.match(decode(input), { onLeft: (error) => error.message, onRight: () => undefined })

  it("accepts absolute http and https URLs", () => {
    expect(decode({ url: "https://shop.example/p/1?x=2" })).toEqual(
      Either.right({ url: "https://shop.example/p/1?x=2" })
    )
    expect(problem({ url: "http://127.0.0.1:8080/" })).toBeUndefined()
  })

  it("rejects other schemes, relative URLs and text that is not a URL", () => {
    for (const url of ["ftp://shop.example/p", "/p/1", "javascript:alert(1)", "not a url"]) {
      expect(problem({ url })).toContain("url must be an absolute http or https URL")
    }
  })

  it("rejects URLs longer than 2048 characters", () => {
    const url = `https://shop.example/${"a".repeat(2048)}`
    expect(problem({ url })).toContain("url must be at most 2048 characters long")
  })
})

describe("isPermanent", () => {
  const error = (reason: ScrapeError["reason"], status?: number) =>
    new ScrapeError(
      status === undefined
        ? { url: pageUrl, reason, message: reason }
        : { url: pageUrl, reason, status, message: reason }
    )

  it("lets a timeout, a network error and a busy or failing server be retried", () => {
    const transient = [
      error("timeout"),
      error("network"),
      ...[408, 429, 500, 502, 503, 504].map((status) => error("http-status", status))
    ]
    expect(transient.filter(isPermanent)).toEqual([])
  })

  it("calls every other failure permanent", () => {
    const permanent = [
      ...[301, 400, 401, 403, 404, 410, 451].map((status) => error("http-status", status)),
      error("invalid-url"),
      error("too-large"),
      error("not-html"),
      error("no-product")
    ]
    expect(permanent.filter((e) => !isPermanent(e))).toEqual([])
  })
})

interface TestServer {
  readonly url: (path: string) => string
  /** Completed when the server has received a request on `/slow`. */
  readonly slowReceived: Deferred.Deferred<void>
  /** Completed when the socket of that request has closed. */
  readonly slowClosed: Deferred.Deferred<void>
}

const page = (name: string) => (_: Http.IncomingMessage, res: Http.ServerResponse) => {
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(fixture(name))
}

/** A store on 127.0.0.1 with a port of its own, closed with the test's scope. */
const startServer: Effect.Effect<TestServer, never, Scope.Scope> = Effect.gen(function* () {
  const slowReceived = yield* Deferred.make<void>()
  const slowClosed = yield* Deferred.make<void>()
  const routes: Record<string, Http.RequestListener> = {
    "/products/barista-pro": page("graph-offers"),
    "/p/trail-runner-2": page("meta-only"),
    "/old/barista-pro": (_, res) => {
      res.writeHead(301, { location: "/products/barista-pro" }).end("Moved")
    },
    "/loop": (_, res) => {
      res.writeHead(302, { location: "/loop" }).end()
    },
    "/feed.json": (_, res) => {
      res.writeHead(200, { "content-type": "application/json" }).end("{}")
    },
    "/latin1": (_, res) => {
      const html = "<html><head><title>Café Crème</title></head></html>"
      res
        .writeHead(200, { "content-type": "text/html; charset=ISO-8859-1" })
        .end(Buffer.from(html, "latin1"))
    },
    "/blank": (_, res) => {
      res.writeHead(200, { "content-type": "text/html" }).end("<html><body></body></html>")
    },
    // Announces a body far over the limit, then sends only a little of it.
    "/announced-huge": (_, res) => {
      res.writeHead(200, { "content-type": "text/html", "content-length": "1000000" })
      res.write("<html>")
    },
    // Sends 4 KiB without a content-length and never ends.
    "/endless": (_, res) => {
      res.writeHead(200, { "content-type": "text/html" })
      res.write("<html>" + "x".repeat(4096))
    },
    "/reset": (req) => {
      req.socket.destroy()
    },
    "/slow": (req) => {
      req.socket.on("close", () => Deferred.unsafeDone(slowClosed, Exit.void))
      Deferred.unsafeDone(slowReceived, Exit.void)
    }
  }

  const { url } = yield* listenLocal((req, res) => {
    const route = routes[new URL(req.url ?? "/", "http://localhost").pathname]
    if (route === undefined) {
      res.writeHead(404, { "content-type": "text/html" }).end("<h1>Not found</h1>")
    } else {
      route(req, res)
    }
  })

  return { url, slowReceived, slowClosed }
})

const scrapeError = (url: string, options?: Parameters<typeof scrape>[1]) =>
  Effect.flip(scrape(url, options))

describe("scrape", () => {
  it("pins its error and requirement channels", () => {
    expectTypeOf(scrape("https://shop.example/")).toEqualTypeOf<
      Effect.Effect<Product, ScrapeError, HttpClient.HttpClient>
    >()
  })

  it.scoped("reads the product from a page", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      const product = yield* scrape(server.url("/p/trail-runner-2"))
      expect(product).toEqual(
        new Product({
          url: server.url("/p/trail-runner-2"),
          name: "Trail Runner 2 & Gaiter Set",
          price: 89.95,
          currency: "USD",
          availability: "OutOfStock",
          source: "meta"
        })
      )
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it.scoped("follows a redirect and reports the final URL", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      const product = yield* scrape(server.url("/old/barista-pro"))
      expect(product.url).toBe(server.url("/products/barista-pro"))
      expect(product.name).toBe("Barista Pro Espresso Machine")
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it.scoped("decodes the body with the charset of its content type", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      const product = yield* scrape(server.url("/latin1"))
      expect(product.name).toBe("Café Crème")
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it.scoped("fails with http-status and the status on a 404", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      const error = yield* scrapeError(server.url("/missing"))
      expect(error).toEqual(
        new ScrapeError({
          url: server.url("/missing"),
          reason: "http-status",
          status: 404,
          message: `GET ${server.url("/missing")} answered 404 Not Found`
        })
      )
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it.scoped("fails with http-status when redirects go on too long", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      const error = yield* scrapeError(server.url("/loop"))
      expect(error.reason).toBe("http-status")
      expect(error.status).toBe(302)
      expect(error.message).toContain("after 10 redirects")
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it.scoped("fails with not-html on another content type", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      const error = yield* scrapeError(server.url("/feed.json"))
      expect(error.reason).toBe("not-html")
      expect(error.message).toContain("application/json")
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it.scoped("fails with too-large on a content-length over the limit, before reading", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      const error = yield* scrapeError(server.url("/announced-huge"), { maxBytes: 1024 })
      expect(error.reason).toBe("too-large")
      expect(error.message).toContain("content-length of 1000000 bytes")
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it.scoped("stops reading a body that grows past the limit", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      const error = yield* scrapeError(server.url("/endless"), { maxBytes: 1024 })
      expect(error.reason).toBe("too-large")
      expect(error.message).toContain("sent more than the limit of 1024 bytes")
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it.scoped("fails with network when the connection drops", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      const error = yield* scrapeError(server.url("/reset"))
      expect(error.reason).toBe("network")
      expect(error.message).toContain(`GET ${server.url("/reset")} could not be sent`)
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it.effect("fails with invalid-url on a URL that cannot be requested, sending nothing", () =>
    Effect.gen(function* () {
      const error = yield* scrapeError("not a url")
      expect(error.reason).toBe("invalid-url")
      expect(error.message).toContain("the URL is not valid")
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it.effect("rejects a maxBytes that is not a positive whole number as a defect", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(scrape("not a url", { maxBytes: 0 }))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      expect(String(Exit.isFailure(exit) && Cause.pretty(exit.cause))).toContain(
        "maxBytes must be a positive whole number of bytes; got 0"
      )
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it.scoped("fails with no-product on a page without a product", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      const error = yield* scrapeError(server.url("/blank"))
      expect(error.reason).toBe("no-product")
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it.scoped("times out on the test clock and closes the connection", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      const fiber = yield* Effect.fork(scrapeError(server.url("/slow")))
      yield* Deferred.await(server.slowReceived)

      yield* TestClock.adjust("10001 millis")
      const error = yield* Fiber.join(fiber)

      expect(error.reason).toBe("timeout")
      expect(error.message).toContain("did not finish within 10000 ms")
      yield* Deferred.await(server.slowClosed)
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it.scoped("takes the timeout from the options", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      const fiber = yield* Effect.fork(scrapeError(server.url("/slow"), { timeout: "2 seconds" }))
      yield* Deferred.await(server.slowReceived)

      yield* TestClock.adjust("1999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(fiber)

      expect(error.message).toContain("did not finish within 2000 ms")
      yield* Deferred.await(server.slowClosed)
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it.scoped("sets no limit of its own with a timeout of Duration.infinity", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      const fiber = yield* Effect.fork(scrape(server.url("/slow"), { timeout: Duration.infinity }))
      yield* Deferred.await(server.slowReceived)

      yield* TestClock.adjust("365 days")
      expect(fiber.unsafePoll()).toBeNull()
      yield* Fiber.interrupt(fiber)
      yield* Deferred.await(server.slowClosed)
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it.scoped("aborts the request when the scrape is interrupted", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      const fiber = yield* Effect.fork(scrape(server.url("/slow")))
      yield* Deferred.await(server.slowReceived)

      const exit = yield* Fiber.interrupt(fiber)

      expect(Exit.isInterrupted(exit)).toBe(true)
      yield* Deferred.await(server.slowClosed)
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )
})
