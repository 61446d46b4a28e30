/**
 * The queue over HTTP: an `HttpApiGroup` to add to an `HttpApi`, with routes
 * to enqueue a task, read one, list them and cancel one.
 *
 * @since 0.1.0
 */
import type { HttpApi, HttpServerRequest } from "@effect/platform"
import {
  HttpApiBuilder,
  HttpApiEndpoint,
  HttpApiError,
  HttpApiGroup,
  HttpApiSchema,
  HttpApp,
  HttpServerResponse
} from "@effect/platform"
import type { Context } from "effect"
import { Effect, Layer, Option, Schema, Stream } from "effect"
import { isPositiveInteger } from "./internal/options.js"
import { TaskStatus, TaskView } from "./Task.js"
import * as TaskError from "./TaskError.js"
import type { TaskQueue } from "./TaskQueue.js"

/**
 * The request body is not valid JSON.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidJson extends Schema.TaggedError<InvalidJson>()(
  "InvalidJson",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 400 })
) {}

/**
 * The request body is larger than the route accepts.
 *
 * @since 0.1.0
 * @category errors
 */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()(
  "PayloadTooLarge",
  { message: Schema.String, limit: Schema.Number },
  HttpApiSchema.annotations({ status: 413 })
) {}

/**
 * The request body is not JSON (by its `Content-Type`).
 *
 * @since 0.1.0
 * @category errors
 */
export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()(
  "UnsupportedMediaType",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 415 })
) {}

/**
 * The `Idempotency-Key` header is empty, too long, or not visible ASCII.
 *
 * @since 0.2.0
 * @category errors
 */
export class InvalidIdempotencyKey extends Schema.TaggedError<InvalidIdempotencyKey>()(
  "InvalidIdempotencyKey",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 400 })
) {}

/**
 * The answer to an enqueue: `202 { id, status: "queued" }`. An enqueue that
 * repeats an `Idempotency-Key` gets the first task's id and its status now.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Enqueued = Schema.Struct({ id: Schema.String, status: TaskStatus })

/**
 * The answer to a cancel: `202 { id, status }` with the task's new status.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Cancelled = Schema.Struct({ id: Schema.String, status: TaskStatus })

/**
 * A page of tasks, oldest first; `next` is the cursor of the next page.
 *
 * @since 0.1.0
 * @category schemas
 */
export const TaskList = Schema.Struct({
  items: Schema.Array(TaskView),
  next: Schema.NullOr(Schema.String)
})

/**
 * Query parameters of the list route.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ListParams = Schema.Struct({
  status: Schema.optionalWith(
    TaskStatus.annotations({
      message: () => ({
        message: "status must be one of queued, running, succeeded, failed, cancelled",
        override: true
      })
    }),
    { exact: true }
  ),
  limit: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 1000)), {
    exact: true
  }),
  cursor: Schema.optionalWith(Schema.String.pipe(Schema.maxLength(64)), { exact: true })
})

const TaskPath = Schema.Struct({ id: Schema.String })

/**
 * @since 0.1.0
 * @category options
 */
export interface Options<Name extends string, P extends Schema.Schema.AnyNoContext> {
  /** The group's name; also the default enqueue path (`/<name>`). */
  readonly name: Name
  /** The Schema of a task's payload: the enqueue route's JSON body. */
  readonly payload: P
  /** Where tasks are enqueued. Default `/<name>`. */
  readonly path?: HttpApiEndpoint.PathSegment | undefined
  /** Where tasks are read, listed and cancelled. Default `/tasks`. */
  readonly tasksPath?: HttpApiEndpoint.PathSegment | undefined
}

const makeGroup = <const Name extends string, P extends Schema.Schema.AnyNoContext>(
  options: Options<Name, P>
) => {
  const tasks = options.tasksPath ?? "/tasks"
  const payload = options.payload.annotations({ parseOptions: { errors: "all" } }) as P
  return HttpApiGroup.make(options.name)
    .add(
      HttpApiEndpoint.post("enqueue", options.path ?? `/${options.name}`)
        .setPayload(payload)
        .addSuccess(Enqueued, { status: 202 })
        .addError(InvalidJson)
        .addError(PayloadTooLarge)
        .addError(UnsupportedMediaType)
        .addError(InvalidIdempotencyKey)
        .addError(TaskError.QueueFull, { status: 429 })
        .addError(TaskError.QueueShutdown, { status: 503 })
    )
    .add(
      HttpApiEndpoint.get("get", `${tasks}/:id`)
        .setPath(TaskPath)
        .addSuccess(TaskView)
        .addError(TaskError.TaskNotFound, { status: 404 })
    )
    .add(
      HttpApiEndpoint.get("list", tasks)
        .setUrlParams(ListParams.annotations({ parseOptions: { errors: "all" } }))
        .addSuccess(TaskList)
    )
    .add(
      HttpApiEndpoint.post("cancel", `${tasks}/:id/cancel`)
        .setPath(TaskPath)
        .addSuccess(Cancelled, { status: 202 })
        .addError(TaskError.TaskNotFound, { status: 404 })
        .addError(TaskError.TaskFinished, { status: 409 })
    )
    .addError(HttpApiError.HttpApiDecodeError)
}

/**
 * The HTTP group of one queue.
 *
 * @since 0.1.0
 * @category models
 */
export type TaskApi<Name extends string, P extends Schema.Schema.AnyNoContext> = ReturnType<
  typeof makeGroup<Name, P>
>

/**
 * Makes the group of routes for a queue whose tasks take one argument, the
 * payload:
 *
 * - `POST /<name>`: enqueue; `202 { id, status: "queued" }` and a `Location`
 *   header, `400` for malformed JSON or a body the Schema refuses, `413` for a
 *   body over the limit, `415` for a body that is not JSON, `429` when the
 *   queue is full and refuses, `503` while the queue shuts down (both with
 *   `Retry-After`). An `Idempotency-Key` header makes a repeat give back the
 *   first task;
 * - `GET /tasks/:id`: the task's view, or `404`;
 * - `GET /tasks?status=&limit=&cursor=`: `{ items, next }`, oldest first;
 * - `POST /tasks/:id/cancel`: `202 { id, status }`, `404`, or `409` when the
 *   task had already finished.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import { HttpApi } from "@effect/platform"
 * import { Schema } from "effect"
 * import { TaskApi } from "effect-task-queue"
 *
 * const Emails = TaskApi.make({ name: "emails", payload: Schema.Struct({ to: Schema.String }) })
 * class Api extends HttpApi.make("app").add(Emails).prefix("/v1") {}
 * ```
 */
export const make: <const Name extends string, P extends Schema.Schema.AnyNoContext>(
  options: Options<Name, P>
) => TaskApi<Name, P> = makeGroup

/**
 * @since 0.1.0
 * @category options
 */
export interface LayerOptions {
  /** The largest enqueue body accepted, in bytes. Default 1 MiB. */
  readonly maxBodyBytes?: number | undefined
  /** The `Retry-After` of a `503` (shutting down) or `429` (full), in seconds. Default 5. */
  readonly retryAfterSeconds?: number | undefined
}

/** JSON bodies must be UTF-8 (RFC 8259); a missing Content-Type is read as JSON. */
const isJson = (contentType: string | undefined): boolean => {
  if (contentType === undefined || contentType === "") return true
  const [type, ...parameters] = contentType.toLowerCase().split(";")
  const mediaType = type!.trim()
  if (mediaType !== "application/json" && !mediaType.endsWith("+json")) return false
  const charset = parameters.map((p) => p.trim()).find((p) => p.startsWith("charset="))
  return charset === undefined || /^charset="?utf-?8"?$/.test(charset)
}

const MAX_DEPTH = 64

/** Whether JSON nests arrays and objects deeper than `max` (counted without recursion). */
const nestsDeeperThan = (value: unknown, max: number): boolean => {
  const stack: Array<readonly [unknown, number]> = [[value, 1]]
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!
    if (typeof item !== "object" || item === null) continue
    if (depth > max) return true
    for (const child of Array.isArray(item) ? item : Object.values(item)) {
      if (typeof child === "object" && child !== null) stack.push([child, depth + 1])
    }
  }
  return false
}

const utf8 = new TextDecoder()

/** The whole body when it has a length (Node enforces it); else streamed and counted. */
const readText = (request: HttpServerRequest.HttpServerRequest, limit: number) => {
  if (request.headers["content-length"] !== undefined) {
    return Effect.map(request.arrayBuffer, (body) => ({ size: body.byteLength, body }))
  }
  return Effect.suspend(() => {
    const chunks: Array<Uint8Array> = []
    let size = 0
    // Read to the end even past the limit, so the connection stays usable.
    return Stream.runForEach(request.stream, (chunk) =>
      Effect.sync(() => {
        size += chunk.length
        if (size <= limit) chunks.push(chunk)
      })
    ).pipe(Effect.map(() => ({ size, body: Buffer.concat(chunks) })))
  })
}

type ReadError = InvalidJson | PayloadTooLarge | UnsupportedMediaType

/** Reads a JSON body of at most `limit` bytes. */
const readJson = (request: HttpServerRequest.HttpServerRequest, limit: number) =>
  Effect.gen(function* () {
    const tooLarge = () =>
      new PayloadTooLarge({ message: `The request body is larger than ${limit} bytes`, limit })
    const contentType = request.headers["content-type"]
    if (!isJson(contentType)) {
      return yield* new UnsupportedMediaType({
        message: `Expected a UTF-8 JSON body (Content-Type: application/json), got ${contentType}`
      })
    }
    const declared = request.headers["content-length"]
    if (declared !== undefined && Number(declared) > limit) return yield* tooLarge()
    const { size, body } = yield* readText(request, limit)
    if (size > limit) return yield* tooLarge()
    const text = utf8.decode(body)
    if (text.trim() === "") {
      return yield* new InvalidJson({ message: "The request body is empty; expected JSON" })
    }
    const json = yield* Effect.try({
      try: (): unknown => JSON.parse(text),
      catch: (error) =>
        new InvalidJson({
          message: `The request body is not valid JSON: ${(error as Error).message}`
        })
    })
    if (nestsDeeperThan(json, MAX_DEPTH)) {
      return yield* new InvalidJson({
        message: `The request body nests arrays and objects deeper than ${MAX_DEPTH} levels`
      })
    }
    return json
  }).pipe(Effect.catchTag("RequestError", Effect.die))

const MAX_KEY_LENGTH = 255

/** The `Idempotency-Key` header, if any: 1 to 255 visible ASCII characters. */
const idempotencyKey = (request: HttpServerRequest.HttpServerRequest) => {
  const key = request.headers["idempotency-key"]
  if (key === undefined) return Effect.succeed(undefined)
  if (key.length === 0 || key.length > MAX_KEY_LENGTH || !/^[\x21-\x7e]+$/.test(key)) {
    return Effect.fail(
      new InvalidIdempotencyKey({
        message: `The Idempotency-Key header must be 1 to ${MAX_KEY_LENGTH} visible ASCII characters`
      })
    )
  }
  return Effect.succeed(key)
}

const withHeader = (name: string, value: string) =>
  HttpApp.appendPreResponseHandler((_request, response) =>
    Effect.succeed(HttpServerResponse.setHeader(response, name, value))
  )

/**
 * Implements a queue's group in `api` with the queue behind `tag`. The
 * `Location` of an enqueued task follows the api's prefix.
 *
 * @since 0.1.0
 * @category layers
 * @example
 * ```ts
 * import { HttpApi, HttpApiBuilder } from "@effect/platform"
 * import { Context, Layer, Schema } from "effect"
 * import { TaskApi, TaskQueue } from "effect-task-queue"
 *
 * const Payload = Schema.Struct({ to: Schema.String })
 * class Emails extends Context.Tag("app/Emails")<
 *   Emails,
 *   TaskQueue.TaskQueue<[typeof Payload.Type], void, never>
 * >() {}
 * const EmailsApi = TaskApi.make({ name: "emails", payload: Payload })
 * class Api extends HttpApi.make("app").add(EmailsApi).prefix("/v1") {}
 *
 * const ApiLive = HttpApiBuilder.api(Api).pipe(Layer.provide(TaskApi.layer(Api, EmailsApi, Emails)))
 * ```
 */
export const layer = <
  ApiId extends string,
  Groups extends HttpApiGroup.HttpApiGroup.Any,
  ApiE,
  ApiR,
  const Name extends HttpApiGroup.HttpApiGroup.Name<Groups>,
  P extends Schema.Schema.AnyNoContext,
  I,
  A,
  E
>(
  api: HttpApi.HttpApi<ApiId, Groups, ApiE, ApiR>,
  group: TaskApi<Name, P>,
  tag: Context.Tag<I, TaskQueue<[Schema.Schema.Type<P>], A, E>>,
  options: LayerOptions = {}
): Layer.Layer<HttpApiGroup.ApiGroup<ApiId, Name>, TaskError.InvalidOption, I> => {
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024
  const retryAfter = options.retryAfterSeconds ?? 5
  if (!isPositiveInteger(maxBodyBytes)) {
    return Layer.fail(
      TaskError.InvalidOption.of("maxBodyBytes", maxBodyBytes, "must be a positive integer")
    )
  }
  if (!isPositiveInteger(retryAfter)) {
    return Layer.fail(
      TaskError.InvalidOption.of("retryAfterSeconds", retryAfter, "must be a positive integer")
    )
  }
  // The group as mounted in `api`, so its paths carry the api's prefix.
  type Endpoints = Record<string, HttpApiEndpoint.HttpApiEndpoint.AnyWithProps>
  const groups = api.groups as unknown as Record<string, HttpApiGroup.HttpApiGroup.AnyWithProps>
  const getPath = (groups[group.identifier]?.endpoints as Endpoints | undefined)?.["get"]?.path
  const enqueue = (group.endpoints as unknown as Endpoints)["enqueue"]!
  const decode = Schema.decodeUnknown(Option.getOrThrow(enqueue.payloadSchema) as unknown as P)
  const typed = api as unknown as HttpApi.HttpApi<ApiId, TaskApi<Name, P>, ApiE, ApiR>

  return HttpApiBuilder.group(typed, group.identifier, (handlers) =>
    Effect.gen(function* () {
      const queue = yield* tag
      const find = (id: string) => queue.get(id)
      return handlers
        .handleRaw("enqueue", ({ request }) =>
          Effect.gen(function* () {
            const key = yield* idempotencyKey(request)
            const payload = yield* readJson(request, maxBodyBytes).pipe(
              Effect.flatMap(decode),
              Effect.catchTag("ParseError", HttpApiError.HttpApiDecodeError.refailParseError)
            ) as Effect.Effect<Schema.Schema.Type<P>, HttpApiError.HttpApiDecodeError | ReadError>
            const task =
              key === undefined
                ? yield* queue.enqueue(payload)
                : yield* queue
                    .enqueueWith({ idempotencyKey: key }, payload)
                    .pipe(Effect.catchTag("InvalidOption", Effect.die))
            if (getPath !== undefined) {
              yield* withHeader("location", getPath.replace(":id", encodeURIComponent(task.id)))
            }
            // A repeated key gives back a task that may have moved on.
            const status =
              key === undefined
                ? ("queued" as const)
                : yield* Effect.map(Effect.orDie(find(task.id)), (t) => t.status)
            return { id: task.id, status }
          }).pipe(
            Effect.tapError((error) =>
              error._tag === "QueueShutdown" || error._tag === "QueueFull"
                ? withHeader("retry-after", String(retryAfter))
                : Effect.void
            )
          )
        )
        .handle("get", ({ path }) => Effect.map(find(path.id), queue.toView))
        .handle("list", ({ urlParams }) =>
          Effect.map(queue.list(urlParams), (page) => ({
            items: page.items.map(queue.toView),
            next: page.next ?? null
          }))
        )
        .handle("cancel", ({ path }) =>
          Effect.map(queue.cancel(path.id), (status) => ({ id: path.id, status }))
        )
    })
  ) as unknown as Layer.Layer<HttpApiGroup.ApiGroup<ApiId, Name>, never, I>
}
