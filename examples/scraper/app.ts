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
import { Cause, ConfigError, Context, Duration, Effect, Layer, Option } from "effect"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { TaskApi, TaskQueue, TaskStore } from "effect-task-queue"
import * as SqlTaskStore from "effect-task-queue/SqlTaskStore"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Path from "node:path"
import { DatabaseConfig, QueueConfig, ServerConfig } from "./config.js"
import { isPermanent, Product, ScrapeError, ScrapeRequest } from "./Product.js"
import { scrape } from "./scrape.js"

/**
 * Where the queue keeps its tasks, from DATABASE_URL: a SQLite file by
 * default (its folder is created), so a restart loses nothing.
 */
export const StoreLive: Layer.Layer<TaskStore.TaskStore, ConfigError.ConfigError> =
  Layer.unwrapEffect(
    Effect.map(DatabaseConfig, (database) => {
      if (database._tag === "memory") {
        return Layer.provide(
          TaskStore.layerMemory(),
          Layer.effectDiscard(Effect.logInfo("tasks are kept in memory: a restart forgets them"))
        ).pipe(Layer.orDie)
      }
      const { filename } = database
      // Any error opening the file stops the app with one line that names
      // DATABASE_URL, the file and the reason, as a bad setting does.
      const cannotOpen = (reason: string) =>
        ConfigError.InvalidData(["DATABASE_URL"], `cannot open ${filename}: ${reason}`)
      const folder = Layer.effectDiscard(
        Effect.try({
          try: () => Fs.mkdirSync(Path.dirname(filename), { recursive: true }),
          catch: (error) => cannotOpen(`its folder cannot be made (${reasonOf(error)})`)
        })
      )
      return SqlTaskStore.layer().pipe(
        Layer.provide(SqliteClient.layer({ filename })),
        Layer.provide(folder),
        Layer.tap(() => Effect.logInfo(`tasks are kept in the SQLite file ${filename}`)),
        Layer.catchAllCause((cause) => {
          const error = Cause.squash(cause)
          return Layer.fail(ConfigError.isConfigError(error) ? error : cannotOpen(reasonOf(error)))
        })
      )
    })
  )

/** The innermost message of an error and its causes, as one line. */
const reasonOf = (error: unknown): string => {
  const messages: Array<string> = []
  for (let e = error, depth = 0; e !== undefined && e !== null && depth < 6; depth++) {
    const message = (e as { readonly message?: unknown }).message
    if (typeof message === "string" && message !== "" && !messages.includes(message)) {
      messages.push(message)
    }
    e = (e as { readonly cause?: unknown }).cause
  }
  return messages.length === 0 ? String(error) : messages.join(": ")
}

/** The queue of scrapes: a task takes a `{ url }` and ends with a `Product`. */
export class Scrapes extends Context.Tag("scraper/Scrapes")<
  Scrapes,
  TaskQueue.TaskQueue<[ScrapeRequest], Product, ScrapeError>
>() {}

/** `POST /scrapes` and the `/tasks` routes. */
export const ScrapesApi = TaskApi.make({ name: "scrapes", payload: ScrapeRequest })

export class Api extends HttpApi.make("scraper").add(ScrapesApi).prefix("/v0") {}

/**
 * The queue, with the HTTP client its handler uses. Each attempt at a scrape
 * may take SCRAPE_TIMEOUT; a scrape that failed for a reason that may pass
 * (see `isPermanent`) is tried again, up to SCRAPE_ATTEMPTS attempts in all,
 * about 1, 2, 4, ... seconds apart. With a QUEUE_CAPACITY, a scrape that finds
 * the queue full is refused (HTTP 429) rather than kept waiting.
 */
export const ScrapesLive = Layer.unwrapEffect(
  Effect.map(QueueConfig, (config) =>
    TaskQueue.layer(Scrapes, {
      name: "scrapes",
      maxWorkers: config.maxWorkers,
      // Payloads are stored as this Schema's JSON in the SQLite file.
      payload: ScrapeRequest,
      // The queue times each attempt, so the scrape sets no limit of its own.
      handler: (request) => scrape(request.url, { timeout: Duration.infinity }),
      success: Product,
      failure: ScrapeError,
      timeout: config.scrapeTimeout,
      retry: { maxAttempts: config.attempts, isPermanent },
      shutdownGrace: config.shutdownGrace,
      capacity: Option.getOrUndefined(config.capacity),
      whenFull: "refuse"
    })
  )
).pipe(Layer.provide(Layer.merge(NodeHttpClient.layerUndici, StoreLive)))

/** What the API takes part in when the app shuts down. */
interface Shutdown {
  /** While it holds, every answer asks the client to close its connection. */
  readonly draining: () => boolean
  /** Released as soon as the API stops serving, before the queue shuts down. */
  readonly apiGone: Layer.Layer<never>
}

/**
 * The HTTP API, served by whatever `HttpServer` is provided. While
 * `draining()` holds, every answer asks the client to close its connection,
 * so that no keep-alive connection outlives the server.
 */
const makeApi = (shutdown: Shutdown) =>
  HttpApiBuilder.serve().pipe(
    Layer.provide(shutdown.apiGone),
    Layer.provide(
      HttpApiBuilder.middleware((app) =>
        // Decided as each answer leaves, errors included: while draining, ask
        // the client to close (a request that began before may end after).
        Effect.zipRight(
          HttpApp.appendPreResponseHandler((_request, response) =>
            Effect.succeed(
              shutdown.draining()
                ? HttpServerResponse.setHeader(response, "connection", "close")
                : response
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

export const ApiLive = makeApi({ draining: () => false, apiGone: Layer.empty })

/**
 * Shutting the server down in steps, so that no request hangs: first idle
 * connections are closed, every answer asks its client to close, and the
 * queue shuts down while the API still serves (enqueues get 503 with
 * Retry-After, reads go on) and running scrapes have their SHUTDOWN_GRACE;
 * then the API stops, what still arrives is answered 503, and two seconds
 * later every connection left is cut. The server closes last.
 */
const shutdownSteps = (
  server: Http.Server
): Shutdown & { readonly first: Layer.Layer<never, never, Scrapes> } => {
  let draining = false
  return {
    draining: () => draining,
    // Released first: while running scrapes have their grace period the API
    // still serves (reads answer, enqueues get 503 QueueShutdown), and every
    // answer asks its client to close.
    first: Layer.scopedDiscard(
      Effect.flatMap(Scrapes, (queue) =>
        Effect.addFinalizer(() =>
          Effect.gen(function* () {
            // Idle keep-alive connections stay open: closing one could cut a
            // request its client has just sent. Each answers once more, asking
            // its client to close, or is cut after the API stops.
            draining = true
            const { running } = yield* queue.stats
            yield* Effect.logInfo(
              running === 0
                ? "shutting down"
                : `shutting down: ${running} running scrape${running === 1 ? "" : "s"} may ` +
                    "finish within SHUTDOWN_GRACE"
            )
            yield* queue.shutdown
          })
        )
      )
    ),
    apiGone: Layer.scopedDiscard(
      Effect.addFinalizer(() =>
        Effect.gen(function* () {
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
          // Not awaited: the queue's grace period runs meanwhile.
          yield* Effect.sleep("2 seconds").pipe(
            Effect.andThen(() => server.closeAllConnections()),
            Effect.forkDaemon
          )
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
    // Released in this order (the reverse of how they are built): `first`
    // (the queue's shutdown and grace period), the API's server loop,
    // `apiGone`, the routes, the queue's scope, the server.
    return steps.first.pipe(
      Layer.provideMerge(makeApi(steps)),
      HttpServer.withLogAddress,
      Layer.provide(NodeHttpServer.layer(() => server, { host: config.host, port: config.port }))
    )
  })
)
