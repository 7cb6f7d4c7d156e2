/**
 * SolVM benchmark report: `deno task bench [group]`, group one of
 * `cpu`, `startup`, `channels`, `scale`, `net`, `library`, `actors` (default: all of them).
 *
 * Every benchmark runs next to its peer in the same invocation (interleaved
 * where practical) because absolute times drift on a shared machine; the
 * report prints the numbers, the ratio against the peer and whether the
 * target is met (PASS/MISS), then a summary table. Nothing here asserts:
 * it is a report, and the exit code is 0 whatever the verdicts. A SolVM run
 * that fails (crash, deadlock, wrong result) is retried up to 3 times, listed
 * at the end, and turns a channel or scale verdict into MISS.
 *
 * - cpu: bench/lua/{fib,loop,table,string}.lua under SolVM and native
 *   `lua5.4`. Each script times its own work with os.clock() over several
 *   rounds in one process (the first round is the cold one: WebAssembly
 *   starts in V8's baseline tier); steady state = best round over all runs.
 *   Target: SolVM / native <= 1.5.
 * - startup: `solvm bench/lua/hi.lua` against plain wasmoon printing "hi"
 *   (bench/peers/plain_wasmoon_hi.ts) with hyperfine. Target: ratio <= 1.2.
 * - channels: 1e6 numbers through a buffered(64) and an unbuffered channel,
 *   timed inside Lua with os.clock() (under SolVM, i.e. Emscripten, os.clock
 *   follows the wall clock with 1 ms resolution). Targets: >= 1M msgs/s and
 *   >= 100k msgs/s. Native coroutine ping-pong is shown for context.
 * - scale: 100,000 goroutines that sleep 0.5 s and send on one channel;
 *   wall time of the whole process and its peak RSS. Targets: <= 2 s and
 *   <= 300 MiB.
 * - net: HTTP requests/s of bench/lua/http_json.lua against a bare
 *   `Deno.serve` (bench/peers/deno_hello.ts), both loaded with
 *   `wrk -t1 -c64 -d10s`, interleaved peer/SolVM x 2, best of each (target
 *   >= 0.85x); WebSocket echoes/s of bench/lua/ws_echo.lua against
 *   bench/peers/deno_ws_echo.ts, driven by a client in this process (16
 *   connections x 8 messages in flight, 5 s counted; target >= 0.8x);
 *   sustained load: `wrk -t1 -c64` for SOLVM_BENCH_SUSTAIN seconds (default
 *   60) against a fresh http_json.lua server, zero socket errors and its
 *   VmRSS (sampled every second) within 10% over the second half.
 *   Every server listens on 127.0.0.1 only and is stopped by its pid.
 * - library: SolVM embedded through mod.ts (bench/library.ts), in this
 *   process: microseconds per `await script.run(...)` of an empty main,
 *   fib(1) and an object update, next to plain wasmoon calling the same
 *   source (targets <= 1, 1.5 and 5 us); throughput of a CPU-bound main
 *   with `{ workers: 2 }` against `{ workers: 1 }` (target >= 1.7x).
 * - actors: actors under the CLI (bench/actors.ts): a CPU-bound loop in 2
 *   actors at once against 1 actor (bench/lua/actor_cpu.lua, throughput
 *   target >= 1.7x), and 200k small tables from one actor to another
 *   (bench/lua/actor_msgs.lua, target >= 100k messages/s).
 *
 * @module
 */
import { fmtRate, fmtSec, type LuaTiming, type SummaryRow, verdict } from "./_report.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const LUA_DIR = "bench/lua";
const SOLVM = [Deno.execPath(), "run", "-A", "main.ts", "--timeout", "0"];
const NATIVE_LUA = "lua5.4";
/** Added to every child's environment: plain error text, no ANSI colours. */
const CHILD_ENV = { NO_COLOR: "1" };

const CPU_FILES = ["fib", "loop", "table", "string"];
const CPU_PROCESS_RUNS = 4; // processes per runtime and file, each doing CPU_ROUNDS rounds
const CPU_ROUNDS = 3;
const CPU_TARGET = 1.5;

const STARTUP_RUNS = 60; // per command, in STARTUP_ROUNDS rounds
const STARTUP_ROUNDS = 6;
const STARTUP_WARMUP = 3;
const STARTUP_TARGET = 1.2;

const CHANNEL_PROCESS_RUNS = 2;
const CHANNEL_ROUNDS = 3;
const CHANNEL_MESSAGES = 1_000_000;
const BUFFERED_TARGET = 1_000_000;
const UNBUFFERED_TARGET = 100_000;

const SCALE_RUNS = 5;
const SCALE_TARGET_MS = 2000;
const SCALE_TARGET_MIB = 300;

const NET_WRK_SECONDS = 10;
const NET_ROUNDS = 2;
const NET_CONNECTIONS = 64;
const HTTP_TARGET = 0.85;
const WS_CONNECTIONS = 16;
const WS_WINDOW = 8; // messages in flight per connection
const WS_WARMUP_MS = 1000;
const WS_SECONDS = 5;
const WS_TARGET = 0.8;
const SUSTAIN_SECONDS = Number(Deno.env.get("SOLVM_BENCH_SUSTAIN") ?? "60");
const SUSTAIN_RSS_TOLERANCE = 0.1;

const GROUPS = ["cpu", "startup", "channels", "scale", "net", "library", "actors"] as const;
type Group = typeof GROUPS[number];

/** One line of the summary table. */
interface Row extends SummaryRow {
  group: Group;
}

const rows: Row[] = [];

/** The result of one child process. */
interface Run {
  code: number;
  stdout: string;
  stderr: string;
  wallMs: number;
}

// Helpers --------------------------------------------------------------------

function log(text = ""): void {
  console.log(text);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Runs a command from the project root and captures its output and wall time. */
async function run(cmd: string[]): Promise<Run> {
  const start = performance.now();
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    cwd: ROOT,
    env: CHILD_ENV,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const wallMs = performance.now() - start;
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr), wallMs };
}

/** Runs a command that must succeed; a failure is reported with its output and thrown. */
async function runOk(cmd: string[]): Promise<Run> {
  const result = await run(cmd);
  if (result.code !== 0) {
    throw new Error(`${cmd.join(" ")} exited ${result.code}\n${result.stdout}\n${result.stderr}`);
  }
  return result;
}

/** Whether `cmd` (with `args`) can be started at all. */
async function available(cmd: string, args: string[]): Promise<boolean> {
  try {
    await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output();
    return true;
  } catch {
    return false;
  }
}

/** Parses `ROUND name i seconds check`, `COLD name seconds` and `BENCH name seconds` lines. */
function parseLuaTimings(stdout: string): Map<string, LuaTiming> {
  const timings = new Map<string, LuaTiming>();
  const get = (name: string) => {
    let t = timings.get(name);
    if (!t) timings.set(name, t = { best: Infinity, cold: Infinity, checks: new Set() });
    return t;
  };
  for (const line of stdout.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[0] === "ROUND" && f.length >= 5) get(f[1]).checks.add(f.slice(4).join(" "));
    if (f[0] === "COLD") get(f[1]).cold = Number(f[2]);
    if (f[0] === "BENCH") get(f[1]).best = Number(f[2]);
  }
  return timings;
}

/** Folds one process's timings into the running best (steady) and best cold round. */
function mergeTimings(into: Map<string, LuaTiming>, from: Map<string, LuaTiming>): void {
  for (const [name, t] of from) {
    const prev = into.get(name);
    if (!prev) {
      into.set(name, { best: t.best, cold: t.cold, checks: new Set(t.checks) });
      continue;
    }
    prev.best = Math.min(prev.best, t.best);
    prev.cold = Math.min(prev.cold, t.cold);
    for (const c of t.checks) prev.checks.add(c);
  }
}

async function luaTimings(cmd: string[]): Promise<Map<string, LuaTiming>> {
  return parseLuaTimings((await runOk(cmd)).stdout);
}

const ATTEMPTS = 3;

/** One line out of a failed run's message: no stack frames, no /usr/bin/time report. */
function failureSummary(message: string): string {
  const lines = message.split("\n").map((l) => l.trim());
  const end = lines.findIndex((l) => l.startsWith("Command exited with") || l.startsWith("Command being timed"));
  const kept = lines.slice(0, end < 0 ? lines.length : end).filter((l) => l !== "" && !/^at\s/.test(l));
  const text = kept.join(" / ");
  return text.length > 400 ? `${text.slice(0, 400)}...` : text;
}

/** Failed SolVM runs (each retried), for the end of the report. */
const failures: string[] = [];
/** How many runs of each Lua file failed. */
const failedRuns = new Map<string, number>();

function failedNote(file: string): string {
  const n = failedRuns.get(file) ?? 0;
  return n ? ` [${n} failed run${n > 1 ? "s" : ""}]` : "";
}

/**
 * Runs the SolVM script `file` until it succeeds, at most {@linkcode ATTEMPTS}
 * times; each failure is logged and counted. Throws when every attempt fails.
 */
async function runRetrying<R extends Run>(file: string, cmd: string[], run: (cmd: string[]) => Promise<R>): Promise<R> {
  for (let attempt = 1;; attempt++) {
    try {
      return await run(cmd);
    } catch (e) {
      const message = failureSummary(e instanceof Error ? e.message : String(e));
      failures.push(message);
      failedRuns.set(file, (failedRuns.get(file) ?? 0) + 1);
      log(`  FAILED (attempt ${attempt}/${ATTEMPTS}): ${message}`);
      if (attempt >= ATTEMPTS) throw e;
    }
  }
}

function solvmCmd(file: string, ...args: (string | number)[]): string[] {
  return [...SOLVM, `${LUA_DIR}/${file}.lua`, ...args.map(String)];
}

function nativeCmd(file: string, ...args: (string | number)[]): string[] {
  return [NATIVE_LUA, `${LUA_DIR}/${file}.lua`, ...args.map(String)];
}

// Group 1: CPU ---------------------------------------------------------------

async function benchCpu(hasLua: boolean): Promise<void> {
  log(`== CPU: SolVM vs native ${NATIVE_LUA}, steady state = best of ${CPU_ROUNDS} rounds x ${CPU_PROCESS_RUNS} runs`);
  if (!hasLua) log(`  NOTE: ${NATIVE_LUA} not found; SolVM times only, no ratios.`);
  const solvm = new Map<string, LuaTiming>();
  const native = new Map<string, LuaTiming>();
  for (let rep = 0; rep < CPU_PROCESS_RUNS; rep++) {
    for (const file of CPU_FILES) {
      const order = rep % 2 === 0 ? ["solvm", "native"] : ["native", "solvm"];
      for (const who of order) {
        if (who === "solvm") mergeTimings(solvm, await luaTimings(solvmCmd(file, CPU_ROUNDS)));
        else if (hasLua) mergeTimings(native, await luaTimings(nativeCmd(file, CPU_ROUNDS)));
      }
      log(`  run ${rep + 1}/${CPU_PROCESS_RUNS}: ${file}.lua done`);
    }
  }
  for (const [name, s] of solvm) reportCpu(name, s, native.get(name));
}

function reportCpu(name: string, s: LuaTiming, n: LuaTiming | undefined): void {
  if (!n) {
    log(`  ${name}: SolVM ${fmtSec(s.best)} (cold ${fmtSec(s.cold)}); native: skipped`);
    rows.push({ group: "cpu", name, solvm: fmtSec(s.best), peer: "n/a", ratio: "n/a", target: "<= 1.5x", pass: null });
    return;
  }
  const ratio = s.best / n.best;
  const cold = s.cold / n.cold;
  const pass = ratio <= CPU_TARGET;
  log(
    `  ${name}: SolVM ${fmtSec(s.best)} vs native ${fmtSec(n.best)} -> ${ratio.toFixed(2)}x ` +
      `(target <= ${CPU_TARGET}x) ${verdict(pass)}; cold ${fmtSec(s.cold)} vs ${fmtSec(n.cold)} -> ${cold.toFixed(2)}x`,
  );
  const checks = new Set([...s.checks, ...n.checks]);
  if (checks.size !== 1) log(`  WARNING ${name}: results differ between runtimes: ${[...checks].join(" | ")}`);
  rows.push({
    group: "cpu",
    name: `${name} (steady)`,
    solvm: fmtSec(s.best),
    peer: fmtSec(n.best),
    ratio: `${ratio.toFixed(2)}x`,
    target: `<= ${CPU_TARGET}x`,
    pass,
  });
  rows.push({
    group: "cpu",
    name: `${name} (cold, info)`,
    solvm: fmtSec(s.cold),
    peer: fmtSec(n.cold),
    ratio: `${cold.toFixed(2)}x`,
    target: "-",
    pass: null,
  });
}

// Group 2: start-up ----------------------------------------------------------

/** One command's start-up times, summarized. */
interface StartupResult {
  command: string;
  mean: number;
  stddev: number;
  median: number;
  min: number;
}

async function benchStartup(hasHyperfine: boolean, hasLua: boolean): Promise<void> {
  log(
    `== Start-up: solvm hi.lua vs plain wasmoon printing "hi", ${STARTUP_RUNS} runs each in ${STARTUP_ROUNDS} rounds of alternating order`,
  );
  const commands = [
    solvmCmd("hi").filter((a) => a !== "--timeout" && a !== "0"),
    [Deno.execPath(), "run", "-A", "bench/peers/plain_wasmoon_hi.ts"],
  ];
  if (hasLua) commands.push(nativeCmd("hi"));
  for (const cmd of commands) await runOk(cmd); // a broken command fails here, with its output
  const results = hasHyperfine ? await startupHyperfine(commands) : await startupFallback(commands);
  for (const r of results) {
    log(
      `  ${r.command}: mean ${fmtSec(r.mean)} +- ${fmtSec(r.stddev)}, median ${fmtSec(r.median)}, min ${fmtSec(r.min)}`,
    );
  }
  const [solvm, plain, native] = results;
  const ratio = solvm.mean / plain.mean;
  const pass = ratio <= STARTUP_TARGET;
  log(`  ratio of means SolVM / plain wasmoon = ${ratio.toFixed(2)}x (target <= ${STARTUP_TARGET}x) ${verdict(pass)}`);
  rows.push({
    group: "startup",
    name: "hi.lua vs plain wasmoon (mean)",
    solvm: fmtSec(solvm.mean),
    peer: fmtSec(plain.mean),
    ratio: `${ratio.toFixed(2)}x`,
    target: `<= ${STARTUP_TARGET}x`,
    pass,
  });
  if (native) {
    rows.push({
      group: "startup",
      name: "hi.lua vs native lua5.4 (info)",
      solvm: fmtSec(solvm.mean),
      peer: fmtSec(native.mean),
      ratio: `${(solvm.mean / native.mean).toFixed(0)}x`,
      target: "-",
      pass: null,
    });
  }
}

/**
 * hyperfine, in rounds that alternate the commands' order: one long block
 * per command would put a drift of this shared machine into the ratio.
 */
async function startupHyperfine(commands: string[][]): Promise<StartupResult[]> {
  const json = await Deno.makeTempFile({ suffix: ".json" });
  const times = commands.map(() => [] as number[]);
  const failed = commands.map(() => 0);
  try {
    for (let round = 0; round < STARTUP_ROUNDS; round++) {
      const order = round % 2 === 0 ? commands.map((_, c) => c) : commands.map((_, c) => commands.length - 1 - c);
      await runOk([
        "hyperfine",
        "-N",
        "--ignore-failure",
        "--warmup",
        String(round === 0 ? STARTUP_WARMUP : 1),
        "--runs",
        String(STARTUP_RUNS / STARTUP_ROUNDS),
        "--export-json",
        json,
        ...order.map((c) => commands[c].join(" ")),
      ]);
      const data = JSON.parse(await Deno.readTextFile(json)) as {
        results: { times: number[]; exit_codes: number[] }[];
      };
      data.results.forEach((r, i) => {
        times[order[i]].push(...r.times);
        failed[order[i]] += r.exit_codes.filter((code) => code !== 0).length;
      });
    }
  } finally {
    await Deno.remove(json);
  }
  commands.forEach((cmd, c) => {
    if (failed[c]) log(`  WARNING: ${cmd.join(" ")} failed ${failed[c]} of ${times[c].length} runs`);
  });
  return commands.map((cmd, c) => summarize(cmd, times[c]));
}

/** Without hyperfine: the same commands, interleaved, timed from here. */
async function startupFallback(commands: string[][]): Promise<StartupResult[]> {
  log(`  NOTE: hyperfine not found; timing ${STARTUP_RUNS} interleaved runs per command from Deno instead.`);
  const times = commands.map(() => [] as number[]);
  for (let i = 0; i < STARTUP_WARMUP + STARTUP_RUNS; i++) {
    for (let c = 0; c < commands.length; c++) {
      const { wallMs } = await runOk(commands[c]);
      if (i >= STARTUP_WARMUP) times[c].push(wallMs / 1000);
    }
  }
  return commands.map((cmd, c) => summarize(cmd, times[c]));
}

/** Mean, standard deviation, median and minimum of one command's times (seconds). */
function summarize(cmd: string[], t: number[]): StartupResult {
  const mean = t.reduce((a, b) => a + b, 0) / t.length;
  const stddev = Math.sqrt(t.reduce((a, b) => a + (b - mean) ** 2, 0) / t.length);
  return { command: cmd.join(" "), mean, stddev, median: median(t), min: Math.min(...t) };
}

// Group 3: channels ----------------------------------------------------------

async function benchChannels(hasLua: boolean): Promise<void> {
  log(
    `== Channels: ${CHANNEL_MESSAGES} messages, timed inside Lua with os.clock(), best of ${CHANNEL_ROUNDS} rounds x ${CHANNEL_PROCESS_RUNS} runs`,
  );
  const files = ["chan_buffered", "chan_unbuffered", "coro_pingpong"];
  const solvm = new Map<string, LuaTiming>();
  const native = new Map<string, LuaTiming>();
  const broken = new Set<string>();
  for (let rep = 0; rep < CHANNEL_PROCESS_RUNS; rep++) {
    for (const file of files) {
      if (broken.has(file)) continue;
      try {
        const out = await runRetrying(file, solvmCmd(file, CHANNEL_ROUNDS, CHANNEL_MESSAGES), runOk);
        mergeTimings(solvm, parseLuaTimings(out.stdout));
      } catch {
        broken.add(file);
      }
    }
    if (hasLua) mergeTimings(native, await luaTimings(nativeCmd("coro_pingpong", CHANNEL_ROUNDS, CHANNEL_MESSAGES)));
  }
  reportChannel("chan_buffered", "buffered(64)", solvm.get("chan_buffered"), BUFFERED_TARGET);
  reportChannel("chan_unbuffered", "unbuffered", solvm.get("chan_unbuffered"), UNBUFFERED_TARGET);
  reportPingPong(solvm.get("coro_pingpong"), native.get("coro_pingpong"));
}

function reportPingPong(s: LuaTiming | undefined, n: LuaTiming | undefined): void {
  const name = "coroutine resume/yield (info)";
  if (!s) {
    log(`  coroutine ping-pong: every SolVM attempt failed`);
    rows.push({ group: "channels", name, solvm: "ERROR", peer: "-", ratio: "-", target: "-", pass: null });
    return;
  }
  const sRate = CHANNEL_MESSAGES / s.best;
  if (!n) {
    log(`  coroutine ping-pong: SolVM ${fmtRate(sRate)}; native ${NATIVE_LUA} not found, skipped`);
    rows.push({ group: "channels", name, solvm: fmtRate(sRate), peer: "n/a", ratio: "n/a", target: "-", pass: null });
    return;
  }
  const nRate = CHANNEL_MESSAGES / n.best;
  log(
    `  coroutine ping-pong (context): SolVM ${fmtRate(sRate)} (${fmtSec(s.best)}) vs native ${fmtRate(nRate)} ` +
      `(${fmtSec(n.best)}) -> ${(s.best / n.best).toFixed(2)}x the time`,
  );
  rows.push({
    group: "channels",
    name,
    solvm: fmtRate(sRate),
    peer: `${fmtRate(nRate)} (native)`,
    ratio: `${(s.best / n.best).toFixed(2)}x`,
    target: "-",
    pass: null,
  });
}

function reportChannel(name: string, label: string, t: LuaTiming | undefined, target: number): void {
  if (!t) {
    log(`  ${label}: every attempt failed (see FAILED lines above) MISS`);
    rows.push({
      group: "channels",
      name: `${name} 1e6 msgs`,
      solvm: `ERROR${failedNote(name)}`,
      peer: "-",
      ratio: "-",
      target: `>= ${fmtRate(target)}`,
      pass: false,
    });
    return;
  }
  const rate = CHANNEL_MESSAGES / t.best;
  const coldRate = CHANNEL_MESSAGES / t.cold;
  const pass = rate >= target && !failedRuns.get(name); // a run that crashed did not deliver its messages
  log(
    `  ${label}: best ${fmtSec(t.best)} = ${fmtRate(rate)} (target >= ${fmtRate(target)}) ${verdict(pass)}; ` +
      `cold round ${fmtSec(t.cold)} = ${fmtRate(coldRate)}${failedNote(name)}`,
  );
  rows.push({
    group: "channels",
    name: `${name} 1e6 msgs`,
    solvm: `${fmtRate(rate)} (cold ${fmtRate(coldRate)})${failedNote(name)}`,
    peer: "-",
    ratio: `${(rate / target).toFixed(2)}x target`,
    target: `>= ${fmtRate(target)}`,
    pass,
  });
}

// Group 4: scale -------------------------------------------------------------

/** Peak RSS in KiB of a child: /usr/bin/time -v if present, else sampled /proc/<pid>/status VmRSS. */
async function runWithPeakRss(cmd: string[], hasTime: boolean): Promise<Run & { peakKiB: number }> {
  if (hasTime) {
    const result = await runOk(["/usr/bin/time", "-v", ...cmd]);
    const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(result.stderr);
    return { ...result, peakKiB: m ? Number(m[1]) : NaN };
  }
  const start = performance.now();
  const child = new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    cwd: ROOT,
    env: CHILD_ENV,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let peakKiB = 0;
  const sampler = setInterval(() => {
    try {
      const status = Deno.readTextFileSync(`/proc/${child.pid}/status`);
      const m = /VmHWM:\s+(\d+)/.exec(status) ?? /VmRSS:\s+(\d+)/.exec(status);
      if (m) peakKiB = Math.max(peakKiB, Number(m[1]));
    } catch { /* the child has exited */ }
  }, 20);
  const out = await child.output();
  clearInterval(sampler);
  const decoder = new TextDecoder();
  const result = {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
    wallMs: performance.now() - start,
  };
  if (result.code !== 0) throw new Error(`${cmd.join(" ")} exited ${result.code}\n${result.stderr}`);
  return { ...result, peakKiB };
}

async function benchScale(hasTime: boolean): Promise<void> {
  log(`== Scale: 100,000 goroutines sleep 0.5 s then send; ${SCALE_RUNS} runs, interleaved with hi.lua start-up runs`);
  if (!hasTime) log("  NOTE: /usr/bin/time not found; peak RSS = max of /proc/<pid>/status VmHWM sampled every 20 ms.");
  const walls: number[] = [];
  const inner: number[] = [];
  const peaks: number[] = [];
  const starts: number[] = [];
  for (let i = 0; i < SCALE_RUNS; i++) {
    starts.push((await runOk(solvmCmd("hi"))).wallMs);
    let r;
    try {
      r = await runRetrying("scale", solvmCmd("scale"), (cmd) => runWithPeakRss(cmd, hasTime));
    } catch {
      log(`  run ${i + 1}: every attempt failed`);
      continue;
    }
    const t = parseLuaTimings(r.stdout).get("scale");
    walls.push(r.wallMs);
    inner.push(t ? t.best * 1000 : NaN);
    peaks.push(r.peakKiB / 1024);
    log(
      `  run ${i + 1}: wall ${r.wallMs.toFixed(0)} ms, inside Lua ${inner.at(-1)!.toFixed(0)} ms, ` +
        `peak RSS ${peaks.at(-1)!.toFixed(1)} MiB`,
    );
  }
  const startup = median(starts);
  if (walls.length === 0) {
    log("  every scale run failed MISS");
    for (const name of ["100k goroutines: wall time", "100k goroutines: peak RSS"]) {
      rows.push({
        group: "scale",
        name,
        solvm: `ERROR${failedNote("scale")}`,
        peer: "-",
        ratio: "-",
        target: "-",
        pass: false,
      });
    }
    return;
  }
  reportScale(walls, inner, peaks, startup);
}

function reportScale(walls: number[], inner: number[], peaks: number[], startup: number): void {
  const wall = median(walls);
  const peak = median(peaks);
  const worst = Math.max(...peaks);
  const passTime = wall <= SCALE_TARGET_MS && !failedRuns.get("scale"); // a crashed run never finished
  const passMem = peak <= SCALE_TARGET_MIB;
  const n = `${walls.length} good run${walls.length > 1 ? "s" : ""}`;
  log(
    `  median wall ${wall.toFixed(0)} ms over ${n} (min ${Math.min(...walls).toFixed(0)}), minus start-up ` +
      `${startup.toFixed(0)} ms = ${(wall - startup).toFixed(0)} ms; inside Lua ${median(inner).toFixed(0)} ms ` +
      `(target <= ${SCALE_TARGET_MS} ms) ${verdict(passTime)}${failedNote("scale")}`,
  );
  log(
    `  peak RSS median ${peak.toFixed(1)} MiB (${(peak * 1.048576).toFixed(0)} MB), worst ${worst.toFixed(1)} MiB ` +
      `(target <= ${SCALE_TARGET_MIB} MiB) ${verdict(passMem)}`,
  );
  rows.push({
    group: "scale",
    name: "100k goroutines: wall time",
    solvm: `${wall.toFixed(0)} ms${failedNote("scale")}`,
    peer: `start-up ${startup.toFixed(0)} ms`,
    ratio: `${(wall / SCALE_TARGET_MS).toFixed(2)}x target`,
    target: `<= ${SCALE_TARGET_MS} ms`,
    pass: passTime,
  });
  rows.push({
    group: "scale",
    name: "100k goroutines: peak RSS",
    solvm: `${peak.toFixed(0)} MiB (worst ${worst.toFixed(0)})`,
    peer: "-",
    ratio: `${(peak / SCALE_TARGET_MIB).toFixed(2)}x target`,
    target: `<= ${SCALE_TARGET_MIB} MiB`,
    pass: passMem,
  });
}

// Group 6: library -----------------------------------------------------------

/** bench/library.ts, loaded only when the group runs (it brings the whole engine into this process). */
async function benchLibraryGroup(): Promise<void> {
  const { benchLibrary } = await import("./library.ts");
  await benchLibrary({
    log,
    row: (row) => rows.push({ group: "library", ...row }),
    failure: (message) => failures.push(message),
    cpuSeconds: () => cpuSeconds("self"),
  });
}

// Group 7: actors ------------------------------------------------------------

/** bench/actors.ts, with SolVM runs retried and their failures listed like every group's. */
async function benchActorsGroup(): Promise<void> {
  const { benchActors } = await import("./actors.ts");
  await benchActors({
    log,
    row: (row) => rows.push({ group: "actors", ...row }),
    failure: (message) => failures.push(message),
    timings: async (file, args) => parseLuaTimings((await runRetrying(file, solvmCmd(file, ...args), runOk)).stdout),
  });
}

// Report ---------------------------------------------------------------------

const SOURCE_DIRS = ["runtime", "host", "lib"];
const SOURCE_FILES = ["main.ts", "mod.ts", "deno.json", "deno.lock"];

/** Modification times of the SolVM sources, to warn when they change mid-run. */
async function sourceStamp(): Promise<Map<string, number>> {
  const stamp = new Map<string, number>();
  const add = async (path: string) => {
    try {
      stamp.set(path, (await Deno.stat(`${ROOT}${path}`)).mtime?.getTime() ?? 0);
    } catch { /* missing file: not stamped */ }
  };
  for (const file of SOURCE_FILES) await add(file);
  for (const dir of SOURCE_DIRS) {
    for await (const entry of Deno.readDir(`${ROOT}${dir}`)) if (entry.isFile) await add(`${dir}/${entry.name}`);
  }
  return stamp;
}

function diffStamps(before: Map<string, number>, after: Map<string, number>): string[] {
  const paths = new Set([...before.keys(), ...after.keys()]);
  return [...paths].filter((p) => before.get(p) !== after.get(p)).sort();
}

function printSummary(): void {
  const header = ["group", "benchmark", "SolVM", "peer", "ratio", "target", "result"];
  const table = [header, ...rows.map((r) => [r.group, r.name, r.solvm, r.peer, r.ratio, r.target, verdict(r.pass)])];
  const widths = header.map((_, c) => Math.max(...table.map((line) => line[c].length)));
  log("\n== Summary");
  for (const [i, line] of table.entries()) {
    log(`| ${line.map((cell, c) => cell.padEnd(widths[c])).join(" | ")} |`);
    if (i === 0) log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  }
  const judged = rows.filter((r) => r.pass !== null);
  log(`\n${judged.filter((r) => r.pass).length}/${judged.length} targets met.`);
  if (failures.length) {
    log(`\n${failures.length} SolVM run(s) failed (each was retried; a failure is a bug, not noise):`);
    for (const f of failures) log(`  - ${f}`);
  }
}

// Group 5: network ------------------------------------------------------------

/** A server child process that printed `LISTENING <port>`. */
interface ServerProcess {
  label: string;
  child: Deno.ChildProcess;
  pid: number;
  port: number;
  /** Whatever the process wrote to stderr so far (capped). */
  stderr(): string;
  /** Set once the process has exited, with its exit code. */
  exited(): number | null;
}

/** Servers started and not yet stopped, so a failure or Ctrl-C can stop them. */
const liveServers = new Set<ServerProcess>();
/** Running wrk processes, stopped by pid on Ctrl-C. */
const liveLoads = new Set<number>();
const OUTPUT_CAP = 64 * 1024;
const LISTEN_TIMEOUT_MS = 20_000;

/**
 * Starts `cmd`, a server that prints `LISTENING <port>` on stdout, and waits
 * for that line. Both pipes are drained for the process's whole life so a
 * chatty server never blocks on a full pipe.
 */
async function startServer(label: string, cmd: string[]): Promise<ServerProcess> {
  const child = new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    cwd: ROOT,
    env: CHILD_ENV,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let err = "";
  let code: number | null = null;
  const keep = (text: string, add: string) => (text.length < OUTPUT_CAP ? text + add : text);
  let onOutput = () => {};
  const drain = async (stream: ReadableStream<Uint8Array>, into: (text: string) => void) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      into(decoder.decode(chunk, { stream: true }));
      onOutput();
    }
  };
  const drained = Promise.all([
    drain(child.stdout, (t) => out = keep(out, t)),
    drain(child.stderr, (t) => err = keep(err, t)),
  ]);
  void child.status.then(async (s) => {
    await drained.catch(() => {});
    code = s.code;
    onOutput();
  });
  const server: ServerProcess = {
    label,
    child,
    pid: child.pid,
    port: 0,
    stderr: () => err,
    exited: () => code,
  };
  liveServers.add(server);
  try {
    server.port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${label}: no LISTENING line within ${LISTEN_TIMEOUT_MS} ms\n${out}\n${err}`)),
        LISTEN_TIMEOUT_MS,
      );
      onOutput = () => {
        const m = /^LISTENING (\d+)\s*$/m.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        } else if (code !== null) {
          clearTimeout(timer);
          reject(new Error(`${label} exited ${code} before listening\n${out}\n${err}`));
        }
      };
      onOutput();
    });
  } catch (e) {
    await stopServer(server);
    throw e;
  } finally {
    onOutput = () => {};
  }
  return server;
}

/** Stops a server by its pid: SIGTERM, then SIGKILL if it is still there after 3 s. */
async function stopServer(server: ServerProcess): Promise<void> {
  if (!liveServers.delete(server)) return;
  const { child } = server;
  const gone = child.status.then(() => true);
  if (server.exited() === null) {
    try {
      Deno.kill(server.pid, "SIGTERM");
    } catch { /* already gone */ }
    const inTime = await Promise.race([gone, new Promise<false>((r) => setTimeout(() => r(false), 3000))]);
    if (!inTime) {
      try {
        Deno.kill(server.pid, "SIGKILL");
      } catch { /* already gone */ }
    }
  }
  await gone;
}

async function stopAllServers(): Promise<void> {
  for (const server of [...liveServers]) await stopServer(server);
}

/** Anything a SolVM server wrote to stderr is a bug report (the scripts print nothing there). */
function stderrWarning(server: ServerProcess): void {
  const text = server.stderr().trim();
  if (text === "") return;
  const lines = text.split("\n");
  log(`  WARNING: ${server.label} (pid ${server.pid}) wrote ${lines.length} line(s) to stderr; first ones:`);
  for (const line of lines.slice(0, 10)) log(`    ${line}`);
  failures.push(`${server.label}: stderr: ${failureSummary(lines.slice(0, 10).join("\n"))}`);
}

/** What one wrk run printed. */
interface WrkResult {
  rps: number;
  requests: number;
  latencyMs: number;
  socketErrors: number;
  socketDetail: string;
  non2xx: number;
}

function parseWrk(stdout: string): WrkResult {
  const num = (re: RegExp) => {
    const m = re.exec(stdout);
    return m ? Number(m[1]) : NaN;
  };
  const lat = /Latency\s+([\d.]+)(us|ms|s)\b/.exec(stdout);
  const latencyMs = lat ? Number(lat[1]) * { us: 1e-3, ms: 1, s: 1000 }[lat[2] as "us" | "ms" | "s"] : NaN;
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const socketErrors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0; // wrk omits the line when 0
  const socketDetail = sock ? sock[0] : "Socket errors: none";
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(stdout);
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    requests: num(/(\d+) requests in/),
    latencyMs,
    socketErrors,
    socketDetail,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
  };
}

async function wrk(port: number, seconds: number): Promise<WrkResult> {
  const args = ["-t1", `-c${NET_CONNECTIONS}`, `-d${seconds}s`, `http://127.0.0.1:${port}/`];
  const child = new Deno.Command("wrk", { args, env: CHILD_ENV, stdin: "null", stdout: "piped", stderr: "piped" })
    .spawn();
  liveLoads.add(child.pid);
  let out;
  try {
    out = await child.output();
  } finally {
    liveLoads.delete(child.pid);
  }
  const decoder = new TextDecoder();
  const [stdout, stderr] = [decoder.decode(out.stdout), decoder.decode(out.stderr)];
  const parsed = parseWrk(stdout);
  if (out.code !== 0 || !Number.isFinite(parsed.rps)) {
    throw new Error(`wrk ${args.join(" ")} exited ${out.code}:\n${stdout}\n${stderr}`);
  }
  return parsed;
}

/** One GET, to check the body before loading a server. */
async function checkBody(port: number, expected: string, label: string): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${port}/`);
  const body = await response.text();
  const type = response.headers.get("content-type");
  if (response.status !== 200 || body !== expected || type !== "application/json") {
    throw new Error(`${label}: GET / answered ${response.status} ${type} ${JSON.stringify(body)}`);
  }
}

function fmtReq(rps: number): string {
  return `${(rps / 1000).toFixed(1)}k req/s`;
}

function fmtMsgs(rate: number): string {
  return `${(rate / 1000).toFixed(1)}k msg/s`;
}

function fmtLatency(ms: number): string {
  return ms >= 1 ? `${ms.toFixed(2)} ms` : `${(ms * 1000).toFixed(0)} us`;
}

const HTTP_BODY = JSON.stringify({ message: "hello", n: 1 });

async function benchNet(hasWrk: boolean): Promise<void> {
  const onSigint = () => {
    for (const pid of liveLoads) {
      try {
        Deno.kill(pid, "SIGTERM");
      } catch { /* already gone */ }
    }
    stopAllServers().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSigint);
  try {
    if (!hasWrk) log("== HTTP: wrk not found (apt-get install wrk): HTTP and sustained benchmarks skipped");
    const parts: [string, () => Promise<void>][] = [["HTTP", benchHttp], ["WebSocket", benchWs], [
      "sustained",
      benchSustained,
    ]];
    for (const [name, bench] of parts) {
      if (!hasWrk && name !== "WebSocket") continue;
      try {
        await bench();
      } catch (e) {
        const message = failureSummary(e instanceof Error ? e.message : String(e));
        log(`  ERROR in ${name}: ${message}`);
        failures.push(`net ${name}: ${message}`);
        rows.push({
          group: "net",
          name: `${name} (failed, see log)`,
          solvm: "ERROR",
          peer: "-",
          ratio: "-",
          target: "-",
          pass: false,
        });
      }
    }
  } finally {
    await stopAllServers();
    Deno.removeSignalListener("SIGINT", onSigint);
  }
}

async function benchHttp(): Promise<void> {
  log(
    `== HTTP: wrk -t1 -c${NET_CONNECTIONS} -d${NET_WRK_SECONDS}s, Lua JSON handler vs bare Deno.serve, ` +
      `interleaved peer/SolVM x ${NET_ROUNDS}, best of each`,
  );
  const peer = await startServer("deno_hello.ts", [Deno.execPath(), "run", "-A", "bench/peers/deno_hello.ts", "0"]);
  const solvm = await startServer("http_json.lua", solvmCmd("http_json", 0));
  try {
    await checkBody(peer.port, HTTP_BODY, peer.label);
    await checkBody(solvm.port, HTTP_BODY, solvm.label);
    const results = { peer: [] as WrkResult[], solvm: [] as WrkResult[] };
    for (let round = 1; round <= NET_ROUNDS; round++) {
      for (const [who, server] of [["peer", peer], ["solvm", solvm]] as const) {
        const [r, cpu] = await withCpu(server.pid, () => wrk(server.port, NET_WRK_SECONDS));
        results[who].push(r);
        log(
          `  round ${round} ${server.label}: ${fmtReq(r.rps)}, ${r.requests} requests, latency avg ` +
            `${fmtLatency(r.latencyMs)}, ${r.socketDetail}, non-2xx ${r.non2xx}; server CPU ${pct(cpu)}`,
        );
      }
    }
    for (const server of [peer, solvm]) {
      if (server.exited() !== null) throw new Error(`${server.label} exited ${server.exited()} during the load`);
    }
    stderrWarning(solvm);
    const best = (list: WrkResult[]) => list.reduce((a, b) => (b.rps > a.rps ? b : a));
    const s = best(results.solvm);
    const p = best(results.peer);
    const errors = [...results.solvm].reduce((a, r) => a + r.socketErrors + r.non2xx, 0);
    const ratio = s.rps / p.rps;
    const pass = ratio >= HTTP_TARGET && errors === 0;
    log(
      `  best: SolVM ${fmtReq(s.rps)} vs Deno.serve ${fmtReq(p.rps)} -> ${ratio.toFixed(2)}x ` +
        `(target >= ${HTTP_TARGET}x) ${verdict(pass)}${errors ? ` [${errors} SolVM errors]` : ""}`,
    );
    log(`  latency avg (info), best runs: SolVM ${fmtLatency(s.latencyMs)}, Deno.serve ${fmtLatency(p.latencyMs)}`);
    rows.push({
      group: "net",
      name: "HTTP JSON, wrk -c64 (best of 2)",
      solvm: fmtReq(s.rps) + (errors ? ` [${errors} errors]` : ""),
      peer: `${fmtReq(p.rps)} (Deno.serve)`,
      ratio: `${ratio.toFixed(2)}x`,
      target: `>= ${HTTP_TARGET}x`,
      pass,
    });
    rows.push({
      group: "net",
      name: "HTTP latency avg (info)",
      solvm: fmtLatency(s.latencyMs),
      peer: fmtLatency(p.latencyMs),
      ratio: `${(s.latencyMs / p.latencyMs).toFixed(2)}x`,
      target: "-",
      pass: null,
    });
  } finally {
    await stopServer(peer);
    await stopServer(solvm);
  }
}

/** What one WebSocket load run counted. */
interface WsResult {
  messages: number;
  seconds: number;
  rate: number;
  /** Echoes that were not the message expected next on their connection. */
  mismatches: number;
  /** Connections that failed or closed before the end. */
  errors: number;
}

/**
 * Opens {@linkcode WS_CONNECTIONS} connections to `url`, keeps
 * {@linkcode WS_WINDOW} messages in flight on each (every echo sends the
 * next), and counts echoes for {@linkcode WS_SECONDS} after a warm-up.
 * Messages are sequence numbers so each echo is checked against the next
 * expected one.
 */
async function wsLoad(url: string): Promise<WsResult> {
  let counting = false;
  let stopping = false;
  let received = 0;
  let mismatches = 0;
  let errors = 0;
  const sockets: WebSocket[] = [];
  const closed: Promise<void>[] = [];
  try {
    for (let c = 0; c < WS_CONNECTIONS; c++) {
      const socket = new WebSocket(url);
      sockets.push(socket);
      let next = 0;
      let expect = 0;
      closed.push(new Promise((resolve) => socket.addEventListener("close", () => resolve())));
      socket.onmessage = (e) => {
        if (e.data !== String(expect)) mismatches++;
        expect++;
        if (counting) received++;
        if (!stopping) socket.send(String(next++));
      };
      socket.onclose = () => {
        if (!stopping) errors++;
      };
      socket.onerror = () => {
        if (!stopping) errors++;
      };
      await new Promise<void>((resolve, reject) => {
        socket.addEventListener("open", () => resolve(), { once: true });
        socket.addEventListener("error", () => reject(new Error(`cannot open ${url}`)), { once: true });
      });
      for (let i = 0; i < WS_WINDOW; i++) socket.send(String(next++));
    }
    await new Promise((r) => setTimeout(r, WS_WARMUP_MS));
    counting = true;
    const start = performance.now();
    await new Promise((r) => setTimeout(r, WS_SECONDS * 1000));
    counting = false;
    const seconds = (performance.now() - start) / 1000;
    return { messages: received, seconds, rate: received / seconds, mismatches, errors };
  } finally {
    stopping = true;
    for (const socket of sockets) {
      if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) socket.close(1000);
    }
    await Promise.race([Promise.all(closed), new Promise((r) => setTimeout(r, 3000))]);
  }
}

async function benchWs(): Promise<void> {
  log(
    `== WebSocket echo: ${WS_CONNECTIONS} connections x ${WS_WINDOW} messages in flight, ${WS_SECONDS} s counted ` +
      `after ${WS_WARMUP_MS} ms warm-up; Lua handler vs bare Deno.upgradeWebSocket, interleaved x ${NET_ROUNDS}`,
  );
  const peer = await startServer("deno_ws_echo.ts", [Deno.execPath(), "run", "-A", "bench/peers/deno_ws_echo.ts", "0"]);
  const solvm = await startServer("ws_echo.lua", solvmCmd("ws_echo", 0));
  try {
    const results = { peer: [] as WsResult[], solvm: [] as WsResult[] };
    for (let round = 1; round <= NET_ROUNDS; round++) {
      for (const [who, server, path] of [["peer", peer, "/"], ["solvm", solvm, "/ws"]] as const) {
        const cpu0 = [cpuSeconds(server.pid), cpuSeconds("self")];
        const t0 = performance.now();
        const r = await wsLoad(`ws://127.0.0.1:${server.port}${path}`);
        const wall = (performance.now() - t0) / 1000;
        const [serverCpu, clientCpu] = [cpuSeconds(server.pid), cpuSeconds("self")].map((c, i) => (c - cpu0[i]) / wall);
        results[who].push(r);
        log(
          `  round ${round} ${server.label}: ${fmtMsgs(r.rate)} (${r.messages} echoes in ${r.seconds.toFixed(2)} s), ` +
            `${r.mismatches} out-of-order/wrong, ${r.errors} connection errors; CPU server ${pct(serverCpu)}, ` +
            `client ${pct(clientCpu)}`,
        );
      }
    }
    for (const server of [peer, solvm]) {
      if (server.exited() !== null) throw new Error(`${server.label} exited ${server.exited()} during the load`);
    }
    stderrWarning(solvm);
    const best = (list: WsResult[]) => list.reduce((a, b) => (b.rate > a.rate ? b : a));
    const s = best(results.solvm);
    const p = best(results.peer);
    const bad = results.solvm.reduce((a, r) => a + r.mismatches + r.errors, 0);
    const ratio = s.rate / p.rate;
    const pass = ratio >= WS_TARGET && bad === 0;
    log(
      `  best: SolVM ${fmtMsgs(s.rate)} vs Deno ${fmtMsgs(p.rate)} -> ${ratio.toFixed(2)}x ` +
        `(target >= ${WS_TARGET}x) ${verdict(pass)}${bad ? ` [${bad} SolVM errors]` : ""}`,
    );
    rows.push({
      group: "net",
      name: `WebSocket echo, ${WS_CONNECTIONS}x${WS_WINDOW} in flight`,
      solvm: fmtMsgs(s.rate) + (bad ? ` [${bad} errors]` : ""),
      peer: `${fmtMsgs(p.rate)} (Deno)`,
      ratio: `${ratio.toFixed(2)}x`,
      target: `>= ${WS_TARGET}x`,
      pass,
    });
  } finally {
    await stopServer(peer);
    await stopServer(solvm);
  }
}

/** VmRSS of `pid` in KiB, or NaN once it has gone. */
function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** CPU seconds (user + system) used so far by `pid` ("self" = this process), from /proc/<pid>/stat. */
function cpuSeconds(pid: number | "self"): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** Runs `load` and returns its result with the CPU share `pid` used meanwhile (1 = one core). */
async function withCpu<T>(pid: number | "self", load: () => Promise<T>): Promise<[T, number]> {
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  const result = await load();
  return [result, (cpuSeconds(pid) - cpu0) / ((performance.now() - t0) / 1000)];
}

const pct = (share: number) => `${(share * 100).toFixed(0)}%`;

const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;

async function benchSustained(): Promise<void> {
  const total = SUSTAIN_SECONDS;
  log(
    `== Sustained: wrk -t1 -c${NET_CONNECTIONS} -d${total}s on a fresh http_json.lua server ` +
      `(SOLVM_BENCH_SUSTAIN=${total}); VmRSS of the deno process every second`,
  );
  if (!(total >= 2)) throw new Error(`SOLVM_BENCH_SUSTAIN must be a number of seconds >= 2, got ${total}`);
  const server = await startServer("http_json.lua (sustained)", solvmCmd("http_json", 0));
  const samples: { t: number; kib: number }[] = [];
  let sampler: ReturnType<typeof setInterval> | undefined;
  try {
    await checkBody(server.port, HTTP_BODY, server.label);
    const idle = rssKiB(server.pid);
    const start = performance.now();
    const sample = () => samples.push({ t: (performance.now() - start) / 1000, kib: rssKiB(server.pid) });
    sample();
    sampler = setInterval(sample, 1000);
    const [r, cpu] = await withCpu(server.pid, () => wrk(server.port, total));
    clearInterval(sampler);
    sampler = undefined;
    const alive = server.exited() === null;
    const after = rssKiB(server.pid);
    stderrWarning(server);
    const half = total / 2;
    const second = samples.filter((s) => s.t >= half - 0.5 && s.t <= total + 0.5 && Number.isFinite(s.kib));
    const trace = samples.filter((_, i) => i % 5 === 0).map((s) => `${s.t.toFixed(0)}s ${(s.kib / 1024).toFixed(0)}`);
    log(`  VmRSS MiB every 5 s: ${trace.join(", ")}`);
    const errors = r.socketErrors + r.non2xx;
    const passErrors = errors === 0 && alive;
    log(
      `  ${fmtReq(r.rps)}, ${r.requests} requests, latency avg ${fmtLatency(r.latencyMs)}, ${r.socketDetail}, ` +
        `non-2xx ${r.non2xx}, server CPU ${pct(cpu)}${alive ? "" : `, SERVER EXITED ${server.exited()}`} ` +
        `-> zero errors ${verdict(passErrors)}`,
    );
    rows.push({
      group: "net",
      name: `sustained ${total} s: socket errors`,
      solvm: `${errors} (${fmtReq(r.rps)})`,
      peer: "-",
      ratio: "-",
      target: "0",
      pass: passErrors,
    });
    if (second.length < 2) {
      log("  too few RSS samples in the second half MISS");
      rows.push({
        group: "net",
        name: `sustained ${total} s: RSS 2nd half`,
        solvm: "no samples",
        peer: "-",
        ratio: "-",
        target: "within 10%",
        pass: false,
      });
      return;
    }
    const first = second[0].kib;
    const last = second.at(-1)!.kib;
    const min = Math.min(...second.map((s) => s.kib));
    const max = Math.max(...second.map((s) => s.kib));
    const drift = (last - first) / first;
    const spread = Math.max(max - first, first - min) / first;
    const passRss = Math.abs(drift) <= SUSTAIN_RSS_TOLERANCE && spread <= SUSTAIN_RSS_TOLERANCE;
    log(
      `  VmRSS idle ${mib(idle)}; second half (t=${second[0].t.toFixed(0)}-${second.at(-1)!.t.toFixed(0)} s): ` +
        `start ${mib(first)}, end ${mib(last)} (${drift >= 0 ? "+" : ""}${(drift * 100).toFixed(1)}%), ` +
        `min ${mib(min)}, max ${mib(max)}; after the load ${mib(after)} ` +
        `(target: every sample within ${SUSTAIN_RSS_TOLERANCE * 100}% of the start) ${verdict(passRss)}`,
    );
    rows.push({
      group: "net",
      name: `sustained ${total} s: RSS 2nd half`,
      solvm: `${mib(first)} -> ${mib(last)} (max ${mib(max)})`,
      peer: `idle ${mib(idle)}`,
      ratio: `${drift >= 0 ? "+" : ""}${(drift * 100).toFixed(1)}%`,
      target: "within 10%",
      pass: passRss,
    });
  } finally {
    if (sampler !== undefined) clearInterval(sampler);
    await stopServer(server);
  }
}

async function main(args: string[]): Promise<void> {
  const filter = args[0];
  if (filter !== undefined && !GROUPS.includes(filter as Group)) {
    console.error(`usage: deno task bench [${GROUPS.join("|")}]`);
    Deno.exit(2);
  }
  const wanted = (g: Group) => filter === undefined || filter === g;
  const hasLua = await available(NATIVE_LUA, ["-v"]);
  const hasHyperfine = await available("hyperfine", ["--version"]);
  const hasTime = await available("/usr/bin/time", ["-v", "true"]);
  const hasWrk = await available("wrk", ["--version"]);
  if (!hasLua) log(`NOTE: ${NATIVE_LUA} not found: native comparisons are skipped.`);
  if (!hasHyperfine) log("NOTE: hyperfine not found: start-up is timed from Deno instead.");
  if (!hasWrk && wanted("net")) log("NOTE: wrk not found: the HTTP and sustained network benchmarks are skipped.");
  log(
    `SolVM benchmarks, ${new Date().toISOString()}, Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} CPUs`,
  );
  await runOk(solvmCmd("hi")); // primes Deno's module cache so no group pays for it
  const started = performance.now();
  const sourcesBefore = await sourceStamp();
  const groups: [Group, () => Promise<void>][] = [
    ["cpu", () => benchCpu(hasLua)],
    ["startup", () => benchStartup(hasHyperfine, hasLua)],
    ["channels", () => benchChannels(hasLua)],
    ["scale", () => benchScale(hasTime)],
    ["net", () => benchNet(hasWrk)],
    ["library", benchLibraryGroup],
    ["actors", benchActorsGroup],
  ];
  for (const [group, bench] of groups) {
    if (!wanted(group)) continue;
    try {
      await bench();
    } catch (e) {
      log(`  ERROR in group ${group}: ${failureSummary(e instanceof Error ? e.message : String(e))}`);
      rows.push({ group, name: "(group failed, see log)", solvm: "-", peer: "-", ratio: "-", target: "-", pass: null });
    }
  }
  printSummary();
  const changed = diffStamps(sourcesBefore, await sourceStamp());
  if (changed.length) {
    log(`\nWARNING: SolVM sources changed during this run, numbers may mix versions: ${changed.join(", ")}`);
  }
  log(`Total ${((performance.now() - started) / 1000).toFixed(0)} s.`);
}

if (import.meta.main) await main(Deno.args);
