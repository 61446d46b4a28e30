/**
 * Reads a product out of a store page's HTML.
 *
 * @since 0.1.0
 */
import { Either } from "effect"
import { Parser } from "htmlparser2"
import { Product, ScrapeError } from "./Product.js"

/** What one pass of the HTML parser keeps: JSON-LD blocks, meta tags, the title. */
interface PageParts {
  readonly jsonLd: ReadonlyArray<string>
  readonly meta: ReadonlyMap<string, string>
  readonly title: string | undefined
}

/** The fields one source (JSON-LD or the meta tags) gives; `undefined` when absent. */
interface Fields {
  readonly name: string | undefined
  readonly price: number | undefined
  readonly currency: string | undefined
  readonly availability: string | undefined
}

const isJsonLdType = (type: string | undefined): boolean =>
  type !== undefined && type.split(";")[0]?.trim().toLowerCase() === "application/ld+json"

const collectParts = (html: string): PageParts => {
  const jsonLd: Array<string> = []
  const meta = new Map<string, string>()
  let title: string | undefined
  let script: string | undefined
  let titleText: string | undefined
  let svgDepth = 0

  const parser = new Parser(
    {
      onopentag(name, attribs) {
        if (name === "svg") {
          svgDepth++
        } else if (name === "script" && isJsonLdType(attribs.type)) {
          script = ""
        } else if (name === "title" && svgDepth === 0 && title === undefined) {
          titleText = ""
        } else if (name === "meta" && attribs.content !== undefined) {
          for (const key of [attribs.property, attribs.name]) {
            const lower = key?.trim().toLowerCase()
            // The first tag for a key wins, as it does for the crawlers that read them.
            if (lower && !meta.has(lower)) {
              meta.set(lower, attribs.content)
            }
          }
        }
      },
      ontext(text) {
        if (script !== undefined) {
          script += text
        } else if (titleText !== undefined) {
          titleText += text
        }
      },
      onclosetag(name) {
        if (name === "svg") {
          svgDepth = Math.max(0, svgDepth - 1)
        } else if (name === "script" && script !== undefined) {
          jsonLd.push(script)
          script = undefined
        } else if (name === "title" && titleText !== undefined) {
          title = titleText
          titleText = undefined
        }
      }
    },
    { decodeEntities: true }
  )
  parser.end(html)

  return { jsonLd, meta, title }
}

const collapse = (text: string): string => text.replace(/\s+/g, " ").trim()

/** Decodes entities and drops markup that some stores leave inside JSON-LD strings. */
const textOf = (value: string): string => {
  if (!value.includes("&") && !value.includes("<")) {
    return collapse(value)
  }
  let text = ""
  const parser = new Parser(
    {
      ontext(chunk) {
        text += chunk
      }
    },
    { decodeEntities: true }
  )
  parser.end(value)
  return collapse(text)
}

const nonEmpty = (text: string | undefined): string | undefined =>
  text === undefined || text === "" ? undefined : text

type JsonObject = { readonly [key: string]: unknown }

const isObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const first = (value: unknown): unknown => (Array.isArray(value) ? value[0] : value)

const stringOf = (value: unknown): string | undefined => {
  if (typeof value === "string") {
    return nonEmpty(value.trim())
  }
  if (typeof value === "number" && Number.isFinite(value)) {
    return String(value)
  }
  if (isObject(value)) {
    return stringOf(value["@id"] ?? value["@value"])
  }
  return undefined
}

/** `"Product"`, `"schema:Product"` and `"https://schema.org/Product"` all name the same type. */
const typesOf = (node: JsonObject): ReadonlyArray<string> => {
  const types = node["@type"]
  const list = Array.isArray(types) ? types : [types]
  return list
    .filter((type): type is string => typeof type === "string")
    .map((type) => type.slice(Math.max(type.lastIndexOf("/"), type.lastIndexOf(":")) + 1))
}

const isProduct = (node: JsonObject): boolean =>
  typesOf(node).some((type) => type === "Product" || type === "ProductGroup")

const maxDepth = 16

/** Every Product reachable through arrays, `@graph` and `mainEntity`, in document order. */
const findProducts = (node: unknown, depth: number, found: Array<JsonObject>): void => {
  if (depth > maxDepth) {
    return
  }
  if (Array.isArray(node)) {
    for (const item of node) {
      findProducts(item, depth + 1, found)
    }
    return
  }
  if (!isObject(node)) {
    return
  }
  if (isProduct(node)) {
    found.push(node)
  }
  findProducts(node["@graph"], depth + 1, found)
  findProducts(node["mainEntity"], depth + 1, found)
}

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/**
 * Reads a price written as a number or as text such as `"19.99"`, `"1,299.00"`,
 * `"1.299,00"` or `"€ 19,99"`. Returns `undefined` for anything that is not a
 * finite, non-negative amount.
 */
const parsePrice = (value: unknown): number | undefined => {
  if (typeof value === "number") {
    return Number.isFinite(value) && value >= 0 ? value : undefined
  }
  if (typeof value !== "string") {
    return undefined
  }
  const kept = value.replace(/[^0-9.,]/g, "")
  if (!/[0-9]/.test(kept)) {
    return undefined
  }
  const lastDot = kept.lastIndexOf(".")
  const lastComma = kept.lastIndexOf(",")
  let normalised: string
  if (lastDot !== -1 && lastComma !== -1) {
    // Both appear: the one written last separates the decimals.
    const [thousands, decimal] = lastDot > lastComma ? [",", "."] : [".", ","]
    normalised = kept.split(thousands).join("").replace(decimal, ".")
  } else if (lastComma !== -1) {
    // "19,99" has decimals; "1,299" and "1,299,000" group thousands.
    const commas = kept.split(",").length - 1
    const decimals = kept.length - lastComma - 1
    normalised = commas === 1 && decimals !== 3 ? kept.replace(",", ".") : kept.split(",").join("")
  } else {
    const dots = kept.split(".").length - 1
    normalised = dots > 1 ? kept.split(".").join("") : kept
  }
  const amount = Number(normalised)
  return Number.isFinite(amount) && amount >= 0 ? amount : undefined
}

const currencyOf = (value: unknown): string | undefined => {
  const text = stringOf(value)
  return text !== undefined && /^[a-z]{3}$/i.test(text) ? text.toUpperCase() : text
}

const availabilities = [
  "InStock",
  "OutOfStock",
  "PreOrder",
  "BackOrder",
  "Discontinued",
  "LimitedAvailability",
  "SoldOut",
  "InStoreOnly",
  "OnlineOnly"
]

const availabilityByKey = new Map<string, string>([
  ...availabilities.map((name): [string, string] => [name.toLowerCase(), name]),
  ["oos", "OutOfStock"]
])

/**
 * Maps `"https://schema.org/InStock"`, `"InStock"`, `"in stock"`, `"oos"` and
 * the like to schema.org's name; keeps any other value as given.
 */
const availabilityOf = (value: unknown): string | undefined => {
  const raw = stringOf(value)
  if (raw === undefined) {
    return undefined
  }
  const name = raw.slice(raw.lastIndexOf("/") + 1).replace(/^schema:/i, "")
  const key = name.toLowerCase().replace(/[\s_-]/g, "")
  return availabilityByKey.get(key) ?? raw
}

const offerOf = (product: JsonObject): JsonObject | undefined => {
  const offer = first(product["offers"])
  if (isObject(offer)) {
    return offer
  }
  // A ProductGroup often puts its offers on its variants.
  const variant = first(product["hasVariant"])
  return isObject(variant) ? offerOf(variant) : undefined
}

const jsonLdFields = (product: JsonObject): Fields => {
  const offer = offerOf(product)
  const specification = first(offer?.["priceSpecification"])
  const spec = isObject(specification) ? specification : undefined
  const name = product["name"]
  return {
    name: typeof name === "string" ? nonEmpty(textOf(name)) : undefined,
    price:
      parsePrice(offer?.["price"]) ??
      parsePrice(offer?.["lowPrice"]) ??
      parsePrice(spec?.["price"]),
    currency: currencyOf(offer?.["priceCurrency"]) ?? currencyOf(spec?.["priceCurrency"]),
    availability: availabilityOf(offer?.["availability"])
  }
}

const emptyFields: Fields = {
  name: undefined,
  price: undefined,
  currency: undefined,
  availability: undefined
}

/** The first JSON-LD Product with a name, else the first one at all. */
const fromJsonLd = (blocks: ReadonlyArray<string>): Fields => {
  const products: Array<JsonObject> = []
  for (const block of blocks) {
    findProducts(parseJson(block.trim()), 0, products)
  }
  const fields = products.map(jsonLdFields)
  return fields.find((candidate) => candidate.name !== undefined) ?? fields[0] ?? emptyFields
}

const fromMeta = (meta: ReadonlyMap<string, string>): Fields => {
  const pick = (...keys: ReadonlyArray<string>): string | undefined => {
    for (const key of keys) {
      const value = nonEmpty(meta.get(key)?.trim())
      if (value !== undefined) {
        return value
      }
    }
    return undefined
  }
  const name = pick("og:title", "twitter:title")
  return {
    name: name === undefined ? undefined : nonEmpty(collapse(name)),
    price: parsePrice(pick("product:price:amount", "og:price:amount")),
    currency: currencyOf(pick("product:price:currency", "og:price:currency")),
    availability: availabilityOf(pick("product:availability", "og:availability"))
  }
}

/**
 * Reads a product from a page's HTML.
 *
 * The name comes from the first JSON-LD `Product` (found at the top level, in
 * an array, in `@graph` or under `mainEntity`; a `ProductGroup` counts too),
 * else from the `og:title` or `twitter:title` meta tag, else from `<title>`.
 * Price, currency and availability come from the JSON-LD offer (the first one
 * of a list; `lowPrice` of an `AggregateOffer`; a `priceSpecification`) and,
 * field by field where it is silent, from the `product:price:*`,
 * `og:price:*` and `product:availability` meta tags. JSON-LD blocks that are
 * not valid JSON are skipped.
 *
 * Fails with a `ScrapeError` of reason `"no-product"` when no name is found.
 *
 * @example
 * ```ts
 * import { extractProduct } from "./extract.js"
 *
 * const html = `<html><head>
 *   <meta property="og:title" content="Steel Kettle">
 *   <meta property="product:price:amount" content="39.90">
 *   <meta property="product:price:currency" content="EUR">
 * </head></html>`
 * // Right(Product { name: "Steel Kettle", price: 39.9, currency: "EUR", source: "meta", ... })
 * extractProduct(html, "https://shop.example/kettle")
 * ```
 *
 * @since 0.1.0
 * @category extraction
 */
export const extractProduct = (
  html: string,
  pageUrl: string
): Either.Either<Product, ScrapeError> => {
  const parts = collectParts(html)
  const ld = fromJsonLd(parts.jsonLd)
  const meta = fromMeta(parts.meta)
  const title = parts.title === undefined ? undefined : nonEmpty(collapse(parts.title))

  const [name, source] =
    ld.name !== undefined
      ? [ld.name, "json-ld" as const]
      : meta.name !== undefined
        ? [meta.name, "meta" as const]
        : [title, "title" as const]
  if (name === undefined) {
    return Either.left(
      new ScrapeError({
        url: pageUrl,
        reason: "no-product",
        message:
          `${pageUrl} shows no product: it has no JSON-LD Product, ` +
          "no og:title or twitter:title meta tag and no <title>"
      })
    )
  }

  // A currency belongs to the price it was written with, so it comes from the same source first.
  const currency =
    ld.price !== undefined ? (ld.currency ?? meta.currency) : (meta.currency ?? ld.currency)

  return Either.right(
    new Product({
      url: pageUrl,
      name,
      price: ld.price ?? meta.price ?? null,
      currency: currency ?? null,
      availability: ld.availability ?? meta.availability ?? null,
      source
    })
  )
}
