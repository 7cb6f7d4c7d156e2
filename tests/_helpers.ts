/**
 * Test helpers: run Lua in a real engine with captured output, or run the
 * real CLI as a child process.
 *
 * @module
 */
import { Engine, type Outcome } from "../runtime/engine.ts";
import { installGlobals } from "../host/script.ts";
import { denoFileSystem } from "../host/filesystem.ts";

/** Output captured from one engine. */
export interface LuaRun {
  outcome: Outcome;
  stdout: string;
  stderr: string;
}

/** Runs `source` to completion (main chunk, then until idle) in a fresh engine with every global. */
export async function runLua(source: string, chunkname = "=test"): Promise<LuaRun> {
  let stdout = "";
  let stderr = "";
  const decoder = new TextDecoder();
  const engine = await Engine.create({
    stdout: { write: (b) => void (stdout += decoder.decode(b)), flush: () => {} },
    stderr: (text) => void (stderr += text),
    files: denoFileSystem(),
  });
  try {
    installGlobals(engine);
    const outcome = await engine.execute(source, chunkname);
    if (outcome.status === "ok") await engine.idle();
    return { outcome, stdout, stderr };
  } finally {
    engine.close();
  }
}

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Result of one CLI run. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

// SOLVM_BIN=dist/solvm-<target> runs every CLI test against a compiled binary instead.
const BINARY = Deno.env.get("SOLVM_BIN");

/**
 * Runs `solvm args...` as `deno run -A main.ts args...` (or as the binary
 * in SOLVM_BIN), feeding `stdin` if given, with `env` added to the
 * environment, under a limit of `maxOpenFiles` descriptors if given;
 * `whileRunning` gets the process as soon as it starts.
 */
export async function solvm(
  args: string[],
  options: {
    /** Standard input: all of it at once, or written by a function over time (closed when it returns). */
    stdin?: string | ((write: (text: string) => Promise<void>) => Promise<void>);
    cwd?: string;
    env?: Record<string, string>;
    maxOpenFiles?: number;
    whileRunning?: (child: Deno.ChildProcess) => Promise<void>;
  } = {},
): Promise<CliRun> {
  const command = [BINARY ?? Deno.execPath(), ...(BINARY ? args : ["run", "-A", MAIN, ...args])];
  // The shell lowers the limit, then becomes SolVM.
  const limited = options.maxOpenFiles === undefined
    ? command
    : ["sh", "-c", `ulimit -n ${options.maxOpenFiles} && exec "$@"`, "sh", ...command];
  const child = new Deno.Command(limited[0], {
    args: limited.slice(1),
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    cwd: options.cwd,
    env: { NO_COLOR: "1", ...options.env },
  }).spawn();
  let feeding: Promise<void> | undefined;
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    const write = (text: string) => writer.write(new TextEncoder().encode(text));
    const feed = typeof options.stdin === "string" ? write(options.stdin) : options.stdin(write);
    // Closing fails once SolVM has ended and its end of the pipe is gone (a script that ended on "exit"): no matter.
    feeding = feed.finally(() => writer.close().catch(() => {}));
  }
  const [{ code, stdout, stderr }] = await Promise.all([child.output(), options.whileRunning?.(child), feeding]);
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

/**
 * Runs `deno args...` as a child process (no standard input, NO_COLOR and
 * `env` in its environment) and returns its exit code and decoded output.
 */
export async function runDeno(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...options.env },
  }).output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) } satisfies CliRun;
}

/** Runs main.ts under Deno's own permission flags `denoFlags` instead of -A, as `deno run` users may. */
export function solvmUnder(denoFlags: string[], args: string[], options: { cwd?: string } = {}): Promise<CliRun> {
  return runDeno(["run", ...denoFlags, "--no-prompt", MAIN, ...args], options);
}

const madeFolders: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const folder of madeFolders) Deno.removeSync(folder, { recursive: true });
});

/** Writes `files` (name -> content) into a new temporary folder, removed when the test process ends. */
export async function tempFiles(files: Record<string, string | Uint8Array>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "solvm-test-" });
  madeFolders.push(dir);
  for (const [name, content] of Object.entries(files)) {
    const path = `${dir}/${name}`;
    if (typeof content === "string") await Deno.writeTextFile(path, content);
    else await Deno.writeFile(path, content);
  }
  return dir;
}

/** Lua defining use_up_descriptors(spare), which opens files until none can be opened, then closes `spare` of them: they hold the rest in `files`. */
export const USE_UP_DESCRIPTORS = `
  local function use_up_descriptors(spare)
    local files = {}
    while true do
      local f = io.open(arg[0])
      if not f then break end
      files[#files + 1] = f
    end
    for _ = 1, spare do table.remove(files):close() end
    return files
  end`;

/** A WebSocket client's upgrade request for /ws (the key is RFC 6455's sample), for raw TCP clients. */
export const WS_UPGRADE = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves as `promise` does, or rejects after `ms` milliseconds naming `what`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
