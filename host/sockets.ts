/**
 * The sockets family: TCP (`tcp_listen`, `tcp_connect`) on `Deno.listen`
 * and `Deno.connect`, UDP (`udp_sendto`, `udp_recvfrom`) on `node:dgram`
 * (Deno's own datagram API still needs `--unstable-net`).
 *
 * ```lua
 * local server = assert(tcp_listen(0, "127.0.0.1"))  -- server.port: the real port
 * go(function()
 *   local conn = receive(server)                      -- or server.receive()
 *   conn.write(conn.read() or "")                     -- conn:read() works too
 *   conn.close()
 * end)
 * local conn = assert(tcp_connect("127.0.0.1", server.port))
 * conn.write("hi")
 * print(conn.read())                                  -- hi
 * conn.close()
 * server.close()
 * ```
 *
 * A listener (`tcp_listen`) and a receiver (`udp_recvfrom`) are channels
 * fed with connections or datagrams, dressed with `port`, `receive()` and
 * `close()`, all callable with a dot or a colon. `close()` stops the
 * socket, closes the channel and returns once the port is free again;
 * receivers drain what was already queued, then get nil. Closing the
 * channel with `close_channel` stops the socket too, without waiting for
 * the port. While open, a listener or receiver is resident: it keeps the
 * script alive and suspends the default time limit.
 *
 * `tcp_connect(host, port, [options])` gives up after `options.timeout`
 * seconds (default 30, as the HTTP client), closing a connection that
 * comes later.
 *
 * Connections: `conn.read([max])` returns up to `max` bytes (default 64
 * KiB, at most 4 MiB per call), nil at the end of the stream, or nil and a
 * message; `conn.write(data)` returns true once all of it is written (one
 * write never interleaves with another), or nil and a message;
 * `conn.close()`; `conn.remote_addr`, `conn.remote_port`. UDP datagrams
 * arrive as `{ data, addr, port }`; `udp_sendto` to a host name sends to
 * its first address, IPv4 preferred.
 *
 * Every waiting call parks only its goroutine; data is binary-safe.
 * Failures return nil and a message; bad arguments raise.
 *
 * @module
 */
// node:dgram costs ~20 ms to load, so it is imported on the first UDP call, not at start-up.
import type dgram from "node:dgram";
import type { CancellableWait, Engine, Pusher } from "../runtime/engine.ts";
import type { Family } from "../runtime/family.ts";
import { argError, checkBytes, checkPort, checkString, isNone } from "../runtime/args.ts";
import { LUA_TNUMBER, LUA_TSTRING, type LuaState } from "../runtime/lua.ts";
import { checkNetAccess, hostPort, ipVersion, lookupAddress, pushFailure, SoftFailure, softlyRefused } from "./dns.ts";
import { accessReason, checkAccess, isPermissionError, notePort } from "./_permissions.ts";
import { lettingGo, listenAgainIfLetGo, outOfDescriptors, SHORTAGE_RETRY_MS } from "./_ports.ts";
import { delay } from "./core.ts";
import { readTimeout } from "./http_client.ts";
import { after } from "../runtime/_timer.ts";

/** Bytes `conn.read()` returns at most when no limit is given. */
export const DEFAULT_READ_SIZE = 64 * 1024;
/** The largest buffer one `conn.read(max)` allocates, whatever `max` says. */
const MAX_READ_SIZE = 4 * 1024 * 1024;
/** Datagrams a UDP receiver holds that nobody has received, at most: later ones are dropped, as a full socket drops them. */
export const UDP_QUEUE_LIMIT = 1024;
/** Connections a listener holds that nobody has received, at most: later clients wait in the system's backlog. */
export const ACCEPT_QUEUE_LIMIT = 128;

// Lua helpers: connection objects, and the dressing of listener and
// receiver channels (methods callable as x.f() and x:f()).
const SUPPORT_LUA = `
local helpers = ...
local read, write, close = helpers.read, helpers.write, helpers.close
local stop_source, send_from = helpers.stop_source, helpers.send_from
local setmetatable, pcall = setmetatable, pcall
return function(receive, close_channel)
  -- A connection nothing refers to any more is closed when collected, as Lua closes a file.
  local ids = setmetatable({}, { __mode = "k" })
  local conn_mt = { __name = "tcp connection", __gc = function(conn) close(ids[conn]) end }
  local function make_conn(id, addr, port)
    local conn = setmetatable({ remote_addr = addr, remote_port = port }, conn_mt)
    ids[conn] = id
    -- A goroutine parked in read or write keeps conn: the wrapper, whose upvalue it is, stays on its stack.
    conn.read = function(a, b) if a == conn then a = b end return read(id, a) end
    conn.write = function(a, b) if a == conn then a = b end return write(id, a) end
    conn.close = function() return close(id) end
    return conn
  end
  -- A listener or receiver channel gets port, receive() and close(); a UDP receiver also send(host, port, data),
  -- which sends from its own port (where a peer expects the answer).
  local function dress(ch, id, port, udp)
    ch.port = port
    ch.receive = function() return receive(ch) end
    ch.close = function() stop_source(id) pcall(close_channel, ch) return true end
    if udp then
      ch.send = function(a, ...) if a == ch then return send_from(id, ...) end return send_from(id, a, ...) end
    end
    return ch
  end
  return { make_conn = make_conn, dress = dress }
end`;

/** An open TCP connection. */
interface Connection {
  conn: Deno.TcpConn;
  /** The last write queued: writes go out whole, one after another. */
  writing: Promise<unknown>;
}

/** A listening TCP socket or a bound UDP socket, and its channel. */
interface Source {
  channel: number;
  release: () => void;
  stopped: boolean;
  /** Settles once the socket is closed for good (its port is free again). */
  done: Promise<unknown>;
  /** Closes the socket itself. */
  close: () => void;
  /** A UDP receiver's socket, which its send() uses too. */
  udp?: dgram.Socket;
  /** Ends a listener's wait for room in its channel (its reader is behind) when it is stopped. */
  wake?: () => void;
}

/** Why a read or write failed, as Lua is told. */
function streamReason(e: unknown): string {
  if (e instanceof Deno.errors.BrokenPipe) return "connection closed by peer";
  if (e instanceof Deno.errors.ConnectionReset) return "connection reset by peer";
  if (e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted) return "connection closed";
  return e instanceof Error ? e.message : String(e);
}

function connectReason(e: unknown, host: string, port: number): string {
  if (e instanceof Deno.errors.ConnectionRefused) return `connection refused (${hostPort(host, port)})`;
  if (e instanceof Deno.errors.ConnectionReset) return `connection reset (${hostPort(host, port)})`;
  if (isPermissionError(e)) return accessReason(e, "net", hostPort(host, port));
  if (e instanceof Deno.errors.TimedOut) return `connection timed out (${hostPort(host, port)})`;
  const message = e instanceof Error ? e.message : String(e);
  if (/lookup address|Name or service not known|No address associated/i.test(message)) return `unknown host '${host}'`;
  return `cannot connect to ${hostPort(host, port)}: ${message}`;
}

function listenReason(e: unknown, host: string, port: number): string {
  if (e instanceof Deno.errors.AddrInUse || (e as { code?: string })?.code === "EADDRINUSE") {
    return `address already in use (${hostPort(host, port)})`;
  }
  if (e instanceof Deno.errors.AddrNotAvailable || (e as { code?: string })?.code === "EADDRNOTAVAIL") {
    return `address not available (${hostPort(host, port)})`;
  }
  if (isPermissionError(e)) return accessReason(e, "net", hostPort(host, port));
  return `cannot listen on ${hostPort(host, port)}: ${e instanceof Error ? e.message : e}`;
}

/** The sockets of one engine, by id. */
class SocketTable {
  readonly #connections = new Map<number, Connection>();
  /** Listening TCP sockets and bound UDP sockets. */
  readonly #sources = new Map<number, Source>();
  readonly #senders = new Map<string, Promise<dgram.Socket>>();
  #next = 0;
  #closed = false;
  #support = 0;
  readonly #makers = new Map<string, number>();
  /** Port -> how many of this engine's TCP listeners hold it now (one per host). */
  readonly #listeningOn = new Map<number, number>();
  readonly #pushTrue: Pusher;
  /** tcp_connect calls in flight, aborted when the engine closes so no connect outlives it. */
  readonly #connecting = new Set<AbortController>();

  constructor(readonly engine: Engine) {
    this.#pushTrue = (L) => (engine.vm.api.lua_pushboolean(L, 1), 1);
    engine.onClose(() => {
      this.#closed = true;
      for (const controller of this.#connecting) controller.abort();
      for (const id of this.#sources.keys()) this.#stopSource(id);
      for (const id of this.#connections.keys()) this.#closeConnection(id);
      for (const sender of this.#senders.values()) sender.then((socket) => socket.close(), () => {});
      this.#senders.clear();
    });
  }

  /** Pushes one of the Lua helpers ("make_conn", "dress"), compiling them on first use. */
  #pushMaker(L: LuaState, name: string): void {
    const { engine } = this;
    const vm = engine.vm;
    if (!this.#support) {
      this.#support = engine.compileLua("sockets support", SUPPORT_LUA, {
        read: engine.blocking("conn.read", (L) => this.#read(L)),
        write: engine.blocking("conn.write", (L) => this.#write(L)),
        close: (L) => this.#close(L),
        stop_source: engine.blocking("close", (L) => this.#stop(L)),
        send_from: engine.blocking("send", (L) => this.#sendFrom(L)),
      });
      const main = engine.L;
      vm.pushRef(main, this.#support);
      engine.pushSchedulerField(main, "receive");
      engine.pushSchedulerField(main, "close_channel");
      vm.api.lua_callk(main, 2, 1, 0, 0);
      for (const maker of ["make_conn", "dress"]) {
        vm.api.lua_getfield(main, -1, vm.cstr(maker));
        this.#makers.set(maker, vm.ref(main));
      }
      vm.api.lua_settop(main, -2);
    }
    vm.pushRef(L, this.#makers.get(name)!);
  }

  /** Closes the listener or receiver whose id is at 1; its close() returns once the port is free. */
  #stop(L: LuaState): number | Promise<void> {
    const id = Number(this.engine.vm.api.lua_tointegerx(L, 1, 0));
    const source = this.#sources.get(id);
    if (!source) return 0;
    this.#stopSource(id);
    return source.done.then(() => {});
  }

  /** Stops listening or receiving: releases the run, closes the socket. */
  #stopSource(id: number): void {
    const entry = this.#sources.get(id);
    if (!entry) return;
    this.#sources.delete(id);
    entry.stopped = true;
    entry.wake?.();
    entry.release();
    try {
      entry.close();
    } catch {
      // Already closed.
    }
  }

  /**
   * Raises an argument error at the line that called a connection method:
   * two levels up, past the Lua wrapper that makes dot and colon calls alike.
   */
  #raiseAtCaller(L: LuaState, error: Error): number {
    const vm = this.engine.vm;
    vm.api.luaL_where(L, 2);
    const where = vm.toText(L, -1);
    vm.api.lua_settop(L, -2);
    vm.pushString(L, where + error.message);
    return vm.api.lua_error(L);
  }

  /** Pushes a new connection object for `conn`; returns its id. */
  #pushConnection(L: LuaState, conn: Deno.TcpConn): number {
    const vm = this.engine.vm;
    const id = ++this.#next;
    this.#connections.set(id, { conn, writing: Promise.resolve() });
    const remote = conn.remoteAddr;
    this.#pushMaker(L, "make_conn");
    vm.api.lua_pushinteger(L, BigInt(id));
    vm.pushString(L, remote.hostname);
    vm.api.lua_pushinteger(L, BigInt(remote.port));
    vm.api.lua_callk(L, 3, 1, 0, 0);
    return id;
  }

  /** Pushes the channel `channel` dressed by the maker `name` with `id` and `port`. */
  #pushDressed(L: LuaState, channel: number, id: number, port: number, udp = false): number {
    const vm = this.engine.vm;
    this.#pushMaker(L, "dress");
    vm.pushRef(L, channel);
    vm.api.lua_pushinteger(L, BigInt(id));
    vm.api.lua_pushinteger(L, BigInt(port));
    vm.api.lua_pushboolean(L, udp ? 1 : 0);
    vm.api.lua_callk(L, 4, 1, 0, 0);
    return 1;
  }

  // ---- TCP ----------------------------------------------------------------

  /** `tcp_listen(port, [host])`: a channel of connections, or nil and a message. */
  listen(L: LuaState): number | Promise<Pusher> {
    const { engine } = this;
    const vm = engine.vm;
    const port = checkPort(this.engine.vm, L, 1, "tcp_listen", 0);
    const host = isNone(vm, L, 2) ? "0.0.0.0" : checkString(vm, L, 2, "tcp_listen");
    // A port let go a moment ago is asked for again, but not when one of this engine's listeners holds it now, nor
    // inside a C call, which cannot wait.
    const mayRetry = () => !this.#listeningOn.has(port) && engine.canPark(L);
    let listened: Deno.TcpListener | Promise<Deno.TcpListener>;
    try {
      listened = listenAgainIfLetGo(port, () => {
        checkAccess("net", hostPort(host, port));
        const listener = Deno.listen({ port, hostname: host, transport: "tcp" });
        notePort(port, listener.addr.port);
        return listener;
      }, mayRetry);
    } catch (e) {
      return pushFailure(vm, L, listenReason(e, host, port));
    }
    if (!(listened instanceof Promise)) return this.#listening(L, listened, host);
    return listened.then(
      (listener): Pusher => (L) => this.#listening(L, listener, host),
      (e): Pusher => (L) => pushFailure(vm, L, listenReason(e, host, port)),
    );
  }

  /** Pushes the channel of a new listener. */
  #listening(L: LuaState, listener: Deno.TcpListener, host: string): number {
    const { engine } = this;
    const id = ++this.#next;
    const real = listener.addr.port;
    this.#listeningOn.set(real, (this.#listeningOn.get(real) ?? 0) + 1);
    const name = `tcp_listen ${hostPort(host, real)}`;
    const channel = engine.newChannel(name, ACCEPT_QUEUE_LIMIT, () => this.#stopSource(id));
    const entry: Source = {
      channel,
      release: engine.hold(),
      stopped: false,
      done: Promise.resolve(),
      close: () => {
        const left = (this.#listeningOn.get(real) ?? 1) - 1;
        if (left > 0) this.#listeningOn.set(real, left);
        else this.#listeningOn.delete(real);
        lettingGo(real);
        listener.close();
      },
    };
    this.#sources.set(id, entry);
    entry.done = this.#accept(id, listener, entry, name);
    return this.#pushDressed(L, channel, id, real);
  }

  async #accept(id: number, listener: Deno.TcpListener, entry: Source, name: string): Promise<void> {
    let shortageReported = false;
    try {
      while (true) {
        // A reader behind: no more is accepted until it has taken some (or the listener stops); clients wait in the
        // system's backlog.
        if (this.engine.channelLength(entry.channel) >= ACCEPT_QUEUE_LIMIT) {
          await new Promise<void>((resolve) => {
            entry.wake = resolve;
            this.engine.whenChannelHasRoom(entry.channel, ACCEPT_QUEUE_LIMIT).then(resolve);
          });
          entry.wake = undefined;
          if (entry.stopped) break;
        }
        let conn: Deno.TcpConn;
        try {
          conn = await listener.accept();
        } catch (e) {
          if (entry.stopped || !outOfDescriptors(e)) throw e;
          // A passing shortage (as Go's accept loop takes it): the port stays ours, clients wait in the backlog.
          if (!shortageReported) {
            const why = (e as Error).message;
            const message = `cannot accept connections: ${why}; accepting again once descriptors are free`;
            this.engine.reportFailure(name, message, message);
            shortageReported = true;
          }
          await delay(SHORTAGE_RETRY_MS);
          continue;
        }
        let connId = 0;
        if (!this.engine.feedChannel(entry.channel, (L) => connId = this.#pushConnection(L, conn))) {
          // Lua closed the channel (or the run ended): nobody will take this connection or the next.
          if (connId) this.#closeConnection(connId);
          else conn.close();
          break;
        }
      }
    } catch (e) {
      if (!entry.stopped) this.engine.reportError(`tcp_listen: ${e instanceof Error ? e.message : e}`);
    }
    this.#stopSource(id);
    this.engine.closeChannel(entry.channel);
    if (!this.#closed) this.engine.vm.unref(entry.channel);
  }

  /** `tcp_connect(host, port, [options])`: a connection, or nil and a message. */
  connect(L: LuaState): CancellableWait {
    const vm = this.engine.vm;
    const host = checkString(vm, L, 1, "tcp_connect");
    const port = checkPort(this.engine.vm, L, 2, "tcp_connect", 1);
    const timeout = readTimeout(vm, L, 3, "tcp_connect");
    // Aborted when the timeout passes, when the goroutine stops waiting, or when the engine closes.
    const controller = new AbortController();
    let timedOut = false;
    const stopTimer = after(timeout * 1000, () => {
      timedOut = true;
      controller.abort();
    });
    this.#connecting.add(controller);
    const failed = (e: unknown): Pusher => (L) =>
      pushFailure(
        vm,
        L,
        timedOut ? `connection to ${hostPort(host, port)} timed out after ${timeout}s` : connectReason(e, host, port),
      );
    const wait = (async () => {
      await checkNetAccess(host, port);
      return await Deno.connect({ hostname: host, port, transport: "tcp", signal: controller.signal });
    })().then((conn) => {
      if (!controller.signal.aborted && !this.#closed) {
        // Closed if the goroutine is ended before it takes the connection.
        return Object.assign((L: LuaState) => (this.#pushConnection(L, conn), 1), { discard: () => conn.close() });
      }
      conn.close(); // it came as the wait was given up: nobody would get it
      return failed(undefined);
    }, failed).finally(() => {
      stopTimer();
      this.#connecting.delete(controller);
    });
    return { wait, cancel: () => controller.abort() };
  }

  #connection(L: LuaState): [number, Connection | undefined] {
    const id = Number(this.engine.vm.api.lua_tointegerx(L, 1, 0));
    return [id, this.#connections.get(id)];
  }

  /** `conn.read([max])`: up to `max` bytes, nil at the end of the stream, or nil and a message. */
  #read(L: LuaState): number | Promise<Pusher> {
    const vm = this.engine.vm;
    let max = DEFAULT_READ_SIZE;
    if (!isNone(vm, L, 2)) {
      if (vm.api.lua_type(L, 2) !== LUA_TNUMBER) {
        return this.#raiseAtCaller(L, argError(1, "read", `number expected, got ${vm.typeName(L, 2)}`));
      }
      max = vm.api.lua_tonumberx(L, 2, 0);
      if (!Number.isInteger(max) || max < 1) {
        return this.#raiseAtCaller(L, argError(1, "read", `positive integer expected, got ${max}`));
      }
    }
    const [, connection] = this.#connection(L);
    if (!connection) return pushFailure(vm, L, "connection closed");
    const buffer = new Uint8Array(Math.min(max, MAX_READ_SIZE));
    return connection.conn.read(buffer).then(
      (n) => (L: LuaState) => {
        if (n === null) vm.api.lua_pushnil(L);
        else vm.pushBytes(L, buffer.subarray(0, n));
        return 1;
      },
      (e) => (L: LuaState) => pushFailure(vm, L, streamReason(e)),
    );
  }

  /** `conn.write(data)`: true once all of it is written, or nil and a message. */
  #write(L: LuaState): number | Promise<Pusher> {
    const vm = this.engine.vm;
    const type = vm.api.lua_type(L, 2);
    if (type !== LUA_TSTRING && type !== LUA_TNUMBER) {
      return this.#raiseAtCaller(L, argError(1, "write", `string expected, got ${vm.typeName(L, 2)}`));
    }
    const [, connection] = this.#connection(L);
    if (!connection) return pushFailure(vm, L, "connection closed");
    const bytes = vm.toBytes(L, 2);
    if (bytes.length === 0) return this.#pushTrue(L);
    const conn = connection.conn;
    const done = connection.writing.then(async () => {
      for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
    });
    connection.writing = done.catch(() => {});
    return done.then(() => this.#pushTrue, (e) => (L: LuaState) => pushFailure(vm, L, streamReason(e)));
  }

  /** `conn.close()`: closes the connection; pending reads get nil. */
  #close(L: LuaState): number {
    const [id] = this.#connection(L);
    this.#closeConnection(id);
    this.engine.vm.api.lua_pushboolean(L, 1);
    return 1;
  }

  #closeConnection(id: number): void {
    const connection = this.#connections.get(id);
    if (!connection) return;
    this.#connections.delete(id);
    try {
      connection.conn.close();
    } catch {
      // Already closed.
    }
  }

  // ---- UDP ----------------------------------------------------------------

  /**
   * Fails unless Deno grants every one of `hosts` (node:dgram would throw
   * out of reach of a catch). The `--deny-net` lists are the caller's to
   * check: they refuse what the script asks for, not the address a socket
   * that sends is bound to on its behalf.
   */
  #granted(hosts: string[]): void {
    const missing = hosts.filter((host) => Deno.permissions.querySync({ name: "net", host }).state !== "granted");
    if (missing.length > 0) throw new SoftFailure(accessReason(undefined, "net", missing.join(",")));
  }

  /** A socket bound to `local` (an any or a loopback address) for sending, made once per engine and address. */
  #sender(local: string): Promise<dgram.Socket> {
    let sender = this.#senders.get(local);
    if (!sender) {
      sender = this.#bind(ipVersion(local) === 6 ? "udp6" : "udp4", 0, local).then((socket) => {
        socket.on("error", () => {}); // send failures come back through the send callback
        return socket;
      });
      sender.catch(() => this.#senders.delete(local));
      this.#senders.set(local, sender);
    }
    return sender;
  }

  /** A socket bound to `host`:`port`; fails with a {@linkcode SoftFailure}. */
  async #bind(type: "udp4" | "udp6", port: number, host: string): Promise<dgram.Socket> {
    this.#granted([hostPort(host, port)]);
    const { createSocket } = await import("node:dgram");
    return new Promise((resolve, reject) => {
      const socket = createSocket(type);
      const failed = (e: Error) => {
        socket.close();
        reject(new SoftFailure(listenReason(e, host, port)));
      };
      socket.once("error", failed);
      socket.bind(port, host, () => {
        socket.off("error", failed);
        // As Go's net package sets SO_BROADCAST on IPv4 datagram sockets: a broadcast address may be sent to.
        if (type === "udp4") socket.setBroadcast(true);
        resolve(socket);
      });
    });
  }

  /** `udp_sendto(host, port, data)`: true once sent, or nil and a message. */
  sendto(L: LuaState): Promise<Pusher> {
    // To a loopback address from a loopback socket, so --allow-net=127.0.0.1 is enough.
    const local = (address: string) =>
      ipVersion(address) === 6
        ? (address === "::1" ? "::1" : "::")
        : address.startsWith("127.")
        ? "127.0.0.1"
        : "0.0.0.0";
    return this.#send(
      L,
      1,
      "udp_sendto",
      (address) => [hostPort(local(address), 0)],
      (address) => this.#sender(local(address)),
    );
  }

  /** A UDP receiver's `send(host, port, data)`: from the receiver's own socket. */
  #sendFrom(L: LuaState): number | Promise<Pusher> {
    const api = this.engine.vm.api;
    const socket = this.#sources.get(Number(api.lua_tointegerx(L, 1, 0)))?.udp;
    // Without the hidden id, argument errors count as the caller does, and name the caller's line.
    api.lua_rotate(L, 1, -1);
    api.lua_settop(L, -2);
    try {
      return this.#send(L, 1, "send", () => [], () => {
        if (!socket) throw new SoftFailure("the receiver is closed");
        return Promise.resolve(socket);
      });
    } catch (e) {
      return this.#raiseAtCaller(L, e as Error);
    }
  }

  /**
   * Sends the datagram whose host, port and data start at argument `at`, on
   * the socket `socketFor` gives, once `--allow-net` grants the destination
   * and what `binds` lists (the sending socket's own address, if it is new).
   */
  #send(
    L: LuaState,
    at: number,
    fname: string,
    binds: (address: string) => string[],
    socketFor: (address: string) => Promise<dgram.Socket>,
  ): Promise<Pusher> {
    const vm = this.engine.vm;
    const host = checkString(vm, L, at, fname);
    const port = checkPort(this.engine.vm, L, at + 1, fname, 1);
    const bytes = checkBytes(vm, L, at + 2, fname);
    const send = async () => {
      await softlyRefused(hostPort(host, port), () => checkNetAccess(host, port));
      const address = await lookupAddress(host);
      this.#granted([...binds(address), hostPort(address, port)]);
      const socket = await socketFor(address);
      await new Promise<void>((resolve, reject) => {
        socket.send(bytes, port, address, (e) => {
          if (!e) return resolve();
          const code = (e as { code?: string }).code;
          if (code === "EMSGSIZE") reject(new SoftFailure(`datagram too large (${bytes.length} bytes)`));
          else reject(new SoftFailure(`cannot send to ${hostPort(address, port)}: ${e.message}`));
        });
      });
    };
    return send().then(() => this.#pushTrue, (e) => {
      if (!(e instanceof SoftFailure)) throw e;
      return (L: LuaState) => pushFailure(vm, L, e.message);
    });
  }

  /** `udp_recvfrom(port, [host])`: a channel of `{ data, addr, port }` datagrams, or nil and a message. */
  recvfrom(L: LuaState): Promise<Pusher> {
    const { engine } = this;
    const vm = engine.vm;
    const port = checkPort(this.engine.vm, L, 1, "udp_recvfrom", 0);
    const host = isNone(vm, L, 2) ? "0.0.0.0" : checkString(vm, L, 2, "udp_recvfrom");
    const open = async (): Promise<Pusher> => {
      const address = await lookupAddress(host);
      await softlyRefused(hostPort(address, port), () => checkAccess("net", hostPort(address, port)));
      const socket = await this.#bind(ipVersion(address) === 6 ? "udp6" : "udp4", port, address);
      if (this.#closed) {
        socket.close();
        return () => 0;
      }
      const id = ++this.#next;
      const real = socket.address().port;
      notePort(port, real);
      const name = `udp_recvfrom ${hostPort(address, real)}`;
      const channel = engine.newChannel(name, UDP_QUEUE_LIMIT, () => this.#stopSource(id));
      const done = new Promise((resolve) => socket.once("close", resolve));
      const entry: Source = {
        channel,
        release: engine.hold(),
        stopped: false,
        done,
        close: () => socket.close(),
        udp: socket,
      };
      this.#sources.set(id, entry);
      socket.on("message", (data, from) => {
        if (engine.channelLength(channel) >= UDP_QUEUE_LIMIT) return; // UDP is lossy: a reader behind loses some
        const fed = engine.feedChannel(channel, (L) => {
          vm.api.lua_createtable(L, 0, 3);
          vm.pushBytes(L, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
          vm.api.lua_setfield(L, -2, vm.cstr("data"));
          vm.pushString(L, from.address);
          vm.api.lua_setfield(L, -2, vm.cstr("addr"));
          vm.api.lua_pushinteger(L, BigInt(from.port));
          vm.api.lua_setfield(L, -2, vm.cstr("port"));
        });
        if (!fed) this.#stopSource(id);
      });
      socket.on("error", (e) => {
        if (!entry.stopped) engine.reportError(`udp_recvfrom: ${e.message}`);
        this.#stopSource(id);
      });
      socket.on("close", () => {
        this.#stopSource(id);
        engine.closeChannel(channel);
        if (!this.#closed) vm.unref(channel);
      });
      return (L) => this.#pushDressed(L, channel, id, real, true);
    };
    return open().catch((e) => {
      if (!(e instanceof SoftFailure)) throw e;
      return (L: LuaState) => pushFailure(vm, L, e.message);
    });
  }
}

/** The sockets family's registration table. */
export const sockets = (engine: Engine): Family => {
  const table = new SocketTable(engine);
  return {
    tcp_listen: engine.blocking("tcp_listen", (L) => table.listen(L), { worksWhereNoWait: true }),
    tcp_connect: engine.blocking("tcp_connect", (L) => table.connect(L)),
    udp_sendto: engine.blocking("udp_sendto", (L) => table.sendto(L)),
    udp_recvfrom: engine.blocking("udp_recvfrom", (L) => table.recvfrom(L)),
  };
};
