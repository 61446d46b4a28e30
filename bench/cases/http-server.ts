/**
 * Case 4, HTTP: the server side. `--impl=task-queue` serves the library's
 * enqueue route (`TaskApi.make`/`TaskApi.layer` with the scraper example's
 * `ScrapeRequest` payload, prefix `/v0`) in front of a queue whose
 * `--workers` handlers never finish and that already holds `--backlog`
 * waiting tasks. `--impl=bare` serves a plain HttpApi route at the same path
 * that decodes the same payload Schema and answers the same
 * `202 { id, status: "queued" }` without any queue.
 *
 * The server listens on 127.0.0.1 at a free port, prints it on a
 * `BENCH_READY` line, and stops when the runner writes `stop` on stdin (or
 * closes it); then it prints what it handled on a `BENCH_RESULT` line.
 */
import {
  HttpApi,
  HttpApiBuilder,
  HttpApiEndpoint,
  HttpApiGroup,
  HttpServer
} from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Layer, Logger, LogLevel } from "effect"
import { TaskApi, TaskQueue } from "effect-task-queue"
import { createServer } from "node:http"
import { createInterface } from "node:readline"
import { ScrapeRequest } from "../../examples/scraper/Product.js"
import {
  emitReady,
  emitResult,
  intOption,
  requiredOption,
  runMain,
  settleHeap
} from "../lib/child.js"

const impl = requiredOption("impl")
const workers = intOption("workers")
const backlog = intOption("backlog", true)

const ServerLive = NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 })

const serve = <E, R>(api: Layer.Layer<HttpApi.Api, E, R>) =>
  HttpApiBuilder.serve().pipe(Layer.provide(api), Layer.provideMerge(ServerLive))

// The library's route, as the scraper app mounts it, with a queue that never finishes a task.
class Scrapes extends Context.Tag("bench/Scrapes")<
  Scrapes,
  TaskQueue.TaskQueue<[ScrapeRequest], never, never>
>() {}

const ScrapesApi = TaskApi.make({ name: "scrapes", payload: ScrapeRequest })

class QueueApi extends HttpApi.make("scraper").add(ScrapesApi).prefix("/v0") {}

const QueueServerLive = serve(
  HttpApiBuilder.api(QueueApi).pipe(Layer.provide(TaskApi.layer(QueueApi, ScrapesApi, Scrapes)))
).pipe(
  Layer.provideMerge(
    TaskQueue.layerMemory(Scrapes, {
      name: "scrapes",
      maxWorkers: workers,
      handler: () => Effect.never,
      // Nothing is measured at shutdown: interrupt the never-ending tasks at once.
      shutdownGrace: 0
    })
  )
)

// The bare route: same path, same payload Schema, same answer, no queue.
const BareGroup = HttpApiGroup.make("scrapes").add(
  HttpApiEndpoint.post("enqueue", "/scrapes")
    .setPayload(ScrapeRequest)
    .addSuccess(TaskApi.Enqueued, { status: 202 })
)

class BareApi extends HttpApi.make("scraper").add(BareGroup).prefix("/v0") {}

let bareCount = 0

const BareServerLive = serve(
  HttpApiBuilder.api(BareApi).pipe(
    Layer.provide(
      HttpApiBuilder.group(BareApi, "scrapes", (handlers) =>
        handlers.handle("enqueue", () =>
          Effect.sync(() => {
            bareCount += 1
            // A 26-character id, as long as the library's.
            return { id: String(bareCount).padStart(26, "0"), status: "queued" as const }
          })
        )
      )
    )
  )
)

const waitForStop = (): Promise<void> =>
  new Promise((resolve) => {
    const lines = createInterface({ input: process.stdin })
    lines.on("line", (line) => line.trim() === "stop" && resolve())
    lines.on("close", resolve)
  })

const announce = Effect.gen(function* () {
  const server = yield* HttpServer.HttpServer
  if (server.address._tag !== "TcpAddress") throw new Error("expected a TCP address")
  yield* Effect.promise(settleHeap)
  emitReady({ port: server.address.port, heapUsedMB: process.memoryUsage().heapUsed / 2 ** 20 })
  yield* Effect.promise(waitForStop)
})

const queueServer = Effect.gen(function* () {
  const queue = yield* Scrapes
  for (let i = 0; i < backlog + workers; i++) {
    yield* queue.enqueue({ url: `https://shop.example/backlog/${i}` })
  }
  yield* Effect.sleep("10 millis")
  const before = yield* queue.stats
  if (before.queued !== backlog || before.running !== workers) {
    throw new Error(`expected ${backlog} queued, ${workers} running: ${JSON.stringify(before)}`)
  }
  yield* announce
  const after = yield* queue.stats
  emitResult({ impl, backlog, workers, handled: after.queued - before.queued, after })
}).pipe(Effect.provide(QueueServerLive))

const bareServer = Effect.gen(function* () {
  yield* announce
  emitResult({ impl, backlog: 0, workers: 0, handled: bareCount })
}).pipe(Effect.provide(BareServerLive))

runMain(async () => {
  const program = impl === "task-queue" ? queueServer : impl === "bare" ? bareServer : undefined
  if (program === undefined) throw new Error(`unknown --impl=${impl}`)
  await program.pipe(Logger.withMinimumLogLevel(LogLevel.Warning), Effect.runPromise)
})
