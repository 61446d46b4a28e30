// The part of autocannon's programmatic API the HTTP case uses (the package ships no types).
declare module "autocannon" {
  export interface Options {
    readonly url: string
    readonly method?: "GET" | "POST"
    readonly headers?: Record<string, string>
    readonly body?: string
    readonly connections?: number
    readonly pipelining?: number
    readonly duration?: number
    readonly timeout?: number
  }

  /** Percentiles and mean of one histogram; latencies in milliseconds. */
  export interface Histogram {
    readonly average: number
    readonly mean: number
    readonly stddev: number
    readonly min: number
    readonly max: number
    readonly total: number
    readonly p50: number
    readonly p90: number
    readonly p99: number
    readonly p99_9: number
  }

  export interface Result {
    readonly duration: number
    readonly errors: number
    readonly timeouts: number
    readonly non2xx: number
    readonly latency: Histogram
    readonly requests: Histogram & { readonly sent: number }
    readonly "2xx": number
  }

  function autocannon(options: Options): Promise<Result>
  export default autocannon
}
