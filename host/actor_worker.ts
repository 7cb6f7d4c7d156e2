/**
 * The worker of one actor: its own Lua state with every family, the script
 * run with its arguments as `...`, then whatever it left running; its first
 * result (or its error) goes back to the root when it ends.
 *
 * Protocol: the first message is an {@linkcode ActorThreadStart}: the
 * port to the root (see host/_actor_system.ts), memory shared with the
 * thread's maker where it records each running command's process group
 * (see host/_process_group.ts), and from the CLI, where its resident
 * sources count (see host/_resident.ts). The root then sends "start". The maker may post
 * `{ flushFiles }` before it ends the thread by force, answered as the
 * script's worker does (see host/worker.ts). Under `--watch` it posts
 * `{ loaded: path }` for each file it loads, as the script's worker does.
 *
 * @module
 */
import { CallStopped, Engine, type Outcome } from "../runtime/engine.ts";
import { prefixedOutput, prefixedText, sharedOutput, stdoutClosed } from "../runtime/output.ts";
import { LuaError } from "../runtime/errors.ts";
import { type LogLevel, setLogLevel } from "../runtime/log.ts";
import { ActorThreadLink, type Exit, type ToActor } from "./_actor_system.ts";
import { pushMessage, setActorLink, toMessage } from "./actors.ts";
import { closeAfter, installGlobals, LoadedFiles } from "./script.ts";
import { denoFileSystem } from "./filesystem.ts";
import { flushOpenFiles, trackOpenFiles } from "./files.ts";
import type { FlushFiles } from "./worker.ts";
import { checkAccess, setDenied } from "./_permissions.ts";
import { RunningCommands } from "./_process_group.ts";
import { ResidentShare } from "./_resident.ts";
import { watchCommands } from "./process.ts";
import { setDnsServerVariable } from "./dns.ts";

/** The first message to an actor's thread. */
export interface ActorThreadStart {
  port: MessagePort;
  commands: SharedArrayBuffer;
  /** The CLI's total of resident sources, and this thread's share of it (a library's actors have none). */
  resident?: { total: SharedArrayBuffer; share: SharedArrayBuffer };
  /** `--watch`: tell the maker of each file the actor loads (`{ loaded }`), as the script's worker does. */
  watch?: boolean;
}

const scope = self as unknown as {
  onmessage: (e: MessageEvent<ActorThreadStart | FlushFiles>) => void;
  postMessage(message: { filesFlushed: true } | { loaded: string }): void;
};

// This thread may be ended by force: its Lua files are written out first when asked (FlushFiles).
trackOpenFiles();

scope.onmessage = ({ data }) => {
  if ("flushFiles" in data) {
    flushOpenFiles();
    return scope.postMessage({ filesFlushed: true });
  }
  const { port } = data;
  // The thread's maker kills these groups if it has to end the thread by force.
  const commands = new RunningCommands(data.commands);
  watchCommands((group, running) => commands.record(group, running));
  const resident = data.resident && new ResidentShare(data.resident.total, data.resident.share);
  let actorLink: ActorThreadLink | undefined;
  port.onmessage = ({ data: message }: MessageEvent<ToActor>) => {
    if (message.t !== "start") return actorLink?.receive(message);
    setLogLevel(message.log as LogLevel);
    actorLink = new ActorThreadLink(port, message.id, message.parent);
    setActorLink(actorLink);
    setDenied(message.rules.deny ?? {});
    setDnsServerVariable(message.rules.dnsServer);
    const loaded = new LoadedFiles(data.watch ? (path) => scope.postMessage({ loaded: path }) : undefined);
    run(actorLink, message, resident, loaded).then((exit) => actorLink!.done(exit));
  };
};

async function run(
  link: ActorThreadLink,
  start: Extract<ToActor, { t: "start" }>,
  resident: ResidentShare | undefined,
  loaded: LoadedFiles,
): Promise<Exit> {
  const { path, args, output, rules } = start;
  const stdout = sharedOutput(output.buffer, output.relay ? (bytes) => link.output(bytes) : undefined);
  const stderr = output.label ? prefixedText(output.label) : undefined;
  const engine = Engine.createSync({
    stdout: output.label ? prefixedOutput(stdout, output.label) : stdout,
    stderr: output.relayErrors ? (text) => link.errors(text) : stderr?.write,
    files: denoFileSystem(),
    maxMemory: rules.maxMemory,
    maxGoroutines: rules.maxGoroutines,
    reportName: `actor ${start.id} (${path})`, // as the spawner names the actor's own failure
    maxInstructions: rules.maxInstructions,
    onResidentChange: resident && ((n) => resident.set(n)),
  });
  const { vm } = engine;
  // How the run ended, for closing the engine as the main script's is (see closeAfter).
  let ending: Outcome = { status: "ok" };
  let exit: Exit;
  try {
    installGlobals(engine, { mainScript: path, loaded });
    checkAccess("read", path);
    const source = Deno.readFileSync(path);
    loaded.add(path); // canonical already (spawn's resolveScript)
    const value = await engine.call((T) => {
      const failure = vm.load(T, source, `@${path}`);
      if (failure) throw new LuaError(failure);
      vm.makeRoom(T, args.length);
      for (const a of args) pushMessage(engine, T, a);
      return args.length;
    }, (ok, L, at) => {
      if (!ok) throw new LuaError(vm.toText(L, at), vm.toText(L, at + 1));
      return toMessage(engine, L, at);
    }, { name: "main" });
    link.returned(value);
    await engine.idle();
    const stopped = engine.stopped;
    if (stopped) ending = stopped;
    if (stopped && stopped.status !== "ok" && !(stopped.status === "exit" && exitsZero(stopped.code))) {
      exit = failure(stopped);
    } else exit = { ok: true, value, stopped: link.inbox.stopped };
  } catch (e) {
    if (e instanceof CallStopped) {
      ending = e.outcome;
      exit = e.outcome.status === "exit" && exitsZero(e.outcome.code) ? { ok: true } : failure(e.outcome);
    } else {
      const error = e instanceof Error ? e.message : String(e);
      ending = { status: "error", message: error, traceback: "" };
      exit = e instanceof LuaError ? { ok: false, error: e.luaMessage, traceback: e.traceback } : { ok: false, error };
    }
  }
  engine.stdout.flush();
  // os.exit(n) in a finalizer run as the state closes is the actor calling os.exit(n), as the main script's is.
  const code = await closeAfter(engine, ending);
  stderr?.end();
  return code === undefined || exitsZero(code) ? exit : failure({ status: "exit", code });
}

/** Whether os.exit(code) is a clean end: the system keeps the low byte of the main script's code (256 exits 0). */
const exitsZero = (code: number): boolean => (code & 255) === 0;

/** How an engine that stopped early ended, as an actor's exit. */
function failure(outcome: Outcome): Exit {
  switch (outcome.status) {
    case "error":
      return { ok: false, error: outcome.message, traceback: outcome.traceback };
    case "timeout":
      return { ok: false, error: outcome.message };
    case "exit":
      // Its reader gone, the actor ends quietly, as the main script does: it failed at nothing.
      if (outcome.code === 141 && stdoutClosed()) return { ok: true, unfinished: "standard output was closed" };
      return { ok: false, error: `the actor called os.exit(${outcome.code})` };
    case "deadlock":
      return { ok: false, error: `all goroutines are asleep - deadlock!\n\n${outcome.report}` };
    default:
      return { ok: false, error: outcome.status };
  }
}
