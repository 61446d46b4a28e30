/**
 * A worker: the fiber that runs tasks, one after another, while it holds a
 * permit of the queue's semaphore.
 */
import {
  Cause,
  Clock,
  Context,
  DefaultServices,
  Effect,
  Exit,
  Fiber,
  FiberRef,
  FiberRefs,
  HashMap,
  LogLevel,
  Option,
  Scope,
  Tracer
} from "effect"
import { TaskTimeout } from "../TaskError.js"
import type { Entry, Settings, WorkerFiber } from "./entry.js"
import { invoke, TaskScope } from "./entry.js"

/** What a worker needs of its queue. */
export interface Host<R> {
  readonly name: string
  readonly handler: (...args: ReadonlyArray<any>) => Effect.Effect<unknown, unknown, R>
  readonly settings: Settings
  /** Whether attempts run in spans (a tracer other than Effect's built-in one). */
  readonly tracing: boolean
  /**
   * Whether a worker should wait for the next token after a task: a memory
   * queue's workers go on only while a token is there; a durable queue's
   * wait for the next claim, which is a feeder step away.
   */
  readonly goesOn: () => boolean
  /**
   * Takes the next token, if there is one (a memory queue) or once there is
   * one (a durable queue), and runs `step` with the task it stands for.
   */
  readonly next: <R>(
    step: (entry: Entry) => Effect.Effect<void, never, R>
  ) => Effect.Effect<void, never, R>
  readonly isOpen: () => boolean
  /** Paused, or more workers than `maxWorkers`: no task may start now. */
  readonly mustWait: () => boolean
  /** Puts a task taken too late back at the front of its lane, with its token. */
  readonly putBack: (entry: Entry) => void
  /** Moves a queued task to running on this worker; false if it is no longer queued. */
  readonly begin: (entry: Entry, worker: Fiber.RuntimeFiber<void>) => boolean
  /** Ends an attempt: a retry or the task's end, stored and logged. */
  readonly conclude: (
    entry: Entry,
    exit: Exit.Exit<unknown, unknown>,
    minimum: LogLevel.LogLevel
  ) => Effect.Effect<void>
  /** Ends a task that never started, as the queue shuts down. */
  readonly cancelForShutdown: (entry: Entry) => Effect.Effect<void>
}

/**
 * A worker holds one permit: it runs its first task, then goes on with the
 * next ready one while there is one, and the caller gives the permit back
 * when it ends, however it ends. It runs uninterruptibly but for the handler.
 *
 * Between two tasks it leaves nothing of the first to the second: the task's
 * Scope is closed and the fibers it forked and left running are interrupted
 * before the task counts as ended, and the next task starts from the
 * worker's own FiberRefs, not the last one's. It stops after a task that was
 * cancelled or that interrupted it (the interruption must not reach the next
 * task), and once the queue is closing, paused, or has more workers than it
 * may.
 */
export const work = <R>(host: Host<R>, first: Entry): Effect.Effect<void, never, R> => {
  const { name, handler, settings } = host
  const spanName = `TaskQueue/${name}/attempt`
  const scope = new TaskScope()
  const loop = Effect.withFiberRuntime<void, never, R>((runtime) => {
    const fiber = runtime as WorkerFiber
    const fiberRefs = fiber.getFiberRefs()
    const baseRefs = Array.from(fiberRefs.locals.keys())
    const baseStacks = Array.from(fiberRefs.locals.values())
    const id = fiber.id()
    // A worker never changes its own log level, so this stays true for its life.
    const minimumLogLevel = fiber.getFiberRef(FiberRef.currentMinimumLogLevel)
    const logAnnotations = HashMap.set(
      fiber.getFiberRef(FiberRef.currentLogAnnotations),
      "queue",
      name
    )
    // Most attempts are first attempts: one set per task instead of two.
    const firstAttempt = HashMap.set(logAnnotations, "attempt", 1)
    const context = fiber.getFiberRef(FiberRef.currentContext)
    const services = fiber.getFiberRef(DefaultServices.currentServices)
    const tracer = Context.get(services, Tracer.Tracer)
    const nanos = Context.get(services, Clock.Clock)
    let current: Entry = first
    let span: Tracer.Span | undefined

    /**
     * Starts the attempt's span, a child of the span that enqueued the
     * task (else of the worker's), and makes it the handler's current span.
     */
    const startSpan = (entry: Entry, parent: Tracer.AnySpan | undefined) => {
      const started = tracer.span(
        spanName,
        parent === undefined ? Context.getOption(context, Tracer.ParentSpan) : Option.some(parent),
        Context.empty(),
        [],
        nanos.unsafeCurrentTimeNanos(),
        "consumer"
      )
      started.attribute("task.id", entry.id)
      started.attribute("task.queue", name)
      started.attribute("task.attempt", entry.attempt)
      return started
    }

    /**
     * Gives the fiber the task's log annotations, and its span as the
     * current one: its own FiberRefs with those replaced, in one step
     * (`setFiberRef` would first compare the old annotations with the new,
     * which costs as much again).
     */
    const enter = (entry: Entry, span: Tracer.Span | undefined) => {
      const attempt = entry.attempt
      const annotations = HashMap.set(
        attempt === 1 ? firstAttempt : HashMap.set(logAnnotations, "attempt", attempt),
        "taskId",
        entry.id
      )
      // Filled key by key: `new Map(map)` takes the iterator path, twice as slow.
      const locals = new Map<FiberRef.FiberRef<any>, any>()
      for (let i = 0; i < baseRefs.length; i++) locals.set(baseRefs[i]!, baseStacks[i])
      locals.set(FiberRef.currentLogAnnotations, [[id, annotations]])
      if (span !== undefined) {
        locals.set(FiberRef.currentContext, [[id, Context.add(context, Tracer.ParentSpan, span)]])
      }
      fiber.setFiberRefs(FiberRefs.unsafeMake(locals))
    }

    const next: Effect.Effect<void, never, R> = host.next((entry) => step(entry))
    let interrupted = false
    let cancelled = false
    const goOn = (entry: Entry) =>
      entry.reason !== undefined ||
      cancelled ||
      interrupted ||
      !host.isOpen() ||
      host.mustWait() ||
      !host.goesOn()
        ? Effect.void
        : next

    const record = (entry: Entry, exit: Exit.Exit<unknown, unknown>) => {
      // Asked to cancel: an interruption may be on its way to this fiber.
      cancelled = entry.reason !== undefined
      const ended = host.conclude(entry, exit, minimumLogLevel)
      // No need to put the FiberRefs back here: the next task's `enter`
      // sets the worker's own with that task's annotations, in one step.
      interrupted = fiber.isInterrupted()
      // `open` may change while an effectful store writes: decide after it.
      return ended === Effect.void
        ? goOn(entry)
        : Effect.zipRight(
            ended,
            Effect.suspend(() => goOn(entry))
          )
    }

    /** Closes what the task left open, then records its end. */
    const done = (entry: Entry, exit: Exit.Exit<unknown, unknown>) => {
      if (span !== undefined) span.end(nanos.unsafeCurrentTimeNanos(), exit)
      const closing = scope.end(exit)
      const children = fiber.getChildren()
      if (closing === undefined && children.size === 0) return record(entry, exit)
      const cleanup = Effect.zipRight(
        closing ?? Effect.void,
        Fiber.interruptAll(Array.from(children))
      )
      return Effect.flatMap(Effect.exit(cleanup), (closed) =>
        record(
          entry,
          Exit.isSuccess(closed)
            ? exit
            : Exit.failCause(
                Exit.isSuccess(exit) ? closed.cause : Cause.sequential(exit.cause, closed.cause)
              )
        )
      )
    }

    const onEnd = {
      onSuccess: (value: unknown) =>
        done(current, value === undefined ? Exit.void : Exit.succeed(value)),
      onFailure: (cause: Cause.Cause<unknown>) => done(current, Exit.failCause(cause))
    }
    const step = (entry: Entry): Effect.Effect<void, never, R> => {
      if (!host.isOpen()) return host.cancelForShutdown(entry)
      if (entry.status !== "queued") return next
      if (host.mustWait()) {
        // Paused or resized down since this worker took the task: it goes
        // back to the front of its lane, and the worker stops.
        host.putBack(entry)
        return Effect.void
      }
      host.begin(entry, fiber)
      if (entry.reason !== undefined) return record(entry, Exit.interrupt(fiber.id()))
      current = entry
      scope.start()
      const progress = entry.p
      span = host.tracing ? startSpan(entry, progress.extras?.span) : undefined
      enter(entry, span)
      // The input stays until the task ends: a retry needs it again.
      let run = invoke(handler, entry) as Effect.Effect<unknown, unknown, R>
      const timeout = (progress.extras?.settings ?? settings).timeout
      if (timeout !== undefined) {
        run = Effect.timeoutFail(run, {
          duration: timeout,
          onTimeout: () => TaskTimeout.of(timeout)
        })
      }
      return Effect.matchCauseEffect(Effect.interruptible(run), onEnd)
    }
    return step(first)
  })
  return Effect.provideService(loop, Scope.Scope, scope)
}
