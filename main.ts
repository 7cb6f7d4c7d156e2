/**
 * The `solvm` command line: flags, the time limit and exit codes. The
 * script itself runs in a worker (host/worker.ts) so that it can be stopped
 * at any moment.
 *
 * @module
 */
import { drainSharedOutput, newSharedOutput, sharedOutput, writeStderr } from "./runtime/output.ts";
import type { FlushFiles, WorkerReply, WorkerRequest } from "./host/worker.ts";
import type { ActorThreadStart } from "./host/actor_worker.ts";
import type { RunRequest } from "./host/run.ts";
import type { WatchedFiles } from "./host/debug.ts";
import type { AccessKind, DenyLists } from "./host/_permissions.ts";
import { RunningCommands } from "./host/_process_group.ts";
import { ResidentShare } from "./host/_resident.ts";
import { LineInterrupt } from "./host/_interrupt.ts";
import { DEFAULT_MAX_ACTORS } from "./host/_actor_system.ts";
import { after } from "./runtime/_timer.ts";
import { LOG_LEVELS, type LogLevel } from "./runtime/log.ts";
import meta from "./deno.json" with { type: "json" };

const DEFAULT_TIMEOUT = "5s";
const EXIT_TIMEOUT = 124;
const EXIT_USAGE = 2;
const DEFAULT_MEMORY_LIMIT_MB = 1024;
const DEFAULT_MAX_GOROUTINES = 100_000;
/** How long a signal, the time limit or a --watch reload waits for the Lua threads to write out their open files. */
const FLUSH_GRACE_MS = 200;

const USAGE = `SolVM ${meta.version}: a Lua 5.4 runtime with goroutines, channels and more.

Usage:
  solvm [options] <script.lua> [args...]   run a script; args reach Lua in the arg table
                                           (when every one ends in .lua they run as scripts: put -- before
                                           them; a -- right after the script is always removed: write
                                           -- -- to pass one)
  solvm [options] - [args...]              run the script read from standard input
  solvm [options] a.lua b.lua ...          run several scripts at once (every argument ends in .lua),
                                           each in its own thread; output
                                           lines carry the script's name; the exit code is the first
                                           non-zero one, in the order given
  solvm [options]                          start the interactive REPL; with standard input not a
                                           terminal, run the script read from it (as solvm -)
  solvm [options] -i [script.lua [args...]]
                                           start the REPL even when standard input is not a terminal;
                                           with a script, run its main chunk first, then the REPL in
                                           its state (as lua5.4 -i)

Options:
  -timeout, --timeout <duration>   stop the script after this long: 500ms, 10s, 2m, 1h30m
                                   (Go's durations, or bare seconds; default ${DEFAULT_TIMEOUT}; 0 = no limit).
                                   The default limit is suspended while a server, a TCP listener, a
                                   UDP receiver, an interval, a cron job or a file watch is active,
                                   or while the script waits for a line typed at a terminal; an
                                   explicit limit always applies.
  --memory-limit <MB>              memory the Lua state may use (default 1024, at most 2048); past it
                                   an allocation raises a catchable "not enough memory" error
  --max-goroutines <n>             goroutines started by go() that may be alive at once (default 100000);
                                   go() beyond it raises an error
  --max-actors <n>                 actors (spawn, supervised children, nested ones too) alive at once
                                   (default ${DEFAULT_MAX_ACTORS}; each is a thread, about 13 MB); spawn beyond it
                                   raises an error
  --max-instructions <n>           stop the script after n Lua VM instructions (counted per run, in steps
                                   of 1000; counting makes Lua about 2x slower)
  --allow-read[=paths]             confine the script: allow reading (all, or these comma-separated paths);
  --allow-write[=paths]            likewise --allow-net[=hosts], --allow-env[=names], --allow-run[=programs],
  --allow-net[=hosts] ...          --allow-sys[=names]. With any of these, or --sandbox, the script gets only what
                                   is listed plus reading its own folder; without, it gets Deno's own permissions
  --deny-read[=paths] ...          refuse an access even where an --allow-* flag (or Deno) grants it; likewise
                                   --deny-write, --deny-net, --deny-env, --deny-run, --deny-sys
  --sandbox                        allow nothing beyond reading the script's folder
  -A, --allow-all                  allow everything
  --watch                          run again when the script or a module it imported or required changes
                                   (no default time limit; an explicit --timeout limits each run)
  -v, --version                    print the version and exit
  -h, --help                       print this help and exit

Environment:
  SOLVM_LOG=error|warn|info|debug|trace    runtime logging to stderr (actors, restarts, servers);
                                           default: errors only
  SOLVM_DNS_SERVER=ip[:port]               the DNS server resolve_dns asks for record types (MX, TXT, ...);
                                           default: the system's; applies under --sandbox and --allow-* too

Exit codes:
  0 success, 1 uncaught error, 2 deadlock or bad usage, 124 timeout,
  n when the script calls os.exit(n), 130, 143 or 129 when SIGINT (Ctrl-C),
  SIGTERM or SIGHUP ends it.
`;

/** What the command line asked for. */
interface Options {
  script?: string;
  args: string[];
  /** Milliseconds, 0 = none. */
  timeoutMs: number;
  timeoutText: string;
  explicitTimeout: boolean;
  watch: boolean;
  /** Megabytes. */
  memoryLimit: number;
  maxGoroutines: number;
  maxActors: number;
  maxInstructions?: number;
  /** `-i`: the REPL even when standard input is not a terminal. */
  repl: boolean;
  /** Scripts run together when more than one is given (`solvm a.lua b.lua`); then `script` is the first. */
  scripts: string[];
  /** Permissions given on the command line; undefined = the script gets Deno's own. */
  permissions?: Permissions;
  /** What `--deny-<kind>=a,b` refuses; `true` for a bare `--deny-<kind>`. */
  deny: DenyLists;
  /** `-A` or `--allow-all` as given, for messages about what it asks for. */
  allowAll?: string;
}

/** What a confined script may touch: true for all, a list, or nothing. */
type Grant = boolean | string[];

/** The script's permissions when the command line confines it. */
interface Permissions {
  read: Grant;
  write: Grant;
  net: Grant;
  env: Grant;
  run: Grant;
  sys: Grant;
}

const PERMISSION_KINDS = ["read", "write", "net", "env", "run", "sys"] as const;

class UsageError extends Error {}

/**
 * An entry of `--deny-net=` as SolVM matches it (`host` or `host:port`, an IPv6 address in brackets): a bare IPv6
 * address (`::1`) is put in brackets, and what Deno itself would refuse (an empty host, a URL, a bad port) is bad usage.
 */
function denyNetEntry(flag: string, item: string): string {
  if (!item.startsWith("[") && item.split(":").length > 2) return `[${item}]`;
  const port = /^(?:\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(item)?.[1];
  const host = port === undefined ? item : item.slice(0, item.length - port.length - 1);
  if (host === "" || item.includes("/") || (port !== undefined && !(/^\d+$/.test(port) && Number(port) <= 65535))) {
    throw new UsageError(`${flag}=${item}: not a host or host:port`);
  }
  return item;
}

/** The system values Deno 2.9 names (its `--allow-sys` list; `username` is its old name for userInfo). */
const SYS_NAMES = new Set(
  ("hostname inspector osRelease osUptime loadavg networkInterfaces systemMemoryInfo uid gid cpus homedir getegid " +
    "statfs getPriority setPriority userInfo username setegid seteuid setgid setuid").split(" "),
);

/** An entry of `--deny-sys=`: a name Deno does not know would deny nothing, so it is bad usage, as Deno's own flag has it. */
function denySysEntry(flag: string, item: string): string {
  if (!SYS_NAMES.has(item)) {
    throw new UsageError(`${flag}=${item}: not a system value Deno knows (${[...SYS_NAMES].join(", ")})`);
  }
  return item;
}

/** Adds `--allow-<kind>[=a,b]` to `permissions`: undefined for the bare flag. */
function allow(permissions: Permissions, kind: keyof Permissions, list: string[] | undefined): void {
  if (list === undefined) permissions[kind] = true;
  else if (permissions[kind] !== true) permissions[kind] = [...(permissions[kind] || []) as string[], ...list];
}

/**
 * The Worker permissions for a confined script: what was granted, plus
 * reading the script's own folder (its modules and assets).
 */
function workerPermissions(permissions: Permissions, script: string | undefined): Deno.PermissionOptionsObject {
  const folder = script ? (script.includes("/") ? script.slice(0, script.lastIndexOf("/")) || "/" : ".") : undefined;
  const read = permissions.read === true
    ? true
    : [...(permissions.read || []) as string[], ...(folder ? [folder] : [])];
  return { ...permissions, read, ffi: false, import: false };
}

/** The kinds a bare `--deny-<kind>` refuses outright. */
function deniedKinds(options: Options): AccessKind[] {
  return PERMISSION_KINDS.filter((kind) => options.deny[kind] === true);
}

/** The Worker permissions for `script`: what was granted (or Deno's own), less what a bare `--deny-<kind>` refuses. */
function confinement(options: Options, script: string | undefined): Deno.PermissionOptionsObject | undefined {
  // -A is Deno's own permissions, which are more than every kind in full (/dev/stdin and /proc/self need them all).
  const confined = options.permissions && !options.allowAll;
  if (!confined && deniedKinds(options).length === 0) return undefined;
  const granted: Deno.PermissionOptionsObject = confined
    ? workerPermissions(options.permissions!, script)
    : Object.fromEntries(PERMISSION_KINDS.map((kind) => [kind, "inherit"]));
  for (const kind of deniedKinds(options)) granted[kind] = false;
  return granted;
}

/** The field of Deno's permission descriptor that names one item of each kind. */
const DESCRIPTOR_FIELDS = { read: "path", write: "path", net: "host", env: "variable", run: "command", sys: "kind" };

/**
 * A usage error for the first access in `granted` that Deno itself was not
 * given, naming the SolVM flag that asks for it and the Deno flag to add: a
 * worker cannot get more than its parent has (Deno throws NotCapable).
 */
function beyondDeno(options: Options, granted: Deno.PermissionOptionsObject): string | undefined {
  for (const kind of PERMISSION_KINDS) {
    const grant = granted[kind];
    for (const item of grant === true ? [undefined] : Array.isArray(grant) ? grant.map(String) : []) {
      const descriptor = { name: kind, ...(item === undefined ? {} : { [DESCRIPTOR_FIELDS[kind]]: item }) };
      const flag = `--allow-${kind}${item === undefined ? "" : `=${item}`}`;
      try {
        if (Deno.permissions.querySync(descriptor as Deno.PermissionDescriptor).state === "granted") continue;
      } catch (e) {
        return `${flag}: not a value Deno can grant: ${e instanceof Error ? e.message : e}`;
      }
      const asked = options.permissions?.[kind];
      const asker = asked === true ? options.allowAll ?? flag : Array.isArray(asked) && asked.includes(item!) && flag;
      // The only grant no flag asked for is reading the script's own folder.
      if (!asker) return `a confined script may read its own folder, ${item}: Deno may not (run Deno with ${flag})`;
      return `${asker} asks for ${kind} access Deno was not given (run Deno with ${flag})`;
    }
  }
  return undefined;
}

/**
 * The `--allow-<kind>=<item>` in `granted` that Deno refuses, and why: where Deno holds a kind in full it looks at
 * such values only as a worker starts, and then names none. Each is tried alone, in a worker given only it.
 */
function refusedByWorker(granted: Deno.PermissionOptionsObject): string | undefined {
  for (const kind of PERMISSION_KINDS) {
    const grant = granted[kind];
    for (const item of Array.isArray(grant) ? grant.map(String) : []) {
      try {
        new Worker("data:text/javascript,", { type: "module", deno: { permissions: { [kind]: [item] } } }).terminate();
      } catch (e) {
        return `--allow-${kind}=${item}: not a value Deno can grant: ${e instanceof Error ? e.message : e}`;
      }
    }
  }
  return undefined;
}

/** Milliseconds in each unit of Go's time.ParseDuration. */
const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  "μs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a duration as Go's time.ParseDuration does ("500ms", "10s", "1h30m", "1m0.5s"), or a bare number of
 * seconds: milliseconds, and the duration as messages show it ("2" is "2s").
 */
function parseDuration(text: string): { ms: number; shown: string } {
  const trimmed = text.trim().replace(/^\+/, ""); // Go's durations may carry a sign
  if (/^\d+(?:\.\d+)?$/.test(trimmed)) return { ms: Number(trimmed) * 1000, shown: `${trimmed}s` };
  const parts = [...trimmed.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/gy)];
  if (parts.length === 0 || parts.map(([part]) => part).join("") !== trimmed) {
    throw new UsageError(`invalid duration "${text}" (examples: 500ms, 10s, 2m, 1h30m)`);
  }
  return { ms: parts.reduce((ms, [, n, unit]) => ms + Number(n) * DURATION_UNITS[unit], 0), shown: trimmed };
}

function noPermissions(): Permissions {
  return { read: false, write: false, net: false, env: false, run: false, sys: false };
}

function positiveInteger(flag: string, value: string | undefined): number {
  const n = Number(value);
  if (value === undefined || !Number.isInteger(n) || n < 1) {
    throw new UsageError(`${flag} needs a positive whole number, got ${value ?? "nothing"}`);
  }
  return n;
}

/** Flags that are on or off: `--watch=no` is a mistake, not a way to turn watching off. */
const FLAGS_WITHOUT_VALUE = [
  "-h",
  "--help",
  "-v",
  "--version",
  "-i",
  "--watch",
  "--sandbox",
  "-A",
  "--allow-all",
  "--",
];

function parseArgs(argv: string[]): Options | "help" | "version" {
  const options: Options = {
    args: [],
    timeoutMs: parseDuration(DEFAULT_TIMEOUT).ms,
    timeoutText: DEFAULT_TIMEOUT,
    explicitTimeout: false,
    watch: false,
    memoryLimit: DEFAULT_MEMORY_LIMIT_MB,
    maxGoroutines: DEFAULT_MAX_GOROUTINES,
    maxActors: DEFAULT_MAX_ACTORS,
    deny: {},
    scripts: [],
    repl: false,
  };
  /** The first `--allow-<kind>=list` or `--sandbox` given: -A beside it is bad usage. */
  let narrowing: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("-") || arg === "-") {
      options.script = arg;
      options.args = argv.slice(i + 1);
      // solvm a.lua b.lua c.lua runs them together; `--` passes .lua names as arguments instead.
      if (options.args.length > 0 && options.args.every((a) => a.endsWith(".lua"))) {
        options.scripts = [arg, ...options.args];
        options.args = [];
      } else if (options.args[0] === "--") options.args = options.args.slice(1);
      break;
    }
    const [flag, inline] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [
      arg,
      undefined,
    ];
    if (inline !== undefined && FLAGS_WITHOUT_VALUE.includes(flag)) {
      throw new UsageError(`${flag} takes no value, got ${arg}`);
    }
    switch (flag) {
      case "-h":
      case "--help":
        return "help";
      case "-v":
      case "--version":
        return "version";
      case "-timeout":
      case "--timeout": {
        const value = inline ?? argv[++i];
        if (value === undefined) throw new UsageError(`${flag} needs a duration (examples: 500ms, 10s, 2m, 1h30m)`);
        ({ ms: options.timeoutMs, shown: options.timeoutText } = parseDuration(value));
        options.explicitTimeout = true;
        break;
      }
      case "-i":
        options.repl = true;
        break;
      case "--watch":
        options.watch = true;
        break;
      case "--sandbox":
        options.permissions ??= noPermissions();
        narrowing ??= arg;
        break;
      case "-A":
      case "--allow-all":
        options.permissions = { read: true, write: true, net: true, env: true, run: true, sys: true };
        options.allowAll = flag;
        break;
      case "--memory-limit": {
        const value = inline ?? argv[++i];
        const mb = Number(value);
        if (value === undefined || !Number.isFinite(mb) || mb < 1 || mb > 2048) {
          throw new UsageError(`${flag} needs a size in megabytes between 1 and 2048, got ${value ?? "nothing"}`);
        }
        options.memoryLimit = mb;
        break;
      }
      case "--max-goroutines":
        options.maxGoroutines = positiveInteger(flag, inline ?? argv[++i]);
        break;
      case "--max-actors":
        options.maxActors = positiveInteger(flag, inline ?? argv[++i]);
        break;
      case "--max-instructions":
        options.maxInstructions = positiveInteger(flag, inline ?? argv[++i]);
        break;
      case "--":
        options.script = argv[i + 1];
        options.args = argv.slice(i + 2);
        i = argv.length;
        break;
      default: {
        const kind = PERMISSION_KINDS.find((k) => flag === `--allow-${k}` || flag === `--deny-${k}`);
        if (!kind) throw new UsageError(`unknown option ${flag} (see solvm --help)`);
        const listed = inline?.split(",").filter(Boolean) ?? [];
        // As Deno does, an empty list (an unset $DIR) is refused: taken for a bare flag, it would grant or deny all.
        if (inline !== undefined && listed.length === 0) {
          const bare = flag.startsWith("--deny-") ? "refuses" : "allows";
          throw new UsageError(`${flag}= lists nothing (a bare ${flag} ${bare} all ${kind} access)`);
        }
        if (flag.startsWith("--deny-")) {
          const before = options.deny[kind];
          const check = kind === "net" ? denyNetEntry : kind === "sys" ? denySysEntry : undefined;
          const entries = check ? listed.map((item) => check(flag, item)) : listed;
          options.deny[kind] = inline === undefined || before === true ? true : [...before ?? [], ...entries];
          break;
        }
        options.permissions ??= noPermissions();
        allow(options.permissions, kind, inline === undefined ? undefined : listed);
        if (inline !== undefined) narrowing ??= arg;
      }
    }
  }
  // As Deno's own -A: a list beside it would narrow nothing, and taking it quietly would hide that everything is allowed.
  if (options.allowAll && narrowing) {
    throw new UsageError(
      `${options.allowAll} allows everything: ${narrowing} would narrow nothing (give one or the other)`,
    );
  }
  // As lua5.4 -i: a script given runs first, then the REPL in its state; one at a time, and nothing to watch.
  if (options.repl && (options.scripts.length > 1 || options.watch)) {
    throw new UsageError("-i runs one script and then the REPL: not with several scripts or --watch");
  }
  // As lua5.4 does: without a script, standard input is the REPL's only when it is a terminal.
  if (!options.repl && options.script === undefined && !Deno.stdin.isTerminal()) options.script = "-";
  // Standard input read once cannot change, and the REPL has no file: watching either would wait for ever.
  if (options.watch && (options.script === undefined || options.script === "-")) {
    throw new UsageError("--watch needs a script file to watch (not the REPL or - for standard input)");
  }
  return options;
}

function fail(message: string, code: number): never {
  writeStderr(`solvm: ${message}\n`);
  Deno.exit(code);
}

/**
 * Arms the time limit. An explicit limit runs from the start; the default
 * one runs only while no resident source is active, restarting when the
 * last one ends.
 */
function armTimeout(options: Options, resident: Int32Array, stop: () => void): void {
  if (options.timeoutMs <= 0) return;
  let disarm = () => {};
  const arm = () => {
    disarm = after(options.timeoutMs, stop);
  };
  arm();
  if (options.explicitTimeout) return;
  (async () => {
    let last = 0;
    while (true) {
      const waiting = Atomics.waitAsync(resident, 0, last);
      if (waiting.async) await waiting.value;
      const now = Atomics.load(resident, 0);
      if (now > 0 && last === 0) disarm();
      if (now === 0 && last > 0) arm();
      last = now;
    }
  })();
}

/** True when one time limit applies to the whole process (under --watch an explicit one limits each run). */
function timeLimited(options: Options): boolean {
  // The REPL (-i with a script too) waits for a person: only an explicit limit applies there.
  const script = options.script !== undefined && !options.repl;
  return options.timeoutMs > 0 && !options.watch && (options.explicitTimeout || script);
}

/**
 * Runs the script in this thread, for when Deno was given too little
 * permission to load the worker module (`deno run --allow-read=DIR main.ts
 * DIR/script.lua`). The engine then keeps the time limit itself, looking
 * at the clock every 1000 instructions, and the permissions are Deno's own.
 */
async function runInThisThread(options: Options, request: RunRequest): Promise<never> {
  const grant = `run Deno with --allow-read=${new URL(".", import.meta.url).pathname}`;
  if (options.permissions || deniedKinds(options).length > 0) {
    fail(
      "--allow-*, --sandbox and bare --deny-* flags confine the script in a worker, which needs read access " +
        `to SolVM's own files (${grant})`,
      EXIT_USAGE,
    );
  }
  if (options.watch) {
    fail(
      `--watch runs the script in a worker it replaces on a change, which needs read access to SolVM's own files (${grant})`,
      EXIT_USAGE,
    );
  }
  const { runRequest } = await import("./host/run.ts");
  const timeLimit = timeLimited(options)
    ? { ms: options.timeoutMs, message: timeoutMessage(options), always: options.explicitTimeout }
    : undefined;
  Deno.exit(await runRequest(request, { stdout: sharedOutput(newSharedOutput()), timeLimit }));
}

function timeoutMessage(options: Options): string {
  return `timeout: script ran longer than ${options.timeoutText}`;
}

function main(argv: string[]): void {
  let parsed;
  try {
    parsed = parseArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) fail(e.message, EXIT_USAGE);
    throw e;
  }
  if (parsed === "help") {
    Deno.stdout.writeSync(new TextEncoder().encode(USAGE));
    return;
  }
  if (parsed === "version") {
    Deno.stdout.writeSync(new TextEncoder().encode(`solvm ${meta.version} (Lua 5.4, Deno ${Deno.version.deno})\n`));
    return;
  }
  const options = parsed;
  const scripts = options.scripts.length > 0 ? options.scripts : [options.script];
  const logLevel = logLevelFromEnvironment();
  const dnsServer = environmentVariable("SOLVM_DNS_SERVER");
  const labels = options.scripts.length > 1 ? scriptLabels(options.scripts) : undefined;
  const labelOf = (index: number) => labels ? `[${labels[index]}] ` : undefined;
  const request = (script: string | undefined, index = 0): RunRequest => ({
    script,
    args: options.args,
    watch: options.watch,
    repl: options.repl,
    maxMemory: options.memoryLimit * 1024 * 1024,
    maxGoroutines: options.maxGoroutines,
    maxActors: options.maxActors,
    maxInstructions: options.maxInstructions,
    deny: options.deny,
    logLevel,
    dnsServer,
    label: labelOf(index),
  });
  const workerModule = new URL("./host/worker.ts", import.meta.url);
  if (
    workerModule.protocol === "file:" &&
    Deno.permissions.querySync({ name: "read", path: workerModule.pathname }).state !== "granted"
  ) {
    if (scripts.length > 1) fail("several scripts at once need read access to SolVM's own files", EXIT_USAGE);
    runInThisThread(options, request(options.script));
    return;
  }
  for (const script of scripts) {
    // -A asks Deno for everything, though its worker then simply takes Deno's own.
    const asked = options.allowAll ? workerPermissions(options.permissions!, script) : confinement(options, script);
    const refused = beyondDeno(options, asked ?? {});
    if (refused) fail(refused, EXIT_USAGE);
  }
  const control = new SharedArrayBuffer(4);
  // Ctrl-C stops a REPL line; a script's (or -i's script's main chunk) ends SolVM.
  const interrupt = options.script === undefined || options.repl ? new LineInterrupt() : undefined;
  // Watched before any worker starts: under load a worker can start a command before this thread runs on.
  const runs: WorkerRun[] = [];
  stopOnSignals(runs, interrupt);
  // Each script may read its own folder.
  const start = (i: number, reload = false, onLoaded?: (path: string) => void) =>
    runs[i] = startWorker(
      workerModule,
      confinement(options, scripts[i]),
      { ...request(scripts[i], i), reload, control, interrupt: interrupt?.buffer },
      onLoaded,
    );
  /** The exit codes of the scripts that have ended, by their place on the command line. */
  const ended: (number | undefined)[] = [];
  // Under --watch every script starts in the same turn, once the watching code is loaded.
  const ends = options.watch
    ? import("./host/debug.ts").then(({ WatchedFiles }) =>
      Promise.all(scripts.map((script, i) =>
        watchScript(
          options,
          script!,
          labelOf(i) ?? "",
          WatchedFiles,
          (reload, onLoaded) => start(i, reload, onLoaded),
        )
      ))
    )
    : Promise.all(scripts.map((_, i) => start(i).exit.then((code) => ended[i] = code)));
  if (timeLimited(options)) {
    armTimeout(options, new Int32Array(control), () => {
      const running = scripts.flatMap((_, i) => ended[i] === undefined ? [i] : []);
      const message = running.map((i) => `${labelOf(i) ?? ""}${timeoutMessage(options)}`).join("\n");
      stopAndExit(runs, firstNonZero(scripts.map((_, i) => ended[i] ?? EXIT_TIMEOUT)), message);
    });
  }
  ends.then((codes) => {
    if (!stopping) Deno.exit(firstNonZero(codes));
  });
}

/** The exit code of several scripts: the first non-zero one, in the order they were given. */
function firstNonZero(codes: number[]): number {
  return codes.find((code) => code !== 0) ?? 0;
}

/** Set once a signal or the time limit stops the runs: a run ending meanwhile does not choose the exit code. */
let stopping = false;

/**
 * Stops `runs` once their Lua threads wrote out their open files, as
 * lua5.4 closing its state would, or after FLUSH_GRACE_MS (a thread in a
 * loop that never yields cannot answer); stopping kills their commands.
 */
async function flushAndStop(runs: WorkerRun[]): Promise<void> {
  await withinFlushGrace(Promise.all(runs.map((run) => run.flushFiles())));
  for (const run of runs) run.stop();
}

/** Settles once `flushed` has, or after FLUSH_GRACE_MS (a thread in a loop that never yields cannot answer). */
function withinFlushGrace(flushed: Promise<unknown>): Promise<void> {
  let disarm = () => {};
  const grace = new Promise<void>((resolve) => disarm = after(FLUSH_GRACE_MS, resolve));
  return Promise.race([flushed, grace]).then(disarm);
}

/** Ends SolVM with `code` (and `message` on stderr), once the runs stopped (see flushAndStop). */
async function stopAndExit(runs: WorkerRun[], code: number, message?: string): Promise<never> {
  stopping = true;
  await flushAndStop(runs);
  if (message) writeStderr(`${message}\n`);
  Deno.exit(code);
}

/**
 * Runs `script` under --watch, each run in a new worker that tells this
 * thread of the files it loads: a change to one replaces the worker (see
 * flushAndStop), even one stuck in a loop that never yields. An explicit time limit applies
 * to each run, and watching goes on after a run it stopped. Ends only when
 * the script cannot be read (nothing to watch), with that run's exit code.
 */
async function watchScript(
  options: Options,
  script: string,
  label: string,
  Files: typeof WatchedFiles,
  start: (reload: boolean, onLoaded: (path: string) => void) => WorkerRun,
): Promise<number> {
  const say = (text: string) => writeStderr(`${label}${text}\n`);
  let files = new Files();
  for (let reload = false;; reload = true) {
    if (reload) files = new Files(files);
    const run = start(reload, (path) => files.add(path));
    let disarm = () => {};
    const timedOut = new Promise<"timeout">((resolve) => {
      if (options.explicitTimeout && options.timeoutMs > 0) disarm = after(options.timeoutMs, () => resolve("timeout"));
    });
    const ended = await Promise.race([files.changed.then(() => "changed" as const), run.exit, timedOut]);
    disarm();
    if (ended !== "changed") {
      if (ended === "timeout") {
        await flushAndStop([run]);
        say(timeoutMessage(options));
      } else if (files.size === 0) return ended;
      say(`solvm: ${script} finished; watching for changes`);
      await files.changed;
    }
    files.stop();
    await flushAndStop([run]);
    say(`solvm: reloading ${script}`);
  }
}

/**
 * The names that label the output of several scripts: each one's file
 * name, with as many of its folders as tell it from the others
 * (`x/s.lua`, `y/s.lua`), and `#2`, `#3` for a script given again.
 */
function scriptLabels(scripts: string[]): string[] {
  return scripts.map((script, i) => {
    const parts = script.split("/");
    const others = scripts.filter((other) => other !== script);
    let n = 1;
    while (n < parts.length && others.some((other) => `/${other}`.endsWith(`/${parts.slice(-n).join("/")}`))) n++;
    const repeat = scripts.slice(0, i).filter((other) => other === script).length;
    return parts.slice(-n).join("/") + (repeat === 0 ? "" : `#${repeat + 1}`);
  });
}

/**
 * A variable of SolVM's own as the CLI can read it (the script's worker may
 * not read the environment); unread, without a prompt, where Deno was not
 * given access to it.
 */
function environmentVariable(name: string): string | undefined {
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") return undefined;
  return Deno.env.get(name);
}

/** SOLVM_LOG's level, in any case; a value that names none is said once and left out (errors only are logged). */
function logLevelFromEnvironment(): LogLevel | undefined {
  const wanted = environmentVariable("SOLVM_LOG");
  if (!wanted) return undefined;
  const level = LOG_LEVELS.find((name) => name === wanted.toLowerCase());
  if (!level) writeStderr(`solvm: SOLVM_LOG=${wanted} is none of ${LOG_LEVELS.join(", ")}: only errors are logged\n`);
  return level;
}

/** Signals that end SolVM, with the exit code a shell reports for each (128 + its number). */
const STOP_SIGNALS: [Deno.Signal, number][] = [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]];

/**
 * A signal that ends SolVM stops every run first, and so kills their
 * commands: those run in process groups of their own, which the
 * terminal's Ctrl-C does not reach. In the REPL, Ctrl-C stops the line
 * running instead (as lua5.4's "interrupted!"); at the prompt, or again
 * before the line stopped (a goroutine that never yields holds it), it ends SolVM.
 */
function stopOnSignals(runs: WorkerRun[], interrupt: LineInterrupt | undefined): void {
  const signals = Deno.build.os === "windows" ? STOP_SIGNALS.filter(([name]) => name === "SIGINT") : STOP_SIGNALS;
  for (const [signal, code] of signals) {
    Deno.addSignalListener(signal, () => {
      if (signal === "SIGINT" && interrupt?.request()) return;
      // Scripts that all chose their exit code (os.exit) and only wait for their actors' files keep it.
      const chosen = runs.map((run) => run.exitCode);
      stopAndExit(runs, chosen.every((c) => c !== undefined) ? firstNonZero(chosen as number[]) : code);
    });
  }
}

/** A script running in its worker: its exit code once it ends, and how to stop it at once. */
interface WorkerRun {
  exit: Promise<number>;
  /** Its exit code once its script has ended, while its actors write out their files. */
  readonly exitCode?: number;
  /** Settles once the script's thread and its actor threads wrote out their open Lua files. */
  flushFiles(): Promise<void>;
  /** Stops the worker at once, and kills the commands its script left running. */
  stop(): void;
}

/** An actor's thread the CLI made for a script's worker: what its ending must kill, reset and write out. */
interface ActorThread {
  thread: Worker;
  commands: RunningCommands;
  resident: ResidentShare;
  output: SharedArrayBuffer;
}

/**
 * Starts a worker for one script. Actor threads the script asks for are
 * made here too, with the same permissions (a confined worker could not
 * load their module).
 */
function startWorker(
  module: URL,
  permissions: Deno.PermissionOptionsObject | undefined,
  request: Omit<WorkerRequest, "output" | "commands">,
  onLoaded?: (path: string) => void,
): WorkerRun {
  const output = newSharedOutput(request.label !== undefined);
  const options = { type: "module" as const, ...(permissions ? { deno: { permissions } } : {}) };
  let worker: Worker;
  try {
    worker = new Worker(module, options);
  } catch (e) {
    // Deno reads the --allow-* values only here (under -A it never looks at them before).
    if (!(e instanceof TypeError || e instanceof URIError)) throw e;
    fail(
      refusedByWorker(permissions ?? {}) ?? `an --allow-* value is not one Deno can grant: ${e.message}`,
      EXIT_USAGE,
    );
  }
  // Process groups of commands still running, per thread: a thread ended at once cannot end them itself.
  const commands = new RunningCommands();
  const actorThreads = new Map<number, ActorThread>();
  const terminateActor = (actor: ActorThread) => {
    actor.thread.terminate();
    actor.commands.killAll();
    actor.resident.set(0); // its servers and intervals ended with it
  };
  // Actor threads the root ended, each first asked to write out its open files (as lua5.4's exit() flushes them).
  const endingActors = new Set<Promise<void>>();
  const endActorThread = (id: number) => {
    const actor = actorThreads.get(id);
    if (!actor) return;
    // Kept in actorThreads meanwhile: a time limit or a signal then ends it with the rest.
    const ending = withinFlushGrace(askToFlush(actor.thread)).then(() => {
      actorThreads.delete(id);
      terminateActor(actor);
    });
    endingActors.add(ending);
    ending.then(() => endingActors.delete(ending));
  };
  let ended = false;
  const end = () => {
    ended = true;
    worker.terminate();
    drainSharedOutput(output);
    // Actors still running (a time limit, a signal) never wrote out what they printed.
    for (const actor of actorThreads.values()) {
      terminateActor(actor);
      drainSharedOutput(actor.output);
    }
    actorThreads.clear();
  };
  const stop = () => {
    commands.killAll();
    end();
  };
  const run: { exitCode?: number } = {};
  const exit = new Promise<number>((resolve) => {
    worker.onmessage = ({ data }: MessageEvent<WorkerReply>) => {
      if ("exit" in data) {
        const { exit } = data;
        run.exitCode = exit;
        // The engine has closed, and ended its commands; the actors it ended write out their files first.
        return void Promise.all(endingActors).then(() => {
          end();
          resolve(exit);
        });
      }
      if ("endActorThread" in data) return endActorThread(data.endActorThread);
      if ("filesFlushed" in data) return; // for askToFlush
      if ("loaded" in data) return onLoaded?.(data.loaded);
      const actor = {
        thread: new Worker(new URL("./host/actor_worker.ts", import.meta.url), options),
        commands: new RunningCommands(),
        resident: new ResidentShare(request.control),
        output: data.output,
      };
      const { total, share } = actor.resident;
      const start: ActorThreadStart = {
        port: data.port,
        commands: actor.commands.buffer,
        resident: { total, share },
        watch: onLoaded !== undefined,
      };
      // Under --watch an actor's script and modules are watched as the script's are.
      actor.thread.onmessage = ({ data }: MessageEvent<{ loaded?: string }>) => {
        if (data.loaded !== undefined) onLoaded?.(data.loaded);
      };
      actor.thread.postMessage(start, [data.port]);
      actorThreads.set(data.actorThread, actor);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      stop();
      writeStderr(`solvm: internal error: ${e.message}\n`);
      resolve(1);
    };
  });
  worker.postMessage({ ...request, output, commands: commands.buffer } satisfies WorkerRequest);
  const flushFiles = async () => {
    if (!ended) await Promise.all([worker, ...[...actorThreads.values()].map((a) => a.thread)].map(askToFlush));
  };
  return Object.assign(run, { exit, flushFiles, stop });
}

/** Asks a Lua thread (the script's or an actor's) to write out its open files; settles once it has. */
function askToFlush(thread: Worker): Promise<void> {
  return new Promise((resolve) => {
    thread.addEventListener("message", function answered({ data }: MessageEvent<WorkerReply>) {
      if (!("filesFlushed" in data)) return;
      thread.removeEventListener("message", answered);
      resolve();
    });
    thread.postMessage({ flushFiles: true } satisfies FlushFiles);
  });
}

if (import.meta.main) main(Deno.args);
