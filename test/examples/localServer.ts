/**
 * A node:http server on 127.0.0.1 with a free port, closed (all its
 * connections cut) when the test's scope closes.
 */
import { Effect, type Scope } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

export const listenLocal = (
  handler: Http.RequestListener
): Effect.Effect<{ readonly url: (path: string) => string }, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.async<Http.Server>((resume) => {
        const server = Http.createServer(handler)
        server.once("error", (error) => resume(Effect.die(error)))
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.async<void>((resume) => {
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
    ),
    (server) => {
      const { port } = server.address() as AddressInfo
      return { url: (path: string) => `http://127.0.0.1:${port}${path}` }
    }
  )
