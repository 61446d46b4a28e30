/**
 * Runs the scraper app until SIGINT or SIGTERM, then shuts it down: the
 * server stops taking requests and the queue interrupts what still runs.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import { AppLive } from "./app.js"

Layer.launch(AppLive).pipe(NodeRuntime.runMain)
