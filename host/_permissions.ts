/**
 * Permission errors in one wording for every family, and the `--deny-*`
 * lists. Deno's worker permissions can grant lists but cannot subtract
 * from them (denoland/deno#20096), so a denied path, host, variable,
 * program or system value is refused here, at each family's call into
 * Deno, before Deno is asked.
 *
 * @module
 */

/** The kinds of access Deno's permission flags control for a script. */
export type AccessKind = "read" | "write" | "net" | "env" | "run" | "sys";

/** What `--deny-<kind>=a,b` listed, per kind; `true` for a bare `--deny-<kind>`, which refuses the whole kind. */
export type DenyLists = Partial<Record<AccessKind, string[] | true>>;

/** A refusal by a `--deny-*` flag: `entry` is what its list named, undefined for a bare one. */
export class AccessDenied extends Error {
  constructor(readonly kind: AccessKind, readonly target: string, readonly entry?: string) {
    super(`${kind} access to "${target}" denied by ${denyFlag(kind, entry)}`);
  }
}

const denyFlag = (kind: AccessKind, entry?: string) => `--deny-${kind}${entry === undefined ? "" : `=${entry}`}`;

let denied: DenyLists = {};
/** The denied paths with their symbolic links resolved, per kind (where they differ from the paths as given). */
let deniedReal: Partial<Record<"read" | "write", string[]>> = {};

/**
 * Sets the `--deny-*` lists of this thread's script. Paths are made
 * absolute against the working directory.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { checkAccess, setDenied } from "./_permissions.ts";
 * setDenied({ env: ["SECRET"] });
 * let refused = false;
 * try { checkAccess("env", "SECRET"); } catch { refused = true; }
 * ok(refused);
 * setDenied({});
 * ```
 */
export function setDenied(lists: DenyLists): void {
  denied = {};
  deniedReal = {};
  for (const [kind, entries] of Object.entries(lists) as [AccessKind, string[] | true][]) {
    if (entries === true || (kind !== "read" && kind !== "write")) {
      denied[kind] = entries;
      continue;
    }
    const paths = denied[kind] = entries.map(absolute);
    deniedReal[kind] = paths.map((path) => resolvedPath(path) ?? path);
  }
}

/**
 * `path` (absolute) with the symbolic links on its way resolved, as far as
 * it exists (a file about to be made is named by its folder's real path);
 * undefined where Deno may not read it, or it cannot be resolved.
 */
function resolvedPath(path: string): string | undefined {
  const rest: string[] = [];
  for (let head = path;;) {
    try {
      const real = Deno.realPathSync(head);
      return rest.length === 0 ? real : `${real === "/" ? "" : real}/${rest.join("/")}`;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound) || head === "/") return undefined;
      const slash = head.lastIndexOf("/");
      rest.unshift(head.slice(slash + 1));
      head = head.slice(0, slash) || "/";
    }
  }
}

function absolute(path: string): string {
  if (!path.startsWith("/")) {
    let cwd = "";
    try {
      cwd = Deno.cwd();
    } catch {
      // Without read access to it, relative entries are taken from the root.
    }
    path = `${cwd}/${path}`;
  }
  // "/tmp/../etc", "//etc" and "/./etc" are all "/etc": a denied folder is refused however it is written.
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "..") parts.pop();
    else if (part !== "" && part !== ".") parts.push(part);
  }
  return `/${parts.join("/")}`;
}

function matches(kind: AccessKind, entry: string, target: string): boolean {
  switch (kind) {
    case "read":
    case "write":
      return entry === "/" || target === entry || target.startsWith(`${entry}/`);
    case "net": {
      // "host" denies every port of host; "host:port" that port only. Host names compare in any case, with or
      // without the root's dot.
      const [name, denied] = [target, entry].map((t) => t.toLowerCase().replace(/\.(?=:\d+$|$)/, ""));
      return name === denied || name.replace(/:\d+$/, "") === denied;
    }
    case "env":
      return entry.endsWith("*") ? target.startsWith(entry.slice(0, -1)) : target === entry;
    case "run":
      return target === entry || target.endsWith(`/${entry}`);
    case "sys":
      return target === entry;
  }
}

/**
 * Refuses `kind` access to `target` (a path, `host:port`, variable, program
 * or system value) when a `--deny-*` list names it.
 *
 * ```ts
 * import { checkAccess } from "./_permissions.ts";
 * checkAccess("read", "/tmp/anything"); // nothing is denied by default
 * ```
 */
export function checkAccess(kind: AccessKind, target: string): void {
  const entries = denied[kind];
  if (!entries) return;
  if (entries === true) throw new AccessDenied(kind, target);
  const subject = kind === "read" || kind === "write" ? absolute(target) : target;
  let entry = entries.find((e) => matches(kind, e, subject));
  if (entry === undefined && (kind === "read" || kind === "write")) {
    // A symbolic link from elsewhere into a denied folder reaches the same file: where it leads is checked too.
    const real = resolvedPath(subject);
    const reals = deniedReal[kind]!;
    const at = real === undefined ? -1 : reals.findIndex((e) => matches(kind, e, real));
    if (at >= 0) entry = entries[at];
  }
  if (entry !== undefined) throw new AccessDenied(kind, target, entry);
}

/**
 * Refuses `kind` access to the whole tree at `path`, as a rename moves or
 * replaces it: also when a `--deny-<kind>` entry lies inside it, which the
 * rename would give a new name (where no entry names it) or replace.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { checkTree, setDenied } from "./_permissions.ts";
 * setDenied({ read: ["/box/data/secret.txt"] });
 * let refused = false;
 * try { checkTree("read", "/box"); } catch { refused = true; }
 * ok(refused);
 * setDenied({});
 * ```
 */
export function checkTree(kind: "read" | "write", path: string): void {
  checkAccess(kind, path);
  const entries = denied[kind];
  if (!entries || entries === true) return;
  const subject = absolute(path);
  const entry = entries.find((e) => e.startsWith(subject === "/" ? "/" : `${subject}/`));
  if (entry !== undefined) throw new AccessDenied(kind, path, entry);
}

/**
 * True when a `--deny-<kind>` list is in force.
 *
 * ```ts
 * import { strictEqual } from "node:assert";
 * import { hasDenyList, setDenied } from "./_permissions.ts";
 * setDenied({ net: ["10.0.0.1"] });
 * strictEqual(hasDenyList("net") && !hasDenyList("read"), true);
 * setDenied({});
 * ```
 */
export function hasDenyList(kind: AccessKind): boolean {
  const entries = denied[kind];
  return entries === true || (entries?.length ?? 0) > 0;
}

/**
 * True for an access the flags refused: Deno's NotCapable or an
 * {@linkcode AccessDenied}. The operating system's own refusal (EACCES,
 * EPERM: Deno's PermissionDenied) is not one: no flag would cure it.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { isPermissionError } from "./_permissions.ts";
 * ok(isPermissionError(new Deno.errors.NotCapable("x")) && !isPermissionError(new Deno.errors.PermissionDenied("x")));
 * ```
 */
export function isPermissionError(e: unknown): boolean {
  return e instanceof AccessDenied || e instanceof Deno.errors.NotCapable;
}

// Ports the system picked for this thread's listeners, receivers and servers (asked for port 0).
const picked = new Set<number>();

/**
 * Notes that a listener asked for port `asked` got port `real`: when the
 * system picked it (`asked` 0), a flag naming it would change every run,
 * so refused clients of it are told to allow its host alone.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { accessReason, notePort } from "./_permissions.ts";
 * notePort(0, 45679);
 * ok(accessReason(undefined, "net", "127.0.0.1:45679").endsWith("(run with --allow-net=127.0.0.1)"));
 * ```
 */
export function notePort(asked: number, real: number): void {
  if (asked === 0) picked.add(real);
}

/**
 * The reason a refused access gives the script, naming the flag that
 * grants it, or the `--deny-*` flag that refused it. For net, the target
 * Deno names in its own message wins over `target`, and the flag for port 0,
 * or for a port the system picked for a listener (see {@linkcode notePort}),
 * names the host alone.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { accessReason } from "./_permissions.ts";
 * ok(accessReason(new Deno.errors.NotCapable("x"), "env", "HOME") ===
 *   'permission denied: env access to "HOME" (run with --allow-env=HOME)');
 * ok(accessReason(undefined, "net", "127.0.0.1:0") ===
 *   'permission denied: net access to "127.0.0.1:0" (run with --allow-net=127.0.0.1)');
 * ```
 */
export function accessReason(e: unknown, kind: AccessKind, target: string): string {
  if (e instanceof AccessDenied) { // it names what it refused: a rename's target, say, not its source
    return `permission denied: ${e.kind} access to "${e.target}" (denied by ${denyFlag(e.kind, e.entry)})`;
  }
  // Deno names the access it refused, which may be another kind than the call's (a rename needs read too).
  const named = e instanceof Error ? /Requires (\w+) access to "([^"]+)"/.exec(e.message) : null;
  const [refused, subject] = named && (named[1] !== kind || kind === "net") ? [named[1], named[2]] : [kind, target];
  // Deno gives some paths (/dev/stdin, /proc/self/...) only to a run with every permission: there is no list to name.
  if (refused === "all") {
    return `permission denied: ${kind} access to "${subject}" needs all permissions (run with -A alone, or no flag)`;
  }
  // No flag can name port 0 or a port the system picked for a listener: its clients need the host's every port (once).
  const hostAlone = (t: string) => t.replace(/:(\d+)$/, (all, port) => port === "0" || picked.has(+port) ? "" : all);
  const grant = refused === "net" ? [...new Set(subject.split(",").map(hostAlone))].join(",") : subject;
  return `permission denied: ${refused} access to "${subject}" (run with --allow-${refused}=${grant})`;
}
