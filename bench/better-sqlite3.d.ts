// The part of better-sqlite3's API the SQLite case uses (the package ships no types).
declare module "better-sqlite3" {
  export interface RunResult {
    readonly changes: number
    readonly lastInsertRowid: number | bigint
  }

  export interface Statement {
    run(...params: ReadonlyArray<unknown>): RunResult
    get(...params: ReadonlyArray<unknown>): unknown
    all(...params: ReadonlyArray<unknown>): Array<unknown>
  }

  /** A function that runs in BEGIN ... COMMIT, rolled back if it throws. */
  export type Transaction<F extends (...args: Array<any>) => any> = F & {
    readonly deferred: F
    readonly immediate: F
    readonly exclusive: F
  }

  export interface Options {
    readonly timeout?: number
  }

  class Database {
    constructor(filename: string, options?: Options)
    prepare(source: string): Statement
    exec(source: string): this
    pragma(source: string, options?: { readonly simple?: boolean }): unknown
    transaction<F extends (...args: Array<any>) => any>(fn: F): Transaction<F>
    close(): this
  }
  export default Database
}
