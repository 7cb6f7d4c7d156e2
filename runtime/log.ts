/**
 * Runtime logging to stderr, set by `SOLVM_LOG=error|warn|info|debug|trace`
 * (default: errors only): actor starts and stops, restarts, servers,
 * goroutine failures.
 *
 * @module
 */
import { writeStderr } from "./output.ts";

/** The levels, most severe first. */
export const LOG_LEVELS = ["error", "warn", "info", "debug", "trace"] as const;

/** One level of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];

function levelFromEnvironment(): number {
  let wanted: string | undefined;
  try {
    wanted = Deno.env.get("SOLVM_LOG");
  } catch {
    // Without env access logging stays at its default.
  }
  const at = LOG_LEVELS.indexOf((wanted ?? "error").toLowerCase() as LogLevel);
  return at < 0 ? 0 : at;
}

let threshold = levelFromEnvironment();

/**
 * Sets the level (threads other than the CLI's get it from there, since
 * reading the environment may be denied to them).
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { setLogLevel, logEnabled } from "./log.ts";
 * setLogLevel("info");
 * ok(logEnabled("info") && !logEnabled("debug"));
 * setLogLevel("error");
 * ```
 */
export function setLogLevel(level: LogLevel): void {
  threshold = LOG_LEVELS.indexOf(level);
}

/** The level in force. */
export function logLevel(): LogLevel {
  return LOG_LEVELS[threshold];
}

/** True when messages of `level` are written. */
export function logEnabled(level: LogLevel): boolean {
  return LOG_LEVELS.indexOf(level) <= threshold;
}

/**
 * Writes `solvm <time> <level> <message>` to stderr when `level` is enabled.
 *
 * ```ts
 * import { log } from "./log.ts";
 * log("debug", "not shown at the default level");
 * ```
 */
export function log(level: LogLevel, message: string): void {
  if (!logEnabled(level)) return;
  writeStderr(`[solvm ${new Date().toISOString()} ${level}] ${message}\n`);
}
