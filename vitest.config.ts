import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

export default defineConfig({
  resolve: {
    alias: [
      {
        find: /^effect-task-queue$/,
        replacement: fileURLToPath(new URL("./src/index.ts", import.meta.url))
      },
      {
        find: /^effect-task-queue\/SqlTaskStore$/,
        replacement: fileURLToPath(new URL("./src/SqlTaskStore.ts", import.meta.url))
      }
    ]
  },
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["**/*.tmp.*", "**/node_modules/**"],
    testTimeout: 30_000,
    sequence: { concurrent: false }
  }
})
