import { describe, expectTypeOf, it } from "@effect/vitest"
import type { Exit, Layer, Scope } from "effect"
import { Context, Effect } from "effect"
import type { TaskError, TaskStore } from "effect-task-queue"
import { TaskQueue } from "effect-task-queue"

class Clock2 extends Context.Tag("types/Clock2")<Clock2, { readonly now: number }>() {}
class Mailer extends Context.Tag("types/Mailer")<
  Mailer,
  TaskQueue.TaskQueue<[to: string, subject: string], number, "bounced">
>() {}

const handler = (to: string, subject: string): Effect.Effect<number, "bounced", Clock2> =>
  Effect.map(Clock2, (clock) => to.length + subject.length + clock.now)

describe("types", () => {
  it("pins the error and requirement channels of the public API", () => {
    type Queue = Context.Tag.Service<Mailer>
    expectTypeOf<Parameters<Queue["enqueue"]>>().toEqualTypeOf<[to: string, subject: string]>()
    expectTypeOf<ReturnType<Queue["enqueue"]>>().toEqualTypeOf<
      Effect.Effect<
        TaskQueue.TaskHandle<number, "bounced" | TaskError.TaskTimeout>,
        TaskError.QueueShutdown | TaskError.QueueFull
      >
    >()
    expectTypeOf<ReturnType<Queue["enqueueWith"]>>().toEqualTypeOf<
      Effect.Effect<
        TaskQueue.TaskHandle<number, "bounced" | TaskError.TaskTimeout>,
        TaskError.QueueShutdown | TaskError.QueueFull | TaskError.InvalidOption
      >
    >()
    expectTypeOf<ReturnType<Queue["get"]>>().toEqualTypeOf<
      Effect.Effect<
        import("effect-task-queue").Task.Task<number, "bounced" | TaskError.TaskTimeout>,
        TaskError.TaskNotFound
      >
    >()
    expectTypeOf<ReturnType<Queue["await"]>>().toEqualTypeOf<
      Effect.Effect<Exit.Exit<number, "bounced" | TaskError.TaskTimeout>, TaskError.TaskNotFound>
    >()
    expectTypeOf<ReturnType<Queue["cancel"]>>().toEqualTypeOf<
      Effect.Effect<
        import("effect-task-queue").Task.TaskStatus,
        TaskError.TaskNotFound | TaskError.TaskFinished
      >
    >()
    expectTypeOf<Queue["awaitIdle"]>().toEqualTypeOf<Effect.Effect<void>>()

    // The handler's requirements become the layer's; the store is needed unless in memory.
    const layer = TaskQueue.layer(Mailer, { name: "mail", maxWorkers: 1, handler })
    expectTypeOf(layer).toEqualTypeOf<
      Layer.Layer<Mailer, TaskError.InvalidOption, TaskStore.TaskStore | Clock2>
    >()
    const memory = TaskQueue.layerMemory(Mailer, { name: "mail", maxWorkers: 1, handler })
    expectTypeOf(memory).toEqualTypeOf<Layer.Layer<Mailer, TaskError.InvalidOption, Clock2>>()
    expectTypeOf(TaskQueue.make({ name: "mail", maxWorkers: 1, handler })).toEqualTypeOf<
      Effect.Effect<
        TaskQueue.TaskQueue<[to: string, subject: string], number, "bounced">,
        TaskError.InvalidOption,
        Scope.Scope | TaskStore.TaskStore | Clock2
      >
    >()
  })
})
