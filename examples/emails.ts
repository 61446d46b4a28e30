/**
 * The README's example: a typed queue declared as a Tag, provided with one
 * Layer, and served over HTTP. Run it with `node --import tsx examples/emails.ts`.
 */
import { HttpApi, HttpApiBuilder, HttpServer } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Context, Effect, Layer, Schema } from "effect"
import { TaskApi, TaskQueue } from "effect-task-queue"
import { createServer } from "node:http"

const Email = Schema.Struct({ to: Schema.String, subject: Schema.String })

// 1. The queue: its payload, result and error types, under a Tag.
class Emails extends Context.Tag("app/Emails")<
  Emails,
  TaskQueue.TaskQueue<[typeof Email.Type], string, never>
>() {}

// 2. One Layer runs it: at most 4 handlers at once, records kept in memory.
const EmailsLive = TaskQueue.layerMemory(Emails, {
  name: "emails",
  maxWorkers: 4,
  handler: (email) => Effect.sleep("1 second").pipe(Effect.as(`sent to ${email.to}`))
})

// 3. Its HTTP routes, in an HttpApi of your own.
const EmailsApi = TaskApi.make({ name: "emails", payload: Email })
class Api extends HttpApi.make("app").add(EmailsApi).prefix("/v1") {}

const ApiLive = HttpApiBuilder.api(Api).pipe(
  Layer.provide(TaskApi.layer(Api, EmailsApi, Emails)),
  Layer.provide(EmailsLive)
)

HttpApiBuilder.serve().pipe(
  Layer.provide(ApiLive),
  HttpServer.withLogAddress,
  Layer.provide(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 3001 })),
  Layer.launch,
  NodeRuntime.runMain
)
