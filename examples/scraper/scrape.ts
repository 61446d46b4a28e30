/**
 * Fetches a store page over HTTP and reads the product on it.
 *
 * @since 0.1.0
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import type { HttpClientError, HttpClientResponse } from "@effect/platform"
import { Duration, Effect, Option, type Scope, Stream } from "effect"
import { STATUS_CODES } from "node:http"
import { TextDecoder } from "node:util"
import { extractProduct } from "./extract.js"
import { type Product, ScrapeError } from "./Product.js"

/**
 * Options for {@link scrape}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ScrapeOptions {
  /**
   * How long the request and the whole body read may take; `Duration.infinity`
   * sets no limit (for a caller that times the scrape itself).
   *
   * @default "10 seconds"
   */
  readonly timeout?: Duration.DurationInput
  /**
   * The largest body read, in bytes.
   *
   * @default 5242880 (5 MiB)
   */
  readonly maxBytes?: number
}

const defaultTimeout = Duration.seconds(10)
const defaultMaxBytes = 5 * 1024 * 1024
const maxRedirects = 10
const htmlTypes = new Set(["text/html", "application/xhtml+xml"])

/** The page as fetched: its final URL after redirects and its decoded body. */
interface Page {
  readonly url: string
  readonly html: string
}

const finalUrl = (response: HttpClientResponse.HttpClientResponse, requested: string): string =>
  Option.match(HttpClientRequest.toUrl(response.request), {
    onNone: () => requested,
    onSome: (url) => url.toString()
  })

const describe = (requested: string, final: string): string =>
  final === requested ? `GET ${requested}` : `GET ${requested} (redirected to ${final})`

const causeText = (cause: unknown): string => {
  if (cause instanceof Error) {
    const code = (cause as { readonly code?: unknown }).code
    return typeof code === "string" && !cause.message.includes(code)
      ? `${cause.message} (${code})`
      : cause.message
  }
  return String(cause)
}

const networkError = (url: string, error: HttpClientError.HttpClientError): ScrapeError => {
  const invalidUrl = error._tag === "RequestError" && error.reason === "InvalidUrl"
  const what =
    error._tag === "ResponseError"
      ? "broke off while the body was read"
      : invalidUrl
        ? "could not be sent: the URL is not valid"
        : "could not be sent"
  return new ScrapeError({
    url,
    reason: invalidUrl ? "invalid-url" : "network",
    message: `GET ${url} ${what}: ${causeText(error.cause ?? error.message)}`
  })
}

const decoderFor = (contentType: string | undefined): TextDecoder => {
  const charset = contentType
    ?.split(";")
    .map((part) => part.trim().split("="))
    .find(([key]) => key?.toLowerCase() === "charset")?.[1]
  try {
    return new TextDecoder(charset?.replace(/"/g, "") ?? "utf-8")
  } catch {
    // An unknown charset label: UTF-8 is what most pages are.
    return new TextDecoder("utf-8")
  }
}

const fetchPage = (
  client: HttpClient.HttpClient.With<HttpClientError.HttpClientError, Scope.Scope>,
  url: string,
  maxBytes: number
): Effect.Effect<Page, ScrapeError, Scope.Scope> =>
  Effect.gen(function* () {
    const request = HttpClientRequest.get(url).pipe(
      HttpClientRequest.setHeader("accept", "text/html,application/xhtml+xml")
    )
    const response = yield* client
      .execute(request)
      .pipe(Effect.mapError((error) => networkError(url, error)))
    const final = finalUrl(response, url)
    const problem = (reason: ScrapeError["reason"], message: string, status?: number) =>
      new ScrapeError(
        status === undefined ? { url, reason, message } : { url, reason, message, status }
      )

    const status = response.status
    if (status < 200 || status >= 300) {
      const phrase = STATUS_CODES[status] ?? "an unknown status"
      const redirecting = status >= 300 && status < 400 && response.headers.location !== undefined
      const after = redirecting ? ` after ${maxRedirects} redirects` : ""
      return yield* problem(
        "http-status",
        `${describe(url, final)} answered ${status} ${phrase}${after}`,
        status
      )
    }

    const contentType = response.headers["content-type"]
    const mediaType = contentType?.split(";")[0]?.trim().toLowerCase()
    if (mediaType !== undefined && mediaType !== "" && !htmlTypes.has(mediaType)) {
      return yield* problem(
        "not-html",
        `${describe(url, final)} answered with ${mediaType}, not an HTML page`
      )
    }

    const declared = Number(response.headers["content-length"])
    if (Number.isFinite(declared) && declared > maxBytes) {
      return yield* problem(
        "too-large",
        `${describe(url, final)} announced a content-length of ${declared} bytes, ` +
          `more than the limit of ${maxBytes} bytes`
      )
    }

    const decoder = decoderFor(contentType)
    let html = ""
    let received = 0
    yield* response.stream.pipe(
      Stream.mapError((error) => networkError(url, error)),
      Stream.runForEach((chunk) => {
        received += chunk.length
        if (received > maxBytes) {
          return Effect.fail(
            problem(
              "too-large",
              `${describe(url, final)} sent more than the limit of ${maxBytes} bytes`
            )
          )
        }
        html += decoder.decode(chunk, { stream: true })
        return Effect.void
      })
    )
    html += decoder.decode()

    return { url: final, html }
  })

/**
 * Fetches a store page and reads the product on it.
 *
 * Sends `GET url` with `accept: text/html,application/xhtml+xml` and follows
 * up to 10 redirects; the product's `url` is the final one. The request and
 * the body read together may take `timeout` (default 10 seconds) and the body
 * may hold `maxBytes` (default 5 MiB); the body read stops as soon as it
 * grows past the limit. Interrupting the scrape aborts the request, and so
 * does any failure: the connection is closed, not left open.
 *
 * Fails with a `ScrapeError` whose `reason` is `"timeout"`, `"http-status"`
 * (a status outside 2xx, in `status`), `"network"`, `"invalid-url"`,
 * `"too-large"`, `"not-html"` (a content type other than `text/html` or
 * `application/xhtml+xml`) or `"no-product"` (see `extractProduct`);
 * `isPermanent` says which of them are worth another attempt.
 *
 * @example
 * ```ts
 * import { NodeHttpClient } from "@effect/platform-node"
 * import { Effect } from "effect"
 * import { scrape } from "./scrape.js"
 *
 * const product = scrape("https://shop.example/kettle", { timeout: "5 seconds" }).pipe(
 *   Effect.provide(NodeHttpClient.layerUndici)
 * )
 * ```
 *
 * @since 0.1.0
 * @category scraping
 */
export const scrape = (
  url: string,
  options?: ScrapeOptions
): Effect.Effect<Product, ScrapeError, HttpClient.HttpClient> =>
  Effect.gen(function* () {
    const timeout = Duration.decode(options?.timeout ?? defaultTimeout)
    const maxBytes = options?.maxBytes ?? defaultMaxBytes
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
      return yield* Effect.dieMessage(
        `scrape: maxBytes must be a positive whole number of bytes; got ${maxBytes}`
      )
    }

    // `withScope` ties every request of the redirect chain to the scope below, so
    // closing it (success, failure, timeout or interrupt) aborts any body left unread.
    const client = (yield* HttpClient.HttpClient).pipe(
      HttpClient.withScope,
      HttpClient.followRedirects(maxRedirects)
    )
    const fetched = Effect.scoped(fetchPage(client, url, maxBytes))
    const page = yield* Duration.isFinite(timeout)
      ? Effect.timeoutFail(fetched, {
          duration: timeout,
          onTimeout: () =>
            new ScrapeError({
              url,
              reason: "timeout",
              message:
                `GET ${url} did not finish within ${Duration.toMillis(timeout)} ms; ` +
                "the site may be slow or down, try again later or raise the timeout"
            })
        })
      : fetched

    return yield* extractProduct(page.html, page.url)
  })
