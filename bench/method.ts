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
      "library's `src/` as it was at the time of the run. Round r starts with the implementation " +
      "r places further on than round 0 (wrapping around), and odd rounds run that order backwards, so " +
      "that no implementation keeps its place or its neighbour. A child reports its figures as one JSON line on stdout; a child " +
      "that fails, or whose correctness check fails, fails the whole run. The library runs with the " +
      "minimum log level at Warning (its per-task log lines are at Info); nothing else is configured, " +
      "except that queues whose handler never finishes (cases 2, 3 and 4) are made with " +
      "`shutdownGrace: 0`, so that they interrupt it at once when the child ends instead of waiting " +
      "10 s for it: nothing is measured at shutdown. " +
      '"Settling the heap" means four `global.gc()` calls, each followed by a `setImmediate` turn.',
    "### 1. Throughput",
    `${n(s.throughput.tasks)} tasks at maxWorkers ${s.throughput.workers.join(", ")}. Every ` +
      "implementation first gets the same untimed warm-up: the child runs it once, exactly as " +
      `below but with ${n(Math.min(s.throughput.tasks, s.throughput.warmUp))} tasks ` +
      `(min(N, ${n(s.throughput.warmUp)})), on an ` +
      "instance of its own (its own queue and memory store; its own p-queue or fastq queue and " +
      "record map; its own `Queue.unbounded` and fibers), to the end, with the same lookups and " +
      "end checks; that instance is then dropped (its scope closed, for the library and the " +
      "bare loop), and nothing of the warm-up is reported but its size and time. Then the timed " +
      "run makes a fresh instance, the heap is settled (which also collects the warm-up's), and " +
      "the clock (`performance.now()`) runs from just before the first enqueue to the moment the " +
      "implementation reports idle, so it covers enqueueing and running everything. Tasks/s " +
      "depends on N, differently for each implementation, in ways the warm-up does not remove: " +
      "every run of the library, warm or not, starts with a few thousand tasks that go at about " +
      "a third of its later rate (the enqueue loop gets some 2,000 enqueues in before the " +
      "workers' first turn, and tasks go slower while that backlog drains), while p-queue and fastq, whose `add` and `push` loop never yields, hold " +
      "all N tasks before the first one runs. Figures and ratios from runs of different N do " +
      "not compare, so a quick run uses the full N for this case.",
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
      "warm-up included, with V8's sampling profiler (100 µs interval, started through " +
      "`node:inspector` just before the first enqueue of the timed run and stopped at idle; the " +
      "warm-up is not profiled). Each busy sample is counted as garbage collection, Effect's " +
      "runtime (`node_modules/effect`), the library (`src/`) or other; the shares times the profiled " +
      "µs per task give the table. Profiling slows the run, so these µs per task are above " +
      "1 / the unprofiled tasks/s; each column is the median of its own figure across rounds, so " +
      "a row's parts need not add up exactly to its µs/task.",
    "### 2. Memory",
    `${n(s.memory.tasks)} tasks wait behind one task that never finishes, with one worker. ` +
      "Each task carries the payload `{ n: i }`. The first (never-ending) task is started, the heap " +
      "is settled and `process.memoryUsage()` read (baseline); then all tasks are enqueued, the heap " +
      "is settled again and read again. Figure: (heapUsed after − heapUsed before) / N, and the " +
      "same for RSS. Each child checks that N tasks are waiting and one is running.",
    "- effect-task-queue: `maxWorkers: 1`, `handler: () => Effect.never`, `shutdownGrace: 0`, " +
      "`TaskStore.layerMemory()`, " +
      "`yield* queue.enqueue({ n: i })` in a loop; handles are not kept.",
    "- p-queue: `new PQueue({ concurrency: 1 })`, `add(() => new Promise(() => {}))` first, then " +
      "`add(() => work(payload))` per task; the promises `add` returns are not kept.",
    "- p-queue + status map: the same, plus the throughput case's `Map` of `{ status }` records " +
      "(for reference only; the target compares with plain p-queue).",
    "### 3. Enqueue latency against backlog",
    `Backlogs of ${s.latency.backlogs.map(n).join(", ")} tasks, each in its own child. The ` +
      "child first warms up: a separate queue (its own memory store) takes 10,000 enqueues and is " +
      "shut down. Then a queue with `maxWorkers: 1`, `handler: () => Effect.never` and " +
      "`shutdownGrace: 0` takes one task (which runs forever), then the backlog (the child checks " +
      `that the backlog is waiting and one task running); then ${n(s.latency.warmUp)} more ` +
      "untimed enqueues on the same queue, the same number for every backlog size; the heap is " +
      `settled; then ${n(s.latency.samples)} single enqueues are each timed with ` +
      "`performance.now()` just before and after `yield* queue.enqueue(...)`, and the child " +
      `checks that backlog + ${n(s.latency.warmUp + s.latency.samples)} tasks wait at the end. ` +
      "So the sampled enqueues find backlog + " +
      `${n(s.latency.warmUp)} to backlog + ${n(s.latency.warmUp + s.latency.samples)} tasks ` +
      "waiting. The untimed enqueues on the measured queue are there because the first few " +
      "thousand enqueues on a fresh queue are slower than the rest, however much the separate " +
      "queue warmed the code: without them, a backlog of 0 had those enqueues among its samples " +
      "(its p99 several times the larger backlogs' and its spread above 100%), while every larger " +
      "backlog had them in its untimed build. Figure: nearest-rank p50 and p99 of the samples, in " +
      "µs; across rounds the median of the per-round percentiles. The target ratio is the median " +
      `p99 at a backlog of ${n(Math.max(...s.latency.backlogs))} over the median p99 at a backlog ` +
      "of 0.",
    "### 4. HTTP enqueue",
    "The server runs in its own child; the load generator is autocannon's programmatic API in the " +
      "runner process; both on 127.0.0.1. Per round and route: a fresh server, " +
      `${s.http.warmupSeconds} s of warm-up load (discarded), then ${s.http.durationSeconds} s of ` +
      `measured load, ${s.http.connections} connections, no pipelining, each request ` +
      '`POST /v0/scrapes` with `{"url":"https://shop.example/products/kettle"}`.',
    '- effect-task-queue: `TaskApi.make({ name: "scrapes", payload: ScrapeRequest })` (the ' +
      "scraper example's payload Schema) in an `HttpApi` with prefix `/v0`, implemented by " +
      `\`TaskApi.layer\` over \`TaskQueue.layerMemory\` with \`maxWorkers: ${s.http.workers}\`, ` +
      "`handler: () => Effect.never` and `shutdownGrace: 0`. Before the server reports ready it " +
      "enqueues " +
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
    "Each child makes a new temporary directory (`os.tmpdir()`) with a fresh SQLite file in it, " +
      "and removes the directory at the end. All three variants run in WAL mode with " +
      "`synchronous = NORMAL` (the library's store sets both itself; the raw queue, on either " +
      "table, sets them, and a 5 s busy timeout, with `PRAGMA`s), and each child checks both " +
      "settings on its connection at the end. The four figures are taken one after the other " +
      "in the same child, on the same file:",
    `1. Enqueue, one per commit: ${n(s.sqlite.enqueueOne)} enqueues into an empty file, one at ` +
      "a time, each its own transaction, with the queue paused (nothing is claimed). The heap is " +
      "settled, then the clock runs from before the first enqueue to after the last returns. " +
      "Figure: N / elapsed seconds.",
    `2. Enqueue in batches: ${n(s.sqlite.enqueueBatch)} more enqueues, ` +
      `${s.sqlite.batchSize} per transaction, still paused, timed the same way.`,
    `3. Processing: untimed batches top the file up to ${n(s.sqlite.tasks)} queued tasks; the ` +
      "heap is settled; the clock runs from just before the queue is resumed, at maxWorkers " +
      `${s.sqlite.workers}, to the moment the last completion is committed. Afterwards the ` +
      `child counts the rows that say \`succeeded\` (all ${n(s.sqlite.tasks)} must) and the ` +
      "handler starts (exactly one per task), and fails the round otherwise. Figure: N / " +
      "elapsed seconds.",
    "4. Idle enqueue-to-start: with nothing queued and every worker free, one task is enqueued " +
      "and waited for to completion (its completion committed), one at a time; " +
      `50 such tasks warm up, then ${n(s.sqlite.samples)} are sampled. Before each enqueue the ` +
      "child sleeps 1 ms (`setTimeout`), so the queue is waiting for work. A sample runs from " +
      "`performance.now()` just before the enqueue call to `performance.now()` as the handler " +
      "starts. Figure: nearest-rank p50 and p99 of the samples, in µs; across rounds the median " +
      "of the per-round percentiles.",
    '- effect-task-queue: `TaskQueue.make({ name: "bench", maxWorkers, payload: Schema.Number, ' +
      "handler })` on `SqlTaskStore.layer()` over `SqliteClient.layer({ filename })` " +
      "(@effect/sql-sqlite-node), all other options at their defaults; the handler is an " +
      "`Effect.sync` that counts (figure 3) or notes the time (figure 4). Figure 1 is " +
      "`yield* queue.enqueue(i)` after `yield* queue.pause`; figure 2 is " +
      "`sql.withTransaction(Effect.forEach(batch, (n) => queue.enqueue(n)))`; figure 3 starts " +
      `with \`queue.resume\` and ends when a \`Deferred\`, completed by the ${n(s.sqlite.tasks)}th ` +
      "handler start, has completed and `queue.awaitIdle` has returned (it returns once the store " +
      "counts nothing queued or running and no completion waits to be written); figure 4 times " +
      "`queue.enqueue` and waits with the handle's `await`.",
    "- raw better-sqlite3, own table: a minimal queue written in the benchmark on better-sqlite3 (the " +
      "version @effect/sql-sqlite-node installs), the floor for a durable queue on SQLite. Its " +
      "`tasks` table has id (text, 26 characters, ordered by creation, as the library's), queue, " +
      "status, payload (JSON text), attempt, priority, due_at, owner, lease_until, result (JSON " +
      "text) and finished_at, and one index, on (queue, priority DESC, due_at, id) where status " +
      "is `queued`, which serves the claim. Every statement is prepared once. An enqueue is one " +
      "`INSERT` in its own commit; a batch is the same `INSERT`s in one `db.transaction`. A step " +
      "is one transaction: first the completions of the tasks that ended since the last step, " +
      "each an `UPDATE` of status, result and finished_at that is a compare-and-set on id, owner " +
      "and attempt (every one must change its row; the round fails otherwise), then a claim of " +
      "at most workers − claimed due tasks, highest priority first: one `UPDATE ... SET status " +
      "= 'running', owner, lease_until, attempt + 1 WHERE id IN (SELECT ... LIMIT free) " +
      "RETURNING`. After the commit each claimed task's payload is parsed and its no-op `async` " +
      "handler called, so at most `workers` run at a time; when its promise settles, the task's " +
      "completion waits for the next step. A step runs on a `setImmediate` turn, asked for by an " +
      "enqueue on the running queue, by a completion, or by a claim that filled every free slot, " +
      "so the event loop gets its turn between batches. Figure 3 ends after the step whose commit " +
      `brings the committed completions to ${n(s.sqlite.tasks)}; figure 4 waits for the step ` +
      "that commits the sampled task's completion.",
    "- raw better-sqlite3, library's table: the same queue (the same class: the same " +
      "steps, `setImmediate` turns, handler, ids, owner, lease and checks, with the statements " +
      "passed to it), on the library's own `tasks` table with the library's statements, so " +
      "that the gap between the library and the raw queue splits into what the library's " +
      "table and statements cost in SQLite and what the rest of the library costs. Before " +
      "the queue opens the file, the library's migrations (`runMigrations` of its " +
      "`internal/sqlTable.ts`) run on it through `SqliteClient.layer({ filename })`, whose " +
      "connection is closed when they are done, so the table and its indexes are the library's " +
      "as they are at the time of the run. Then the file is " +
      "opened with better-sqlite3 and given the raw queue's `PRAGMA`s. An enqueue is one " +
      "`INSERT` of id, queue, status `queued`, payload (JSON text), attempt 0, max_attempts 3, " +
      "priority 0, created_at and due_at (both the enqueue time); the library's own insert " +
      "also names its other columns as `NULL` and adds `ON CONFLICT DO NOTHING RETURNING id`, " +
      "which this one does not. The claim is the library's claim statement as its store runs " +
      "it (`dialect.claim`: also sets started_at, clears run_at, `RETURNING *`). The " +
      "completions of a step are written as the library's store writes them: one statement " +
      "for all of them (`dialect.writes(n)`, an `UPDATE ... FROM (VALUES ...)` that is a " +
      "compare-and-set on id, owner and attempt for each row and gives back the ids it " +
      "changed; prepared once per n), at most 200 rows per statement, its parameters made " +
      "by the library's `writeParams` from an `end` write per task (status `succeeded`, " +
      'finished_at, outcome `{"result":null}`); a completion whose id is not given back ' +
      "counts as refused, and the round fails if any is. Claimed rows are not sorted and not " +
      "read into the library's task records.",
    "Where the processing time goes: figure 3 is run again in children of their own (the " +
      "`sqlite-profile` case, same sizes and rounds), with V8's sampling profiler (100 µs, " +
      "through `node:inspector`) started just before the queue resumes and stopped when the " +
      "last completion is committed. Samples are summed by the script they fall in: SQLite " +
      "(better-sqlite3 and @effect/sql-sqlite-node, which is where SQLite's native time is " +
      "counted), `@effect/sql`, Effect's runtime, the library (`src/`), GC and other; idle " +
      "samples are left out; the shares times the profiled µs per task give µs per task. " +
      "Profiling slows the run, so these µs per task are above those of figure 3 (1 / its " +
      "median tasks/s), and the report does not mix the two; each column is the median of its " +
      "own figure across rounds, so a row's parts need not add up exactly to its µs/task. The " +
      "raw queue on the library's table calls the library's `writeParams`, so its row has a " +
      "little time under the library; the rest of its JavaScript (the queue itself, its " +
      "`setImmediate` turns and promises) is under other, as the raw queue's. Part of the " +
      "driver's work, chiefly building the objects of the rows a statement returns, is " +
      "sampled in the JavaScript function that called it: for the library that function is " +
      "@effect/sql-sqlite-node's, so the time counts as SQLite; for the raw queues it is the " +
      "benchmark's own, so it counts as other (more so on the library's table, whose claim " +
      "returns every column).",
    "The processing target is the ratio of the medians of figure 3; the latency target is the " +
      "median p50 of figure 4 for this library, in absolute terms."
  ].join("\n\n")
