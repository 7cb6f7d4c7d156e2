/**
 * SolVM benchmark report: `deno task bench [group]`, group one of
 * `cpu`, `startup`, `channels`, `scale` (default: all of them).
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
 *
 * @module
 */

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

const STARTUP_RUNS = 30;
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

const GROUPS = ["cpu", "startup", "channels", "scale"] as const;
type Group = typeof GROUPS[number];

/** One line of the summary table. */
interface Row {
  group: Group;
  name: string;
  solvm: string;
  peer: string;
  ratio: string;
  target: string;
  /** true = PASS, false = MISS, null = information only or skipped. */
  pass: boolean | null;
}

const rows: Row[] = [];

/** The result of one child process. */
interface Run {
  code: number;
  stdout: string;
  stderr: string;
  wallMs: number;
}

/** What a Lua benchmark script printed for one name. */
interface LuaTiming {
  best: number;
  cold: number;
  checks: Set<string>;
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

function fmtSec(seconds: number): string {
  return seconds >= 1 ? `${seconds.toFixed(3)} s` : `${(seconds * 1000).toFixed(1)} ms`;
}

function fmtRate(perSecond: number): string {
  return perSecond >= 1e6 ? `${(perSecond / 1e6).toFixed(2)}M/s` : `${(perSecond / 1e3).toFixed(0)}k/s`;
}

function verdict(pass: boolean | null): string {
  return pass === null ? "-" : pass ? "PASS" : "MISS";
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

interface HyperfineResult {
  command: string;
  mean: number;
  stddev: number;
  median: number;
  min: number;
  exit_codes: number[];
}

async function benchStartup(hasHyperfine: boolean, hasLua: boolean): Promise<void> {
  log(`== Start-up: solvm hi.lua vs plain wasmoon printing "hi"`);
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

async function startupHyperfine(commands: string[][]): Promise<HyperfineResult[]> {
  const json = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await runOk([
      "hyperfine",
      "-N",
      "--ignore-failure",
      "--warmup",
      String(STARTUP_WARMUP),
      "--runs",
      String(STARTUP_RUNS),
      "--export-json",
      json,
      ...commands.map((c) => c.join(" ")),
    ]);
    const data = JSON.parse(await Deno.readTextFile(json)) as { results: HyperfineResult[] };
    for (const r of data.results) {
      const failed = r.exit_codes.filter((c) => c !== 0);
      if (failed.length) log(`  WARNING: ${r.command} failed ${failed.length} of ${r.exit_codes.length} runs`);
    }
    return data.results;
  } finally {
    await Deno.remove(json);
  }
}

/** Without hyperfine: the same commands, interleaved, timed from here. */
async function startupFallback(commands: string[][]): Promise<HyperfineResult[]> {
  log(`  NOTE: hyperfine not found; timing ${STARTUP_RUNS} interleaved runs per command from Deno instead.`);
  const times = commands.map(() => [] as number[]);
  for (let i = 0; i < STARTUP_WARMUP + STARTUP_RUNS; i++) {
    for (let c = 0; c < commands.length; c++) {
      const { wallMs } = await runOk(commands[c]);
      if (i >= STARTUP_WARMUP) times[c].push(wallMs / 1000);
    }
  }
  return commands.map((cmd, c) => {
    const t = times[c];
    const mean = t.reduce((a, b) => a + b, 0) / t.length;
    const stddev = Math.sqrt(t.reduce((a, b) => a + (b - mean) ** 2, 0) / t.length);
    return { command: cmd.join(" "), mean, stddev, median: median(t), min: Math.min(...t), exit_codes: [] };
  });
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

// Report ---------------------------------------------------------------------

const SOURCE_DIRS = ["runtime", "host"];
const SOURCE_FILES = ["main.ts", "deno.json", "deno.lock"];

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
  if (!hasLua) log(`NOTE: ${NATIVE_LUA} not found: native comparisons are skipped.`);
  if (!hasHyperfine) log("NOTE: hyperfine not found: start-up is timed from Deno instead.");
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
