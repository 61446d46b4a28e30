/**
 * The scraper app: a queue of product-page scrapes behind an HTTP API.
 *
 * It uses the library only through its package name, as any user would.
 */
import {
  HttpApi,
  HttpApiBuilder,
  HttpApp,
  HttpServer,
  HttpServerError,
  HttpServerResponse
} from "@effect/platform"
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { Cause, Config, Context, Effect, Layer } from "effect"
import { TaskApi, TaskQueue } from "effect-task-queue"
import * as Http from "node:http"
import { Product, ScrapeError, ScrapeRequest } from "./Product.js"
import { scrape } from "./scrape.js"

/** The queue of scrapes: a task takes a `{ url }` and ends with a `Product`. */
export class Scrapes extends Context.Tag("scraper/Scrapes")<
  Scrapes,
  TaskQueue.TaskQueue<[ScrapeRequest], Product, ScrapeError>
>() {}

/** `POST /scrapes` and the `/tasks` routes. */
export const ScrapesApi = TaskApi.make({ name: "scrapes", payload: ScrapeRequest })

export class Api extends HttpApi.make("scraper").add(ScrapesApi).prefix("/v0") {}

/** The queue's settings, read through Effect's Config (environment variables). */
export const QueueConfig = Config.all({
  maxWorkers: Config.integer("MAX_WORKERS").pipe(Config.withDefault(3)),
  scrapeTimeout: Config.duration("SCRAPE_TIMEOUT").pipe(Config.withDefault("10 seconds"))
})

/** Where the server listens; port 0 picks a free port (the log line says which). */
export const ServerConfig = Config.all({
  host: Config.string("HOST").pipe(Config.withDefault("127.0.0.1")),
  port: Config.integer("PORT").pipe(
    Config.validate({
      message: "Expected a port number from 0 to 65535",
      validation: (port) => port >= 0 && port <= 65535
    }),
    Config.withDefault(3000)
  )
})

/** The queue, with the HTTP client its handler uses. */
export const ScrapesLive = Layer.unwrapEffect(
  Effect.map(QueueConfig, (config) =>
    TaskQueue.layerMemory(Scrapes, {
      name: "scrapes",
      maxWorkers: config.maxWorkers,
      handler: (request) => scrape(request.url, { timeout: config.scrapeTimeout }),
      success: Product,
      failure: ScrapeError
    })
  )
).pipe(Layer.provide(NodeHttpClient.layerUndici))

/**
 * The HTTP API, served by whatever `HttpServer` is provided. While
 * `draining()` holds, every answer asks the client to close its connection,
 * so that no keep-alive connection outlives the server.
 */
const makeApi = (draining: () => boolean) =>
  HttpApiBuilder.serve().pipe(
    Layer.provide(
      HttpApiBuilder.middleware((app) =>
        // Decided as each answer leaves, errors included: while draining, ask
        // the client to close (a request that began before may end after).
        Effect.zipRight(
          HttpApp.appendPreResponseHandler((_request, response) =>
            Effect.succeed(
              draining() ? HttpServerResponse.setHeader(response, "connection", "close") : response
            )
          ),
          app
        ).pipe(
          // The router's 404 for an unknown route has no body: say what was not found.
          Effect.catchAllCause((cause) => {
            const error = Cause.squash(cause)
            return HttpServerError.isServerError(error) && error._tag === "RouteNotFound"
              ? HttpServerResponse.unsafeJson(
                  {
                    _tag: "RouteNotFound",
                    message: `No route for ${error.request.method} ${error.request.url}`
                  },
                  { status: 404 }
                )
              : Effect.failCause(cause)
          })
        )
      )
    ),
    Layer.provide(HttpApiBuilder.api(Api)),
    Layer.provide(TaskApi.layer(Api, ScrapesApi, Scrapes)),
    Layer.provideMerge(ScrapesLive)
  )

export const ApiLive = makeApi(() => false)

/**
 * Shutting the server down in steps, so that no request hangs: first idle
 * connections are closed and every answer asks its client to close; once
 * the API is gone, what still arrives is answered 503, and two seconds later
 * every connection left is cut (the server itself then closes).
 */
const shutdownSteps = (server: Http.Server) => {
  let draining = false
  return {
    draining: () => draining,
    first: Layer.scopedDiscard(
      Effect.addFinalizer(() =>
        Effect.sync(() => {
          draining = true
          server.closeIdleConnections()
        })
      )
    ),
    afterApi: Layer.scopedDiscard(
      Effect.addFinalizer(() =>
        Effect.sync(() => {
          server.on("request", (_request: Http.IncomingMessage, response: Http.ServerResponse) => {
            response.writeHead(503, {
              "content-type": "application/json",
              "retry-after": "5",
              connection: "close"
            })
            response.end(
              JSON.stringify({ _tag: "ShuttingDown", message: "The server is shutting down" })
            )
          })
          setTimeout(() => server.closeAllConnections(), 2_000).unref()
        })
      )
    )
  }
}

/** The whole app on a Node HTTP server at HOST:PORT. */
export const AppLive = Layer.unwrapEffect(
  Effect.map(ServerConfig, (config) => {
    const server = Http.createServer()
    const steps = shutdownSteps(server)
    // Released in this order (the reverse of how they are built): `first`,
    // the API (its routes, then the queue), `afterApi`, the server.
    return steps.first.pipe(
      Layer.provideMerge(makeApi(steps.draining)),
      HttpServer.withLogAddress,
      Layer.provide(steps.afterApi),
      Layer.provide(NodeHttpServer.layer(() => server, { host: config.host, port: config.port }))
    )
  })
)
