/**
 * The queue's metrics: Effect `Metric`s tagged with `queue`, updated in place
 * on the hot path.
 */
import type { MetricHook } from "effect"
import { Metric, MetricBoundaries, MetricKey, MetricLabel } from "effect"

const counter = (name: string, description: string) =>
  MetricKey.counter(name, { description, incremental: true })

// Milliseconds from 1 ms to about 9 minutes, each bucket twice the last.
const boundaries = MetricBoundaries.exponential({ start: 1, factor: 2, count: 20 })

const keys = {
  enqueued: counter("task_queue_enqueued", "Tasks enqueued"),
  started: counter("task_queue_started", "Attempts started"),
  succeeded: counter("task_queue_succeeded", "Tasks that succeeded"),
  failed: counter("task_queue_failed", "Tasks that failed for good"),
  retried: counter("task_queue_retried", "Failed attempts that will be retried"),
  cancelled: counter("task_queue_cancelled", "Tasks cancelled, on request or by shutdown"),
  queued: MetricKey.gauge("task_queue_queued", {
    description: "Tasks waiting: ready, delayed or waiting for a retry"
  }),
  running: MetricKey.gauge("task_queue_running", { description: "Tasks whose handler runs" }),
  waitTime: MetricKey.histogram(
    "task_queue_wait_ms",
    boundaries,
    "Milliseconds from ready (enqueued, due or retry due) to started"
  ),
  runTime: MetricKey.histogram("task_queue_run_ms", boundaries, "Milliseconds an attempt ran")
}

export const metrics = {
  enqueued: Metric.fromMetricKey(keys.enqueued),
  started: Metric.fromMetricKey(keys.started),
  succeeded: Metric.fromMetricKey(keys.succeeded),
  failed: Metric.fromMetricKey(keys.failed),
  retried: Metric.fromMetricKey(keys.retried),
  cancelled: Metric.fromMetricKey(keys.cancelled),
  queued: Metric.fromMetricKey(keys.queued),
  running: Metric.fromMetricKey(keys.running),
  waitTime: Metric.fromMetricKey(keys.waitTime),
  runTime: Metric.fromMetricKey(keys.runTime)
}

type Hook = MetricHook.MetricHook<number, unknown>

/**
 * One queue's metrics, tagged with its name. The hooks are looked up once,
 * in the same global registry `Metric.value` reads, so an update is one call.
 */
export class QueueMetrics {
  readonly enqueued: Hook
  readonly started: Hook
  readonly succeeded: Hook
  readonly failed: Hook
  readonly retried: Hook
  readonly cancelled: Hook
  readonly queued: Hook
  readonly running: Hook
  readonly waitTime: Hook
  readonly runTime: Hook

  constructor(name: string) {
    const tags = [MetricLabel.make("queue", name)]
    const hook = (key: MetricKey.MetricKey<any>): Hook =>
      Metric.globalMetricRegistry.get(MetricKey.taggedWithLabels(key, tags)) as Hook
    this.enqueued = hook(keys.enqueued)
    this.started = hook(keys.started)
    this.succeeded = hook(keys.succeeded)
    this.failed = hook(keys.failed)
    this.retried = hook(keys.retried)
    this.cancelled = hook(keys.cancelled)
    this.queued = hook(keys.queued)
    this.running = hook(keys.running)
    this.waitTime = hook(keys.waitTime)
    this.runTime = hook(keys.runTime)
  }

  gauges(queued: number, running: number): void {
    this.queued.update(queued)
    this.running.update(running)
  }
}
