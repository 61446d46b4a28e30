/**
 * One task as the engine holds it, and what a worker needs around it.
 */
import type { Fiber, FiberRef, FiberRefs, Schedule, Tracer } from "effect"
import { Deferred, Effect, ExecutionStrategy, Exit, FiberId, Inspectable, Scope } from "effect"
import { pipeArguments } from "effect/Pipeable"
import type { TaskId, TaskRecord, TaskStatus } from "../Task.js"
import type { TaskFinished } from "../TaskError.js"
import type { TaskHandle } from "../TaskQueue.js"

/** How a task is retried and how long an attempt may run. */
export interface Settings {
  /** Attempts in all, the first included. */
  readonly maxAttempts: number
  /** The delays between attempts; its input is the attempt's error. */
  readonly schedule: Schedule.Schedule<unknown, unknown>
  /** Typed errors that are not worth another attempt. */
  readonly isPermanent: ((error: unknown) => boolean) | undefined
  /** Milliseconds an attempt may run; `undefined` for no limit. */
  readonly timeout: number | undefined
}

/** What an entry needs of the queue that owns it. */
export interface Owner {
  readonly name: string
  readonly settings: Settings
  readonly cancel: (entry: Entry) => Effect.Effect<TaskStatus, TaskFinished>
}

/** The arguments of a handler that takes other than exactly one. */
export class Spread {
  constructor(readonly args: ReadonlyArray<unknown>) {}
}

/**
 * What a task gains once it starts, ends or is awaited. Kept apart from the
 * entry so that a waiting task holds only what it needs.
 */
export class Progress {
  attempt = 0
  startedAt: number | undefined = undefined
  finishedAt: number | undefined = undefined
  exit: Exit.Exit<unknown, unknown> | undefined = undefined
  reason: string | undefined = undefined
  /** The worker running the task, while it runs. */
  fiber: Fiber.RuntimeFiber<void> | undefined = undefined
  /** Made only when someone awaits the task. */
  outcome: Deferred.Deferred<Exit.Exit<unknown, unknown>> | undefined = undefined
  /** What only some tasks have, made on first use. */
  extras: Extras | undefined = undefined
}

/**
 * What a task has only when it was enqueued with options, waits for a
 * retry, or runs under a tracer: kept apart so that other tasks skip it.
 */
export class Extras {
  /** Higher runs first. */
  priority = 0
  /** When a delayed task, or one waiting for its retry, runs next (epoch ms). */
  runAt: number | undefined = undefined
  /** Its place in the queue's delay heap, -1 when it is not there. */
  heapIndex = -1
  /** The queue's settings, or this task's own. */
  settings: Settings | undefined = undefined
  /** The retry schedule's state, from the first failed attempt on. */
  scheduleState: unknown = undefined
  idempotencyKey: string | undefined = undefined
  /** The span that enqueued the task: each attempt's span is its child. */
  span: Tracer.AnySpan | undefined = undefined
}

/**
 * One task as the engine tracks it: the record the memory store keeps, and
 * the handle `enqueue` returns. One object per waiting task, nothing else.
 */
/**
 * What a task handle shows of itself, printed or serialized: its id, never
 * the task's input (the memory engine's handle is its internal record).
 */
abstract class ShownAsHandle {
  abstract readonly id: TaskId
  toJSON(): unknown {
    return { _id: "TaskHandle", id: this.id }
  }
  toString(): string {
    return `TaskHandle(${this.id})`
  }
  [Inspectable.NodeInspectSymbol](): unknown {
    return this.toJSON()
  }
}

export class Entry extends ShownAsHandle implements TaskRecord, TaskHandle<unknown, unknown> {
  status: TaskStatus = "queued"
  progress: Progress | undefined = undefined

  constructor(
    readonly owner: Owner,
    readonly id: TaskId,
    readonly createdAt: number,
    /** The handler's argument (or a `Spread` of them) until the task starts. */
    public input: unknown
  ) {
    super()
  }

  /** The progress, made on first use. */
  get p(): Progress {
    return (this.progress ??= new Progress())
  }

  get queue(): string {
    return this.owner.name
  }
  get attempt(): number {
    return this.progress?.attempt ?? 0
  }
  get startedAt(): number | undefined {
    return this.progress?.startedAt
  }
  get finishedAt(): number | undefined {
    return this.progress?.finishedAt
  }
  get exit(): Exit.Exit<unknown, unknown> | undefined {
    return this.progress?.exit
  }
  get reason(): string | undefined {
    return this.progress?.reason
  }
  /** The extras, made on first use. */
  get x(): Extras {
    const progress = this.p
    return (progress.extras ??= new Extras())
  }

  get priority(): number {
    return this.progress?.extras?.priority ?? 0
  }
  get runAt(): number | undefined {
    return this.progress?.extras?.runAt
  }
  get maxAttempts(): number {
    return (this.progress?.extras?.settings ?? this.owner.settings).maxAttempts
  }
  get idempotencyKey(): string | undefined {
    return this.progress?.extras?.idempotencyKey
  }

  // The delay heap's view of the entry.
  get dueAt(): number {
    return this.progress!.extras!.runAt!
  }
  get heapIndex(): number {
    return this.progress?.extras?.heapIndex ?? -1
  }
  set heapIndex(index: number) {
    this.x.heapIndex = index
  }

  get await(): Effect.Effect<Exit.Exit<unknown, unknown>> {
    return awaitEntry(this)
  }

  get cancel(): Effect.Effect<TaskStatus, TaskFinished> {
    return this.owner.cancel(this)
  }
}

/** A handle for a task held elsewhere (a durable store): `await` and `cancel` given. */
export class StoredHandle extends ShownAsHandle implements TaskHandle<unknown, unknown> {
  readonly await: Effect.Effect<Exit.Exit<unknown, unknown>>
  readonly cancel: Effect.Effect<TaskStatus, TaskFinished>
  constructor(
    readonly id: TaskId,
    awaitEnd: Effect.Effect<Exit.Exit<unknown, unknown>>,
    cancel: Effect.Effect<TaskStatus, TaskFinished>
  ) {
    super()
    this.await = awaitEnd
    this.cancel = cancel
  }
}

export const awaitEntry = (entry: Entry): Effect.Effect<Exit.Exit<unknown, unknown>> =>
  Effect.suspend(() => {
    const progress = entry.p
    if (progress.exit !== undefined) return Effect.succeed(progress.exit)
    progress.outcome ??= Deferred.unsafeMake(FiberId.none)
    return Deferred.await(progress.outcome)
  })

/** Calls the handler; a synchronous throw or a non-Effect becomes a defect. */
export const invoke = (handler: (...args: ReadonlyArray<any>) => unknown, entry: Entry) => {
  let effect: unknown
  try {
    const input = entry.input
    effect = input instanceof Spread ? handler(...input.args) : handler(input)
  } catch (error) {
    return Effect.die(error)
  }
  return Effect.isEffect(effect)
    ? (effect as Effect.Effect<unknown, unknown>)
    : Effect.dieMessage("The task handler did not return an Effect")
}

/** What a task's Scope reads as between two tasks. */
const CLOSED = { _tag: "Closed", exit: Exit.void } as const

/**
 * The Scope a handler gets: one per worker, standing for the task it runs.
 * A real scope is made only when a task first uses it, and the worker closes
 * it when the task ends, so a handler that needs no Scope pays nothing for
 * it. Effect's `forkIn` reads a scope's `state` directly, so `state` is
 * the real scope's while a task runs, and closed between tasks.
 */
export class TaskScope implements Scope.CloseableScope {
  readonly [Scope.ScopeTypeId]: Scope.ScopeTypeId = Scope.ScopeTypeId
  readonly [Scope.CloseableScopeTypeId]: Scope.CloseableScopeTypeId = Scope.CloseableScopeTypeId
  readonly strategy: ExecutionStrategy.ExecutionStrategy = ExecutionStrategy.sequential
  private current: Scope.CloseableScope | undefined = undefined
  private running = false

  /** The worker calls it as a task starts. */
  start(): void {
    this.running = true
  }

  /** Ends the task's scope: nothing to do (undefined) if the task never used it. */
  end(exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> | undefined {
    this.running = false
    const scope = this.current
    this.current = undefined
    return scope === undefined ? undefined : Scope.close(scope, exit)
  }

  private get real(): Scope.CloseableScope {
    return (this.current ??= Effect.runSync(Scope.make(this.strategy)))
  }

  get state(): unknown {
    return this.running ? (this.real as unknown as { readonly state: unknown }).state : CLOSED
  }

  fork(strategy: ExecutionStrategy.ExecutionStrategy): Effect.Effect<Scope.CloseableScope> {
    return Effect.suspend(() => Scope.fork(this.real, strategy))
  }

  addFinalizer(finalizer: Scope.Scope.Finalizer): Effect.Effect<void> {
    return Effect.suspend(() => Scope.addFinalizerExit(this.real, finalizer))
  }

  close(exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
    return Effect.suspend(() => this.end(exit) ?? Effect.void)
  }

  pipe() {
    // eslint-disable-next-line prefer-rest-params
    return pipeArguments(this, arguments)
  }
}

/**
 * Methods of Effect 3's fiber runtime that a worker calls on itself, from
 * its own fiber, between two tasks: which fibers the last task forked and
 * left running, whether the fiber was interrupted, and putting its FiberRefs
 * back as they were before the task. Effect's public API has each of them
 * only as an effect; these read or write the same state synchronously.
 */
export interface WorkerFiber extends Fiber.RuntimeFiber<void> {
  getChildren(): ReadonlySet<Fiber.RuntimeFiber<unknown, unknown>>
  isInterrupted(): boolean
  setFiberRefs(fiberRefs: FiberRefs.FiberRefs): void
  setFiberRef<A>(fiberRef: FiberRef.FiberRef<A>, value: A): void
}
