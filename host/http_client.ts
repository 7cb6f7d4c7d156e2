/**
 * The HTTP client family: `http_get`, `http_post`, `http_put`,
 * `http_delete` and `http_request`, on `fetch`. A call parks only its
 * goroutine, so many requests wait in parallel.
 *
 * Each returns `{ status, body, headers, url }`: `body` holds the exact
 * bytes received, `headers` has lower-case names and answers any casing
 * (`headers["Content-Type"]`), `url` is the final URL after redirects. A
 * non-2xx status is a response like any other. A request that gets no
 * response (bad URL, refused connection, DNS failure, no permission,
 * timeout) returns `nil, message`; only bad argument types raise.
 *
 * The optional last argument is an options table: `timeout` in seconds
 * (default 30) bounds the whole exchange, body included.
 *
 * @module
 */
import type { CancellableWait, Engine } from "../runtime/engine.ts";
import type { Family } from "../runtime/family.ts";
import {
  argError,
  checkBytes,
  checkOptions,
  checkStrictText,
  checkString,
  checkTable,
  isNone,
} from "../runtime/args.ts";
import { LUA_TNIL, LUA_TNUMBER, LUA_TSTRING, type LuaState } from "../runtime/lua.ts";
import type { LuaVM } from "../runtime/state.ts";
import { headersMetatable } from "./_headers.ts";
import { accessReason, isPermissionError } from "./_permissions.ts";
import { after } from "../runtime/_timer.ts";
import { checkNetAccess } from "./dns.ts";

/** Seconds a request (or a `tcp_connect`) may take when the call gives no `timeout`. */
export const DEFAULT_TIMEOUT = 30;

const OPTIONS = ["timeout"];

/** Where each argument of one client function sits (1-based; 0: not taken). */
interface Shape {
  method: number;
  url: number;
  body: number;
  headers: number;
  options: number;
  /** The body may be nil (http_request) rather than required (http_post, http_put). */
  optionalBody: boolean;
}

/** One request, read and checked from the Lua arguments before anything waits. */
interface Call {
  fname: string;
  method: string;
  url: string;
  /** The URL's bytes are not UTF-8: a lossy decoding would fetch another URL. */
  urlNotUtf8?: boolean;
  body?: Uint8Array<ArrayBuffer>;
  headers: Headers;
  timeout: number;
}

function readHeaders(vm: LuaVM, L: LuaState, i: number, fname: string): Headers {
  const headers = new Headers();
  if (isNone(vm, L, i)) return headers;
  checkTable(vm, L, i, fname);
  const api = vm.api;
  api.lua_pushnil(L);
  while (api.lua_next(L, i)) {
    if (api.lua_type(L, -2) !== LUA_TSTRING) {
      throw argError(i, fname, `header names must be strings, got ${vm.typeName(L, -2)}`);
    }
    const type = api.lua_type(L, -1);
    if (type !== LUA_TSTRING && type !== LUA_TNUMBER) {
      throw argError(i, fname, `header '${vm.toText(L, -2)}' must be a string or number, got ${vm.typeName(L, -1)}`);
    }
    api.lua_pushvalue(L, -1); // tostring on a copy: converting a number in place would disturb lua_next
    try {
      headers.append(vm.toByteString(L, -3), vm.toByteString(L, -1));
    } catch {
      throw argError(i, fname, `invalid header '${vm.toText(L, -3)}: ${vm.toText(L, -1)}'`);
    }
    api.lua_settop(L, -3);
  }
  return headers;
}

/**
 * Reads argument `i`, an optional options table whose only option is
 * `timeout` in seconds (default {@linkcode DEFAULT_TIMEOUT}); raises on an
 * unknown option or a timeout that is not a positive number.
 */
export function readTimeout(vm: LuaVM, L: LuaState, i: number, fname: string): number {
  if (isNone(vm, L, i)) return DEFAULT_TIMEOUT;
  checkTable(vm, L, i, fname);
  checkOptions(vm, L, i, i, fname, OPTIONS);
  const api = vm.api;
  api.lua_getfield(L, i, vm.cstr("timeout"));
  const type = api.lua_type(L, -1);
  if (type !== LUA_TNIL && type !== LUA_TNUMBER) {
    throw argError(i, fname, `timeout must be a number of seconds, got ${vm.typeName(L, -1)}`);
  }
  const timeout = type === LUA_TNIL ? DEFAULT_TIMEOUT : api.lua_tonumberx(L, -1, 0);
  api.lua_settop(L, -2);
  if (!(timeout > 0)) throw argError(i, fname, `timeout must be a positive number of seconds, got ${timeout}`);
  return timeout;
}

/** Reads the arguments of `fname` laid out as `shape`; raises on bad types. */
function readCall(vm: LuaVM, L: LuaState, fname: string, fixedMethod: string, shape: Shape): Call {
  let method = fixedMethod;
  if (shape.method) {
    method = checkString(vm, L, shape.method, fname);
    try {
      // The Request constructor knows which methods fetch refuses ("CONNECT", "BAD METHOD").
      new Request("http://localhost/", { method });
    } catch {
      throw argError(shape.method, fname, `invalid HTTP method '${method}'`);
    }
  }
  const url = checkString(vm, L, shape.url, fname);
  let urlNotUtf8 = false;
  try {
    checkStrictText(vm, L, shape.url, fname, "URL");
  } catch {
    urlNotUtf8 = true;
  }
  let body: Uint8Array<ArrayBuffer> | undefined;
  if (shape.body && !(shape.optionalBody && isNone(vm, L, shape.body))) {
    body = checkBytes(vm, L, shape.body, fname) as Uint8Array<ArrayBuffer>;
  }
  const upper = method.toUpperCase();
  // As fetch does, the standard methods are taken in any case (and sent in upper case); the redirect rules need that.
  if (STANDARD_METHODS.has(upper)) method = upper;
  if ((upper === "GET" || upper === "HEAD") && body) {
    if (body.length > 0) throw argError(shape.body, fname, `a ${upper} request cannot have a body`);
    body = undefined;
  }
  const headers = readHeaders(vm, L, shape.headers, fname);
  const timeout = readTimeout(vm, L, shape.options, fname);
  return { fname, method, url, urlNotUtf8, body, headers, timeout };
}

/** The methods fetch upper-cases (the Fetch standard's normalization). */
const STANDARD_METHODS = new Set(["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"]);

/** Why `url` is no URL this client can fetch, or undefined when it is one. */
function badUrl(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `bad URL "${url}"`;
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return `bad URL "${url}" (only http:// and https:// are supported)`;
  }
  return undefined;
}

/** The port `url` connects to. */
function netPort(url: string): number {
  const parsed = new URL(url);
  return Number(parsed.port || (parsed.protocol === "https:" ? 443 : 80));
}

/** The `HOST:PORT` Deno's net permission names for `url`. */
function netTarget(url: string): string {
  return `${new URL(url).hostname}:${netPort(url)}`;
}

/** The innermost reason in a fetch error: "Connection refused", "DNS lookup failed (...)". */
function failureReason(e: Error): { connect: boolean; reason: string } {
  const detail = e.cause instanceof Error ? e.cause.message : e.message;
  const connect = /\(Connect\)/.test(detail);
  const dns = /dns error: (?:failed to lookup address information: )?(.*)$/.exec(detail);
  if (dns) return { connect, reason: `DNS lookup failed (${dns[1]})` };
  const tcp = /tcp connect error: (.*?)(?: \(os error \d+\))?$/.exec(detail);
  if (tcp) return { connect, reason: tcp[1] };
  // "error sending request [from ADDR ]for url (URL): client error (SendRequest): connection closed ...";
  // Deno 2.9 says "for URL (HOST:PORT):" instead of "url (URL)".
  const cleaned = detail.replace(/^error sending request (?:from \S+ )?for (?:url \([^)]*\)|\S+(?: \([^)]*\))?): /, "")
    .replace(/^client error \(\w+\): /, "").replace(/^Fetch failed: /, "");
  return { connect, reason: cleaned };
}

/**
 * The message a failed request returns as `nil, message`: why `call` failed
 * at `url` (a redirect's target when a later hop failed: the first server answered).
 */
function describeFailure(call: Call, url: string, e: unknown, timedOut: boolean): string {
  const { fname } = call;
  if (timedOut) return `${fname}: request to ${call.url} timed out after ${call.timeout}s`;
  if (!(e instanceof Error)) return `${fname}: request to ${url} failed: ${String(e)}`;
  if (isPermissionError(e)) return `${fname}: cannot connect to ${url}: ${accessReason(e, "net", netTarget(url))}`;
  const { connect, reason } = failureReason(e);
  return connect ? `${fname}: cannot connect to ${url}: ${reason}` : `${fname}: request to ${url} failed: ${reason}`;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A Location header as the server meant it: Deno gives each of its bytes as
 * one Latin-1 character, so raw UTF-8 (`/café`, as most servers send it) is
 * decoded, as curl and browsers read it; other bytes stay as they came.
 */
function locationText(value: string): string {
  if (!/[\x80-\xff]/.test(value)) return value;
  try {
    return strictUtf8.decode(Uint8Array.from(value, (c) => c.charCodeAt(0)));
  } catch {
    return value;
  }
}

/** Statuses whose Location is followed, as fetch does. */
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Redirects followed before giving up, as fetch does. */
const MAX_REDIRECTS = 20;
/** Headers fetch drops when a redirect leaves the origin: credentials meant for the first server only. */
const CREDENTIAL_HEADERS = ["authorization", "proxy-authorization", "cookie"];

/** `headers` without those that describe a request body (dropped when a redirect turns a request into a GET). */
function withoutBodyHeaders(headers: Headers): Headers {
  const kept = new Headers(headers);
  for (const name of ["content-type", "content-length", "content-encoding", "content-language", "content-location"]) {
    kept.delete(name);
  }
  return kept;
}

/** One hop of a request: `url` is where it is, and where it failed when it fails. */
export interface Hop {
  url: string;
  method: string;
  body?: Uint8Array<ArrayBuffer>;
  headers: Headers;
}

/** Redirects that are not followed: too many, or to a URL that is not http or https. */
export class RedirectFailure extends Error {}

/**
 * fetch of `hop`, following redirects as fetch does, with each hop checked
 * by {@linkcode checkNetAccess} before it is asked (fetch's "follow" mode
 * would reach a denied host, and drops the body of a 3xx without
 * Location); `hop` is updated as it goes. The body is left to the caller.
 *
 * ```ts
 * import { fetchFollowing, type Hop } from "./http_client.ts";
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => new Response("hi"));
 * const hop: Hop = { url: `http://127.0.0.1:${server.addr.port}/`, method: "GET", headers: new Headers() };
 * await (await fetchFollowing(hop, AbortSignal.timeout(5000))).text();
 * await server.shutdown();
 * ```
 */
export async function fetchFollowing(
  hop: Hop,
  signal: AbortSignal,
  clientFor: (headers: Headers) => Deno.HttpClient | undefined = () => undefined,
): Promise<Response> {
  for (let count = 0;; count++) {
    await checkNetAccess(new URL(hop.url).hostname.replace(/^\[|\]$/g, ""), netPort(hop.url));
    const { url, method, body, headers } = hop;
    const response = await fetch(url, {
      method,
      headers,
      body,
      client: clientFor(headers),
      signal,
      redirect: "manual",
    });
    const location = REDIRECTS.has(response.status) ? response.headers.get("location") : null;
    // An empty Location is none, as Go reads it: followed, it would name this URL again.
    if (!location) return response;
    await response.body?.cancel();
    if (count === MAX_REDIRECTS) throw new RedirectFailure(`more than ${MAX_REDIRECTS} redirects`);
    const next = new URL(locationText(location), url);
    if (next.protocol !== "http:" && next.protocol !== "https:") { // as fetch: a file: or data: target is refused
      throw new RedirectFailure(`redirected to ${next.href}, which is not http or https`);
    }
    // As fetch does: 303 (and 301/302 after a POST) turn into a GET without a body.
    if (
      (response.status === 303 && method !== "HEAD" && method !== "GET") ||
      (response.status <= 302 && method === "POST")
    ) {
      hop.method = "GET";
      hop.body = undefined;
      hop.headers = withoutBodyHeaders(hop.headers);
    }
    if (next.origin !== new URL(url).origin) {
      hop.headers = new Headers(hop.headers);
      for (const name of CREDENTIAL_HEADERS) hop.headers.delete(name);
      hop.headers.delete("host"); // named the first server, not this one
    }
    hop.url = next.href;
  }
}

/** The codings Deno's fetch decodes (measured on Deno 2.9): gzip and br, alone, in any case; not deflate nor zstd. */
const DECODED_CODINGS = new Set(["gzip", "br"]);

/**
 * The headers of a response as the script gets them: when fetch has
 * decoded the body, without `content-encoding` and `content-length`, which
 * describe the bytes on the wire. fetch decodes whatever the request's
 * `Accept-Encoding` said, except when it is exactly `identity` or the
 * request has a `Range` (then fetch sends `identity` itself).
 */
function decodedHeaders(headers: Headers, sent: Headers): Headers {
  const coding = headers.get("content-encoding")?.toLowerCase();
  if (!coding || !DECODED_CODINGS.has(coding)) return headers;
  if (sent.has("range") || sent.get("accept-encoding")?.toLowerCase() === "identity") return headers;
  const kept = new Headers(headers);
  kept.delete("content-encoding");
  kept.delete("content-length");
  return kept;
}

/** What a request got back. */
interface Received {
  status: number;
  body: Uint8Array;
  headers: Headers;
  url: string;
}

/** Requests in flight per engine, aborted when it closes so no fetch or timer outlives it. */
class HttpClient {
  readonly #inFlight = new Set<AbortController>();
  readonly #headersMeta: number;
  /** For requests with a Host header, which fetch's default client drops; made on first use. */
  #hostClient?: Deno.HttpClient;

  constructor(readonly engine: Engine) {
    this.#headersMeta = headersMetatable(engine);
    engine.onClose(() => {
      for (const controller of this.#inFlight) controller.abort();
      this.#inFlight.clear();
      this.#hostClient?.close();
    });
  }

  /** The implementation of `fname`: reads its arguments per `shape`, then fetches. */
  request(L: LuaState, fname: string, method: string, shape: Shape): number | CancellableWait {
    const call = readCall(this.engine.vm, L, fname, method, shape);
    if (call.urlNotUtf8) return this.#fail(L, `${fname}: the URL is not valid UTF-8`);
    const invalid = badUrl(call.url);
    if (invalid) return this.#fail(L, `${fname}: ${invalid}`);
    // Aborted when the call stops waiting too.
    const controller = new AbortController();
    return {
      wait: this.#fetch(call, controller).then((got) => (L) =>
        typeof got === "string" ? this.#fail(L, got) : this.#pushResponse(L, got)
      ),
      cancel: () => controller.abort(),
    };
  }

  /** The response, or the message of the failure. */
  async #fetch(call: Call, controller: AbortController): Promise<Received | string> {
    let timedOut = false;
    const stopTimer = after(call.timeout * 1000, () => {
      timedOut = true;
      controller.abort();
    });
    this.#inFlight.add(controller);
    const { url, method, body, headers } = call;
    const hop: Hop = { url, method, body, headers };
    try {
      const response = await fetchFollowing(
        hop,
        controller.signal,
        (headers) => headers.has("host") ? this.#hostClient ??= Deno.createHttpClient({ allowHost: true }) : undefined,
      );
      const received = new Uint8Array(await response.arrayBuffer());
      return {
        status: response.status,
        body: received,
        headers: decodedHeaders(response.headers, hop.headers),
        url: response.url,
      };
    } catch (e) {
      if (e instanceof RedirectFailure) return `${call.fname}: request to ${call.url} failed: ${e.message}`;
      // fetch refuses the browsers' "bad ports" before it connects, with no way around it (see README, Known limits).
      const blocked = e instanceof TypeError && /Requests to port (\d+) are blocked/.exec(e.message);
      if (blocked) {
        return `${call.fname}: cannot request ${hop.url}: Deno refuses HTTP requests to port ${blocked[1]}, ` +
          "which browsers block (tcp_connect still reaches it)";
      }
      if (hop.url !== call.url && isPermissionError(e)) {
        return `${call.fname}: cannot follow the redirect to ${hop.url}: ${accessReason(e, "net", netTarget(hop.url))}`;
      }
      return describeFailure(call, hop.url, e, timedOut);
    } finally {
      stopTimer();
      this.#inFlight.delete(controller);
    }
  }

  #pushResponse(L: LuaState, response: Received): number {
    const vm = this.engine.vm;
    const api = vm.api;
    api.lua_createtable(L, 0, 4);
    api.lua_pushinteger(L, BigInt(response.status));
    api.lua_setfield(L, -2, vm.cstr("status"));
    vm.pushBytes(L, response.body);
    api.lua_setfield(L, -2, vm.cstr("body"));
    vm.pushString(L, response.url);
    api.lua_setfield(L, -2, vm.cstr("url"));
    // Headers iterates lower-case names with combined values, but each set-cookie apart: several make a list
    // (their Expires dates have commas, so joined they could not be split again).
    const merged = new Map<string, string | string[]>();
    for (const [name, value] of response.headers) {
      const earlier = merged.get(name);
      if (earlier === undefined) merged.set(name, value);
      else if (typeof earlier === "string") merged.set(name, [earlier, value]);
      else earlier.push(value);
    }
    api.lua_createtable(L, 0, merged.size);
    for (const [name, value] of merged) {
      vm.pushString(L, name); // not cstr: that keeps every distinct name for the state's life
      if (typeof value === "string") vm.pushByteString(L, value);
      else {
        api.lua_createtable(L, value.length, 0);
        value.forEach((one, i) => (vm.pushByteString(L, one), api.lua_rawseti(L, -2, BigInt(i + 1))));
      }
      api.lua_rawset(L, -3);
    }
    vm.pushRef(L, this.#headersMeta);
    api.lua_setmetatable(L, -2);
    api.lua_setfield(L, -2, vm.cstr("headers"));
    return 1;
  }

  #fail(L: LuaState, message: string): number {
    this.engine.vm.api.lua_pushnil(L);
    this.engine.vm.pushString(L, message);
    return 2;
  }
}

const NO_BODY: Shape = { method: 0, url: 1, body: 0, headers: 2, options: 3, optionalBody: false };
const WITH_BODY: Shape = { method: 0, url: 1, body: 2, headers: 3, options: 4, optionalBody: false };
const ANY_METHOD: Shape = { method: 1, url: 2, body: 3, headers: 4, options: 5, optionalBody: true };

/** The HTTP client family's registration table. */
export const httpClient = (engine: Engine): Family => {
  const client = new HttpClient(engine);
  const define = (fname: string, method: string, shape: Shape) =>
    engine.blocking(fname, (L) => client.request(L, fname, method, shape));
  return {
    http_get: define("http_get", "GET", NO_BODY),
    http_post: define("http_post", "POST", WITH_BODY),
    http_put: define("http_put", "PUT", WITH_BODY),
    http_delete: define("http_delete", "DELETE", NO_BODY),
    http_request: define("http_request", "", ANY_METHOD),
  };
};
