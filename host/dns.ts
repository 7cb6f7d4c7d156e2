/**
 * The DNS family: `resolve_dns`, on the operating system's resolver
 * (`node:dns` `lookup`, which is getaddrinfo: hosts file, then DNS) and on
 * `Deno.resolveDns` for record types.
 *
 * ```lua
 * local ip = resolve_dns("localhost")                    -- "127.0.0.1"
 * local ips = resolve_dns("localhost", "all")            -- { "127.0.0.1", ... }
 * local mx = resolve_dns("example.com", "MX")            -- { { exchange = ..., preference = 10 } }
 * local txt = resolve_dns("example.com", "TXT", { server = "127.0.0.1:5353", timeout = 2 })
 * ```
 *
 * Record lookups ask `options.server`, else the server named by the
 * environment variable `SOLVM_DNS_SERVER` (as the CLI read it, see
 * {@linkcode setDnsServerVariable}; else read here only when env access is
 * granted), else the system's name servers. The address forms (no type,
 * or "all") ask the system's resolver, unless `options.server` is given:
 * then they ask that server for A, then AAAA records. Failures return nil
 * and a message; bad arguments raise.
 *
 * @module
 */
// node: modules cost ~20 ms to load; node:dns is imported when first needed, not at start-up.
import type { LookupAddress } from "node:dns";
import type { Engine, Pusher } from "../runtime/engine.ts";
import type { Family } from "../runtime/family.ts";
import { argError, checkOptions, checkString, isNone } from "../runtime/args.ts";
import { LUA_TNIL, LUA_TNONE, LUA_TNUMBER, LUA_TSTRING, LUA_TTABLE, type LuaState } from "../runtime/lua.ts";
import type { LuaVM } from "../runtime/state.ts";
import { after } from "../runtime/_timer.ts";
import { accessReason, checkAccess, hasDenyList, isPermissionError } from "./_permissions.ts";

/** Seconds a record lookup may take unless `options.timeout` says otherwise. */
export const DEFAULT_DNS_TIMEOUT = 5;

/** The environment variable naming the DNS server for record lookups ("ip" or "ip:port"). */
export const DNS_SERVER_VARIABLE = "SOLVM_DNS_SERVER";

const RECORD_TYPES = ["A", "AAAA", "ANAME", "CAA", "CNAME", "MX", "NAPTR", "NS", "PTR", "SOA", "SRV", "TXT"] as const;
type RecordType = typeof RECORD_TYPES[number];

/** A failure that comes back to Lua as nil and a message, not as an error. */
export class SoftFailure extends Error {}

/**
 * Runs `check`, the access checks of a network call to `target`: a refusal
 * becomes a {@linkcode SoftFailure}, which the call answers with nil and
 * the reason.
 *
 * ```ts
 * import { rejects } from "node:assert";
 * import { SoftFailure, softlyRefused } from "./dns.ts";
 * await rejects(softlyRefused("x:1", () => { throw new Deno.errors.NotCapable("no"); }), SoftFailure);
 * ```
 */
export async function softlyRefused(target: string, check: () => void | Promise<void>): Promise<void> {
  try {
    await check();
  } catch (e) {
    if (!isPermissionError(e)) throw e;
    throw new SoftFailure(accessReason(e, "net", target));
  }
}

/** Pushes nil and `message`: how a network call reports a failure. */
export function pushFailure(vm: LuaVM, L: LuaState, message: string): number {
  vm.api.lua_pushnil(L);
  vm.pushString(L, message);
  return 2;
}

/**
 * 4 or 6 for an IP address literal, 0 for anything else (a host name).
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { ipVersion } from "./dns.ts";
 * ok(ipVersion("127.0.0.1") === 4 && ipVersion("::1") === 6 && ipVersion("localhost") === 0);
 * ```
 */
export function ipVersion(text: string): 0 | 4 | 6 {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) return v4.slice(1).every((part) => Number(part) <= 255) ? 4 : 0;
  if (!text.includes(":")) return 0;
  try {
    new URL(`http://[${text}]/`);
    return 6;
  } catch {
    return 0;
  }
}

/**
 * "host:port" as Deno's permission flags spell it (IPv6 in brackets).
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { hostPort } from "./dns.ts";
 * ok(hostPort("::1", 80) === "[::1]:80" && hostPort("a.b", 80) === "a.b:80");
 * ```
 */
export function hostPort(host: string, port: number): string {
  return ipVersion(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The spellings a connection to `address` (as the resolver gave it) may be
 * denied under: itself, its canonical IPv6 form, the IPv4 address of an
 * IPv4-mapped one (`::ffff:127.0.0.1`), and the loopback address that the
 * unspecified one (`0.0.0.0`, `::`) reaches on Linux.
 *
 * ```ts
 * import { deepStrictEqual } from "node:assert";
 * import { deniableSpellings } from "./dns.ts";
 * deepStrictEqual(deniableSpellings("::ffff:0.0.0.0"), ["::ffff:0.0.0.0", "::ffff:0:0", "0.0.0.0", "127.0.0.1"]);
 * ```
 */
export function deniableSpellings(address: string): string[] {
  const spellings = [address];
  if (ipVersion(address) === 6) {
    const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
    spellings.push(canonical);
    const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
    if (mapped) {
      const [high, low] = [parseInt(mapped[1], 16), parseInt(mapped[2], 16)];
      spellings.push([high >> 8, high & 255, low >> 8, low & 255].join("."));
    }
  }
  const last = spellings.at(-1);
  if (last === "0.0.0.0") spellings.push("127.0.0.1");
  else if (last === "::") spellings.push("::1");
  return [...new Set(spellings)];
}

/**
 * The one `--deny-net` check of every connection, before Deno is asked:
 * refuses `host`:`port` when a list names the host (in any case), or any
 * spelling of an address the system resolves it to (see
 * {@linkcode deniableSpellings}); IP literals are resolved too, as the system
 * reads `127.000.000.001`. A name that does not resolve is left to the
 * connection, which fails.
 *
 * ```ts
 * import { checkNetAccess } from "./dns.ts";
 * await checkNetAccess("localhost", 80); // nothing is denied by default
 * ```
 */
export async function checkNetAccess(host: string, port: number): Promise<void> {
  checkAccess("net", hostPort(host, port));
  if (!hasDenyList("net")) return;
  let addresses: LookupAddress[];
  try {
    addresses = await lookupAll(host);
  } catch {
    return;
  }
  for (const { address } of addresses) {
    for (const spelling of deniableSpellings(address)) checkAccess("net", hostPort(spelling, port));
  }
}

/** Every address of `host` from the system's resolver, IPv4 first; fails with a {@linkcode SoftFailure}. */
export async function lookupAll(host: string): Promise<LookupAddress[]> {
  await softlyRefused(host, () => checkAccess("net", host));
  const { lookup } = await import("node:dns");
  return new Promise((resolve, reject) => {
    lookup(host, { all: true }, (err, addresses) => {
      // An empty name resolves to no address, without an error.
      if (!err && addresses.length === 0) return reject(new SoftFailure(`unknown host '${host}'`));
      if (!err) {
        const seen = new Set<string>();
        const unique = addresses.filter((a) => !seen.has(a.address) && seen.add(a.address));
        return resolve(unique.sort((a, b) => a.family - b.family));
      }
      // getaddrinfo needs net access to the bare host name.
      if (err.code === "EPERM") return reject(new SoftFailure(accessReason(err, "net", host)));
      if (err.code === "ENOTFOUND" || err.code === "ENODATA") {
        return reject(new SoftFailure(`unknown host '${host}'`));
      }
      if (err.code === "EAI_AGAIN") return reject(new SoftFailure(`temporary DNS failure looking up '${host}'`));
      reject(new SoftFailure(`cannot look up '${host}': ${err.message}`));
    });
  });
}

/**
 * The address to reach `host` at: itself when it is an IP address, else its
 * first (IPv4 preferred) address; fails with a {@linkcode SoftFailure}.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { lookupAddress } from "./dns.ts";
 * ok(await lookupAddress("127.0.0.1") === "127.0.0.1");
 * ```
 */
export async function lookupAddress(host: string): Promise<string> {
  if (ipVersion(host)) return host;
  return (await lookupAll(host))[0].address;
}

/** Parses "ip", "ip:port", "[ipv6]:port" or a bare IPv6 address; undefined when it is none of these. */
function parseServer(text: string): Deno.ResolveDnsOptions["nameServer"] | undefined {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  let ipAddr = text;
  let port = "53";
  if (bracketed) [, ipAddr, port = "53"] = bracketed;
  else if (ipVersion(text) !== 6 && text.includes(":")) [ipAddr, port] = text.split(":");
  const n = Number(port);
  if (!ipVersion(ipAddr) || !/^\d+$/.test(port) || n < 1 || n > 65535) return undefined;
  return { ipAddr, port: n };
}

/** SOLVM_DNS_SERVER as the CLI read it: a confined script may not read the environment itself. */
let serverVariable: string | undefined;

/**
 * Sets the value of SOLVM_DNS_SERVER for this thread's lookups, as the
 * CLI's thread read it; undefined leaves it to be read here (when granted).
 *
 * ```ts
 * import { setDnsServerVariable } from "./dns.ts";
 * setDnsServerVariable("127.0.0.1:5353");
 * setDnsServerVariable(undefined);
 * ```
 */
export function setDnsServerVariable(text: string | undefined): void {
  serverVariable = text;
}

/** The server named by SOLVM_DNS_SERVER, when the CLI gave it or it is set and readable without a prompt. */
function serverFromEnvironment(): Deno.ResolveDnsOptions["nameServer"] | undefined {
  let text = serverVariable;
  if (
    text === undefined && Deno.permissions.querySync({ name: "env", variable: DNS_SERVER_VARIABLE }).state === "granted"
  ) {
    text = Deno.env.get(DNS_SERVER_VARIABLE);
  }
  if (!text) return undefined;
  const server = parseServer(text);
  if (!server) throw new Error(`resolve_dns: ${DNS_SERVER_VARIABLE}="${text}" is not an address ("ip" or "ip:port")`);
  return server;
}

interface Query {
  host: string;
  /** undefined: the first address; "all": every address; else a record type. */
  type?: "all" | RecordType;
  server?: Deno.ResolveDnsOptions["nameServer"];
  timeoutMs: number;
}

/** Reads `resolve_dns(host, [type], [options])`; raises on bad arguments. */
function readQuery(vm: LuaVM, L: LuaState): Query {
  const api = vm.api;
  const host = checkString(vm, L, 1, "resolve_dns");
  if (host === "") throw argError(1, "resolve_dns", "host name expected, got an empty string");
  const query: Query = { host, timeoutMs: DEFAULT_DNS_TIMEOUT * 1000 };
  let optionsAt = 3;
  const typeKind = api.lua_type(L, 2);
  if (typeKind === LUA_TTABLE) optionsAt = 2;
  else if (typeKind === LUA_TSTRING) {
    const name = vm.toText(L, 2);
    const upper = name.toUpperCase();
    if (upper === "ALL") query.type = "all";
    else if ((RECORD_TYPES as readonly string[]).includes(upper)) query.type = upper as RecordType;
    else {
      throw argError(2, "resolve_dns", `"all" or a record type (${RECORD_TYPES.join(", ")}) expected, got "${name}"`);
    }
  } else if (typeKind !== LUA_TNIL && typeKind !== LUA_TNONE) {
    throw argError(2, "resolve_dns", `string or table expected, got ${vm.typeName(L, 2)}`);
  }
  if (optionsAt === 3 && !isNone(vm, L, 3) && api.lua_type(L, 3) !== LUA_TTABLE) {
    throw argError(3, "resolve_dns", `table expected, got ${vm.typeName(L, 3)}`);
  }
  if (api.lua_type(L, optionsAt) === LUA_TTABLE) {
    checkOptions(vm, L, optionsAt, optionsAt, "resolve_dns", ["server", "timeout"]);
    api.lua_getfield(L, optionsAt, vm.cstr("server"));
    const serverType = api.lua_type(L, -1);
    if (serverType === LUA_TSTRING) {
      const text = vm.toText(L, -1);
      query.server = parseServer(text);
      if (!query.server) {
        throw argError(optionsAt, "resolve_dns", `server must be "ip" or "ip:port", got "${text}"`);
      }
    } else if (serverType !== LUA_TNIL) {
      throw argError(optionsAt, "resolve_dns", `server must be a string, got ${vm.typeName(L, -1)}`);
    }
    api.lua_getfield(L, optionsAt, vm.cstr("timeout"));
    const timeoutType = api.lua_type(L, -1);
    if (timeoutType === LUA_TNUMBER) {
      const seconds = api.lua_tonumberx(L, -1, 0);
      if (!(seconds > 0) || !Number.isFinite(seconds)) {
        throw argError(optionsAt, "resolve_dns", `timeout must be a positive number of seconds, got ${seconds}`);
      }
      query.timeoutMs = seconds * 1000;
    } else if (timeoutType !== LUA_TNIL) {
      throw argError(optionsAt, "resolve_dns", `timeout must be a number, got ${vm.typeName(L, -1)}`);
    }
    api.lua_settop(L, -3);
  }
  if (query.type !== undefined && query.type !== "all" && !query.server) query.server = serverFromEnvironment();
  return query;
}

type RecordList = unknown[];

/** Drops the root dot of a fully qualified name: "mail.example.com." -> "mail.example.com". */
const relative = (name: string) => name.length > 1 && name.endsWith(".") ? name.slice(0, -1) : name;

/** One record as Lua gets it: host names without the root dot, TXT chunks joined into one string. */
function tidyRecord(type: RecordType, item: unknown): unknown {
  switch (type) {
    case "TXT": {
      // Deno gives each byte of a TXT record as one character: give Lua the bytes back (UTF-8 or not).
      const text = (item as string[]).join("");
      return /^[\0-\xff]*$/.test(text) ? Uint8Array.from(text, (c) => c.charCodeAt(0)) : text;
    }
    case "CNAME":
    case "ANAME":
    case "NS":
    case "PTR":
      return relative(item as string);
    case "MX": {
      const mx = item as Deno.MxRecord;
      return { ...mx, exchange: relative(mx.exchange) };
    }
    case "SRV": {
      const srv = item as Deno.SrvRecord;
      return { ...srv, target: relative(srv.target) };
    }
    case "SOA": {
      const soa = item as Deno.SoaRecord;
      return { ...soa, mname: relative(soa.mname), rname: relative(soa.rname) };
    }
  }
  return item;
}

/** One record lookup with Deno.resolveDns; an empty list when the name has none of that type. */
async function records(query: Query, type: RecordType): Promise<RecordList> {
  const giveUp = new AbortController();
  const stopTimer = after(query.timeoutMs, () => giveUp.abort());
  const options: Deno.ResolveDnsOptions = { signal: giveUp.signal };
  if (query.server) options.nameServer = query.server;
  const server = query.server ? hostPort(query.server.ipAddr, query.server.port ?? 53) : undefined;
  try {
    if (server) checkAccess("net", server);
    while (true) {
      try {
        // One call site per overload keeps the record types apart for the checker.
        const found: RecordList = await Deno.resolveDns(query.host, type as "A", options);
        return found.map((item) => tidyRecord(type, item));
      } catch (e) {
        // Deno's resolver gives up after about 2 s of its own: ask again until options.timeout has passed.
        if (!(e instanceof Deno.errors.TimedOut) || giveUp.signal.aborted) throw e;
      }
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    const where = server ? ` (server ${server})` : "";
    if (isPermissionError(e)) throw new SoftFailure(accessReason(e, "net", server ?? query.host));
    if (e instanceof Deno.errors.TimedOut || giveUp.signal.aborted) {
      throw new SoftFailure(`DNS lookup of '${query.host}' timed out after ${query.timeoutMs / 1000} s${where}`);
    }
    if (e instanceof Deno.errors.ConnectionRefused) {
      throw new SoftFailure(`DNS server refused the connection${where}`);
    }
    throw new SoftFailure(`DNS lookup of '${query.host}' failed${where}: ${e instanceof Error ? e.message : e}`);
  } finally {
    stopTimer();
  }
}

/** Runs a query; resolves to what Lua gets: an address, a list of addresses, or a list of records. */
async function answer(query: Query): Promise<string | RecordList> {
  const { host, type } = query;
  if (type === undefined || type === "all") {
    let addresses: string[];
    if (query.server) {
      addresses = [...await records(query, "A"), ...await records(query, "AAAA")] as string[];
      if (addresses.length === 0) throw new SoftFailure(`unknown host '${host}'`);
    } else addresses = (await lookupAll(host)).map((a) => a.address);
    return type === "all" ? addresses : addresses[0];
  }
  const found = await records(query, type);
  if (found.length === 0) throw new SoftFailure(`no ${type} records for '${host}'`);
  return found;
}

/** `resolve_dns(host, [type], [options])`. */
function resolveDns(engine: Engine, L: LuaState): Promise<Pusher> {
  const vm = engine.vm;
  const query = readQuery(vm, L);
  return answer(query).then(
    (result) => (L) => (vm.pushValue(L, result), 1),
    (e) => {
      if (!(e instanceof SoftFailure)) throw e;
      return (L) => pushFailure(vm, L, e.message);
    },
  );
}

/** The DNS family's registration table. */
export const dns = (engine: Engine): Family => ({
  resolve_dns: engine.blocking("resolve_dns", (L) => resolveDns(engine, L)),
});
