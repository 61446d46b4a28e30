/**
 * Who owns a claim of a durable task: the host (its name and pid namespace),
 * the process id, and a random part per queue start; whether that owner is
 * gone; and what becomes of the tasks a gone owner left running.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import type { StoredTask, Write } from "../TaskStore.js"

/**
 * This host, as far as process ids go: its name and its pid namespace (on
 * Linux), so that two containers that share a host name but not their
 * process ids never take each other's processes for dead.
 */
export const hostId = ((): string => {
  let namespace: string
  try {
    namespace = /\d+/.exec(fs.readlinkSync("/proc/self/ns/pid"))?.[0] ?? ""
  } catch {
    // Not Linux: the host name alone.
    namespace = ""
  }
  return `${os.hostname().replaceAll(":", "_")}/${namespace}`
})()

/** The boots of queues alive in this process. */
export const liveBoots = new Set<string>()

export const ownerOf = (boot: string): string => `${hostId}:${process.pid}:${boot}`

/**
 * Whether the instance that claimed a task is gone: its lease ran out, or it
 * was a process of this host that no longer exists, or a queue of this
 * process that has stopped.
 */
export const isGone = (task: StoredTask, now: number): boolean => {
  if (task.leaseUntil === undefined || task.leaseUntil < now) return true
  const owner = task.owner ?? ""
  const last = owner.lastIndexOf(":")
  const second = owner.lastIndexOf(":", last - 1)
  if (second < 0 || owner.slice(0, second) !== hostId) return false
  const pid = Number(owner.slice(second + 1, last))
  if (pid === process.pid) return !liveBoots.has(owner.slice(last + 1))
  try {
    process.kill(pid, 0)
    return false
  } catch (error) {
    return (error as { readonly code?: unknown }).code === "ESRCH"
  }
}

/**
 * A task a gone owner left running: queued again in its old place with the
 * attempt counted, or `failed` when that was its last attempt.
 */
export const takeBack = (task: StoredTask, now: number): Write =>
  task.attempt >= task.maxAttempts
    ? {
        _tag: "end",
        id: task.id,
        owner: task.owner ?? "",
        attempt: task.attempt,
        status: "failed",
        finishedAt: now,
        outcome: JSON.stringify({
          error: {
            kind: "defect",
            message:
              task.attempt === 1
                ? "the process running the task stopped during its only attempt"
                : `the process running the task stopped during each of its ${task.attempt} attempts`
          }
        }),
        reason: undefined
      }
    : {
        _tag: "retry",
        id: task.id,
        owner: task.owner ?? "",
        attempt: task.attempt,
        at: now,
        // Back in its old place, before tasks enqueued after it.
        runAt: undefined
      }
