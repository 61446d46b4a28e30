/**
 * The scraper app: a queue of product-page scrapes behind an HTTP API.
 *
 * It uses the library only through its package name, as any user would.
 */
import { HttpApi, HttpApiBuilder, HttpServer } from "@effect/platform"
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { Config, Context, Effect, Layer } from "effect"
import { TaskApi, TaskQueue } from "effect-task-queue"
import { createServer } from "node:http"
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

/** The HTTP API, served by whatever `HttpServer` is provided. */
export const ApiLive = HttpApiBuilder.serve().pipe(
  Layer.provide(HttpApiBuilder.api(Api)),
  Layer.provide(TaskApi.layer(Api, ScrapesApi, Scrapes)),
  Layer.provideMerge(ScrapesLive)
)

/** The whole app on a Node HTTP server at HOST:PORT. */
export const AppLive = Layer.unwrapEffect(
  Effect.map(ServerConfig, (config) =>
    ApiLive.pipe(
      HttpServer.withLogAddress,
      Layer.provide(NodeHttpServer.layer(createServer, { host: config.host, port: config.port }))
    )
  )
)
