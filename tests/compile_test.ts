/**
 * Tests for scripts/compile.ts, run as a real child process. Building a
 * binary needs a runtime stub (denort): from DENORT_BIN, or from deno's own
 * download cache; without either the script must fail with one clear message.
 *
 * @module
 */
import { match, ok, strictEqual } from "node:assert";
import { tempFiles } from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url);
const COMPILE = new URL("scripts/compile.ts", ROOT).pathname;
const HELLO = new URL("examples/hello.lua", ROOT).pathname;
/** The stub in DENORT_BIN serves this machine's target (x86_64-unknown-linux-gnu here). */
const HOST = Deno.build.target;
const BINARY = new URL(`dist/solvm-${HOST}${HOST.includes("windows") ? ".exe" : ""}`, ROOT).pathname;
const DENORT_BIN = Deno.env.get("DENORT_BIN");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `command args...` to completion, killing it after two minutes. */
async function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; clearEnv?: boolean } = {},
): Promise<Run> {
  const { code, stdout, stderr } = await new Deno.Command(command, {
    args,
    cwd: options.cwd,
    env: { NO_COLOR: "1", ...options.env },
    clearEnv: options.clearEnv,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

/** Runs scripts/compile.ts with `args`, optionally with DENORT_BIN removed from its environment. */
function compile(args: string[], options: { withoutDenortBin?: boolean } = {}): Promise<Run> {
  if (!options.withoutDenortBin) return run(Deno.execPath(), ["run", "-A", COMPILE, ...args]);
  const env = Deno.env.toObject();
  delete env.DENORT_BIN;
  return run(Deno.execPath(), ["run", "-A", COMPILE, ...args], { env, clearEnv: true });
}

Deno.test({
  name: `compile: the built binary runs scripts${DENORT_BIN ? "" : " (skipped: DENORT_BIN not set)"}`,
  ignore: !DENORT_BIN,
  async fn() {
    const built = await compile([HOST]);
    strictEqual(built.code, 0, built.stderr);
    match(built.stdout, new RegExp(`built dist/solvm-${HOST}`));

    const hello = await run(BINARY, [HELLO]);
    strictEqual(hello.code, 0, hello.stderr);
    match(hello.stdout, /^Hello, world!\n/);
    match(hello.stdout, /a goroutine says hello too\n$/);

    const dir = await tempFiles({ "boom.lua": 'print("before")\nerror("boom")\n' });
    try {
      const boom = await run(BINARY, ["boom.lua"], { cwd: dir });
      strictEqual(boom.code, 1);
      strictEqual(boom.stdout, "before\n");
      match(boom.stderr, /boom\.lua:2: boom/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }

    // The binary confines the script itself, as `deno run -A main.ts --sandbox` does (tests/permission*_test.ts
    // run whole against it with SOLVM_BIN=dist/solvm-<target>).
    const probe = await tempFiles({
      "probe.lua": `print(pcall(read_file, "/etc/hostname"))\nprint(pcall(os.getenv, "HOME"))\n`,
    });
    const sandboxed = await run(BINARY, ["--sandbox", `${probe}/probe.lua`]);
    strictEqual(
      sandboxed.stdout,
      `false\tread_file: cannot read "/etc/hostname": permission denied: read access to "/etc/hostname" ` +
        `(run with --allow-read=/etc/hostname)\n` +
        'false\tpermission denied: env access to "HOME" (run with --allow-env=HOME)\n',
    );
    const granted = await run(BINARY, ["--allow-read=/etc/hostname", "--deny-env=HOME", `${probe}/probe.lua`]);
    match(granted.stdout, /^true\t/);
    match(granted.stdout, /denied by --deny-env=HOME/);

    const version = await run(BINARY, ["--version"]);
    strictEqual(version.code, 0, version.stderr);
    match(version.stdout, /^solvm \d+\.\d+\.\d+ \(Lua 5\.4, Deno \d+\.\d+\.\d+\)\n$/);
  },
});

Deno.test("compile: without DENORT_BIN it builds from deno's cache or fails with one clear sentence", async () => {
  const result = await compile([HOST], { withoutDenortBin: true });
  if (result.code === 0) {
    // deno had this target's stub cached: the build must really be there.
    match(result.stdout, new RegExp(`built dist/solvm-${HOST}`));
    ok((await Deno.stat(BINARY)).isFile);
    return;
  }
  strictEqual(result.code, 1);
  strictEqual(result.stderr.trim().split("\n").length, 1, `expected one line, got:\n${result.stderr}`);
  match(result.stderr, /^solvm compile: deno compile needs a runtime stub \(denort\) for /);
  match(result.stderr, /DENORT_BIN/);
  ok(!/Stack backtrace|Caused by|^\s+at /m.test(result.stderr), result.stderr);
});

Deno.test("compile: an unknown target is a usage error", async () => {
  const result = await compile(["x86_64-unknown-plan9"]);
  strictEqual(result.code, 2);
  strictEqual(result.stdout, "");
  match(
    result.stderr,
    /^solvm compile: unknown target "x86_64-unknown-plan9"; the targets are x86_64-unknown-linux-gnu, /,
  );
});
