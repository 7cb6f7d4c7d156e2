/**
 * The HTTP server family: `create_server`, `handle_http`, `handle_ws`,
 * `start_server`, `stop_server`, on `Deno.serve` and
 * `Deno.upgradeWebSocket`.
 *
 * Each request runs its handler as a goroutine, so handlers may block
 * without holding up other requests; each WebSocket connection is a
 * goroutine too. A running server is resident: it keeps the script alive
 * and suspends the default time limit.
 *
 * @module
 */
import { CallStopped, type CancellableWait, type Engine, type Pusher } from "../runtime/engine.ts";
import type { Family } from "../runtime/family.ts";
import { argError, checkFunction, checkOptions, checkPort, checkString, checkTable, isNone } from "../runtime/args.ts";
import { LUA_TBOOLEAN, LUA_TNIL, LUA_TNUMBER, LUA_TSTRING, LUA_TTABLE, type LuaState } from "../runtime/lua.ts";
import { fileErrorReason } from "./filesystem.ts";
import { accessReason, checkAccess, isPermissionError, notePort } from "./_permissions.ts";
import { headersMetatable } from "./_headers.ts";
import { lettingGo, listenAgainIfLetGo, mayListenAgain, outOfDescriptors, SHORTAGE_RETRY_MS } from "./_ports.ts";
import { delay } from "./core.ts";
import { hostPort } from "./dns.ts";
import { log } from "../runtime/log.ts";

/** Request bodies above this many bytes get 413 unless `max_body` says otherwise. */
export const DEFAULT_MAX_BODY = 10 * 1024 * 1024;
/** Bytes a WebSocket may hold that its client has not taken yet; past them `ws.send` waits for the client. */
export const WS_SEND_BUFFER_LIMIT = 1024 * 1024;
/**
 * Bytes of messages a WebSocket holds that its handler has not received, at most: Deno's WebSocket cannot stop
 * reading, so past them the connection is closed (1008) rather than the process growing.
 */
export const WS_RECEIVE_QUEUE_LIMIT = 64 * 1024 * 1024;
/** How often a waiting `ws.send` looks at its socket's send buffer (Deno tells no event when it drains). */
const WS_DRAIN_CHECK_MS = 5;
/** How long a stopped server lets Deno write its last answers out when Deno's own shutdown never ends. */
const LAST_ANSWERS_MS = 1000;

interface Route {
  pattern: string;
  kind: "http" | "ws";
  ref: number;
  /** Segments of a pattern with `:param`s (before its `*`, if it has one); undefined for others. */
  segments?: string[];
  /** The prefix of a pattern ending in `*`. */
  prefix?: string;
  /** The subprotocols a WebSocket route accepts (handle_ws's `protocols` option). */
  protocols?: string[];
}

interface Server {
  name: string;
  /** The port asked for: 0 picks a free one at each start. */
  port: number;
  /** The port it listens on while it runs (the last one once stopped). */
  listening?: number;
  /** Settles once a stopped server has answered the requests it had. */
  stopped?: Promise<void>;
  hostname: string;
  maxBody: number;
  tls?: { cert: string; key: string };
  routes: { http: Route[]; ws: Route[] };
  http?: Deno.HttpServer;
  /** Its WebSockets, open or opening, with the id of each one's inbox. */
  sockets: Map<WebSocket, number>;
  /** Requests it was handed whose answer is still being made (a handler that waits, a body being read). */
  unanswered: number;
  /** Told when `unanswered` drops to 0, while the server stops. */
  onAnswered?: () => void;
  release?: () => void;
  /** Whether running out of file descriptors was told since the server started (it is told once). */
  shortageReported?: boolean;
}

/** The fields of a request table made on first use (method and path are made at once). */
const LAZY_FIELDS = new Set(["query", "query_params", "headers", "body", "params", "remote_addr"]);

// Lua helper: the WebSocket object (callable as ws.send(x) and ws:send(x)).
const SUPPORT_LUA = `
local helpers = ...
local send, receive, close = helpers.send, helpers.receive, helpers.close
local function make_ws(id, protocol)
  local ws = { protocol = protocol }
  ws.send = function(a, b, c)
    if a == ws then a, b = b, c end
    local t = type(a)
    -- Checked here so the error points at the caller's line.
    if t ~= "string" and t ~= "number" then
      error("bad argument #1 to 'send' (string expected, got " .. (a == nil and "no value" or t) .. ")", 2)
    end
    if b ~= nil and b ~= "text" and b ~= "binary" then
      error([[bad argument #2 to 'send' ("text" or "binary" expected, got ]] .. tostring(b) .. ")", 2)
    end
    if b == "text" and t == "string" and not utf8.len(a) then
      error([[bad argument #1 to 'send' (a text frame must be UTF-8; send it as "binary")]], 2)
    end
    return send(id, a, b)
  end
  -- After a receive returned nil (the end), one more is an error, not a loop that never waits; kept here, with the
  -- object, it holds after the handler has returned too.
  local ended = false
  ws.receive = function()
    if ended then error("ws.receive: the connection is closed (a receive returned nil already)", 2) end
    local message, kind = receive(id)
    if message == nil then ended = true end
    return message, kind
  end
  ws.close = function() return close(id) end
  return ws
end
-- A request's fields but method and path are made on first use; pairs(req) makes them all first.
local LAZY = { ${[...LAZY_FIELDS].map((field) => JSON.stringify(field)).join(", ")} }
local next = next
local function request_pairs(req)
  for i = 1, #LAZY do local _ = req[LAZY[i]] end
  return next, req, nil
end
return { make_ws = make_ws, request_pairs = request_pairs }`;

/** Messages of one WebSocket, waiting for `ws.receive()`. */
class Inbox {
  readonly queue: (string | Uint8Array)[] = [];
  /** How many bytes (as UTF-8) the queue holds. */
  #queued = 0;
  closed = false;
  #waiters: (() => void)[] = [];

  /** `overflowed` is told when the client sent more than {@linkcode WS_RECEIVE_QUEUE_LIMIT} the handler did not take. */
  constructor(readonly socket: WebSocket, overflowed: () => void) {
    socket.binaryType = "arraybuffer";
    socket.onmessage = (e) => {
      if (this.closed) return;
      const message = typeof e.data === "string" ? e.data : new Uint8Array(e.data);
      this.#queued += typeof message === "string" ? utf8Length(message) : message.byteLength;
      if (this.#queued > WS_RECEIVE_QUEUE_LIMIT) {
        this.closed = true;
        socket.close(1008, "too much unread data");
        overflowed();
      } else this.queue.push(message);
      this.#notify();
    };
    socket.onclose = () => {
      this.closed = true;
      this.#notify();
    };
    socket.onerror = () => {};
  }

  #notify(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** The oldest message not yet received, if any. */
  take(): string | Uint8Array | undefined {
    const message = this.queue.shift();
    if (message !== undefined) this.#queued -= typeof message === "string" ? utf8Length(message) : message.byteLength;
    return message;
  }

  /** Resolves when a message or the close arrives (every waiting receiver is woken to look). */
  next(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Waits until the client has taken all but {@linkcode WS_SEND_BUFFER_LIMIT} bytes sent to it, or the connection closes. */
  drained(sent: Pusher, closed: Pusher): CancellableWait {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const wait = new Promise<Pusher>((resolve) => {
      let delay = 0; // a client that keeps up has taken it by the next turns: looked at soon, then every few ms
      const look = () => {
        // Closed first: Deno empties the buffer when the connection ends, delivered or not, so a send still waiting
        // then cannot tell whether its message arrived (a client that read it and closed at once is told nil too).
        if (this.closed || this.socket.readyState !== WebSocket.OPEN) resolve(closed);
        else if (this.socket.bufferedAmount <= WS_SEND_BUFFER_LIMIT) resolve(sent);
        else {
          timer = setTimeout(look, delay);
          delay = Math.min(WS_DRAIN_CHECK_MS, delay + 1);
        }
      };
      look();
    });
    return { wait, cancel: () => clearTimeout(timer) };
  }
}

/** Bytes of `text` as UTF-8. */
function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) bytes += c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 1 : 2; // a surrogate pair is 4 bytes
  }
  return bytes;
}

/**
 * What is wrong with a route pattern outside the documented syntax (exact
 * segments, `:name` segments, a `*` as the whole last segment), if anything:
 * such a pattern could never match, or would match more than it says.
 */
function patternProblem(pattern: string): string | undefined {
  if (pattern.includes("?")) return `path without a query string expected, got "${pattern}" (see req.query_params)`;
  const star = pattern.indexOf("*");
  if (star >= 0 && (star !== pattern.length - 1 || !pattern.endsWith("/*"))) {
    return `path with '*' only as its whole last segment ("/files/*") expected, got "${pattern}"`;
  }
  const names = new Set<string>();
  for (const segment of pattern.split("/")) {
    if (segment === "." || segment === "..") {
      return `path without "." or ".." segments expected, got "${pattern}" (requests' dot segments are resolved)`;
    }
    if (!segment.startsWith(":")) {
      // Requests are decoded before matching; only an encoded "/" or "%" stays encoded (see decodePath).
      if (/%(?!2F|25)/.test(segment)) {
        return `path in its decoded form expected ("/café", "/a b"; only %2F and %25 stay encoded), got "${pattern}"`;
      }
      continue;
    }
    const name = segment.slice(1);
    if (name === "") return `a parameter name after ':' expected, got "${pattern}"`;
    if (names.has(name)) return `parameter names used once expected, got ':${name}' twice in "${pattern}"`;
    names.add(name);
  }
}

function routeOf(pattern: string, kind: "http" | "ws", ref: number): Route {
  if (pattern.endsWith("*")) {
    const prefix = pattern.slice(0, -1);
    return { pattern, kind, ref, prefix, segments: prefix.includes("/:") ? prefix.split("/") : undefined };
  }
  if (pattern.includes("/:")) return { pattern, kind, ref, segments: pattern.split("/") };
  return { pattern, kind, ref };
}

/**
 * Matches `parts` (a path split at "/") against a pattern's `segments`:
 * `:name` takes one non-empty segment. With `rest`, the last segment is
 * where the `*` was, and `*` takes everything from there on.
 */
function matchSegments(segments: string[], parts: string[], rest: boolean): Record<string, string> | undefined {
  const fixed = rest ? segments.length - 1 : segments.length;
  if (rest ? parts.length < segments.length : parts.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < fixed; i++) {
    const seg = segments[i];
    if (seg.startsWith(":")) {
      if (parts[i] === "") return undefined;
      params[seg.slice(1)] = paramValue(parts[i]);
    } else if (seg !== parts[i]) return undefined;
  }
  if (rest) params["*"] = paramValue(parts.slice(fixed).join("/"));
  return params;
}

/** The route for `path` (decoded): an exact match, else the first `:param` match, else the longest `*` prefix. */
function match(routes: Route[], path: string): { route: Route; params: Record<string, string> } | undefined {
  const exact = routes.find((r) => !r.segments && r.prefix === undefined && r.pattern === path);
  if (exact) return { route: exact, params: {} };
  const parts = path.split("/");
  let found: { route: Route; params: Record<string, string> } | undefined;
  for (const route of routes) {
    if (!route.segments || route.prefix !== undefined) continue;
    const params = matchSegments(route.segments, parts, false);
    if (params && (!found || specificity(route, found.route) > 0)) found = { route, params };
  }
  if (found) return found;
  // A * route: the one that matched the longest part of the path, then the more specific.
  let matched = -1;
  for (const route of routes) {
    if (route.prefix === undefined) continue;
    let params: Record<string, string> | undefined;
    let length: number;
    if (route.segments) {
      params = matchSegments(route.segments, parts, true);
      length = parts.slice(0, route.segments.length - 1).join("/").length + 1;
    } else {
      if (path.startsWith(route.prefix)) params = { "*": paramValue(path.slice(route.prefix.length)) };
      length = route.prefix.length;
    }
    if (!params || length < matched || (length === matched && specificity(route, found!.route) <= 0)) continue;
    found = { route, params };
    matched = length;
  }
  return found;
}

/**
 * Compares how specific two patterns that match the same path are: the first
 * segment where one has a literal and the other a `:param` decides. Positive
 * when `a` is more specific; 0 when neither is (the one registered first wins).
 */
function specificity(a: Route, b: Route): number {
  const segmentsOf = (route: Route) => (route.segments ?? (route.prefix ?? route.pattern).split("/"));
  const sa = segmentsOf(a), sb = segmentsOf(b);
  for (let i = 0; i < Math.min(sa.length, sb.length); i++) {
    const la = !sa[i].startsWith(":"), lb = !sb[i].startsWith(":");
    if (la !== lb) return la ? 1 : -1;
  }
  return 0;
}

/** The body of a request that has none. */
const EMPTY = new Uint8Array();
/** Statuses whose answers carry no body. */
const NO_BODY = new Set([204, 205, 304]);
/** The content type of plain-text answers. */
const TEXT = "text/plain; charset=utf-8";

/** Reads a request body, or undefined when it exceeds `max` bytes. */
async function readBody(request: Request, max: number): Promise<Uint8Array | undefined> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > max) return undefined;
  if (!request.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body) {
    size += chunk.length;
    if (size > max) return undefined;
    chunks.push(chunk);
  }
  if (chunks.length === 1) return chunks[0];
  const body = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.length;
  }
  return body;
}

/** The path and raw query of a request URL (a full URL object per request costs more than the rest of routing). */
interface RequestTarget {
  pathname: string;
  query: string;
}

/** Throws URIError for a malformed percent-escape. */
function splitUrl(url: string): RequestTarget {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  const hash = url.indexOf("#", start);
  const end = hash < 0 ? url.length : hash;
  const question = url.indexOf("?", start);
  if (question < 0 || question > end) return { pathname: decodePath(normalPath(url.slice(start, end))), query: "" };
  return { pathname: decodePath(normalPath(url.slice(start, question))), query: url.slice(question + 1, end) };
}

/**
 * The path with its `.` and `..` segments resolved (`%2e` counts as a dot), as
 * `new URL()` gives it: `/static/../secret.txt` is `/secret.txt`, so a `*`
 * route never sees a `..` that climbs out of its folder.
 */
function normalPath(raw: string): string {
  if (!raw.includes("/.") && !(raw.includes("%") && /\/%2e/i.test(raw))) return raw;
  const kept: string[] = [];
  const segments = raw.split("/");
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i];
    const dots = segment.length <= 6 ? segment.replace(/%2e/gi, ".") : segment;
    const last = i === segments.length - 1;
    if (dots === "..") kept.pop();
    if (dots !== "." && dots !== "..") kept.push(segment);
    else if (last) kept.push(""); // "/a/b/.." is "/a/": the folder keeps its trailing slash
  }
  return "/" + kept.join("/");
}

/**
 * The path as routes and `req.path` see it: `/caf%C3%A9` is `/café`. An
 * encoded `/` or `%` stays encoded (`%2F`, `%25`), so `a%2Fb` stays one
 * segment and is never taken for `a%252Fb`; parameters decode them.
 */
function decodePath(raw: string): string {
  if (!raw.includes("%")) return raw;
  return raw.split("/").map((segment) => decodeURIComponent(segment).replace(/[/%]/g, encodeURIComponent)).join("/");
}

/** A `..` segment, `/` or `\` ending it (Windows takes either): joined to a folder, it climbs out. */
const CLIMBS = /(?:^|[/\\])\.\.(?:[/\\]|$)/;

/**
 * A parameter's value from the path as decodePath gives it: `%2F` and `%25`
 * decoded too. Throws URIError for a value with a `..` segment (`..%2F`,
 * `..%5C`): dot segments are resolved before decoding, so these remain.
 */
function paramValue(text: string): string {
  const value = text.includes("%") ? text.replace(/%2F|%25/g, decodeURIComponent) : text;
  if (value.includes("..") && CLIMBS.test(value)) throw new URIError("a parameter with a .. segment");
  return value;
}

/**
 * `req.query_params`: name -> value, or -> the list of values for a name given more than once (`?tag=a&tag=b`).
 * Read as URLSearchParams reads a query, but byte-exact: `%E9` is the byte E9 even where it is not UTF-8 (Lua strings
 * are bytes; URLSearchParams would make it U+FFFD).
 */
function queryParams(query: string): { name: Uint8Array; values: Uint8Array[] }[] {
  const params = new Map<string, { name: Uint8Array; values: Uint8Array[] }>(); // by the name's bytes as Latin-1 text
  for (const pair of query.split("&")) {
    if (pair === "") continue;
    const equals = pair.indexOf("=");
    const name = queryBytes(equals < 0 ? pair : pair.slice(0, equals));
    const value = queryBytes(equals < 0 ? "" : pair.slice(equals + 1));
    let key = "";
    for (const byte of name) key += String.fromCharCode(byte);
    const param = params.get(key);
    if (param) param.values.push(value);
    else params.set(key, { name, values: [value] });
  }
  return [...params.values()];
}

const HEX = /^[0-9a-fA-F]{2}$/;
/** An HTTP token (RFC 9110): what a WebSocket subprotocol's name is. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** A query component's bytes: `+` is a space, `%XX` the byte XX (a `%` without two hex digits stays). */
function queryBytes(component: string): Uint8Array {
  const text = new TextEncoder().encode(component.replaceAll("+", " "));
  if (!component.includes("%")) return text;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const hex = String.fromCharCode(text[i + 1] ?? 0, text[i + 2] ?? 0);
    if (text[i] === 0x25 && HEX.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else bytes.push(text[i]);
  }
  return new Uint8Array(bytes);
}

const plain = (status: number, text: string) => new Response(text, { status, headers: { "content-type": TEXT } });

/** What a handler's request table makes its other fields from, while the handler runs. */
interface PendingRequest {
  request: Request;
  url: RequestTarget;
  body: Uint8Array;
  params: Record<string, string>;
  info: Deno.ServeHandlerInfo;
  /** The registry reference that holds the table (so its address names it) until the handler ends. */
  ref: number;
  /** The table's address. */
  table: number;
}

/** The servers of one engine. */
class ServerTable {
  readonly #servers = new Map<string, Server>();
  readonly #inboxes = new Map<number, Inbox>();
  #nextSocket = 0;
  #support = 0;
  #headersMeta = 0;
  #makeWs = 0;
  /** The metatable every request table shares: its `__index` makes the fields made on first use. */
  #requestMeta = 0;
  // Requests whose handler runs, by the address of their table.
  readonly #requests = new Map<number, PendingRequest>();

  constructor(readonly engine: Engine) {
    engine.onClose(() => {
      for (const server of this.#servers.values()) this.#shutdown(server);
    });
  }

  /** Compiles the Lua helpers on first use (after the families are installed). */
  #ensureSupport(): void {
    if (this.#support) return;
    const { engine } = this;
    const vm = engine.vm;
    this.#support = engine.compileLua("http support", SUPPORT_LUA, {
      send: engine.blocking("ws.send", (L) => this.#wsSend(L), { worksWhereNoWait: true }),
      receive: engine.blocking("ws.receive", (L) => this.#wsReceive(L)),
      close: (L) => this.#wsClose(L),
    });
    vm.pushRef(engine.L, this.#support);
    vm.api.lua_getfield(engine.L, -1, vm.cstr("make_ws"));
    this.#makeWs = vm.ref(engine.L);
    vm.api.lua_createtable(engine.L, 0, 2);
    vm.api.lua_getfield(engine.L, -2, vm.cstr("request_pairs"));
    vm.api.lua_setfield(engine.L, -2, vm.cstr("__pairs"));
    vm.api.lua_pushcclosure(engine.L, vm.hostFunction((L) => this.#lazyField(L)), 0);
    vm.api.lua_setfield(engine.L, -2, vm.cstr("__index"));
    this.#requestMeta = vm.ref(engine.L);
    vm.api.lua_settop(engine.L, -2);
    this.#headersMeta = headersMetatable(engine);
  }

  #server(L: LuaState, fname: string): Server {
    const name = checkString(this.engine.vm, L, 1, fname);
    const server = this.#servers.get(name);
    if (!server) throw new Error(`${fname}: no server named '${name}' (create it with create_server)`);
    return server;
  }

  /** `create_server(name, port, [options])`, `(name, port, false, [options])` or `(name, port, https, cert, key, [options])`. */
  create(L: LuaState): number {
    const vm = this.engine.vm;
    const name = checkString(vm, L, 1, "create_server");
    if (name === "") throw argError(1, "create_server", "a server name expected, got an empty string");
    const port = checkPort(vm, L, 2, "create_server", 0);
    const before = this.#servers.get(name);
    // The name of a server that ran and was stopped may be taken again; a running or new one keeps it.
    if (before && !before.stopped) throw new Error(`create_server: a server named '${name}' already exists`);
    const server: Server = {
      name,
      port,
      hostname: "0.0.0.0",
      maxBody: DEFAULT_MAX_BODY,
      routes: { http: [], ws: [] },
      sockets: new Map(),
      unanswered: 0,
    };
    const third = vm.api.lua_type(L, 3);
    if (third > LUA_TBOOLEAN && third !== LUA_TTABLE) {
      throw argError(3, "create_server", `boolean or options table expected, got ${vm.typeName(L, 3)}`);
    }
    const https = third === LUA_TBOOLEAN && vm.api.lua_toboolean(L, 3);
    if (https) {
      const certPath = checkString(vm, L, 4, "create_server");
      const keyPath = checkString(vm, L, 5, "create_server");
      const read = (path: string, what: string) => {
        try {
          checkAccess("read", path);
          return Deno.readTextFileSync(path);
        } catch (e) {
          throw new Error(`create_server: cannot read TLS ${what} "${path}": ${fileErrorReason(e, "read", path)}`);
        }
      };
      server.tls = { cert: read(certPath, "certificate"), key: read(keyPath, "key") };
    }
    // With HTTPS off, users write the options right after the spec's create_server(name, port, false).
    const optionsAt = third === LUA_TTABLE ? 3 : !https && vm.api.lua_type(L, 4) === LUA_TTABLE ? 4 : 6;
    if (!isNone(vm, L, optionsAt)) {
      checkTable(vm, L, optionsAt, "create_server");
      checkOptions(vm, L, optionsAt, optionsAt, "create_server", ["host", "max_body"]);
      const bad = (why: string) => argError(optionsAt, "create_server", why);
      const bodyType = vm.api.lua_getfield(L, optionsAt, vm.cstr("max_body"));
      if (bodyType !== LUA_TNIL) {
        const limit = bodyType === LUA_TNUMBER ? Number(vm.api.lua_tonumberx(L, -1, 0)) : NaN;
        if (!(limit >= 0 && (Number.isInteger(limit) || limit === Infinity))) {
          const got = bodyType !== LUA_TNUMBER ? vm.typeName(L, -1) : Number.isNaN(limit) ? "nan" : String(limit);
          throw bad(`option max_body must be a whole number of bytes >= 0, got ${got}`);
        }
        server.maxBody = limit;
      }
      const hostType = vm.api.lua_getfield(L, optionsAt, vm.cstr("host"));
      if (hostType !== LUA_TNIL) {
        if (hostType !== LUA_TSTRING) throw bad(`option host must be a string, got ${vm.typeName(L, -1)}`);
        server.hostname = vm.toText(L, -1);
      }
      vm.api.lua_settop(L, -3);
    }
    if (before) this.#forget(before);
    this.#servers.set(name, server);
    vm.api.lua_pushboolean(L, 1);
    return 1;
  }

  /** Frees the handlers of a stopped server that a new one replaces, once it has answered its last requests. */
  #forget(server: Server): void {
    server.stopped!.then(() => {
      if (this.engine.closed) return;
      for (const route of [...server.routes.http, ...server.routes.ws]) this.engine.vm.unref(route.ref);
    });
  }

  /** `handle_http(name, path, fn)` and `handle_ws(name, path, fn, [options])`. */
  handle(L: LuaState, kind: "http" | "ws"): number {
    const fname = kind === "http" ? "handle_http" : "handle_ws";
    const vm = this.engine.vm;
    const server = this.#server(L, fname);
    const path = checkString(vm, L, 2, fname);
    if (!path.startsWith("/")) throw argError(2, fname, `path starting with "/" expected, got "${path}"`);
    const problem = patternProblem(path);
    if (problem) throw argError(2, fname, problem);
    checkFunction(vm, L, 3, fname);
    const protocols = kind === "ws" && !isNone(vm, L, 4) ? this.#protocolsOption(L, 4) : undefined;
    vm.api.lua_pushvalue(L, 3);
    const routes = server.routes[kind];
    const existing = routes.findIndex((r) => r.pattern === path);
    if (existing >= 0) vm.unref(routes.splice(existing, 1)[0].ref);
    routes.push({ ...routeOf(path, kind, vm.ref(L)), protocols });
    return 0;
  }

  /** handle_ws's options table at `at`: `{ protocols = { "chat", ... } }`; the list of protocols, if given. */
  #protocolsOption(L: LuaState, at: number): string[] | undefined {
    const vm = this.engine.vm;
    const api = vm.api;
    checkTable(vm, L, at, "handle_ws");
    checkOptions(vm, L, at, at, "handle_ws", ["protocols"]);
    const bad = (why: string) => argError(at, "handle_ws", why);
    const type = api.lua_getfield(L, at, vm.cstr("protocols"));
    if (type === LUA_TNIL) {
      api.lua_settop(L, -2);
      return undefined;
    }
    if (type !== LUA_TTABLE) throw bad(`option protocols must be a list of protocol names, got ${vm.typeName(L, -1)}`);
    const protocols: string[] = [];
    const n = Number(api.lua_rawlen(L, -1));
    for (let i = 1; i <= n; i++) {
      api.lua_rawgeti(L, -1, BigInt(i));
      const name = api.lua_type(L, -1) === LUA_TSTRING ? vm.toText(L, -1) : undefined;
      if (name === undefined || !TOKEN.test(name)) {
        const got = name === undefined ? `a ${vm.typeName(L, -1)}` : JSON.stringify(name);
        throw bad(`option protocols must list protocol names (HTTP tokens), got ${got} (item ${i})`);
      }
      protocols.push(name);
      api.lua_settop(L, -2);
    }
    api.lua_settop(L, -2);
    return protocols;
  }

  /** `start_server(name)`: returns the port once the server listens. */
  start(L: LuaState): Promise<(L: LuaState) => number> {
    const server = this.#server(L, "start_server");
    if (server.http) throw new Error(`start_server: server '${server.name}' is already running`);
    const stopped = server.stopped;
    server.stopped = undefined; // its name is taken while it starts, and free again if it cannot
    this.#ensureSupport();
    return this.#listen(server).catch((e) => {
      server.stopped = stopped;
      throw e;
    });
  }

  /**
   * Listens; on a port a listener let go a moment ago, tries again (Deno
   * lets a stopped server's port go a moment after stop_server).
   */
  async #listen(server: Server): Promise<(L: LuaState) => number> {
    const running = new Error(`start_server: server '${server.name}' is already running`);
    try {
      return await listenAgainIfLetGo(server.port, () => {
        if (server.http) throw running; // another start_server of it listened while this one waited
        return this.#listenOnce(server);
      });
    } catch (e) {
      throw e === running ? e : this.#startFailure(server, e);
    }
  }

  #startFailure(server: Server, e: unknown): Error {
    return new Error(`start_server: cannot start '${server.name}' on port ${server.port}: ${listenReason(e, server)}`);
  }

  #listenOnce(server: Server): (L: LuaState) => number {
    const port = this.#serveOn(server, server.port);
    notePort(server.port, port);
    server.listening = port;
    server.release = this.engine.hold();
    server.shortageReported = false;
    log("info", `server '${server.name}' listening on ${server.tls ? "https" : "http"}://${server.hostname}:${port}`);
    return (L) => (this.engine.vm.api.lua_pushinteger(L, BigInt(port)), 1);
  }

  /** Makes Deno serve `server` on `port` (0: any free one); returns the port it listens on, or throws. */
  #serveOn(server: Server, port: number): number {
    checkAccess("net", hostPort(server.hostname, port));
    const http = Deno.serve({
      port,
      hostname: server.hostname,
      ...server.tls,
      onListen: () => {}, // Deno's own would print "Listening on ..."
      onError: (e) => {
        this.engine.reportError(`server '${server.name}': ${e instanceof Error ? e.message : e}`);
        return plain(500, "Internal Server Error");
      },
    }, (request, info) => this.#serve(server, request, info));
    server.http = http;
    http.finished.catch((e) => this.#acceptFailed(server, http, e));
    return (http.addr as Deno.NetAddr).port;
  }

  /**
   * Deno's server stops accepting for good when an accept fails (out of file
   * descriptors, say): told once, the server listens on its port again after
   * a pause, while it is meant to run; clients meanwhile are refused.
   */
  async #acceptFailed(server: Server, http: Deno.HttpServer, e: unknown): Promise<void> {
    if (server.http !== http) return; // stopped meanwhile
    const port = server.listening!;
    lettingGo(port);
    const since = performance.now();
    if (!server.shortageReported) {
      server.shortageReported = true;
      const why = (e instanceof Error ? e.message : String(e)).replace(/^Error: /, ""); // Deno wraps the system error
      const message = `cannot accept connections: ${why}; listening again once descriptors are free`;
      this.engine.reportFailure(`server '${server.name}'`, message, message);
    }
    while (server.http === http) {
      await delay(SHORTAGE_RETRY_MS);
      if (server.http !== http) return;
      try {
        this.#serveOn(server, port);
      } catch (e) {
        if (outOfDescriptors(e) || mayListenAgain(port, e, since)) continue;
        const message = `cannot listen on port ${port} again: ${listenReason(e, server)}; the server is stopped`;
        this.engine.reportFailure(`server '${server.name}'`, message, message);
        this.#shutdown(server);
      }
    }
  }

  /**
   * `stop_server(name)`: stops listening and closes WebSockets; requests in
   * flight still get their answers (the run lives until they have), but
   * stop_server does not wait for them: a handler may stop its own server.
   */
  stop(L: LuaState): number {
    const server = this.#server(L, "stop_server");
    const running = server.http !== undefined;
    this.#shutdown(server);
    this.engine.vm.api.lua_pushboolean(L, running ? 1 : 0);
    return 1;
  }

  #shutdown(server: Server): void {
    const http = server.http;
    server.http = undefined;
    if (http) log("info", `server '${server.name}' stopped`);
    for (const [socket, id] of server.sockets) {
      // One still opening may never open (its client reset at once): its handler will not run, so its inbox goes now.
      if (socket.readyState === WebSocket.CONNECTING) this.#inboxes.delete(id);
      socket.close(1001, "server stopping");
    }
    server.sockets.clear();
    server.release?.();
    server.release = undefined;
    if (http) {
      const done = this.engine.keepAlive();
      lettingGo(server.listening!);
      server.stopped = this.#lastAnswers(server, http).finally(done);
    }
  }

  /**
   * Settles once a stopping server has sent its last answers: when Deno's
   * shutdown ends, or a moment after the last answer was made (the moment
   * lets Deno write it out), as Deno's never ends while it holds an upgrade
   * whose client reset before it completed.
   */
  #lastAnswers(server: Server, http: Deno.HttpServer): Promise<void> {
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const answered = () => void (timer ??= setTimeout(end, LAST_ANSWERS_MS));
      const end = () => {
        clearTimeout(timer);
        if (server.onAnswered === answered) server.onAnswered = undefined;
        resolve();
      };
      http.shutdown().catch(() => {}).then(end);
      server.onAnswered = answered;
      if (server.unanswered === 0) answered();
    });
  }

  /** Answers a request; one answered later (a handler that waits, a body to read) is counted until then. */
  #serve(server: Server, request: Request, info: Deno.ServeHandlerInfo): Response | Promise<Response> {
    const answer = this.#answer(server, request, info);
    if (!(answer instanceof Promise)) return answer; // the usual case: no count, no promise (info.completed costs 4%)
    server.unanswered++;
    return answer.finally(() => void (--server.unanswered === 0 && server.onAnswered?.()));
  }

  #answer(server: Server, request: Request, info: Deno.ServeHandlerInfo): Response | Promise<Response> {
    let url: RequestTarget;
    let found: ReturnType<typeof match>;
    let http: ReturnType<typeof match>;
    try {
      url = splitUrl(request.url);
      found = server.routes.ws.length > 0 ? match(server.routes.ws, url.pathname) : undefined;
      http = match(server.routes.http, url.pathname);
    } catch {
      return plain(400, "Bad Request"); // a malformed percent-escape, or a parameter that would climb out (..%2F)
    }
    // The headers are made only for a path with a WebSocket route: making them costs a tenth of a request.
    if (found && request.headers.get("upgrade")?.toLowerCase() === "websocket") {
      // The handler runs after the upgrade, when Deno has closed the request: it gets a copy.
      const copy = new Request(request.url, { headers: request.headers });
      const at = { remoteAddr: info.remoteAddr, completed: info.completed };
      const pending = { request: copy, url, body: EMPTY, params: found.params, info: at, ref: 0, table: 0 };
      return this.#upgrade(server, request, pending, found.route);
    }
    if (!http) return plain(404, "Not Found");
    const handle = (body: Uint8Array | undefined) => {
      if (body === undefined) return plain(413, "Payload Too Large");
      const pending: PendingRequest = { request, url, body, params: http.params, info, ref: 0, table: 0 };
      const response = this.#handle(server, http.route, url, (L) => this.#pushRequest(L, pending));
      if (!(response instanceof Promise)) {
        this.#answered(pending, this.engine.runPending);
        return response;
      }
      return response.finally(() => this.#answered(pending, true));
    };
    // Most requests have no body: then the handler runs at once, with no await on the way.
    // Deno gives GET and HEAD requests no body, so their body stream is not even asked for.
    const method = request.method;
    if (method === "GET" || method === "HEAD" || !request.body) return handle(EMPTY);
    const serving = server.http;
    // The read fails when the client went away, or when the server stops (Deno then ends the reads of bodies).
    return readBody(request, server.maxBody).then(
      handle,
      () => server.http === serving ? plain(400, "Bad Request") : plain(503, "Service Unavailable"),
    );
  }

  /**
   * Runs a route's handler as a goroutine that starts at once (Engine.call):
   * one that never waits answers without a coroutine switch. Its error goes
   * to on_error (or stderr), and the client gets a 500.
   */
  #handle(server: Server, route: Route, url: RequestTarget, pushRequest: (L: LuaState) => number) {
    const { engine } = this;
    const name = `http ${server.name} ${url.pathname}`;
    try {
      const answer = engine.call(
        (T) => {
          engine.vm.pushRef(T, route.ref);
          return pushRequest(T);
        },
        (ok, L, at) => {
          if (ok) {
            const response = this.#response(L, at);
            if (response instanceof Response) return response;
            // As a handler's error names its line: on_error has no other way to tell which handler it was.
            const where = this.#whereDefined(L, route.ref);
            const message = `${where}http handler (server '${server.name}', route ${route.pattern}) ${response}`;
            engine.reportFailure(name, message, message);
          } else engine.reportFailure(name, engine.vm.toText(L, at), engine.vm.toText(L, at + 1));
          return plain(500, "Internal Server Error");
        },
        { name },
      );
      // A handler that waited when the run ended (os.exit, reload_script, a limit) failed nothing: the run says why it ended.
      return answer instanceof Promise ? answer.catch((e) => stoppedAnswer(e)) : answer;
    } catch {
      return plain(500, "Internal Server Error"); // the engine is stopping
    }
  }

  /**
   * Pushes the request table: method and path at once, the other fields
   * on first use (most handlers read few of them, and making them all
   * cost more than the rest of a request).
   */
  #pushRequest(L: LuaState, pending: PendingRequest, whole = false): number {
    const vm = this.engine.vm;
    const api = vm.api;
    const { request, url } = pending;
    api.lua_createtable(L, 0, whole ? 8 : 3);
    if (whole) {
      for (const field of LAZY_FIELDS) {
        this.#makeField(L, pending, field);
        api.lua_setfield(L, -2, vm.cstr(field));
      }
    } else {
      pending.table = api.lua_topointer(L, -1);
      api.lua_pushvalue(L, -1);
      pending.ref = vm.ref(L);
      this.#requests.set(pending.table, pending);
    }
    vm.pushString(L, request.method);
    api.lua_setfield(L, -2, vm.cstr("method"));
    vm.pushString(L, url.pathname);
    api.lua_setfield(L, -2, vm.cstr("path"));
    vm.pushRef(L, this.#requestMeta);
    api.lua_setmetatable(L, -2);
    return 1;
  }

  /**
   * The handler has ended, and Deno closes the request (its headers and
   * address go). When the handler waited or left goroutines ready to run,
   * they may read the table later: every field is made now.
   */
  #answered(pending: PendingRequest, othersMayRead: boolean): void {
    this.#requests.delete(pending.table);
    const { vm, L } = this.engine;
    if (this.engine.closed) return;
    if (othersMayRead) {
      vm.pushRef(L, pending.ref);
      for (const field of LAZY_FIELDS) {
        vm.pushString(L, field);
        if (vm.api.lua_rawget(L, -2) === LUA_TNIL && this.#makeField(L, pending, field)) {
          vm.pushString(L, field);
          vm.api.lua_rotate(L, -2, 1);
          vm.api.lua_rawset(L, -4);
        }
        vm.api.lua_settop(L, -2);
      }
      vm.api.lua_settop(L, -2);
    }
    vm.unref(pending.ref);
  }

  /** `__index(req, key)`: makes one of the request's other fields, and keeps it in the table. */
  #lazyField(L: LuaState): number {
    const vm = this.engine.vm;
    const api = vm.api;
    if (api.lua_type(L, 2) !== LUA_TSTRING) return 0;
    const field = vm.toText(L, 2);
    if (!LAZY_FIELDS.has(field)) return 0;
    const pending = this.#requests.get(api.lua_topointer(L, 1));
    if (!pending) throw new Error(`req.${field}: the request has been answered; read it before the handler returns`);
    this.#makeField(L, pending, field);
    api.lua_pushvalue(L, 2);
    api.lua_pushvalue(L, -2);
    api.lua_rawset(L, 1);
    return 1;
  }

  /** Pushes request field `field` (one of LAZY_FIELDS); false (nothing pushed) for another name. */
  #makeField(L: LuaState, pending: PendingRequest, field: string): boolean {
    const vm = this.engine.vm;
    const api = vm.api;
    const { request, url, body, params, info } = pending;
    switch (field) {
      case "query":
        vm.pushString(L, url.query);
        break;
      case "query_params": {
        const params = queryParams(url.query);
        api.lua_createtable(L, 0, params.length);
        for (const { name, values } of params) {
          vm.pushBytes(L, name);
          if (values.length === 1) vm.pushBytes(L, values[0]);
          else vm.pushValue(L, values);
          api.lua_rawset(L, -3);
        }
        break;
      }
      case "headers":
        api.lua_createtable(L, 0, 8);
        for (const [name, value] of request.headers) {
          vm.pushString(L, name);
          vm.pushByteString(L, value);
          api.lua_rawset(L, -3);
        }
        // HTTP/2 (any HTTPS client that offers it; Deno speaks it only over TLS) names the host in :authority, which
        // Deno leaves out of the headers: as Go's r.Host. Over plain HTTP a request without Host has none.
        if (request.url.startsWith("https:") && !request.headers.has("host")) {
          vm.pushString(L, "host");
          vm.pushString(L, request.url.slice(request.url.indexOf("//") + 2).split("/", 1)[0]);
          api.lua_rawset(L, -3);
        }
        vm.pushRef(L, this.#headersMeta);
        api.lua_setmetatable(L, -2);
        break;
      case "body":
        vm.pushBytes(L, body);
        break;
      case "params":
        vm.pushValue(L, params);
        break;
      case "remote_addr":
        vm.pushString(L, (info.remoteAddr as Deno.NetAddr).hostname ?? "");
        break;
      default:
        return false;
    }
    return true;
  }

  /** "file:line: " where the handler held by `ref` is defined, or "" (a C function). */
  #whereDefined(L: LuaState, ref: number): string {
    const vm = this.engine.vm;
    vm.pushRef(L, ref);
    const where = vm.definedAt(L, -1);
    vm.api.lua_settop(L, -2);
    return where === undefined ? "" : `${where}: `;
  }

  /** A response body: as text when it is UTF-8 (Deno sends strings faster than bytes), else a copy of the bytes. */
  #responseBody(L: LuaState, index: number): string | Uint8Array<ArrayBuffer> {
    const vm = this.engine.vm;
    return vm.toUtf8Text(L, index) ?? vm.toBytes(L, index);
  }

  /**
   * The handler's result at `index`: a string (200, text/plain) or
   * `{ status, headers, body }`, as a Response; or what is wrong with it
   * ("returned a boolean; ...", said after the handler's name).
   */
  #response(L: LuaState, index: number): Response | string {
    const vm = this.engine.vm;
    const api = vm.api;
    const type = api.lua_type(L, index);
    if (type === LUA_TSTRING || type === LUA_TNUMBER) {
      return new Response(this.#responseBody(L, index), { headers: { "content-type": TEXT } });
    }
    if (type === LUA_TNIL) return new Response(null, { status: 200 });
    if (type !== LUA_TTABLE) return `returned a ${vm.typeName(L, index)}; expected a string or a table`;
    // A metatable's __index may raise: outside a protected call that would abort the Lua state.
    if (api.lua_getmetatable(L, index)) {
      api.lua_settop(L, -2);
      api.lua_pushvalue(L, index);
      try {
        return vm.protect(L, 1, 0, (L) => this.#tableResponse(L, 1));
      } catch (e) {
        return `returned a result that could not be read: ${e instanceof Error ? e.message : e}`;
      }
    }
    return this.#tableResponse(L, index);
  }

  /** The response of the `{ status, headers, body }` table at `index`, or what is wrong with it. */
  #tableResponse(L: LuaState, index: number): Response | string {
    const vm = this.engine.vm;
    const api = vm.api;
    api.lua_getfield(L, index, vm.cstr("status"));
    const statusType = api.lua_type(L, -1);
    // A numeric string is taken, as Lua arithmetic would.
    const status = statusType === LUA_TNIL ? 200 : Number(api.lua_tonumberx(L, -1, 0));
    if (!Number.isInteger(status) || status < 200 || status > 599 || statusType > LUA_TSTRING) {
      const shown = statusType === LUA_TNUMBER
        ? status
        : statusType === LUA_TSTRING
        ? JSON.stringify(vm.toText(L, -1))
        : `a ${vm.typeName(L, -1)}`;
      api.lua_settop(L, -2);
      return `returned status ${shown}; expected a number 200-599`;
    }
    api.lua_getfield(L, index, vm.cstr("body"));
    const bodyType = api.lua_type(L, -1);
    const body = bodyType === LUA_TSTRING || bodyType === LUA_TNUMBER ? this.#responseBody(L, -1) : null;
    if (body === null && bodyType !== LUA_TNIL) {
      const shown = vm.typeName(L, -1);
      api.lua_settop(L, -3);
      return `returned a ${shown} body; expected a string (json_encode a table)`;
    }
    api.lua_settop(L, -3);
    const headers = this.#responseHeaders(L, index);
    if (typeof headers === "string") return headers;
    const { fields, typed } = headers;
    if (body !== null && !typed) {
      if (Array.isArray(fields)) fields.push(["content-type", TEXT]);
      else fields["content-type"] = TEXT;
    }
    try {
      return new Response(NO_BODY.has(status) ? null : body, { status, headers: fields });
    } catch {
      const bad = (Array.isArray(fields) ? fields : Object.entries(fields)).find(([name, value]) => {
        try {
          new Headers([[name, value]]);
          return false;
        } catch {
          return true;
        }
      });
      return `returned an invalid response header '${bad?.[0]}: ${bad?.[1]}'`;
    }
  }

  /**
   * The `headers` of the result table at `index`: a value may be a string,
   * a number or a list of them (one line each). A plain record when there
   * is no list (the form Response takes fastest), else name-value pairs.
   */
  #responseHeaders(
    L: LuaState,
    index: number,
  ): { fields: Record<string, string> | [string, string][]; typed: boolean } | string {
    const vm = this.engine.vm;
    const api = vm.api;
    let fields: Record<string, string> | [string, string][] = {};
    const add = (name: string, value: string) => {
      if (Array.isArray(fields)) fields.push([name, value]);
      else fields[name] = value;
    };
    let typed = false;
    let problem: string | undefined;
    const value = (name: string, at: number): string | undefined => {
      const type = api.lua_type(L, at);
      if (type === LUA_TSTRING || type === LUA_TNUMBER) {
        api.lua_pushvalue(L, at); // tostring on a copy: the original may be a number
        const text = vm.toByteString(L, -1);
        api.lua_settop(L, -2);
        return text;
      }
      problem ??= `returned header '${name}' as a ${vm.typeName(L, at)}; ` +
        "expected a string, a number or a list of them";
    };
    const headersType = api.lua_getfield(L, index, vm.cstr("headers"));
    if (headersType !== LUA_TTABLE && headersType !== LUA_TNIL) {
      problem = `returned headers as a ${vm.typeName(L, -1)}; expected a table of name = value`;
    } else if (headersType === LUA_TTABLE) {
      api.lua_pushnil(L);
      while (api.lua_next(L, -2)) {
        if (api.lua_type(L, -2) !== LUA_TSTRING) {
          problem ??= `returned a header named by a ${vm.typeName(L, -2)}; ` +
            "expected a table of name = value";
        } else {
          const name = vm.toByteString(L, -2);
          typed ||= name.length === 12 && name.toLowerCase() === "content-type";
          if (api.lua_type(L, -1) === LUA_TTABLE) {
            if (!Array.isArray(fields)) fields = Object.entries(fields);
            const n = Number(api.lua_rawlen(L, -1));
            for (let i = 1; i <= n; i++) {
              api.lua_rawgeti(L, -1, BigInt(i));
              const text = value(name, -1);
              if (text !== undefined) add(name, text);
              api.lua_settop(L, -2);
            }
          } else {
            const text = value(name, -1);
            if (text !== undefined) add(name, text);
          }
        }
        api.lua_settop(L, -2);
      }
    }
    api.lua_settop(L, -2);
    return problem ?? { fields, typed };
  }

  /** Upgrades `request` to a WebSocket whose handler gets `(ws, req)`, req made whole from `pending`. */
  #upgrade(server: Server, request: Request, pending: PendingRequest, route: Route): Response {
    // The first protocol the client offers that the route accepts (split as Deno splits it, which checks it again).
    const offered = route.protocols && request.headers.get("sec-websocket-protocol")?.split(", ");
    const protocol = offered?.find((name) => route.protocols!.includes(name));
    let upgraded: { socket: WebSocket; response: Response };
    try {
      upgraded = Deno.upgradeWebSocket(request, { protocol });
    } catch {
      return plain(400, "Bad Request"); // a malformed handshake (no Sec-WebSocket-Key, say): the client's fault
    }
    const { socket, response } = upgraded;
    const id = ++this.#nextSocket;
    const name = `ws ${server.name} ${route.pattern}`;
    const inbox = new Inbox(socket, () => {
      const message = `the client sent more than ${WS_RECEIVE_QUEUE_LIMIT / 1024 / 1024} MiB the handler has not ` +
        "received; the connection is closed (1008)";
      this.engine.reportFailure(name, message, message);
    });
    this.#inboxes.set(id, inbox);
    server.sockets.set(socket, id);
    socket.addEventListener("open", () => {
      // Opened after its server stopped, which let its inbox go: no handler for it.
      if (!this.#inboxes.has(id)) return socket.close(1001, "server stopping");
      this.engine.spawnFunction(route.ref, name, (ok) => {
        this.#inboxes.delete(id);
        server.sockets.delete(socket);
        // 1011: the server met an error (the handler failed); 1000: a normal end.
        if (socket.readyState === WebSocket.OPEN) {
          socket.close(ok ? 1000 : 1011, ok ? "handler finished" : "handler failed");
        }
      }, (L) => {
        const vm = this.engine.vm;
        vm.pushRef(L, this.#makeWs);
        vm.api.lua_pushinteger(L, BigInt(id));
        if (protocol === undefined) vm.api.lua_pushnil(L);
        else vm.pushString(L, protocol);
        vm.api.lua_callk(L, 2, 1, 0, 0);
        return 1 + this.#pushRequest(L, pending, true);
      });
    });
    return response;
  }

  #inbox(L: LuaState): Inbox | undefined {
    return this.#inboxes.get(Number(this.engine.vm.api.lua_tointegerx(L, 1, 0)));
  }

  /** `ws.send(data, [kind])`: true, or nil and a message; waits while the client is behind (where it can wait). */
  #wsSend(L: LuaState): number | CancellableWait {
    const { engine } = this;
    const vm = engine.vm;
    const inbox = this.#inbox(L);
    const type = vm.api.lua_type(L, 2);
    if (type !== LUA_TSTRING && type !== LUA_TNUMBER) {
      throw argError(1, "send", `string expected, got ${vm.typeName(L, 2)}`);
    }
    if (!inbox || inbox.closed || inbox.socket.readyState !== WebSocket.OPEN) return this.#wsClosed(L);
    // A text frame when the bytes are UTF-8, unless "binary" is asked for (the Lua side checked "text" is UTF-8).
    const kind = vm.api.lua_type(L, 3) === LUA_TSTRING ? vm.toText(L, 3) : undefined;
    inbox.socket.send((kind === "binary" ? undefined : vm.toUtf8Text(L, 2)) ?? vm.toBytes(L, 2));
    // Inside a C call (a sort comparator, say) nothing can wait: the frame is queued like any other.
    if (inbox.socket.bufferedAmount > WS_SEND_BUFFER_LIMIT && engine.canPark(L)) {
      return inbox.drained(this.#wsSent, this.#wsClosed);
    }
    return this.#wsSent(L);
  }

  /** What `ws.send` returns. */
  readonly #wsSent: Pusher = (L) => (this.engine.vm.api.lua_pushboolean(L, 1), 1);
  readonly #wsClosed: Pusher = (L) => {
    this.engine.vm.api.lua_pushnil(L);
    this.engine.vm.pushString(L, "connection closed");
    return 2;
  };

  #wsReceive(L: LuaState): number | Promise<(L: LuaState) => number> {
    const inbox = this.#inbox(L);
    // The message and its frame's kind ("text" or "binary"), or nil once the peer has closed.
    const push = (message: string | Uint8Array | undefined) => (L: LuaState) => {
      const vm = this.engine.vm;
      if (message === undefined) {
        vm.api.lua_pushnil(L);
        return 1;
      }
      vm.pushPrimitive(L, message);
      vm.pushString(L, typeof message === "string" ? "text" : "binary");
      return 2;
    };
    if (!inbox || inbox.queue.length > 0 || inbox.closed) return push(inbox?.take())(L);
    // Claim the message here, not when the goroutine resumes: several may wait on one socket.
    return (async () => {
      while (inbox.queue.length === 0 && !inbox.closed) await inbox.next();
      return push(inbox.take());
    })();
  }

  #wsClose(L: LuaState): number {
    const inbox = this.#inbox(L);
    if (inbox && inbox.socket.readyState === WebSocket.OPEN) inbox.socket.close(1000, "closed by server");
    return 0;
  }
}

/** The answer to a request whose handler the run's end stopped; anything else thrown is the server's failure. */
function stoppedAnswer(e: unknown): Response {
  if (e instanceof CallStopped) return plain(500, "Internal Server Error");
  throw e;
}

function listenReason(e: unknown, server: Server): string {
  if (e instanceof Deno.errors.AddrInUse) return "address already in use";
  if (isPermissionError(e)) return accessReason(e, "net", hostPort(server.hostname, server.port));
  if (server.tls) return `bad TLS certificate or key (${e instanceof Error ? e.message : e})`;
  return e instanceof Error ? e.message : String(e);
}

/** The HTTP server family's registration table. */
export const httpServer = (engine: Engine): Family => {
  const servers = new ServerTable(engine);
  return {
    create_server: (L) => servers.create(L),
    handle_http: (L) => servers.handle(L, "http"),
    handle_ws: (L) => servers.handle(L, "ws"),
    start_server: engine.blocking("start_server", (L) => servers.start(L)),
    stop_server: (L) => servers.stop(L),
  };
};
