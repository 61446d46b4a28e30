/**
 * The scraper app's settings, read through Effect's Config (environment
 * variables). A value that breaks its rule stops the app before it starts,
 * with a message that names the variable, the value and the rule.
 */
import { Config, ConfigError, Duration, Either, Option } from "effect"

const shown = (text: string): string => (text === "" ? "an empty value" : text)

/** A whole number of at least 1, written in digits only. */
const positiveInteger = (name: string): Config.Config<number> =>
  Config.string(name).pipe(
    Config.mapOrFail((text) => {
      const n = Number(text)
      return /^\s*\d+\s*$/.test(text) && Number.isSafeInteger(n) && n >= 1
        ? Either.right(n)
        : Either.left(ConfigError.InvalidData([], `must be a positive integer; got ${shown(text)}`))
    })
  )

/**
 * A duration with its unit, as Effect's `Duration` reads it ("10 seconds",
 * "1500 millis"). Duration reads a negative amount as zero: it is refused
 * here instead.
 */
const duration = (
  name: string,
  rule: string,
  allowZero: boolean
): Config.Config<Duration.Duration> =>
  Config.string(name).pipe(
    Config.mapOrFail((text) => {
      const decoded = text.trim().startsWith("-") ? Option.none() : Duration.decodeUnknown(text)
      return Option.isSome(decoded) && (allowZero || Duration.toMillis(decoded.value) > 0)
        ? Either.right(decoded.value)
        : Either.left(ConfigError.InvalidData([], `${rule}; got ${shown(text)}`))
    })
  )

/** The queue's settings. */
export const QueueConfig = Config.all({
  /** Scrapes running at once. */
  maxWorkers: positiveInteger("MAX_WORKERS").pipe(Config.withDefault(3)),
  /** How long one attempt at a scrape may take. */
  scrapeTimeout: duration(
    "SCRAPE_TIMEOUT",
    'must be a positive duration with its unit, such as "10 seconds" or "1500 millis"',
    false
  ).pipe(Config.withDefault(Duration.seconds(10))),
  /** Attempts per scrape in all, the first included. */
  attempts: positiveInteger("SCRAPE_ATTEMPTS").pipe(Config.withDefault(3)),
  /** How long running scrapes may go on when the app shuts down. */
  shutdownGrace: duration(
    "SHUTDOWN_GRACE",
    'must be a duration of zero or more with its unit, such as "10 seconds" or "0 seconds"',
    true
  ).pipe(Config.withDefault(Duration.seconds(10))),
  /** Scrapes that may wait at most; without it, no bound. */
  capacity: Config.option(positiveInteger("QUEUE_CAPACITY"))
})

/** Where tasks are kept: a SQLite file, or this process's memory. */
export type Database =
  { readonly _tag: "sqlite"; readonly filename: string } | { readonly _tag: "memory" }

/**
 * `DATABASE_URL`: `file:<path>` for a SQLite file (its folder is created),
 * `memory:` to keep tasks in memory only (a restart forgets them).
 */
export const DatabaseConfig: Config.Config<Database> = Config.string("DATABASE_URL").pipe(
  Config.mapOrFail((text): Either.Either<Database, ConfigError.ConfigError> => {
    const url = text.trim()
    if (url === "memory:") return Either.right({ _tag: "memory" })
    // file:<path>, relative to the working directory, or file:///<absolute path>.
    const path = url.startsWith("file:///")
      ? url.slice("file://".length)
      : url.startsWith("file:") && !url.startsWith("file://")
        ? url.slice("file:".length)
        : undefined
    if (path !== undefined && path.length > 0 && !/[?#]/.test(path)) {
      return Either.right({ _tag: "sqlite", filename: path })
    }
    const rule = url.startsWith("postgres")
      ? "PostgreSQL is not supported yet: use file:<path> or memory:"
      : "must be file:<path> (SQLite; a path without ? or #, relative to the working " +
        "directory, or file:///<absolute path>) or memory:"
    return Either.left(ConfigError.InvalidData([], `${rule}; got ${shown(text)}`))
  }),
  Config.withDefault<Database>({ _tag: "sqlite", filename: "./data/tasks.db" })
)

/** Where the server listens; port 0 picks a free port (the log line says which). */
export const ServerConfig = Config.all({
  host: Config.string("HOST").pipe(Config.withDefault("127.0.0.1")),
  port: Config.string("PORT").pipe(
    Config.mapOrFail((text) => {
      const port = Number(text)
      return /^\s*\d+\s*$/.test(text) && port <= 65535
        ? Either.right(port)
        : Either.left(
            ConfigError.InvalidData([], `must be a port number from 0 to 65535; got ${shown(text)}`)
          )
    }),
    Config.withDefault(3000)
  )
})
