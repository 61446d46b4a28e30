/**
 * The queue's metrics: Effect `Metric`s tagged with `queue`, updated in place
 * on the hot path.
 */
import { Metric, MetricBoundaries, MetricLabel } from "effect"

const counter = (name: string, description: string) =>
  Metric.counter(name, { description, incremental: true })

// Milliseconds from 1 ms to about 9 minutes, each bucket twice the last.
const boundaries = MetricBoundaries.exponential({ start: 1, factor: 2, count: 20 })

export const metrics = {
  enqueued: counter("task_queue_enqueued", "Tasks enqueued"),
  started: counter("task_queue_started", "Attempts started"),
  succeeded: counter("task_queue_succeeded", "Tasks that succeeded"),
  failed: counter("task_queue_failed", "Tasks that failed for good"),
  retried: counter("task_queue_retried", "Failed attempts that will be retried"),
  cancelled: counter("task_queue_cancelled", "Tasks cancelled, on request or by shutdown"),
  queued: Metric.gauge("task_queue_queued", {
    description: "Tasks waiting: ready, delayed or waiting for a retry"
  }),
  running: Metric.gauge("task_queue_running", { description: "Tasks whose handler runs" }),
  waitTime: Metric.histogram(
    "task_queue_wait_ms",
    boundaries,
    "Milliseconds from ready (enqueued, due or retry due) to started"
  ),
  runTime: Metric.histogram("task_queue_run_ms", boundaries, "Milliseconds an attempt ran")
} as const

/** The updates one queue makes, with its tag. */
export class QueueMetrics {
  private readonly tags: ReadonlyArray<MetricLabel.MetricLabel>

  constructor(name: string) {
    this.tags = [MetricLabel.make("queue", name)]
  }

  count(metric: Metric.Metric.Counter<number>): void {
    metric.unsafeUpdate(1, this.tags)
  }

  gauges(queued: number, running: number): void {
    metrics.queued.unsafeUpdate(queued, this.tags)
    metrics.running.unsafeUpdate(running, this.tags)
  }

  time(metric: Metric.Metric.Histogram<number>, millis: number): void {
    metric.unsafeUpdate(millis, this.tags)
  }
}
