/**
 * The store conformance suite, run against each store.
 */
import { TaskStore } from "effect-task-queue"
import { conformance } from "./storeConformance.js"

conformance("TaskStore.makeMemory", TaskStore.makeMemory())
