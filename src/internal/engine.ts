/**
 * The engine behind `TaskQueue.make`: the ready queue, the drain fiber, the
 * workers, and the queue's operations on top of them.
 */
import type { Schema } from "effect"
import {
  Cause,
  Deferred,
  Effect,
  Exit,
  Fiber,
  FiberId,
  FiberRef,
  FiberSet,
  LogLevel,
  Queue,
  Scope
} from "effect"
import type { TaskRecord, TaskStatus } from "../Task.js"
import * as Task from "../Task.js"
import { QueueShutdown, TaskFinished, TaskNotFound } from "../TaskError.js"
import type { TaskHandle, TaskQueue } from "../TaskQueue.js"
import * as TaskStore from "../TaskStore.js"
import type { Owner, WorkerFiber } from "./entry.js"
import { awaitEntry, Entry, invoke, Spread, TaskScope } from "./entry.js"
import { makeIdGenerator } from "./id.js"

const nextId = makeIdGenerator()

/** Options as `TaskQueue.make` has checked them. */
export interface Config<Args extends ReadonlyArray<any>, A, E, R> {
  readonly name: string
  readonly maxWorkers: number
  readonly handler: (...args: Args) => Effect.Effect<A, E, R>
  /** Milliseconds running tasks get to finish when the queue shuts down. */
  readonly shutdownGrace: number
  readonly schemas: {
    readonly success: Schema.Schema<A, any> | undefined
    readonly failure: Schema.Schema<E, any> | undefined
  }
}

export const make = <Args extends ReadonlyArray<any>, A, E, R>(
  config: Config<Args, A, E, R>
): Effect.Effect<TaskQueue<Args, A, E>, never, Scope.Scope | TaskStore.TaskStore | R> =>
  Effect.gen(function* () {
    const { name, maxWorkers, handler, schemas, shutdownGrace } = config
    const store = yield* TaskStore.TaskStore
    const { unsafeInsert, unsafeUpdate } = store
    const clock = yield* Effect.clock
    const ready = yield* Queue.unbounded<Entry>()
    const permits = yield* Effect.makeSemaphore(maxWorkers)
    const workers = yield* FiberSet.make<void>()

    let open = true
    let pending = 0
    let running = 0
    let idle: Deferred.Deferred<void> | undefined

    /** Moves a queued task to running on this worker; false if it is no longer queued. */
    const begin = (entry: Entry, worker: Fiber.RuntimeFiber<void>): boolean => {
      if (entry.status !== "queued") return false
      const progress = entry.p
      entry.status = "running"
      progress.attempt += 1
      progress.startedAt = clock.unsafeCurrentTimeMillis()
      progress.fiber = worker
      running += 1
      return true
    }

    /** Records how a task ended, once; later calls change nothing. */
    const settle = (entry: Entry, exit: Exit.Exit<unknown, unknown>): void => {
      if (Task.isTerminal(entry.status)) return
      if (entry.status === "running") running -= 1
      const progress = entry.p
      if (Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause) && !open) {
        progress.reason ??= "shutdown"
      }
      entry.status = Exit.isSuccess(exit)
        ? "succeeded"
        : Cause.isInterruptedOnly(exit.cause) && progress.reason !== undefined
          ? "cancelled"
          : "failed"
      progress.exit = exit
      progress.finishedAt = clock.unsafeCurrentTimeMillis()
      progress.fiber = undefined
      entry.input = undefined
      pending -= 1
      if (progress.outcome !== undefined) Deferred.unsafeDone(progress.outcome, Exit.succeed(exit))
      if (pending === 0 && idle !== undefined) {
        Deferred.unsafeDone(idle, Exit.void)
        idle = undefined
      }
    }

    /** The one line logged per finished task: at Info, or at Warning with the Cause when it failed. */
    const logEnd = (entry: Entry, minimum: LogLevel.LogLevel): Effect.Effect<void> => {
      const exit = entry.exit!
      const failed = entry.status === "failed" && Exit.isFailure(exit)
      if (LogLevel.lessThan(failed ? LogLevel.Warning : LogLevel.Info, minimum)) return Effect.void
      const log = failed
        ? Effect.logWarning("task failed", exit.cause)
        : Effect.logInfo(`task ${entry.status}`)
      return Effect.annotateLogs(log, {
        taskId: entry.id,
        queue: name,
        attempt: entry.attempt,
        status: entry.status,
        durationMs: entry.finishedAt! - (entry.startedAt ?? entry.createdAt)
      })
    }

    /** Records the end of a task, then stores and logs it. */
    /**
     * Records how a task ended, then stores and logs it: the store's
     * synchronous update when it has one, so the hot path adds no effect.
     */
    const end = (
      entry: Entry,
      exit: Exit.Exit<unknown, unknown>,
      minimum: LogLevel.LogLevel
    ): Effect.Effect<void> => {
      settle(entry, exit)
      const log = logEnd(entry, minimum)
      if (unsafeUpdate === undefined) return Effect.zipRight(store.update(entry), log)
      unsafeUpdate(entry)
      return log
    }

    /** `end`, from a fiber other than a worker (cancel, shutdown, enqueue). */
    const finish = (entry: Entry, exit: Exit.Exit<unknown, unknown>) =>
      Effect.uninterruptible(
        Effect.withFiberRuntime<void>((fiber) =>
          end(entry, exit, fiber.getFiberRef(FiberRef.currentMinimumLogLevel))
        )
      )

    const cancelForShutdown = (entry: Entry) =>
      Effect.suspend(() => {
        if (entry.status !== "queued") return Effect.void
        entry.p.reason = "shutdown"
        return finish(entry, Exit.interrupt(FiberId.none))
      })

    /**
     * A worker holds one permit: it runs its first task, then goes on with
     * the next queued one while there is one, and gives the permit back when
     * it ends, however it ends. It runs uninterruptibly but for the handler.
     *
     * Between two tasks it leaves nothing of the first to the second: the
     * task's Scope is closed and the fibers it forked and left running are
     * interrupted before the task counts as ended, and its FiberRefs are put
     * back. It stops after a task that was cancelled or that interrupted it
     * (the interruption must not reach the next task) and once the queue is
     * closing.
     */
    const work = (first: Entry): Effect.Effect<void, never, R> => {
      const scope = new TaskScope()
      const loop = Effect.withFiberRuntime<void, never, R>((runtime) => {
        const fiber = runtime as WorkerFiber
        const fiberRefs = fiber.getFiberRefs()
        // A worker never changes its own log level, so this stays true for its life.
        const minimumLogLevel = fiber.getFiberRef(FiberRef.currentMinimumLogLevel)
        let current: Entry = first

        const next: Effect.Effect<void, never, R> = Effect.flatMap(Queue.poll(ready), (option) =>
          option._tag === "Some" ? step(option.value) : Effect.void
        )
        let interrupted = false
        const goOn = (entry: Entry) =>
          entry.reason !== undefined || interrupted || !open ? Effect.void : next

        const record = (entry: Entry, exit: Exit.Exit<unknown, unknown>) => {
          const ended = end(entry, exit, minimumLogLevel)
          interrupted = fiber.isInterrupted()
          if (!interrupted) fiber.setFiberRefs(fiberRefs)
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
          if (!open) return cancelForShutdown(entry)
          if (!begin(entry, fiber)) return next
          if (entry.reason !== undefined) return record(entry, Exit.interrupt(fiber.id()))
          current = entry
          scope.start()
          const run = invoke(handler, entry) as Effect.Effect<unknown, unknown, R>
          entry.input = undefined
          return Effect.matchCauseEffect(Effect.interruptible(run), onEnd)
        }
        return step(first)
      })
      return Effect.provideService(loop, Scope.Scope, scope)
    }

    const startWorker = Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(
        restore(permits.take(1)),
        restore(Queue.take(ready)).pipe(
          Effect.onInterrupt(() => permits.release(1)),
          Effect.flatMap((entry) =>
            FiberSet.run(workers, Effect.ensuring(work(entry), permits.release(1)))
          )
        )
      )
    )

    // The drain fiber: a defect in one step is logged and the loop goes on.
    const drain = yield* startWorker.pipe(
      Effect.catchAllCause((cause) =>
        Effect.logError("task queue drain step failed", cause).pipe(
          Effect.annotateLogs({ queue: name })
        )
      ),
      Effect.forever,
      Effect.forkScoped
    )

    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        open = false
        yield* Effect.logDebug("task queue shutting down").pipe(
          Effect.annotateLogs({ queue: name, pending, running })
        )
        yield* Fiber.interrupt(drain)
        const cancelWaiting = Effect.flatMap(Queue.takeAll(ready), (waiting) =>
          Effect.forEach(waiting, cancelForShutdown, { discard: true })
        )
        // Tasks that never started end now; running ones get the grace
        // period to finish (a worker stops after its task once the queue is
        // closing), then whatever still runs is interrupted.
        yield* cancelWaiting
        if (running > 0 && shutdownGrace > 0) {
          // Finalizers run uninterruptibly: the wait must be interruptible for
          // the timeout to end it.
          yield* Effect.timeoutOption(
            Effect.interruptible(FiberSet.awaitEmpty(workers)),
            shutdownGrace
          )
        }
        yield* FiberSet.clear(workers)
        yield* cancelWaiting
        yield* Queue.shutdown(ready)
      })
    )

    const lookup = (id: string): Effect.Effect<TaskRecord, TaskNotFound> =>
      Effect.flatMap(store.get(id), (record) =>
        record === undefined || record.queue !== name
          ? Effect.fail(TaskNotFound.of(id))
          : Effect.succeed(record)
      )

    const awaitRecord = (record: TaskRecord): Effect.Effect<Exit.Exit<unknown, unknown>> => {
      if (record instanceof Entry) return awaitEntry(record)
      if (record.exit !== undefined) return Effect.succeed(record.exit)
      // A record this process does not run: read it again until it ends.
      return Effect.gen(function* () {
        while (true) {
          yield* Effect.sleep("100 millis")
          const exit = (yield* store.get(record.id))?.exit
          if (exit !== undefined) return exit
        }
      })
    }

    const cancelEntry = (entry: Entry): Effect.Effect<TaskStatus, TaskFinished> =>
      Effect.suspend(() => {
        switch (entry.status) {
          case "queued": {
            // It stays in the ready queue; the worker that polls it skips it.
            entry.p.reason = "cancelled"
            return finish(entry, Exit.interrupt(FiberId.none)).pipe(Effect.map(() => entry.status))
          }
          case "running": {
            const progress = entry.p
            progress.reason ??= "cancelled"
            const fiber = progress.fiber
            const stop = fiber === undefined ? Effect.void : Fiber.interrupt(fiber)
            return Effect.zipRight(stop, awaitEntry(entry)).pipe(
              Effect.flatMap(() =>
                entry.status === "cancelled"
                  ? Effect.succeed(entry.status)
                  : Effect.fail(TaskFinished.of(entry.id, entry.status))
              )
            )
          }
          default:
            return Effect.fail(TaskFinished.of(entry.id, entry.status))
        }
      })

    const owner: Owner = { name, cancel: cancelEntry }

    const queue: TaskQueue<Args, A, E> = {
      name,
      maxWorkers,
      enqueue: (...args) =>
        Effect.suspend(() => {
          if (!open) return Effect.fail(QueueShutdown.of(name))
          const now = clock.unsafeCurrentTimeMillis()
          const input = args.length === 1 ? args[0] : new Spread(args)
          const entry = new Entry(owner, nextId(now), now, input)
          if (unsafeInsert !== undefined) {
            unsafeInsert(entry)
            pending += 1
            Queue.unsafeOffer(ready, entry)
            return Effect.succeed(entry as TaskHandle<any, any>)
          }
          // Once stored, the task is counted and either queued or, if the
          // queue closed meanwhile, ended: an interruption cannot split that.
          return Effect.uninterruptible(
            Effect.flatMap(store.insert(entry), () => {
              pending += 1
              if (!open) {
                entry.p.reason = "shutdown"
                return Effect.zipRight(
                  finish(entry, Exit.interrupt(FiberId.none)),
                  Effect.fail(QueueShutdown.of(name))
                )
              }
              Queue.unsafeOffer(ready, entry)
              return Effect.succeed(entry as TaskHandle<any, any>)
            })
          )
        }),
      get: (id) => Effect.map(lookup(id), (record) => Task.snapshot<A, E>(record)),
      list: (query = {}) =>
        Effect.map(
          store.list({
            queue: name,
            status: query.status,
            limit: query.limit ?? 100,
            cursor: query.cursor
          }),
          (page) => ({ items: page.items.map((r) => Task.snapshot<A, E>(r)), next: page.next })
        ),
      await: (id) =>
        Effect.flatMap(lookup(id), awaitRecord) as Effect.Effect<Exit.Exit<A, E>, TaskNotFound>,
      cancel: (id) =>
        Effect.flatMap(lookup(id), (record) =>
          record instanceof Entry
            ? cancelEntry(record)
            : Effect.fail(TaskFinished.of(record.id, record.status))
        ),
      awaitIdle: Effect.suspend(() => {
        if (pending === 0) return Effect.void
        idle ??= Deferred.unsafeMake(FiberId.none)
        return Deferred.await(idle)
      }),
      stats: Effect.sync(() => ({ queued: pending - running, running })),
      toView: (task) => Task.toView(task, schemas)
    }
    return queue
  })
