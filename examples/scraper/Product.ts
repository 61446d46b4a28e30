/**
 * The data the scraper example works with: what a product page yields, why a
 * scrape failed, and the request a user sends to start one.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * A product read from a store page.
 *
 * `url` is the page's final URL, after redirects. `price`, `currency` and
 * `availability` are `null` when the page does not say. `availability` is
 * normalised to schema.org's names (`"InStock"`, `"OutOfStock"`, ...) when it
 * is one of them, and kept as the page gave it otherwise. `source` says where
 * the name came from: a JSON-LD `Product`, the OpenGraph or Twitter meta tags,
 * or the page's `<title>`.
 *
 * @example
 * ```ts
 * import { Product } from "./Product.js"
 *
 * const product = new Product({
 *   url: "https://shop.example/kettle",
 *   name: "Steel Kettle",
 *   price: 39.9,
 *   currency: "EUR",
 *   availability: "InStock",
 *   source: "json-ld"
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export class Product extends Schema.Class<Product>("Product")({
  url: Schema.String,
  name: Schema.String,
  price: Schema.NullOr(Schema.Number),
  currency: Schema.NullOr(Schema.String),
  availability: Schema.NullOr(Schema.String),
  source: Schema.Literal("json-ld", "meta", "title")
}) {}

/**
 * Why a scrape failed.
 *
 * - `"timeout"`: the request and body read took longer than the timeout.
 * - `"http-status"`: the server answered with a status outside 2xx; `status`
 *   holds it.
 * - `"network"`: the request could not be sent or the connection broke.
 * - `"invalid-url"`: the URL (or a redirect's target) cannot be requested.
 * - `"too-large"`: the body is larger than the size limit.
 * - `"not-html"`: the server answered with a content type other than HTML.
 * - `"no-product"`: the page has no product name anywhere the scraper looks.
 *
 * `message` is a sentence meant for the user, naming the URL and what went
 * wrong.
 *
 * @example
 * ```ts
 * import { ScrapeError } from "./Product.js"
 *
 * const error = new ScrapeError({
 *   url: "https://shop.example/gone",
 *   reason: "http-status",
 *   status: 404,
 *   message: "GET https://shop.example/gone answered 404 Not Found"
 * })
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class ScrapeError extends Schema.TaggedError<ScrapeError>()("ScrapeError", {
  url: Schema.String,
  reason: Schema.Literal(
    "timeout",
    "http-status",
    "network",
    "invalid-url",
    "too-large",
    "not-html",
    "no-product"
  ),
  status: Schema.optional(Schema.Number),
  message: Schema.String
}) {}

/**
 * Whether another attempt at the scrape could not help, so that the task
 * fails at once instead of being retried.
 *
 * Transient, so retried: a timeout, a network error, and the statuses a
 * server gives when it is busy or failing (408, 429 and 5xx). Permanent:
 * every other status (404, 410, 403, a redirect loop, ...), an invalid URL,
 * a page that is too large or not HTML, and a page without a product.
 *
 * @example
 * ```ts
 * import { isPermanent, ScrapeError } from "./Product.js"
 *
 * const busy = new ScrapeError({
 *   url: "https://shop.example/kettle",
 *   reason: "http-status",
 *   status: 503,
 *   message: "GET https://shop.example/kettle answered 503 Service Unavailable"
 * })
 * isPermanent(busy) // false: the server may be back soon
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export const isPermanent = (error: ScrapeError): boolean => {
  switch (error.reason) {
    case "timeout":
    case "network":
      return false
    case "http-status":
      return !isTransientStatus(error.status)
    default:
      return true
  }
}

const isTransientStatus = (status: number | undefined): boolean =>
  status === undefined || status === 408 || status === 429 || status >= 500

const isHttpUrl = (input: string): boolean => {
  if (!URL.canParse(input)) {
    return false
  }
  const url = new URL(input)
  return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== ""
}

/**
 * The body of a request to scrape a page: `{ url }`, where `url` is an
 * absolute `http:` or `https:` URL of at most 2048 characters.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { ScrapeRequest } from "./Product.js"
 *
 * // { url: "https://shop.example/kettle" }
 * Schema.decodeUnknownSync(ScrapeRequest)({ url: "https://shop.example/kettle" })
 * // throws: url must be an absolute http or https URL
 * Schema.decodeUnknownSync(ScrapeRequest)({ url: "ftp://shop.example/kettle" })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export const ScrapeRequest = Schema.Struct({
  url: Schema.String.pipe(
    Schema.maxLength(2048, { message: () => "url must be at most 2048 characters long" }),
    Schema.filter(isHttpUrl, { message: () => "url must be an absolute http or https URL" })
  )
})

/**
 * A decoded {@link ScrapeRequest}: `{ readonly url: string }`.
 *
 * @since 0.1.0
 * @category models
 */
export type ScrapeRequest = typeof ScrapeRequest.Type
