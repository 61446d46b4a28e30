/**
 * The store conformance suite, run against each store.
 */
import { Context, Effect } from "effect"
import { TaskStore } from "effect-task-queue"
import { sqliteStore, tempDatabase } from "./helpers.js"
import { conformance } from "./storeConformance.js"

conformance("TaskStore.makeMemory", TaskStore.makeMemory())

// A file of its own per test, removed with the test's scope.
conformance(
  "SqlTaskStore.make on a SQLite file",
  Effect.flatMap(tempDatabase, (filename) =>
    Effect.map(sqliteStore(filename), (context) => Context.get(context, TaskStore.TaskStore))
  )
)
