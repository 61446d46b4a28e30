/**
 * The engine for a durable store. The store holds every task; this process
 * holds only the tasks it has claimed. A feeder fiber claims due tasks while
 * permits are free, in one transaction with the writes of the tasks that
 * ended since its last step, and hands them to the same drain fiber and
 * workers as the in-memory engine: a token per claimed task in a
 * `Queue.unbounded`, a permit of a `Semaphore(maxWorkers)` per worker.
 */
import type { Schema } from "effect"
import {
  Cause,
  Deferred,
  Effect,
  Either,
  Exit,
  Fiber,
  FiberId,
  FiberRef,
  FiberSet,
  LogLevel,
  ParseResult,
  Queue,
  Scope
} from "effect"
import type { TaskRecord, TaskStatus } from "../Task.js"
import * as Task from "../Task.js"
import {
  InvalidOption,
  QueueFull,
  QueueShutdown,
  TaskFinished,
  TaskNotFound,
  TaskTimeout
} from "../TaskError.js"
import type { EnqueueOptions, TaskHandle, TaskQueue } from "../TaskQueue.js"
import type { Durable, StoredTask, TaskStore, Write } from "../TaskStore.js"
import { annotations, decide, describeCause, logEnd } from "./attempt.js"
import type { Config } from "./engine.js"
import type { Owner, Settings } from "./entry.js"
import { Entry, StoredHandle } from "./entry.js"
import type { StoreFiberHost } from "./feeder.js"
import { makeFeeder } from "./feeder.js"
import { makeIdGenerator } from "./id.js"
import { makeLeases } from "./leases.js"
import { QueueMetrics } from "./observe.js"
import { newTask, readPayload, settingsOf } from "./stored.js"
import { liveBoots, ownerOf } from "./ownership.js"
import { decodeOutcome, encodeOutcome } from "./outcome.js"
import { cancelRunning, listIn, logFailure, lookupIn, makePool, once } from "./pool.js"
import type { Host } from "./worker.js"

const nextId = makeIdGenerator()

/** The durable engine's own settings, beside the queue's. */
export interface DurableConfig {
  /** The payload's Schema: payloads are stored as its encoded JSON. */
  readonly payload: Schema.Schema<any, any>
  /** How long a claim holds without renewal, in milliseconds. */
  readonly lease: number
  /** How often the store is read for work that no local enqueue announced. */
  readonly pollInterval: number
}

export const makeDurable = <Args extends ReadonlyArray<any>, A, E, R>(
  config: Config<Args, A, E, R>,
  durableConfig: DurableConfig,
  store: TaskStore["Type"],
  durable: Durable
): Effect.Effect<TaskQueue<Args, A, E>, never, Scope.Scope | R> =>
  Effect.gen(function* () {
    const { name, handler, schemas, shutdownGrace, settings } = config
    const { lease, pollInterval } = durableConfig
    const payloadSchema = durableConfig.payload
    const decodePayload = ParseResult.decodeUnknownEither(payloadSchema)
    const clock = yield* Effect.clock
    const pool = yield* makePool(config.maxWorkers)
    const { lanes, ready, workers } = pool
    const wake = yield* Queue.sliding<void>(1)
    const meter = new QueueMetrics(name)
    const boot = Math.random().toString(36).slice(2, 10)
    const owner = ownerOf(boot)
    liveBoots.add(boot)
    yield* Effect.addFinalizer(() => Effect.sync(() => liveBoots.delete(boot)))

    let open = true
    /** Tasks claimed here that have not ended or been given back. */
    let claimed = 0
    let running = 0
    /** Claimed tasks by id. */
    const local = new Map<string, Entry>()
    /** The claim's attempt of each claimed task, for its writes. */
    const claims = new WeakMap<Entry, number>()
    /** Retry schedule states of tasks that wait for a retry claimed here. */
    const scheduleStates = new Map<string, unknown>()
    /** Callers waiting for tasks to end, by id. */
    const waiters = new Map<string, Deferred.Deferred<void>>()
    /** Completed each time writes are applied: what `awaitIdle` waits on. */
    let changed: Deferred.Deferred<void> | undefined
    /** The next change, for a caller to wait on; made only when someone waits. */
    const nextChange = () => (changed ??= Deferred.unsafeMake<void>(FiberId.none))

    const notifyChange = () => {
      if (changed === undefined) return
      Deferred.unsafeDone(changed, Exit.void)
      changed = undefined
    }
    const notifyEnd = (id: string) => {
      const waiter = waiters.get(id)
      if (waiter === undefined) return
      waiters.delete(id)
      Deferred.unsafeDone(waiter, Exit.void)
    }

    const viewSchemas = schemas as Task.ViewSchemas<unknown, unknown>
    const outcomeOf = (entry: Entry): string => encodeOutcome(entry, viewSchemas)
    const exitOf = (task: StoredTask) => decodeOutcome(task.status, task.outcome, viewSchemas)

    const recordOf = (task: StoredTask): TaskRecord => ({ ...task, exit: exitOf(task) })

    // -------------------------------------------------------------------------
    // Claimed tasks, and their writes.

    /** Queues a write for the feeder's next step. */
    const write = (w: Write) => feederSteps.write(w)

    /** Forgets a claimed task here: it ended, waits for a retry, or was given back. */
    const drop = (entry: Entry) => {
      if (local.delete(entry.id)) claimed -= 1
      Queue.unsafeOffer(wake, undefined)
    }

    /** The end of a claimed task that cannot run: its stored payload does not decode. */
    const badPayload = (task: StoredTask, message: string): Write => ({
      _tag: "end",
      id: task.id,
      owner,
      attempt: task.attempt,
      status: "failed",
      finishedAt: clock.unsafeCurrentTimeMillis(),
      outcome: JSON.stringify({ error: { kind: "defect", message } }),
      reason: undefined
    })

    /** Makes claimed tasks ready here; those whose payload no longer reads end at once. */
    const accept = (tasks: ReadonlyArray<StoredTask>): Effect.Effect<void> => {
      const broken: Array<Effect.Effect<void>> = []
      for (const task of tasks) {
        const input = readPayload(task, decodePayload)
        if (Either.isLeft(input)) {
          write(badPayload(task, input.left))
          meter.failed.update(1)
          broken.push(
            Effect.logWarning("task failed: its stored payload cannot be read").pipe(
              Effect.annotateLogs({ taskId: task.id, queue: name, error: input.left })
            )
          )
          continue
        }
        const entry = new Entry(queueOwner, task.id, task.createdAt, input.right)
        const progress = entry.p
        // The claim counted this attempt; `begin` counts it again here.
        progress.attempt = task.attempt - 1
        const extras = entry.x
        extras.priority = task.priority
        extras.idempotencyKey = task.idempotencyKey
        extras.settings = settingsOf(task, settings)
        claims.set(entry, task.attempt)
        local.set(entry.id, entry)
        claimed += 1
        // Claimed by a step that began before a pause or the shutdown: back
        // to the store, where it shows as queued.
        if (!open || pool.paused) release(entry)
        else pool.push(entry)
      }
      return broken.length === 0 ? Effect.void : Effect.all(broken, { discard: true })
    }

    /** Moves a ready task to running on this worker; false if it is no longer ready. */
    const begin = (entry: Entry, worker: Fiber.RuntimeFiber<void>): boolean => {
      if (entry.status !== "queued") return false
      const progress = entry.p
      const now = clock.unsafeCurrentTimeMillis()
      meter.waitTime.update(now - entry.createdAt)
      entry.status = "running"
      progress.attempt += 1
      progress.startedAt = now
      progress.fiber = worker
      running += 1
      meter.started.update(1)
      meter.running.update(running)
      return true
    }

    /** Records how a claimed task ended, here and (at the next step) in the store. */
    const end = (
      entry: Entry,
      exit: Exit.Exit<unknown, unknown>,
      minimum: LogLevel.LogLevel
    ): Effect.Effect<void> => {
      if (Task.isTerminal(entry.status)) return Effect.void
      const progress = entry.p
      const now = clock.unsafeCurrentTimeMillis()
      const unstarted = entry.status === "queued"
      if (entry.status === "running") {
        running -= 1
        meter.runTime.update(now - progress.startedAt!)
        meter.running.update(running)
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
      scheduleStates.delete(entry.id)
      write({
        _tag: "end",
        id: entry.id,
        owner,
        attempt: claims.get(entry)!,
        status: entry.status,
        finishedAt: now,
        outcome: outcomeOf(entry),
        reason: progress.reason,
        unstarted
      })
      entry.input = undefined
      drop(entry)
      return logEnd(entry, minimum)
    }

    /** Gives a claimed task back to the store as it was: the queue is shutting down. */
    const release = (entry: Entry) => {
      if (Task.isTerminal(entry.status)) return
      if (entry.status === "running") {
        running -= 1
        meter.running.update(running)
      }
      entry.status = "queued"
      entry.p.fiber = undefined
      write({
        _tag: "release",
        id: entry.id,
        owner,
        attempt: claims.get(entry)!,
        at: clock.unsafeCurrentTimeMillis()
      })
      drop(entry)
    }

    const conclude = (
      entry: Entry,
      exit: Exit.Exit<unknown, unknown>,
      minimum: LogLevel.LogLevel
    ): Effect.Effect<void> => {
      if (Exit.isSuccess(exit)) return end(entry, exit, minimum)
      /** Cut short by the end of the shutdown grace: it runs again after a restart. */
      const keepQueued = () => {
        release(entry)
        return Effect.logInfo("task interrupted by shutdown; it stays queued").pipe(
          Effect.annotateLogs(annotations(entry))
        )
      }
      const cutByShutdown = (e: Exit.Exit<unknown, unknown>) =>
        !open && entry.reason === undefined && Exit.isFailure(e) && Cause.isInterruptedOnly(e.cause)
      if (cutByShutdown(exit)) return keepQueued()
      const now = clock.unsafeCurrentTimeMillis()
      const state = (schedule: Settings["schedule"]) =>
        scheduleStates.has(entry.id) ? scheduleStates.get(entry.id) : schedule.initial
      return Effect.flatMap(decide(entry, exit, settings, now, state), (decision) => {
        // A cancel asked for as the attempt failed wins over the retry.
        if (decision._tag === "retry" && entry.reason !== undefined) {
          return end(entry, Exit.interrupt(FiberId.none), minimum)
        }
        // The grace can also end while the retry is decided.
        if (decision._tag === "end" && cutByShutdown(decision.exit)) return keepQueued()
        if (decision._tag === "end") return end(entry, decision.exit, minimum)
        const progress = entry.p
        running -= 1
        meter.runTime.update(clock.unsafeCurrentTimeMillis() - progress.startedAt!)
        meter.running.update(running)
        if (open) meter.retried.update(1)
        entry.status = "queued"
        progress.fiber = undefined
        scheduleStates.set(entry.id, decision.state)
        write({
          _tag: "retry",
          id: entry.id,
          owner,
          attempt: claims.get(entry)!,
          at: clock.unsafeCurrentTimeMillis(),
          runAt: decision.runAt
        })
        drop(entry)
        return Effect.logInfo("task attempt failed; it will be retried").pipe(
          Effect.annotateLogs({
            ...annotations(entry),
            error: describeCause(exit.cause),
            runAt: new Date(decision.runAt).toISOString()
          })
        )
      })
    }

    const cancelForShutdown = (entry: Entry) =>
      Effect.sync(() => {
        if (entry.status === "queued") release(entry)
      })

    const workerHost: Host<R> = {
      name,
      handler: handler as Host<R>["handler"],
      settings,
      tracing: false,
      // A worker waits for the next claimed task with its permit, as the
      // drain fiber would: the next claim is a feeder step away, and a worker
      // that goes on costs less than one forked anew. Shutdown ends the wait.
      goesOn: () => true,
      next: (step) => {
        const take = Effect.flatMap(Queue.take(ready), () => {
          const entry = lanes.shift()
          return entry === undefined ? Effect.void : step(entry)
        })
        const next: Effect.Effect<void, never, any> = Effect.suspend(() =>
          hasToken() ? take : Effect.flatMap(parkWorker, () => (open ? next : Effect.void))
        )
        return next
      },
      isOpen: () => open,
      mustWait: () => pool.paused || pool.live > pool.maxWorkers,
      // Taken as the queue paused: back to the store, where it shows as queued.
      putBack: (entry) => {
        if (pool.paused) return release(entry)
        pool.putBack(entry)
      },
      begin,
      conclude,
      cancelForShutdown
    }

    const recover = (what: string) => logFailure(name, what)

    // A worker between two claimed tasks waits here rather than in
    // `Queue.take`: a callback in a list costs less than a Deferred per wait.
    // It is woken with each token offered, and at shutdown, and takes the
    // token from the ready queue as before.
    const parked: Array<(effect: Effect.Effect<void>) => void> = []
    const { hasToken } = pool
    const parkWorker = Effect.async<void>((resume) => {
      // A token offered since the worker looked would have woken no one.
      if (hasToken() || !open) resume(Effect.void)
      else parked.push(resume)
    })
    // Every token offered wakes one, wherever it comes from.
    pool.onToken = () => parked.shift()?.(Effect.void)

    const storeFibers: StoreFiberHost = {
      name,
      owner,
      lease,
      pollInterval,
      durable,
      clock,
      wake,
      applied: (done) => applied(done),
      recover
    }

    // The feeder: writes and claims, one transaction per step.
    const feederSteps = makeFeeder({
      ...storeFibers,
      free: () => (open && !pool.paused ? pool.maxWorkers - claimed : 0),
      accept: (tasks) => accept(tasks)
    })

    /** After writes are kept: callers waiting on the tasks that ended are told. */
    const applied = (done: ReadonlyArray<Write>) => {
      for (const w of done) if (w._tag === "end") notifyEnd(w.id)
      notifyChange()
    }

    // -------------------------------------------------------------------------
    // Leases: renewed while tasks run here; claims of gone instances taken back.

    const leaseSteps = makeLeases({
      ...storeFibers,
      local,
      running: () => running,
      cancel: (entry) => cancelEntry(entry)
    })

    // -------------------------------------------------------------------------
    // Shutdown: claimed tasks that have not started go back, running ones get
    // the grace, then what still runs is interrupted and goes back too.

    // Fibers are set when the queue starts, below.
    let drain: Fiber.RuntimeFiber<never> = undefined as never
    let feeder: Fiber.RuntimeFiber<never> = undefined as never
    let leases: Fiber.RuntimeFiber<never> = undefined as never
    const shutdownSteps = Effect.gen(function* () {
      open = false
      yield* Effect.logDebug("task queue shutting down").pipe(
        Effect.annotateLogs({ queue: name, claimed, running })
      )
      yield* Fiber.interrupt(drain)
      // The feeder claims nothing more, but keeps writing the ends of tasks
      // that finish within the grace, so that they are kept at once.
      const giveBack = Effect.flatMap(Queue.takeAll(ready), () =>
        Effect.sync(() => {
          for (const entry of lanes.takeAll()) release(entry)
        })
      )
      yield* giveBack
      // Workers waiting for a task end now; running ones get the grace.
      yield* Queue.shutdown(ready)
      while (parked.length > 0) parked.shift()!(Effect.void)
      if (running > 0 && shutdownGrace > 0) {
        yield* Effect.timeoutOption(
          Effect.interruptible(FiberSet.awaitEmpty(workers)),
          shutdownGrace
        )
      }
      yield* FiberSet.clear(workers)
      yield* Fiber.interrupt(feeder)
      // A task a worker put back, or a step claimed, as the queue closed.
      for (const entry of lanes.takeAll()) release(entry)
      yield* Fiber.interrupt(leases)
      yield* feederSteps.flush
      notifyChange()
    })
    const shutdown = yield* once(shutdownSteps)

    // -------------------------------------------------------------------------
    // Operations.

    const lookup = lookupIn(store, name) as (id: string) => Effect.Effect<StoredTask, TaskNotFound>

    /** Waits for a task to end: told by this process's writes, else read again each poll interval. */
    const awaitId = (id: string): Effect.Effect<Exit.Exit<unknown, unknown>, TaskNotFound> =>
      Effect.suspend(() => {
        let waiter = waiters.get(id)
        if (waiter === undefined) {
          waiter = Deferred.unsafeMake<void>(FiberId.none)
          waiters.set(id, waiter)
        }
        const told = waiter
        const loop = Effect.gen(function* () {
          while (true) {
            const exit = exitOf(yield* lookup(id))
            if (exit !== undefined) return exit
            yield* Effect.timeoutOption(Deferred.await(told), pollInterval)
          }
        })
        // Forgotten however the wait ends (the task ended here or elsewhere,
        // the id is unknown, the caller stopped waiting): no waiter is kept
        // for a task no one awaits.
        return Effect.ensuring(
          loop,
          Effect.sync(() => {
            if (waiters.get(id) === told) waiters.delete(id)
          })
        )
      })

    const cancelEntry = (entry: Entry): Effect.Effect<TaskStatus, TaskFinished> =>
      Effect.suspend(() => {
        switch (entry.status) {
          case "queued": {
            entry.p.reason = "cancelled"
            return Effect.withFiberRuntime<void>((fiber) =>
              end(
                entry,
                Exit.interrupt(FiberId.none),
                fiber.getFiberRef(FiberRef.currentMinimumLogLevel)
              )
            ).pipe(
              Effect.uninterruptible,
              // Done once the end is committed, as a read right after shows.
              Effect.zipRight(Effect.orDie(awaitId(entry.id))),
              Effect.map(() => entry.status)
            )
          }
          case "running":
            // Done once the end is committed.
            return cancelRunning(
              entry,
              Effect.orDie(awaitId(entry.id)),
              // Gone back to the store to wait for a retry: cancelled there.
              Effect.suspend(() => cancelId(entry.id)).pipe(
                Effect.catchTag("TaskNotFound", () =>
                  Effect.fail(TaskFinished.of(entry.id, entry.status))
                )
              )
            )
          default:
            return Effect.fail(TaskFinished.of(entry.id, entry.status))
        }
      })

    const cancelId = (
      id: string,
      tries = 3
    ): Effect.Effect<TaskStatus, TaskNotFound | TaskFinished> =>
      Effect.gen(function* () {
        const mine = local.get(id)
        if (mine !== undefined) return yield* cancelEntry(mine)
        const task = yield* lookup(id)
        if (Task.isTerminal(task.status))
          return yield* Effect.fail(TaskFinished.of(id, task.status))
        const now = clock.unsafeCurrentTimeMillis()
        const outcome = JSON.stringify({
          error: { kind: "interrupted", message: "cancelled on request", reason: "cancelled" }
        })
        if (yield* durable.cancelQueued(id, now, outcome)) {
          scheduleStates.delete(id)
          meter.cancelled.update(1)
          applied([])
          notifyEnd(id)
          return "cancelled" as const
        }
        // Claimed meanwhile: by this process, or by another that is asked to cancel it.
        const claimedHere = local.get(id)
        if (claimedHere !== undefined) return yield* cancelEntry(claimedHere)
        if (yield* durable.requestCancel(id)) {
          const exit = yield* awaitId(id)
          const after = yield* lookup(id)
          if (after.status === "cancelled" && Exit.isFailure(exit)) return "cancelled" as const
          return yield* Effect.fail(TaskFinished.of(id, after.status))
        }
        const after = yield* lookup(id)
        // Neither queued nor running when looked for, yet not ended: given
        // back by a claim as the queue paused, say. Looked at again.
        if (!Task.isTerminal(after.status) && tries > 0) return yield* cancelId(id, tries - 1)
        return yield* Effect.fail(TaskFinished.of(id, after.status))
      })

    const queueOwner: Owner = { name, settings, cancel: cancelEntry }

    const handleOf = (id: string): TaskHandle<any, any> =>
      new StoredHandle(
        id as Task.TaskId,
        Effect.orDie(awaitId(id)),
        Effect.catchTag(cancelId(id), "TaskNotFound", (e) => Effect.die(e))
      )

    /** Whether the queue has room for one more queued task. */
    const hasRoom = Effect.suspend(() =>
      config.capacity === undefined
        ? Effect.succeed(true)
        : Effect.map(
            durable.counts(name, clock.unsafeCurrentTimeMillis()),
            (counts) => counts.queued < config.capacity!
          )
    )
    const waitForRoom: Effect.Effect<void> = Effect.flatMap(hasRoom, (room) =>
      room
        ? Effect.void
        : Effect.zipRight(
            Effect.timeoutOption(
              Effect.suspend(() => Deferred.await(nextChange())),
              pollInterval
            ),
            Effect.suspend(() => waitForRoom)
          )
    )

    const submit = (
      args: ReadonlyArray<unknown>,
      options: EnqueueOptions<unknown> | undefined
    ): Effect.Effect<TaskHandle<any, any>, QueueShutdown | QueueFull | InvalidOption> =>
      Effect.gen(function* () {
        if (!open) return yield* Effect.fail(QueueShutdown.of(name))
        const now = clock.unsafeCurrentTimeMillis()
        const task = newTask(nextId(now), name, now, args, options, settings, payloadSchema)
        if (Either.isLeft(task)) return yield* Effect.fail(task.left)
        const { record, payload, timeout } = task.right
        if (config.capacity !== undefined && !(yield* hasRoom)) {
          const key = record.idempotencyKey
          const existing = key === undefined ? undefined : yield* store.findKey(name, key)
          if (existing !== undefined) return handleOf(existing.id)
          if (config.whenFull === "refuse") {
            return yield* Effect.fail(QueueFull.of(name, config.capacity))
          }
          yield* waitForRoom
          if (!open) return yield* Effect.fail(QueueShutdown.of(name))
        }
        // In the caller's transaction, if it has one: the feeder's claim waits for its commit.
        const existing = yield* durable.insert(record, payload, timeout)
        if (existing !== undefined) return handleOf(existing.id)
        meter.enqueued.update(1)
        // The feeder claims it at once if a worker is free; else a task's end
        // or a resume wakes it.
        if (!pool.paused && claimed < pool.maxWorkers) Queue.unsafeOffer(wake, undefined)
        return handleOf(record.id)
      })

    const queue: TaskQueue<Args, A, E> = {
      name,
      get maxWorkers() {
        return pool.maxWorkers
      },
      enqueue: (...args) =>
        Effect.catchTag(submit(args, undefined), "InvalidOption", (e) =>
          Effect.die(e)
        ) as Effect.Effect<TaskHandle<A, E>, QueueShutdown | QueueFull>,
      enqueueWith: (options, ...args) => submit(args, options as EnqueueOptions<unknown>),
      get: (id) => Effect.map(lookup(id), (task) => Task.snapshot<A, E>(recordOf(task))),
      list: (query = {}) =>
        listIn<A, E>(store, name, query, (record) => recordOf(record as StoredTask)),
      await: (id) => awaitId(id) as Effect.Effect<Exit.Exit<A, E | TaskTimeout>, TaskNotFound>,
      cancel: (id) => cancelId(id),
      // Claimed tasks that have not started go back to the store: while
      // paused they show as queued, and another process may run them.
      pause: Effect.zipRight(
        pool.pause,
        // Once shut down, the ready queue is too, and shutdown gave its tasks back.
        Effect.suspend(() =>
          open
            ? Effect.flatMap(Queue.takeAll(ready), () =>
                Effect.sync(() => {
                  for (const entry of lanes.takeAll()) release(entry)
                })
              )
            : Effect.void
        )
      ),
      resume: pool.resume(() => Queue.unsafeOffer(wake, undefined)),
      shutdown,
      resize: (n) => pool.resize(n, () => Queue.unsafeOffer(wake, undefined)),
      awaitIdle: Effect.gen(function* () {
        while (true) {
          const signal = nextChange()
          const settled = claimed === 0 && feederSteps.waiting() === 0
          // Shut down, this queue runs nothing more: what is still queued
          // stays in the store for the next start, and is not waited for.
          if (!open && settled) return
          const counts = yield* durable.counts(name, clock.unsafeCurrentTimeMillis())
          if (counts.queued + counts.running === 0 && settled) return
          yield* Effect.timeoutOption(Deferred.await(signal), pollInterval)
        }
      }),
      stats: Effect.suspend(() =>
        Effect.map(durable.counts(name, clock.unsafeCurrentTimeMillis()), (counts) => ({
          queued: counts.queued,
          running: counts.running,
          delayed: counts.delayed,
          paused: pool.paused,
          maxWorkers: pool.maxWorkers
        }))
      ),
      toView: (task) => Task.toView(task, schemas as Task.ViewSchemas<A, E | TaskTimeout>)
    }
    // Tasks a stopped process left running are taken back before anything is claimed.
    yield* Effect.catchAllCause(
      leaseSteps.reclaim,
      recover("taking back tasks of a stopped process")
    )
    drain = yield* Effect.forkScoped(
      Effect.forever(Effect.catchAllCause(pool.drainStep(workerHost), recover("drain step")))
    )
    feeder = yield* Effect.forkScoped(feederSteps.loop)
    leases = yield* Effect.forkScoped(leaseSteps.loop)
    yield* Effect.forkScoped(leaseSteps.ticker)
    yield* Effect.addFinalizer(() => shutdown)
    return queue
  })
