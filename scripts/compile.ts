/**
 * Builds stand-alone `solvm` executables with `deno compile`, one per
 * target, into `dist/`:
 *
 * ```sh
 * deno task compile                              # every target
 * deno task compile x86_64-unknown-linux-gnu     # only some
 * deno task compile --verbose aarch64-apple-darwin
 * ```
 *
 * `deno compile` joins the program to a runtime stub (denort) that it
 * downloads once per target. Where the internet cannot be reached, set
 * `DENORT_BIN` to a denort binary for this machine's own target: deno then
 * uses it instead, and the other targets are skipped with a notice.
 *
 * Exit codes: 0 every asked-for target was built (or skipped with a notice),
 * 1 a build failed or nothing could be built, 2 bad usage.
 *
 * @module
 */

/** The targets `deno compile` can build for. */
const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
] as const;

type Target = typeof TARGETS[number];

const ROOT = new URL("..", import.meta.url);
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

const USAGE = `Usage: deno task compile [--verbose] [target...]

Builds dist/solvm-<target> for each target (default: all of them):
  ${TARGETS.join("\n  ")}

  --verbose   show deno compile's own output
  -h, --help  print this help

DENORT_BIN=<path to denort>  use this runtime stub instead of downloading one;
                             it serves only this machine's target (${Deno.build.target}).
`;

class UsageError extends Error {}

/** What the command line asked for. */
interface Options {
  targets: Target[];
  verbose: boolean;
}

/** How one `deno compile` run ended. */
interface BuildResult {
  target: Target;
  code: number;
  stdout: string;
  stderr: string;
}

function isTarget(name: string): name is Target {
  return (TARGETS as readonly string[]).includes(name);
}

function parseArgs(argv: string[]): Options | "help" {
  const options: Options = { targets: [], verbose: false };
  for (const arg of argv) {
    if (arg === "-h" || arg === "--help") return "help";
    if (arg === "--verbose") options.verbose = true;
    else if (arg.startsWith("-")) throw new UsageError(`unknown option ${arg} (see --help)`);
    else if (!isTarget(arg)) {
      throw new UsageError(`unknown target "${arg}"; the targets are ${TARGETS.join(", ")}`);
    } else if (!options.targets.includes(arg)) options.targets.push(arg);
  }
  if (options.targets.length === 0) options.targets = [...TARGETS];
  return options;
}

/** The executable's path, relative to the project root. */
function outputPath(target: Target): string {
  return `dist/solvm-${target}${target.includes("windows") ? ".exe" : ""}`;
}

function compileArgs(target: Target): string[] {
  return [
    "compile",
    "-A", // the CLI confines scripts itself
    "--no-check",
    "--target",
    target,
    "--output",
    outputPath(target),
    // Workers started from URLs, which deno compile cannot see: the script's, actors', and the library's.
    "--include",
    "host/worker.ts",
    "--include",
    "host/actor_worker.ts",
    "--include",
    "lib/_script_worker.ts",
    "main.ts",
  ];
}

/** Runs `deno compile` for one target from the project root; the environment (DENORT_BIN too) passes through. */
async function compileTarget(target: Target, denortBin: string | undefined): Promise<BuildResult> {
  const env: Record<string, string> = { NO_COLOR: "1" };
  if (denortBin !== undefined) env.DENORT_BIN = denortBin;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: compileArgs(target),
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { target, code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

/** Whether a failed `deno compile` failed because it could not download its runtime stub. */
function isStubDownloadFailure(result: BuildResult): boolean {
  return result.code !== 0 && /denort/.test(result.stderr) &&
    /Setting up base binary|error sending request/.test(result.stderr);
}

/** Whether deno's error says the network could not be reached at all. */
function isUnreachable(stderr: string): boolean {
  return /error sending request|dns error|Connect|timed out|unreachable/i.test(stderr);
}

/** "a", "a and b", "a, b and c". */
function listWords(words: readonly string[]): string {
  return words.length <= 1 ? words.join("") : `${words.slice(0, -1).join(", ")} and ${words.at(-1)}`;
}

/** The one message for targets whose stub could not be downloaded. */
function stubMissingMessage(failures: BuildResult[], host: string): string {
  const targets = failures.map((f) => f.target);
  const why = failures.some((f) => isUnreachable(f.stderr)) ? "this machine cannot reach it" : "the download failed";
  const others = targets.filter((t) => t !== host);
  let advice: string;
  if (others.length === 0) advice = "Set DENORT_BIN to a denort binary for the target and run again.";
  else if (others.length < targets.length) {
    advice = `Set DENORT_BIN to a denort binary for ${host} and run again to build that one; ` +
      `DENORT_BIN serves only this machine's target, so build ${listWords(others)} where the internet can be reached.`;
  } else {
    advice = `DENORT_BIN serves only this machine's target (${host}), ` +
      `so build ${listWords(others)} where the internet can be reached.`;
  }
  return `deno compile needs a runtime stub (denort) for ${listWords(targets)}, ` +
    `which it downloads from the internet; ${why}. ${advice}`;
}

/** With DENORT_BIN set only the host's target can be built; the rest are skipped. */
function planTargets(requested: Target[], denortBin: string | undefined, host: string) {
  if (denortBin === undefined) return { build: requested, skipped: [] as Target[] };
  return { build: requested.filter((t) => t === host), skipped: requested.filter((t) => t !== host) };
}

/** Resolves DENORT_BIN to an absolute path, or explains why it is unusable. */
async function resolveDenortBin(value: string | undefined): Promise<string | undefined> {
  if (value === undefined) return undefined;
  try {
    const path = await Deno.realPath(value);
    if ((await Deno.stat(path)).isFile) return path;
  } catch {
    // reported below
  }
  throw new UsageError(`DENORT_BIN is set to "${value}", which is not a file; point it at a denort binary`);
}

function say(text: string): void {
  console.error(`solvm compile: ${text}`);
}

async function describeBuilt(target: Target): Promise<string> {
  const { size } = await Deno.stat(new URL(outputPath(target), ROOT));
  return `built ${outputPath(target)} (${(size / 1_000_000).toFixed(1)} MB)`;
}

async function main(argv: string[]): Promise<number> {
  let options;
  let denortBin;
  try {
    options = parseArgs(argv);
    if (options === "help") {
      console.log(USAGE);
      return 0;
    }
    denortBin = await resolveDenortBin(Deno.env.get("DENORT_BIN"));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    say(e.message);
    return EXIT_USAGE;
  }
  const host = Deno.build.target;
  const { build, skipped } = planTargets(options.targets, denortBin, host);
  if (skipped.length > 0) {
    say(
      `skipped ${listWords(skipped)}: DENORT_BIN is a runtime stub for this machine's target (${host}) only, ` +
        `and deno compile would use it for every target; unset DENORT_BIN where the internet can be reached to build them.`,
    );
  }
  if (build.length === 0) {
    say("nothing to build.");
    return EXIT_FAILED;
  }
  await Deno.mkdir(new URL("dist/", ROOT), { recursive: true });
  const stubMissing: BuildResult[] = [];
  let failed = false;
  for (const target of build) {
    const result = await compileTarget(target, denortBin);
    if (options.verbose) console.error(result.stdout + result.stderr);
    if (result.code === 0) console.log(`solvm compile: ${await describeBuilt(target)}`);
    else if (isStubDownloadFailure(result)) stubMissing.push(result);
    else {
      if (!options.verbose) console.error(result.stdout + result.stderr);
      say(`deno compile failed for ${target} (exit code ${result.code}).`);
      failed = true;
    }
  }
  if (stubMissing.length > 0) say(stubMissingMessage(stubMissing, host));
  return failed || stubMissing.length > 0 ? EXIT_FAILED : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
