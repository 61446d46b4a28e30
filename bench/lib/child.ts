/**
 * The protocol between the runner and a case's child process: arguments come
 * as `--name=value`, the result goes back as one line on stdout that starts
 * with `BENCH_RESULT `, so log lines a library prints cannot be mistaken for
 * it. A server child announces its port with a `BENCH_READY ` line first.
 */

export const RESULT_PREFIX = "BENCH_RESULT "
export const READY_PREFIX = "BENCH_READY "

/** Reads `--name=value` from this process's arguments. */
export const option = (name: string): string | undefined => {
  const prefix = `--${name}=`
  const found = process.argv.find((arg) => arg.startsWith(prefix))
  return found === undefined ? undefined : found.slice(prefix.length)
}

export const requiredOption = (name: string): string => {
  const value = option(name)
  if (value === undefined) throw new Error(`missing --${name}=...`)
  return value
}

/** A positive integer option; zero is accepted where `allowZero` says so. */
export const intOption = (name: string, allowZero = false): number => {
  const value = Number(requiredOption(name))
  if (!Number.isSafeInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new Error(`--${name} must be a ${allowZero ? "non-negative" : "positive"} integer`)
  }
  return value
}

export const emitResult = (result: object): void => {
  process.stdout.write(RESULT_PREFIX + JSON.stringify(result) + "\n")
}

export const emitReady = (info: object): void => {
  process.stdout.write(READY_PREFIX + JSON.stringify(info) + "\n")
}

/** Runs a full collection several times, so the heap figure that follows is settled. */
export const settleHeap = async (): Promise<void> => {
  if (globalThis.gc === undefined) throw new Error("run with node --expose-gc")
  for (let i = 0; i < 4; i++) {
    globalThis.gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
}

/** Ends a child whose main promise failed, with the error on stderr. */
export const runMain = (main: () => Promise<void>): void => {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error)
      process.exit(1)
    }
  )
}
