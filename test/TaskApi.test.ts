import {
  HttpApi,
  HttpApiBuilder,
  HttpClient,
  HttpClientRequest,
  HttpServer
} from "@effect/platform"
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Schema, Scope, Stream, TestClock } from "effect"
import { TaskApi, TaskQueue, TaskStore } from "effect-task-queue"
import { createServer } from "node:http"

const Job = Schema.Struct({ n: Schema.Number.pipe(Schema.int()), ms: Schema.Number })
type Job = typeof Job.Type

class Jobs extends Context.Tag("test/Jobs")<Jobs, TaskQueue.TaskQueue<[Job], number, string>>() {}

const JobsApi = TaskApi.make({ name: "jobs", payload: Job })
class Api extends HttpApi.make("test").add(JobsApi).prefix("/v0") {}

/** Jobs sleep `ms` on the test clock, then double `n`; a negative `n` fails. */
const makeJobs = TaskQueue.make({
  name: "jobs",
  maxWorkers: 1,
  // The test clock does not move while a test's scope closes: no grace period.
  shutdownGrace: 0,
  handler: (job: Job) =>
    Effect.sleep(job.ms).pipe(
      Effect.andThen(job.n < 0 ? Effect.fail(`negative: ${job.n}`) : Effect.succeed(job.n * 2))
    )
}).pipe(Effect.provide(TaskStore.layerMemory()))

/**
 * Serves the api on 127.0.0.1 on a free port, with `queue` behind it, and
 * gives an HttpClient whose relative URLs go to that server.
 */
const serve = (queue: Context.Tag.Service<Jobs>) =>
  HttpApiBuilder.serve().pipe(
    Layer.provide(HttpApiBuilder.api(Api)),
    Layer.provide(TaskApi.layer(Api, JobsApi, Jobs, { maxBodyBytes: 1024 })),
    Layer.provide(Layer.succeed(Jobs, queue)),
    Layer.provideMerge(HttpServer.layerTestClient),
    Layer.provide(NodeHttpClient.layerUndici),
    Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 })),
    Layer.build
  )

const post = (path: string, body: string, headers: Record<string, string> = {}) =>
  HttpClient.execute(
    HttpClientRequest.post(path).pipe(
      HttpClientRequest.bodyText(body, "application/json"),
      HttpClientRequest.setHeaders(headers)
    )
  )

const get = (path: string) => HttpClient.execute(HttpClientRequest.get(path))

const json = (response: { readonly json: Effect.Effect<unknown, unknown> }) =>
  Effect.orDie(response.json) as Effect.Effect<any>

describe("TaskApi", () => {
  it.scoped("enqueues: 202 { id, status } with a Location that reads the task", () =>
    Effect.gen(function* () {
      const queue = yield* makeJobs
      const context = yield* serve(queue)
      yield* Effect.gen(function* () {
        const response = yield* post("/v0/jobs", JSON.stringify({ n: 21, ms: 100 }))
        expect(response.status).toBe(202)
        const body = yield* json(response)
        expect(body).toEqual({ id: expect.any(String), status: "queued" })
        expect(response.headers["location"]).toBe(`/v0/tasks/${body.id}`)

        yield* queue.awaitIdle.pipe(Effect.fork)
        yield* TestClock.adjust("100 millis")
        yield* queue.awaitIdle
        const read = yield* get(response.headers["location"]!)
        expect(read.status).toBe(200)
        const view = yield* json(read)
        expect(view).toMatchObject({
          id: body.id,
          queue: "jobs",
          status: "succeeded",
          attempt: 1,
          result: 42
        })
        // Views never carry the payload.
        expect(JSON.stringify(view)).not.toContain('"n"')
      }).pipe(Effect.provide(context))
    })
  )

  it.scoped("answers 404 with a JSON body for an unknown task", () =>
    Effect.gen(function* () {
      const context = yield* serve(yield* makeJobs)
      yield* Effect.gen(function* () {
        const response = yield* get("/v0/tasks/01ARZ3NDEKTSV4RRFFQ69G5FAV")
        expect(response.status).toBe(404)
        expect(yield* json(response)).toMatchObject({ _tag: "TaskNotFound" })
        const cancel = yield* post("/v0/tasks/nope/cancel", "")
        expect(cancel.status).toBe(404)
      }).pipe(Effect.provide(context))
    })
  )

  it.scoped("refuses bad input with a 4xx JSON body and creates nothing", () =>
    Effect.gen(function* () {
      const queue = yield* makeJobs
      const context = yield* serve(queue)
      yield* Effect.gen(function* () {
        const malformed = yield* post("/v0/jobs", '{"n": 1,')
        expect(malformed.status).toBe(400)
        const malformedBody = yield* json(malformed)
        expect(malformedBody._tag).toBe("InvalidJson")
        expect(malformedBody.message).toMatch(/not valid JSON/)

        const empty = yield* post("/v0/jobs", "")
        expect(empty.status).toBe(400)
        expect((yield* json(empty))._tag).toBe("InvalidJson")

        const wrong = yield* post("/v0/jobs", JSON.stringify({ n: 1.5 }))
        expect(wrong.status).toBe(400)
        const wrongBody = yield* json(wrong)
        expect(wrongBody._tag).toBe("HttpApiDecodeError")
        const paths = wrongBody.issues.map((issue: { path: Array<string> }) => issue.path.join("."))
        expect(paths).toEqual(expect.arrayContaining(["n", "ms"]))

        const big = JSON.stringify({ n: 1, ms: 1, pad: "x".repeat(2000) })
        const tooLarge = yield* post("/v0/jobs", big)
        expect(tooLarge.status).toBe(413)
        expect(yield* json(tooLarge)).toMatchObject({ _tag: "PayloadTooLarge", limit: 1024 })

        // A streamed body has no Content-Length: the limit is counted as it arrives.
        const chunked = yield* HttpClient.execute(
          HttpClientRequest.post("/v0/jobs").pipe(
            HttpClientRequest.bodyStream(Stream.make(new TextEncoder().encode(big)), {
              contentType: "application/json"
            })
          )
        )
        expect(chunked.status).toBe(413)

        const form = yield* HttpClient.execute(
          HttpClientRequest.post("/v0/jobs").pipe(HttpClientRequest.bodyText("n=1", "text/plain"))
        )
        expect(form.status).toBe(415)
        expect((yield* json(form))._tag).toBe("UnsupportedMediaType")

        const latin1 = yield* HttpClient.execute(
          HttpClientRequest.post("/v0/jobs").pipe(
            HttpClientRequest.bodyText('{"n":1,"ms":1}', "application/json; charset=iso-8859-1")
          )
        )
        expect(latin1.status).toBe(415)

        // Deep nesting (which could overflow a recursive formatter) is refused up front.
        const deep = yield* post("/v0/jobs", `{"n": ${"[".repeat(100)}${"]".repeat(100)}}`)
        expect(deep.status).toBe(400)
        expect(yield* json(deep)).toMatchObject({ _tag: "InvalidJson" })

        const params = yield* get("/v0/tasks?status=bogus")
        expect(params.status).toBe(400)
      }).pipe(Effect.provide(context))
      expect((yield* queue.list()).items).toEqual([])
    })
  )

  it.scoped("lists by status with a limit and a cursor, and cancels", () =>
    Effect.gen(function* () {
      const queue = yield* makeJobs
      const context = yield* serve(queue)
      yield* Effect.gen(function* () {
        const ids: Array<string> = []
        for (let n = 0; n < 5; n++) {
          const response = yield* post("/v0/jobs", JSON.stringify({ n, ms: 1000 }))
          ids.push((yield* json(response)).id)
        }
        // One runs, four wait: list the waiting ones two at a time.
        const first = yield* json(yield* get("/v0/tasks?status=queued&limit=2"))
        expect(first.items.map((t: { id: string }) => t.id)).toEqual(ids.slice(1, 3))
        expect(first.next).toBe(ids[2])
        const second = yield* json(
          yield* get(`/v0/tasks?status=queued&limit=2&cursor=${first.next}`)
        )
        expect(second.items.map((t: { id: string }) => t.id)).toEqual(ids.slice(3, 5))
        const last = yield* json(
          yield* get(`/v0/tasks?status=queued&limit=2&cursor=${second.next}`)
        )
        expect(last).toEqual({ items: [], next: null })

        const cancelQueued = yield* post(`/v0/tasks/${ids[4]}/cancel`, "")
        expect(cancelQueued.status).toBe(202)
        expect(yield* json(cancelQueued)).toEqual({ id: ids[4], status: "cancelled" })

        const cancelRunning = yield* post(`/v0/tasks/${ids[0]}/cancel`, "")
        expect(cancelRunning.status).toBe(202)
        expect(yield* json(cancelRunning)).toEqual({ id: ids[0], status: "cancelled" })

        const again = yield* post(`/v0/tasks/${ids[4]}/cancel`, "")
        expect(again.status).toBe(409)
        expect(yield* json(again)).toMatchObject({ _tag: "TaskFinished", status: "cancelled" })

        const cancelled = yield* json(yield* get("/v0/tasks?status=cancelled"))
        expect(cancelled.items.map((t: { id: string }) => t.id)).toEqual([ids[0], ids[4]])
        expect(cancelled.items[0].error).toEqual({
          kind: "interrupted",
          message: "cancelled on request",
          reason: "cancelled"
        })
      }).pipe(Effect.provide(context))
    })
  )

  it.scoped("shows a typed failure in the task view", () =>
    Effect.gen(function* () {
      const queue = yield* makeJobs
      const context = yield* serve(queue)
      yield* Effect.gen(function* () {
        const { id } = yield* json(yield* post("/v0/jobs", JSON.stringify({ n: -1, ms: 0 })))
        expect(yield* queue.await(id)).toEqual(Exit.fail("negative: -1"))
        const view = yield* json(yield* get(`/v0/tasks/${id}`))
        expect(view).toMatchObject({
          status: "failed",
          error: { kind: "failure", message: "negative: -1", value: "negative: -1" }
        })
      }).pipe(Effect.provide(context))
    })
  )

  it.scoped("answers 503 with Retry-After once the queue has shut down", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const queue = yield* Scope.extend(makeJobs, scope)
      const context = yield* serve(queue)
      yield* Scope.close(scope, Exit.void)
      yield* Effect.gen(function* () {
        const response = yield* post("/v0/jobs", JSON.stringify({ n: 1, ms: 1 }))
        expect(response.status).toBe(503)
        expect(response.headers["retry-after"]).toBe("5")
        expect(yield* json(response)).toMatchObject({ _tag: "QueueShutdown" })
      }).pipe(Effect.provide(context))
    })
  )
})
