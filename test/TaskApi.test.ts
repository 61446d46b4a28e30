import {
  HttpApi,
  HttpApiBuilder,
  HttpClient,
  HttpClientRequest,
  HttpServer
} from "@effect/platform"
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import {
  Clock,
  Context,
  Effect,
  Exit,
  Layer,
  Queue,
  Schema,
  Scope,
  Stream,
  TestClock
} from "effect"
import { TaskApi, TaskQueue, TaskStore } from "effect-task-queue"
import { createServer } from "node:http"
import { captureLogs, RETRYING } from "./helpers.js"

const Job = Schema.Struct({ n: Schema.Number.pipe(Schema.int()), ms: Schema.Number })
type Job = typeof Job.Type

class Jobs extends Context.Tag("test/Jobs")<Jobs, TaskQueue.TaskQueue<[Job], number, string>>() {}

const JobsApi = TaskApi.make({ name: "jobs", payload: Job })
class Api extends HttpApi.make("test").add(JobsApi).prefix("/v0") {}

type JobsOptions = Partial<TaskQueue.Options<[Job], number, string, never>>

/**
 * A queue whose jobs sleep `ms` on the test clock, then double `n`; a
 * negative `n` fails. `started` receives each job as an attempt at it starts.
 */
const makeJobs = (options: JobsOptions = {}) =>
  Effect.gen(function* () {
    const started = yield* Queue.unbounded<Job>()
    const queue = yield* TaskQueue.make({
      name: "jobs",
      maxWorkers: 1,
      // The test clock does not move while a test's scope closes: no grace period.
      shutdownGrace: 0,
      handler: (job: Job) =>
        Queue.offer(started, job).pipe(
          Effect.zipRight(Effect.sleep(job.ms)),
          Effect.andThen(job.n < 0 ? Effect.fail(`negative: ${job.n}`) : Effect.succeed(job.n * 2))
        ),
      ...options
    }).pipe(Effect.provide(TaskStore.layerMemory()))
    return { queue, started }
  })

/**
 * Log lines kept in place of the default logger, with a wait until a
 * task's `count`-th retry has been set.
 */
const makeLogs = Effect.map(captureLogs, ({ layer, logged }) => ({
  layer,
  retrying: (id: string, count: number) => logged(RETRYING, id, count)
}))

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
      const { queue } = yield* makeJobs()
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
        expect(view).toEqual({
          id: body.id,
          queue: "jobs",
          status: "succeeded",
          attempt: 1,
          maxAttempts: 3,
          priority: 0,
          createdAt: "1970-01-01T00:00:00.000Z",
          startedAt: "1970-01-01T00:00:00.000Z",
          runAt: null,
          finishedAt: "1970-01-01T00:00:00.100Z",
          result: 42
        })
        // Views never carry the payload.
        expect(JSON.stringify(view)).not.toContain('"n"')
      }).pipe(Effect.provide(context))
    })
  )

  it.scoped("answers 404 with a JSON body for an unknown task", () =>
    Effect.gen(function* () {
      const context = yield* serve((yield* makeJobs()).queue)
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
      const { queue } = yield* makeJobs()
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

        const params = yield* get("/v0/tasks?status=bogus&limit=0")
        expect(params.status).toBe(400)
        // Every bad parameter is named, each once.
        expect((yield* json(params)).issues).toEqual([
          expect.objectContaining({
            path: ["status"],
            message: "status must be one of queued, running, succeeded, failed, cancelled"
          }),
          expect.objectContaining({
            path: ["limit"],
            message: "Expected a number between 1 and 1000, actual 0"
          })
        ])
      }).pipe(Effect.provide(context))
      expect((yield* queue.list()).items).toEqual([])
    })
  )

  it.scoped("lists by status with a limit and a cursor, and cancels", () =>
    Effect.gen(function* () {
      const { queue } = yield* makeJobs()
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

  it.scoped("shows a failed attempt waiting for its retry, then the typed failure", () =>
    Effect.gen(function* () {
      const logs = yield* makeLogs
      const { queue, started } = yield* makeJobs().pipe(Effect.provide(logs.layer))
      const context = yield* serve(queue)
      yield* Effect.gen(function* () {
        const { id } = yield* json(yield* post("/v0/jobs", JSON.stringify({ n: -1, ms: 0 })))
        for (const attempt of [1, 2]) {
          yield* logs.retrying(id, attempt)
          const waiting = yield* json(yield* get(`/v0/tasks/${id}`))
          expect(waiting).toMatchObject({ status: "queued", attempt, maxAttempts: 3, priority: 0 })
          expect(waiting.error).toBeUndefined()
          const now = yield* Clock.currentTimeMillis
          // The view shows the time to the millisecond; the jittered delay has a fraction more.
          const due = Date.parse(waiting.runAt) + 1
          // 1 s, then 2 s, each jittered to between 0.8 and 1.2 times itself.
          expect(due - now).toBeGreaterThanOrEqual(800 * attempt)
          expect(due - now).toBeLessThanOrEqual(1200 * attempt + 1)
          yield* TestClock.adjust(due - now)
        }
        expect(yield* queue.await(id)).toEqual(Exit.fail("negative: -1"))
        expect((yield* Queue.takeAll(started)).length).toBe(3)
        const view = yield* json(yield* get(`/v0/tasks/${id}`))
        expect(view).toMatchObject({
          status: "failed",
          attempt: 3,
          runAt: null,
          error: { kind: "failure", message: "negative: -1", value: "negative: -1" }
        })
      }).pipe(Effect.provide(context))
    })
  )

  it.scoped("shows a timed-out attempt with error kind timeout", () =>
    Effect.gen(function* () {
      const { queue } = yield* makeJobs({ timeout: "1 second", retry: { maxAttempts: 1 } })
      const context = yield* serve(queue)
      yield* Effect.gen(function* () {
        const { id } = yield* json(yield* post("/v0/jobs", JSON.stringify({ n: 1, ms: 5000 })))
        yield* Effect.fork(queue.await(id))
        yield* TestClock.adjust("1 second")
        yield* queue.await(id)
        expect(yield* json(yield* get(`/v0/tasks/${id}`))).toMatchObject({
          status: "failed",
          attempt: 1,
          maxAttempts: 1,
          error: { kind: "timeout", message: "The task timed out after 1000 ms" }
        })
      }).pipe(Effect.provide(context))
    })
  )

  it.scoped("answers 409 to a cancel of a task that succeeded, changing nothing", () =>
    Effect.gen(function* () {
      const { queue } = yield* makeJobs()
      const context = yield* serve(queue)
      yield* Effect.gen(function* () {
        const { id } = yield* json(yield* post("/v0/jobs", JSON.stringify({ n: 2, ms: 0 })))
        expect(yield* queue.await(id)).toEqual(Exit.succeed(4))
        const before = yield* json(yield* get(`/v0/tasks/${id}`))

        const response = yield* post(`/v0/tasks/${id}/cancel`, "")
        expect(response.status).toBe(409)
        expect(yield* json(response)).toEqual({
          _tag: "TaskFinished",
          id,
          status: "succeeded",
          message: `Task ${id} already finished with status succeeded`
        })
        expect(yield* json(yield* get(`/v0/tasks/${id}`))).toEqual(before)
      }).pipe(Effect.provide(context))
    })
  )

  it.scoped("answers 429 with Retry-After when a refusing queue is full, storing nothing", () =>
    Effect.gen(function* () {
      const { queue, started } = yield* makeJobs({ capacity: 1, whenFull: "refuse" })
      const context = yield* serve(queue)
      yield* Effect.gen(function* () {
        const running = yield* json(yield* post("/v0/jobs", JSON.stringify({ n: 1, ms: 1000 })))
        yield* Queue.take(started)
        const waiting = yield* json(yield* post("/v0/jobs", JSON.stringify({ n: 2, ms: 1000 })))

        const refused = yield* post("/v0/jobs", JSON.stringify({ n: 3, ms: 1000 }))
        expect(refused.status).toBe(429)
        expect(refused.headers["retry-after"]).toBe("5")
        expect(refused.headers["location"]).toBeUndefined()
        expect(yield* json(refused)).toEqual({
          _tag: "QueueFull",
          queue: "jobs",
          capacity: 1,
          message: "Queue jobs is full: 1 tasks are queued"
        })
        const listed = yield* json(yield* get("/v0/tasks"))
        expect(listed.items.map((t: { id: string }) => t.id)).toEqual([running.id, waiting.id])
        expect(yield* queue.stats).toMatchObject({ queued: 1, running: 1 })
      }).pipe(Effect.provide(context))
    })
  )

  it.scoped("answers 503 with Retry-After while running tasks finish in their grace period", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const { queue, started } = yield* Scope.extend(
        makeJobs({ shutdownGrace: "10 seconds" }),
        scope
      )
      const context = yield* serve(queue)
      yield* Effect.gen(function* () {
        const { id } = yield* json(yield* post("/v0/jobs", JSON.stringify({ n: 5, ms: 4000 })))
        yield* Queue.take(started)

        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        // The queue stops taking tasks as its shutdown begins, before anything waits.
        yield* Effect.yieldNow()
        const during = yield* post("/v0/jobs", JSON.stringify({ n: 1, ms: 1 }))
        expect(closing.unsafePoll()).toBeNull()
        expect(during.status).toBe(503)
        expect(during.headers["retry-after"]).toBe("5")
        expect(yield* json(during)).toMatchObject({ _tag: "QueueShutdown", queue: "jobs" })
        // The running task is still in its grace period, and nothing was stored.
        expect(yield* json(yield* get(`/v0/tasks/${id}`))).toMatchObject({ status: "running" })
        expect((yield* json(yield* get("/v0/tasks"))).items).toHaveLength(1)

        yield* TestClock.adjust("4 seconds")
        yield* closing.await
        expect(yield* queue.await(id)).toEqual(Exit.succeed(10))

        const after = yield* post("/v0/jobs", JSON.stringify({ n: 1, ms: 1 }))
        expect(after.status).toBe(503)
        expect(after.headers["retry-after"]).toBe("5")
      }).pipe(Effect.provide(context))
    })
  )

  it.scoped("gives back the first task to an enqueue that repeats its Idempotency-Key", () =>
    Effect.gen(function* () {
      const { queue, started } = yield* makeJobs()
      const context = yield* serve(queue)
      yield* Effect.gen(function* () {
        const job = JSON.stringify({ n: 1, ms: 1000 })
        const first = yield* post("/v0/jobs", job, { "idempotency-key": "order-17" })
        expect(first.status).toBe(202)
        const { id } = yield* json(first)
        yield* Queue.take(started)

        const again = yield* post("/v0/jobs", job, { "idempotency-key": "order-17" })
        expect(again.status).toBe(202)
        expect(again.headers["location"]).toBe(`/v0/tasks/${id}`)
        expect(yield* json(again)).toEqual({ id, status: "running" })

        yield* TestClock.adjust("1 second")
        expect(yield* queue.await(id)).toEqual(Exit.succeed(2))
        const late = yield* post("/v0/jobs", job, { "idempotency-key": "order-17" })
        expect(yield* json(late)).toEqual({ id, status: "succeeded" })

        const other = yield* post("/v0/jobs", job, { "idempotency-key": "order-18" })
        expect(other.status).toBe(202)
        const second = yield* json(other)
        expect(second).toEqual({ id: expect.any(String), status: "queued" })
        expect(second.id).not.toBe(id)

        yield* Queue.take(started)
        yield* TestClock.adjust("1 second")
        expect(yield* queue.await(second.id)).toEqual(Exit.succeed(2))
        // The handler ran once for each key.
        expect(yield* Queue.size(started)).toBe(0)
        const listed = yield* json(yield* get("/v0/tasks"))
        expect(listed.items.map((t: { id: string }) => t.id)).toEqual([id, second.id])
      }).pipe(Effect.provide(context))
    })
  )

  it.scoped("refuses a bad Idempotency-Key with a 400 JSON body and creates nothing", () =>
    Effect.gen(function* () {
      const { queue } = yield* makeJobs()
      const context = yield* serve(queue)
      yield* Effect.gen(function* () {
        const job = JSON.stringify({ n: 1, ms: 1 })
        for (const key of ["", "x".repeat(256), "two words", "tab\there"]) {
          const response = yield* post("/v0/jobs", job, { "idempotency-key": key })
          expect(response.status).toBe(400)
          expect(yield* json(response)).toEqual({
            _tag: "InvalidIdempotencyKey",
            message: "The Idempotency-Key header must be 1 to 255 visible ASCII characters"
          })
        }
        expect((yield* queue.list()).items).toEqual([])

        // The longest key, and every visible ASCII character, are accepted.
        const longest = yield* post("/v0/jobs", job, { "idempotency-key": "k".repeat(255) })
        expect(longest.status).toBe(202)
        const visible = String.fromCharCode(...Array.from({ length: 94 }, (_, i) => 0x21 + i))
        const symbols = yield* post("/v0/jobs", job, { "idempotency-key": visible })
        expect(symbols.status).toBe(202)
        expect((yield* queue.list()).items).toHaveLength(2)
      }).pipe(Effect.provide(context))
    })
  )
})
