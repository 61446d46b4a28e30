/**
 * The Method section of BENCHMARKS.md: how each figure was measured, with
 * the sizes of the run it describes.
 */
import type { Settings } from "./lib/results.js"

const n = (x: number) => x.toLocaleString("en-US")

export const method = (s: Settings): string =>
  [
    "### Every case",
    `Each case runs every implementation (or backlog size) once per round, for ${s.rounds} rounds, ` +
      "each time in a fresh child process started as `node --expose-gc --import tsx bench/cases/<case>.ts` " +
      "from the project root, so `effect-task-queue` resolves (through tsconfig.json's `paths`) to the " +
      "library's `src/` as it was at the time of the run. Odd rounds run the implementations in the " +
      "reverse order of even rounds. A child reports its figures as one JSON line on stdout; a child " +
      "that fails, or whose correctness check fails, fails the whole run. The library runs with the " +
      "minimum log level at Warning (its per-task log lines are at Info); nothing else is configured. " +
      '"Settling the heap" means four `global.gc()` calls, each followed by a `setImmediate` turn.',
    "### 1. Throughput",
    `${n(s.throughput.tasks)} tasks at maxWorkers ${s.throughput.workers.join(", ")}. The heap is ` +
      "settled, then the clock (`performance.now()`) runs from just before the first enqueue to the " +
      "moment the implementation reports idle, so it covers enqueueing and running everything.",
    "- effect-task-queue: `TaskQueue.make({ maxWorkers, handler: () => Effect.void })` with " +
      `\`TaskStore.layerMemory({ maxFinished: ${n(s.throughput.tasks)} })\`, so every record stays ` +
      "readable; `yield* queue.enqueue()` in a loop inside `Effect.gen`, then `awaitIdle`. Every " +
      "10,000 enqueues it does one `get` of a random earlier id. After the clock stops it checks " +
      "that `get` of the first and the last id says `succeeded`.",
    "- p-queue: `new PQueue({ concurrency })`, `add` per task, then `onIdle()`. fastq: " +
      "`fastq.promise(worker, concurrency)`, `push` per task, then `drained()`. For both, so the " +
      "comparison is like for like, the benchmark keeps what the library keeps for the user: a " +
      "`Map` from a numeric id to a `{ status }` record, set to `queued` on enqueue; the task " +
      "(`async`) sets `running`, awaits the no-op `Promise.resolve()`, then sets `succeeded`. One " +
      "random earlier record is read every 10,000 enqueues, and the first and last must say " +
      "`succeeded` after the run.",
    "- bare Effect loop: maxWorkers fibers, each `Queue.take` from a `Queue.unbounded` then " +
      "`Effect.void`, counting completions; the producer `Queue.offer`s every item one by one and " +
      "the clock stops when the counter reaches N and completes a `Deferred`. No records: it is " +
      "the floor for anything built on Effect's fibers and queues.",
    "Figure: N / elapsed seconds.",
    "Where the time goes: the maxWorkers 8 run of this library and of the bare Effect loop again, " +
      "with V8's sampling profiler (100 µs interval, started through `node:inspector` just before the " +
      "first enqueue and stopped at idle). Each busy sample is counted as garbage collection, Effect's " +
      "runtime (`node_modules/effect`), the library (`src/`) or other; the shares times the profiled " +
      "µs per task give the table.",
    "### 2. Memory",
    `${n(s.memory.tasks)} tasks wait behind one task that never finishes, with one worker. ` +
      "Each task carries the payload `{ n: i }`. The first (never-ending) task is started, the heap " +
      "is settled and `process.memoryUsage()` read (baseline); then all tasks are enqueued, the heap " +
      "is settled again and read again. Figure: (heapUsed after − heapUsed before) / N, and the " +
      "same for RSS. Each child checks that N tasks are waiting and one is running.",
    "- effect-task-queue: `maxWorkers: 1`, `handler: () => Effect.never`, `TaskStore.layerMemory()`, " +
      "`yield* queue.enqueue({ n: i })` in a loop; handles are not kept.",
    "- p-queue: `new PQueue({ concurrency: 1 })`, `add(() => new Promise(() => {}))` first, then " +
      "`add(() => work(payload))` per task; the promises `add` returns are not kept.",
    "- p-queue + status map: the same, plus the throughput case's `Map` of `{ status }` records " +
      "(for reference only; the target compares with plain p-queue).",
    "### 3. Enqueue latency against backlog",
    `Backlogs of ${s.latency.backlogs.map(n).join(", ")} tasks, each in its own child. The ` +
      "child first warms up: a separate queue (its own memory store) takes 10,000 enqueues and is " +
      "shut down. Then a queue with `maxWorkers: 1` and `handler: () => Effect.never` takes one " +
      "task (which runs forever), then the backlog; the heap is settled; then " +
      `${n(s.latency.samples)} single enqueues are each timed with \`performance.now()\` just before ` +
      "and after `yield* queue.enqueue(...)`. Figure: nearest-rank p50 and p99 of those samples, in " +
      "µs; across rounds the median of the per-round percentiles. The target ratio is the median " +
      `p99 at ${n(Math.max(...s.latency.backlogs))} over the median p99 at 0.`,
    "### 4. HTTP enqueue",
    "The server runs in its own child; the load generator is autocannon's programmatic API in the " +
      "runner process; both on 127.0.0.1. Per round and route: a fresh server, " +
      `${s.http.warmupSeconds} s of warm-up load (discarded), then ${s.http.durationSeconds} s of ` +
      `measured load, ${s.http.connections} connections, no pipelining, each request ` +
      '`POST /v0/scrapes` with `{"url":"https://shop.example/products/kettle"}`.',
    '- effect-task-queue: `TaskApi.make({ name: "scrapes", payload: ScrapeRequest })` (the ' +
      "scraper example's payload Schema) in an `HttpApi` with prefix `/v0`, implemented by " +
      `\`TaskApi.layer\` over \`TaskQueue.layerMemory\` with \`maxWorkers: ${s.http.workers}\` and ` +
      `\`handler: () => Effect.never\`. Before the server reports ready it enqueues ` +
      `${n(s.http.backlog + s.http.workers)} tasks, so all ${s.http.workers} workers are busy and ` +
      `${n(s.http.backlog)} tasks wait, and settles the heap.`,
    "- bare HttpApi route: an `HttpApiEndpoint.post` at the same path with `setPayload(ScrapeRequest)` " +
      "and `addSuccess(TaskApi.Enqueued, { status: 202 })`, whose handler returns " +
      '`{ id, status: "queued" }` with a 26-character counter id; no queue.',
    "Both are served by `HttpApiBuilder.serve()` on `NodeHttpServer.layer(createServer)`. Figures: " +
      "autocannon's requests/s (mean of its per-second samples) and its latency p50 and p99 " +
      "(its histogram has 1 ms resolution). A round fails if any response is not 2xx, or if the " +
      "server handled fewer requests than the load generator counted.",
    "### 5. Durable SQLite store",
    "Not measured yet: the store does not exist. bench/plan.ts marks where the case goes."
  ].join("\n\n")
