/**
 * Runs the scraper app until SIGINT or SIGTERM, then shuts it down: the
 * server answers new requests 503, running scrapes get SHUTDOWN_GRACE to
 * finish, and the queue interrupts what still runs after that. A setting
 * that breaks its rule stops the app at start, with exit code 1.
 */
import { Runtime } from "@effect/platform"
import { NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import { AppLive } from "./app.js"

Layer.launch(AppLive).pipe(
  NodeRuntime.runMain({
    // Exit only once the last log lines are written: to a pipe, stdout is
    // asynchronous, and exiting at once would drop them.
    teardown: (exit, onExit) =>
      Runtime.defaultTeardown(exit, (code) => process.stdout.write("", () => onExit(code)))
  })
)
