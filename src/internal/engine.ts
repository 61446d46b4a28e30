/**
 * The engine behind `TaskQueue.make`: the ready queue, the drain fiber, the
 * workers, and the queue's operations on top of them.
 */
import type { Schema } from "effect"
import {
  Cause,
  Context,
  DefaultServices,
  Deferred,
  Effect,
  Either,
  Exit,
  Fiber,
  FiberId,
  FiberRef,
  FiberSet,
  LogLevel,
  Queue,
  Scope,
  Tracer
} from "effect"
import type { TaskRecord, TaskStatus } from "../Task.js"
import * as Task from "../Task.js"
import type { InvalidOption } from "../TaskError.js"
import { QueueFull, QueueShutdown, TaskFinished, TaskNotFound, TaskTimeout } from "../TaskError.js"
import type { EnqueueOptions, TaskHandle, TaskQueue } from "../TaskQueue.js"
import * as TaskStore from "../TaskStore.js"
import { Capacity } from "./capacity.js"
import type { Owner, Settings } from "./entry.js"
import { awaitEntry, Entry, Spread, StoredHandle } from "./entry.js"
import { makeIdGenerator } from "./id.js"
import { QueueMetrics } from "./observe.js"
import type { Placement } from "./options.js"
import { resolveEnqueueOptions } from "./options.js"
import { annotations, decide, describeCause, logEnd } from "./attempt.js"
import { cancelRunning, listIn, logFailure, lookupIn, makePool, once } from "./pool.js"
import { DelayHeap } from "./ready.js"
import type { Host } from "./worker.js"

const nextId = makeIdGenerator()

const builtInTracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)

/** Options as `TaskQueue.make` has checked them. */
export interface Config<Args extends ReadonlyArray<any>, A, E, R> {
  readonly name: string
  readonly maxWorkers: number
  readonly handler: (...args: Args) => Effect.Effect<A, E, R>
  /** Milliseconds running tasks get to finish when the queue shuts down. */
  readonly shutdownGrace: number
  readonly settings: Settings
  /** Queued tasks at most, or `undefined` for no bound. */
  readonly capacity: number | undefined
  readonly whenFull: "wait" | "refuse"
  readonly schemas: {
    readonly success: Schema.Schema<A, any> | undefined
    readonly failure: Schema.Schema<E, any> | undefined
  }
}

export const make = <Args extends ReadonlyArray<any>, A, E, R>(
  config: Config<Args, A, E, R>
): Effect.Effect<TaskQueue<Args, A, E>, never, Scope.Scope | TaskStore.TaskStore | R> =>
  Effect.gen(function* () {
    const { name, handler, schemas, shutdownGrace, settings } = config
    const store = yield* TaskStore.TaskStore
    const { unsafeInsert, unsafeUpdate } = store
    const clock = yield* Effect.clock
    const pool = yield* makePool(config.maxWorkers)
    const { lanes, ready, workers } = pool
    const delayed = new DelayHeap<Entry>()
    const wake = yield* Queue.sliding<void>(1)
    const meter = new QueueMetrics(name)
    // Attempt spans are made only under a tracer other than Effect's
    // built-in one, which exports nothing; workers use the tracer in place here.
    const tracing = yield* Effect.withFiberRuntime<boolean>((fiber) =>
      Effect.succeed(
        fiber.getFiberRef(FiberRef.currentTracerEnabled) &&
          Context.get(fiber.getFiberRef(DefaultServices.currentServices), Tracer.Tracer) !==
            builtInTracer
      )
    )

    let open = true
    let pending = 0
    let running = 0
    let idle: Deferred.Deferred<void> | undefined
    /** Enqueues whose store insert is under way: they count against capacity. */
    let inserting = 0
    const capacity =
      config.capacity === undefined
        ? undefined
        : new Capacity(
            config.capacity,
            () => queued() + inserting,
            () => checkIdle()
          )

    const queued = () => pending - running

    /** Nothing queued or running, and no enqueue let in that has yet to store its task. */
    const isIdle = () => pending === 0 && (capacity === undefined || capacity.reservations === 0)
    const checkIdle = () => {
      if (idle !== undefined && isIdle()) {
        Deferred.unsafeDone(idle, Exit.void)
        idle = undefined
      }
    }
    const gauges = () => meter.gauges(pending - running, running)

    /** Puts a queued task where it waits: the lanes when due, else the delay heap. */
    const place = (entry: Entry): void => {
      const runAt = entry.runAt
      if (runAt !== undefined && runAt > clock.unsafeCurrentTimeMillis()) {
        delayed.push(entry)
        if (delayed.peek() === entry) Queue.unsafeOffer(wake, undefined)
        return
      }
      pool.push(entry)
    }

    /** Moves a queued task to running on this worker; false if it is no longer queued. */
    const begin = (entry: Entry, worker: Fiber.RuntimeFiber<void>): boolean => {
      if (entry.status !== "queued") return false
      const progress = entry.p
      const now = clock.unsafeCurrentTimeMillis()
      const extras = progress.extras
      meter.waitTime.update(now - (extras?.runAt ?? entry.createdAt))
      entry.status = "running"
      progress.attempt += 1
      progress.startedAt = now
      if (extras !== undefined) extras.runAt = undefined
      progress.fiber = worker
      running += 1
      meter.started.update(1)
      gauges()
      capacity?.roomMade()
      return true
    }

    /** Records how a task ended, once; later calls change nothing. */
    const settle = (entry: Entry, exit: Exit.Exit<unknown, unknown>): void => {
      if (Task.isTerminal(entry.status)) return
      const wasRunning = entry.status === "running"
      const progress = entry.p
      const now = clock.unsafeCurrentTimeMillis()
      if (wasRunning) {
        running -= 1
        meter.runTime.update(now - progress.startedAt!)
      }
      if (Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause) && !open) {
        progress.reason ??= "shutdown"
      }
      entry.status = Exit.isSuccess(exit)
        ? "succeeded"
        : Cause.isInterruptedOnly(exit.cause) && progress.reason !== undefined
          ? "cancelled"
          : "failed"
      // A cancel that came too late (the task ended otherwise) leaves no reason.
      if (entry.status !== "cancelled") progress.reason = undefined
      meter[entry.status].update(1)
      progress.exit = exit
      progress.finishedAt = now
      progress.fiber = undefined
      const extras = progress.extras
      if (extras !== undefined) {
        extras.runAt = undefined
        extras.scheduleState = undefined
      }
      delayed.remove(entry)
      entry.input = undefined
      pending -= 1
      // Only the gauge that changed.
      if (wasRunning) meter.running.update(running)
      else meter.queued.update(pending - running)
      if (!wasRunning) capacity?.roomMade()
      if (progress.outcome !== undefined) Deferred.unsafeDone(progress.outcome, Exit.succeed(exit))
      checkIdle()
    }

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

    /** Puts a task whose attempt failed back in the queue, to run at `runAt`. */
    const requeue = (entry: Entry, runAt: number, cause: Cause.Cause<unknown>) => {
      const progress = entry.p
      running -= 1
      meter.runTime.update(clock.unsafeCurrentTimeMillis() - progress.startedAt!)
      if (open) meter.retried.update(1)
      entry.status = "queued"
      progress.fiber = undefined
      entry.x.runAt = runAt
      gauges()
      place(entry)
      // The error's message only: a stack per retry of an expected failure is noise.
      const log = Effect.logInfo("task attempt failed; it will be retried").pipe(
        Effect.annotateLogs({
          ...annotations(entry),
          error: describeCause(cause),
          runAt: new Date(runAt).toISOString()
        })
      )
      if (unsafeUpdate === undefined) return Effect.zipRight(store.update(entry), log)
      unsafeUpdate(entry)
      return log
    }

    /**
     * Ends a task's attempt: a retry when the policy allows one and its
     * schedule goes on, else the task's end.
     */
    const conclude = (
      entry: Entry,
      exit: Exit.Exit<unknown, unknown>,
      minimum: LogLevel.LogLevel
    ): Effect.Effect<void> => {
      if (Exit.isSuccess(exit)) return end(entry, exit, minimum)
      const now = clock.unsafeCurrentTimeMillis()
      const state = (schedule: Settings["schedule"]) =>
        entry.p.attempt === 1 ? schedule.initial : entry.x.scheduleState
      return Effect.flatMap(decide(entry, exit, settings, now, state), (decision) => {
        // A cancel asked for as the attempt failed wins over the retry.
        if (decision._tag === "retry" && entry.p.reason !== undefined) {
          return end(entry, Exit.interrupt(FiberId.none), minimum)
        }
        if (decision._tag === "end") return end(entry, decision.exit, minimum)
        entry.x.scheduleState = decision.state
        return requeue(entry, decision.runAt, exit.cause)
      })
    }

    const host: Host<R> = {
      name,
      handler: handler as Host<R>["handler"],
      settings,
      tracing,
      // Workers go on while tokens wait. Should another fiber take the
      // last token first, the worker waits for the next one with its
      // permit, as a durable queue's workers do; shutdown ends that wait.
      goesOn: pool.hasToken,
      next: (step) =>
        Effect.flatMap(Queue.take(ready), () => {
          const entry = lanes.shift()
          return entry === undefined ? Effect.void : step(entry)
        }),
      isOpen: () => open,
      mustWait: () => pool.paused || pool.live > pool.maxWorkers,
      putBack: pool.putBack,
      begin,
      conclude,
      cancelForShutdown
    }

    const recover = (what: string) => logFailure(name, what)

    const drain = yield* pool
      .drainStep(host)
      .pipe(Effect.catchAllCause(recover("drain step")), Effect.forever, Effect.forkScoped)

    // The timer: moves delayed tasks to the lanes when they fall due, and
    // wakes early when a task due sooner arrives.
    const timerStep = Effect.suspend(() => {
      const now = clock.unsafeCurrentTimeMillis()
      for (let entry = delayed.popDue(now); entry !== undefined; entry = delayed.popDue(now)) {
        place(entry)
      }
      const first = delayed.peek()
      if (first === undefined) return Queue.take(wake)
      // Effect's live clock never wakes from a sleep over 2^31 - 1 ms (about
      // 24.8 days): sleep at most that long, then look again.
      return Effect.timeoutOption(Queue.take(wake), Math.min(first.dueAt - now, 2 ** 31 - 1))
    })
    const timer = yield* timerStep.pipe(
      Effect.catchAllCause(recover("timer step")),
      Effect.forever,
      Effect.forkScoped
    )

    const shutdownSteps = Effect.gen(function* () {
      open = false
      yield* Effect.logDebug("task queue shutting down").pipe(
        Effect.annotateLogs({ queue: name, pending, running })
      )
      capacity?.wakeAll()
      yield* Fiber.interrupt(drain)
      yield* Fiber.interrupt(timer)
      // Tokens mean nothing from here on; a worker waiting for one stops.
      yield* Queue.shutdown(ready)
      const cancelWaiting = Effect.suspend(() => {
        const waiting = [...lanes.takeAll(), ...delayed.takeAll()]
        return Effect.forEach(waiting, cancelForShutdown, { discard: true })
      })
      // Tasks that never started end now; running ones get the grace
      // period to finish (a worker stops after its task once the queue is
      // closing), then whatever still runs is interrupted.
      yield* cancelWaiting
      if (running > 0 && shutdownGrace > 0) {
        // This runs uninterruptibly: the wait must be interruptible for the
        // timeout to end it.
        yield* Effect.timeoutOption(
          Effect.interruptible(FiberSet.awaitEmpty(workers)),
          shutdownGrace
        )
      }
      yield* FiberSet.clear(workers)
      // A task whose attempt failed during the grace period may be waiting for its retry.
      yield* cancelWaiting
    })
    const shutdown = yield* once(shutdownSteps)
    yield* Effect.addFinalizer(() => shutdown)

    const lookup = lookupIn(store, name)

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
            // A ready task stays in its lane and is skipped; a delayed one
            // leaves the delay heap as it ends.
            entry.p.reason = "cancelled"
            return finish(entry, Exit.interrupt(FiberId.none)).pipe(Effect.map(() => entry.status))
          }
          case "running":
            return cancelRunning(
              entry,
              awaitEntry(entry),
              Effect.suspend(() => cancelEntry(entry))
            )
          default:
            return Effect.fail(TaskFinished.of(entry.id, entry.status))
        }
      })

    const owner: Owner = { name, settings, cancel: cancelEntry }

    /** A handle for a task this queue's store holds but this process did not enqueue. */
    const handleOf = (record: TaskRecord): TaskHandle<any, any> =>
      record instanceof Entry
        ? record
        : new StoredHandle(
            record.id,
            awaitRecord(record),
            Effect.fail(TaskFinished.of(record.id, record.status))
          )

    /** Stores a new task and queues it; `options` are already checked. */
    const submit = (
      args: ReadonlyArray<unknown>,
      options: EnqueueOptions<unknown> | undefined,
      roomReserved = false
    ): Effect.Effect<TaskHandle<any, any>, QueueShutdown | QueueFull | InvalidOption> =>
      tracing
        ? Effect.withFiberRuntime((fiber) =>
            insertWith(args, options, roomReserved, fiber.currentSpan)
          )
        : Effect.suspend(() => insertWith(args, options, roomReserved, undefined))

    const insertWith = (
      args: ReadonlyArray<unknown>,
      options: EnqueueOptions<unknown> | undefined,
      roomReserved: boolean,
      span: Tracer.AnySpan | undefined
    ): Effect.Effect<TaskHandle<any, any>, QueueShutdown | QueueFull | InvalidOption> => {
      if (!open) return Effect.fail(QueueShutdown.of(name))
      const now = clock.unsafeCurrentTimeMillis()
      let placement: Placement | undefined
      if (options !== undefined) {
        const resolved = resolveEnqueueOptions(options, settings, now)
        if (Either.isLeft(resolved)) return Effect.fail(resolved.left)
        placement = resolved.right
      }
      if (capacity !== undefined && !roomReserved && !capacity.hasRoom()) {
        // A delay counts from this call, not from when room is found.
        const later =
          options?.delay === undefined
            ? options
            : { ...options, delay: undefined, runAt: placement?.runAt }
        const full =
          config.whenFull === "refuse"
            ? Effect.fail(QueueFull.of(name, capacity.size))
            : capacity.waitForRoom(Effect.suspend(() => submit(args, later, true)))
        // A repeated idempotency key gets its task back, full or not.
        const key = placement?.idempotencyKey
        if (key === undefined) return full
        return Effect.flatMap(store.findKey(name, key), (existing) =>
          existing === undefined ? full : Effect.succeed(handleOf(existing))
        )
      }
      const input = args.length === 1 ? args[0] : new Spread(args)
      const entry = new Entry(owner, nextId(now), now, input)
      if (span !== undefined) entry.x.span = span
      if (placement !== undefined) Object.assign(entry.x, placement)
      if (unsafeInsert !== undefined) {
        const existing = unsafeInsert(entry)
        if (existing !== undefined) return Effect.succeed(handleOf(existing))
        accept(entry)
        return Effect.succeed(entry as TaskHandle<any, any>)
      }
      // Once stored, the task is counted and either queued or, if the
      // queue closed meanwhile, ended: an interruption cannot split that.
      const settled = Effect.sync(() => {
        inserting -= 1
        capacity?.roomMade()
      })
      const insert = Effect.suspend(() => {
        inserting += 1
        return store.insert(entry)
      })
      return Effect.uninterruptible(
        Effect.flatMap(insert, (existing) => {
          if (existing !== undefined) return Effect.succeed(handleOf(existing))
          if (!open) {
            pending += 1
            meter.enqueued.update(1)
            entry.p.reason = "shutdown"
            return Effect.zipRight(
              finish(entry, Exit.interrupt(FiberId.none)),
              Effect.fail(QueueShutdown.of(name))
            )
          }
          accept(entry)
          return Effect.succeed(entry as TaskHandle<any, any>)
        }).pipe(Effect.ensuring(settled))
      )
    }

    const accept = (entry: Entry) => {
      pending += 1
      meter.enqueued.update(1)
      meter.queued.update(pending - running)
      place(entry)
    }

    const queue: TaskQueue<Args, A, E> = {
      name,
      get maxWorkers() {
        return pool.maxWorkers
      },
      enqueue: (...args) =>
        submit(args, undefined) as Effect.Effect<TaskHandle<A, E>, QueueShutdown | QueueFull>,
      enqueueWith: (options, ...args) => submit(args, options as EnqueueOptions<unknown>),
      get: (id) => Effect.map(lookup(id), (record) => Task.snapshot<A, E>(record)),
      list: (query = {}) => listIn<A, E>(store, name, query, (record) => record),
      await: (id) =>
        Effect.flatMap(lookup(id), awaitRecord) as Effect.Effect<
          Exit.Exit<A, E | TaskTimeout>,
          TaskNotFound
        >,
      cancel: (id) =>
        Effect.flatMap(lookup(id), (record) =>
          record instanceof Entry
            ? cancelEntry(record)
            : Effect.fail(TaskFinished.of(record.id, record.status))
        ),
      pause: pool.pause,
      resume: pool.resume(() => {}),
      shutdown,
      resize: (n) => pool.resize(n, () => {}),
      awaitIdle: Effect.suspend(() => {
        if (isIdle()) return Effect.void
        idle ??= Deferred.unsafeMake(FiberId.none)
        return Deferred.await(idle)
      }),
      stats: Effect.sync(() => ({
        queued: pending - running,
        running,
        delayed: delayed.size,
        paused: pool.paused,
        maxWorkers: pool.maxWorkers
      })),
      toView: (task) => Task.toView(task, schemas as Task.ViewSchemas<A, E | TaskTimeout>)
    }
    return queue
  })
