import { deepStrictEqual, match, ok, strictEqual } from "node:assert";
import dgram from "node:dgram";
import { ACCEPT_QUEUE_LIMIT, UDP_QUEUE_LIMIT } from "../host/sockets.ts";
import { type LuaRun, runLua, sleep, solvm, solvmUnder, tempFiles, USE_UP_DESCRIPTORS } from "./_helpers.ts";

/** Every byte value once, in Lua: the binary-safety payload. */
const ALL_BYTES_LUA =
  `(function() local t = {} for i = 0, 255 do t[#t + 1] = string.char(i) end return table.concat(t) end)()`;
const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);

/** A TCP port nobody listens on (just freed by the system). */
function freeTcpPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** A UDP socket bound on 127.0.0.1, with the datagrams it receives. */
async function udpSocket(): Promise<
  { socket: dgram.Socket; port: number; got: dgram.RemoteInfo[]; data: Uint8Array[] }
> {
  const socket = dgram.createSocket("udp4");
  const got: dgram.RemoteInfo[] = [];
  const data: Uint8Array[] = [];
  socket.on("message", (msg, from) => {
    got.push(from);
    data.push(new Uint8Array(msg));
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return { socket, port: socket.address().port, got, data };
}

function closeUdp(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => socket.close(() => resolve()));
}

/** Runs Lua, failing the test instead of hanging when the script does not end within `ms`. */
async function runLuaWithin(source: string, ms = 10_000): Promise<LuaRun> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the script did not end within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([runLua(source), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Connects to 127.0.0.1:port, retrying while the Lua listener is not up yet. */
async function connectWhenListening(port: number): Promise<Deno.TcpConn> {
  for (let attempt = 0;; attempt++) {
    try {
      return await Deno.connect({ hostname: "127.0.0.1", port });
    } catch (e) {
      if (!(e instanceof Deno.errors.ConnectionRefused) || attempt > 200) throw e;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  for (let at = 0; at < n;) {
    const got = await conn.read(out.subarray(at));
    if (got === null) throw new Error(`end of stream after ${at} of ${n} bytes`);
    at += got;
  }
  return out;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

// ---- TCP --------------------------------------------------------------------

Deno.test("a Lua echo server serves a Deno client, binary-safe, and keeps the script alive while listening", async () => {
  const port = freeTcpPort();
  const lua = runLuaWithin(`
    local server = assert(tcp_listen(${port}, "127.0.0.1"))
    print(server.port == ${port})
    go(function()
      local conn = receive(server)
      print("client from", conn.remote_addr, math.type(conn.remote_port))
      while true do
        local data = conn.read()
        if not data then break end
        print(conn.write(data))
      end
      print("client hung up")
      conn.close()
      server.close()
    end)`);
  // The main chunk has ended by now: only the listener keeps the script running.
  await new Promise((resolve) => setTimeout(resolve, 50));
  const conn = await connectWhenListening(port);
  await writeAll(conn, ALL_BYTES);
  deepStrictEqual(await readExactly(conn, 256), ALL_BYTES);
  await writeAll(conn, new TextEncoder().encode("hello"));
  strictEqual(new TextDecoder().decode(await readExactly(conn, 5)), "hello");
  conn.close();
  const { outcome, stdout } = await lua;
  deepStrictEqual(outcome, { status: "ok" });
  match(stdout, /^true\nclient from\t127\.0\.0\.1\tinteger\n(true\n)+client hung up\n$/);
});

Deno.test("a Lua client talks to a Deno server: binary both ways, nil at the end, write to a closed peer", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const conn = await listener.accept();
    const got = await readExactly(conn, 256);
    await writeAll(conn, got.slice().reverse());
    conn.close();
    return got;
  })();
  const { outcome, stdout } = await runLuaWithin(`
    local bytes = ${ALL_BYTES_LUA}
    local conn = assert(tcp_connect("127.0.0.1", ${listener.addr.port}))
    print(conn.remote_addr, conn.remote_port == ${listener.addr.port})
    print(conn.write(bytes))
    local got = {}
    while true do
      local data = conn.read()
      if data == nil then break end
      got[#got + 1] = data
    end
    print(table.concat(got) == bytes:reverse())
    print(conn.read())
    local ok, message
    for _ = 1, 200 do
      ok, message = conn.write("more")
      if not ok then break end
      sleep(0.01)
    end
    print(ok, message)
    conn.close()`);
  listener.close();
  deepStrictEqual(outcome, { status: "ok" });
  deepStrictEqual(await served, ALL_BYTES);
  match(stdout, /^127\.0\.0\.1\ttrue\ntrue\ntrue\nnil\nnil\tconnection (closed|reset) by peer\n$/);
});

Deno.test("Lua server and client in one script: read(max) limits, nil after the peer closes", async () => {
  const { outcome, stdout } = await runLuaWithin(`
    local server = assert(tcp_listen(0, "127.0.0.1"))
    go(function()
      local conn = receive(server)
      conn.write(string.rep("x", 100))
      print("server read", conn.read())
      conn.close()
    end)
    local c = assert(tcp_connect("127.0.0.1", server.port))
    sleep(0.05)
    print(#c:read(10))
    print(#c.read(1000))
    c.write("bye")
    print(c.read())
    c.close()
    server.close()`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "10\n90\nserver read\tbye\nnil\n");
});

Deno.test("a large write goes out whole, and a Deno server sees every byte", async () => {
  const size = 3 * 1024 * 1024;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const conn = await listener.accept();
    const got = await readExactly(conn, size);
    await writeAll(conn, new TextEncoder().encode(String(got.reduce((sum, b) => sum + b, 0))));
    conn.close();
  })();
  const { outcome, stdout } = await runLuaWithin(`
    local chunk = ${ALL_BYTES_LUA}
    local conn = assert(tcp_connect("127.0.0.1", ${listener.addr.port}))
    print(conn.write(string.rep(chunk, ${size / 256})))
    print(conn.read())
    conn.close()`);
  await served;
  listener.close();
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, `true\n${(255 * 256 / 2) * (size / 256)}\n`);
});

Deno.test("twenty goroutines echo binary data through one Lua server at once", async () => {
  const { outcome, stdout } = await runLuaWithin(`
    local server = assert(tcp_listen(0, "127.0.0.1"))
    local bytes = ${ALL_BYTES_LUA}
    local active, most = 0, 0
    go(function()
      while true do
        local conn = receive(server)
        if not conn then break end
        go(function()
          active = active + 1
          most = math.max(most, active)
          while true do
            local data = conn.read(100)
            if not data then break end
            conn.write(data)
          end
          active = active - 1
          conn.close()
        end)
      end
    end)
    local good, done = 0, chan("done", 20)
    for i = 1, 20 do
      go(function()
        local conn = assert(tcp_connect("127.0.0.1", server.port))
        local payload = string.rep(string.char(i), i) .. bytes
        assert(conn.write(payload))
        local got = ""
        while #got < #payload do got = got .. assert(conn.read()) end
        sleep(0.02)
        if got == payload then good = good + 1 end
        conn.close()
        send(done, i)
      end)
    end
    for _ = 1, 20 do receive(done) end
    print(good, most > 1)
    server.close()`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "20\ttrue\n");
});

Deno.test("closing a connection wakes a pending read; later reads and writes say it is closed", async () => {
  const { outcome, stdout } = await runLuaWithin(`
    local server = assert(tcp_listen(0, "127.0.0.1"))
    go(function() local conn = receive(server) sleep(0.1) conn.close() end)
    local c = assert(tcp_connect("127.0.0.1", server.port))
    local woken = chan("woken", 1)
    go(function() print("pending read:", c.read()) send(woken, true) end)
    sleep(0.05)
    print(c.close(), c:close())
    receive(woken)
    print(c.read())
    print(c.write("x"))
    print(c:write(""))
    server.close()`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(
    stdout,
    "true\ttrue\npending read:\tnil\tconnection closed\nnil\tconnection closed\nnil\tconnection closed\n" +
      "nil\tconnection closed\n",
  );
});

Deno.test("tcp_connect and tcp_listen failures give nil and a message; bad arguments raise", async () => {
  const refused = freeTcpPort();
  const { outcome, stdout } = await runLuaWithin(`
    print(tcp_connect("127.0.0.1", ${refused}))
    print(tcp_connect("no-such-host.invalid", 80))
    local server = assert(tcp_listen(0, "127.0.0.1"))
    print(select("#", tcp_listen(server.port, "127.0.0.1")), select(2, tcp_listen(server.port, "127.0.0.1")) ==
      "address already in use (127.0.0.1:" .. server.port .. ")")
    go(function() local conn = receive(server) sleep(0.05) conn.close() end)
    local c = assert(tcp_connect("127.0.0.1", server.port))
    local function try(f, ...) print((select(2, pcall(f, ...)):gsub("^test:%d+: ", ""))) end
    try(tcp_connect, "127.0.0.1")
    try(tcp_connect, "127.0.0.1", 0)
    try(tcp_connect, {}, 80)
    try(tcp_connect, "127.0.0.1", 1.5)
    try(tcp_connect, "127.0.0.1", 80, 5)
    try(tcp_connect, "127.0.0.1", 80, { timeout = 0 })
    try(tcp_connect, "127.0.0.1", 80, { timout = 1 })
    try(tcp_listen)
    try(tcp_listen, 70000)
    try(tcp_listen, 0, {})
    try(c.read, "many")
    try(c.read, 0)
    try(c.write, {})
    try(c.write)
    c.close()
    server.close()`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(
    stdout,
    `nil\tconnection refused (127.0.0.1:${refused})\n` +
      "nil\tunknown host 'no-such-host.invalid'\n" +
      "2\ttrue\n" +
      "bad argument #2 to 'tcp_connect' (number expected, got no value)\n" +
      "bad argument #2 to 'tcp_connect' (port 1-65535 expected, got 0)\n" +
      "bad argument #1 to 'tcp_connect' (string expected, got table)\n" +
      "bad argument #2 to 'tcp_connect' (number has no integer representation)\n" +
      "bad argument #3 to 'tcp_connect' (table expected, got number)\n" +
      "bad argument #3 to 'tcp_connect' (timeout must be a positive number of seconds, got 0)\n" +
      "bad argument #3 to 'tcp_connect' (unknown option 'timout'; options are: timeout)\n" +
      "bad argument #1 to 'tcp_listen' (number expected, got no value)\n" +
      "bad argument #1 to 'tcp_listen' (port 0-65535 expected, got 70000)\n" +
      "bad argument #2 to 'tcp_listen' (string expected, got table)\n" +
      "bad argument #1 to 'read' (number expected, got string)\n" +
      "bad argument #1 to 'read' (positive integer expected, got 0)\n" +
      "bad argument #1 to 'write' (string expected, got table)\n" +
      "bad argument #1 to 'write' (string expected, got nil)\n",
  );
});

/** A listener whose accept queue is full and never taken from: the system drops further SYNs, so a connect waits. */
async function unansweredPort(): Promise<{ port: number; close: () => void }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.TcpConn[] = [];
  while (true) {
    const giveUp = new AbortController();
    const timer = setTimeout(() => giveUp.abort(), 200);
    try {
      held.push(await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port, signal: giveUp.signal }));
    } catch {
      break;
    } finally {
      clearTimeout(timer);
    }
  }
  return {
    port: listener.addr.port,
    close: () => {
      for (const conn of held) conn.close();
      listener.close();
    },
  };
}

/** How many sockets (of this machine's loopback) are still trying to connect to 127.0.0.1:`port` (SYN_SENT). */
async function connectingTo(port: number): Promise<number> {
  await sleep(50); // an aborted connect's socket closes on Deno's next turn
  const remote = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const rows = (await Deno.readTextFile("/proc/net/tcp")).split("\n").map((line) => line.trim().split(/\s+/));
  return rows.filter((fields) => fields[2] === remote && fields[3] === "02").length;
}

Deno.test("tcp_connect gives up after options.timeout, and the end of the run gives it up too", async () => {
  const silent = await unansweredPort();
  try {
    strictEqual(await connectingTo(silent.port), 0);
    const started = performance.now();
    const { outcome, stdout } = await runLuaWithin(`
      print(tcp_connect("127.0.0.1", ${silent.port}, { timeout = 0.3 }))`);
    const elapsed = performance.now() - started;
    deepStrictEqual(outcome, { status: "ok" });
    strictEqual(stdout, `nil\tconnection to 127.0.0.1:${silent.port} timed out after 0.3s\n`);
    ok(elapsed < 5000, `a 0.3 s timeout took ${elapsed} ms`);
    strictEqual(await connectingTo(silent.port), 0, "the timed-out connect still tries");
    // A connect left waiting (default timeout: 30 s) when the run ends is given up with it.
    const { outcome: exited } = await runLuaWithin(`
      go(function() tcp_connect("127.0.0.1", ${silent.port}) end)
      sleep(0.1)
      os.exit(3)`);
    deepStrictEqual(exited, { status: "exit", code: 3 });
    strictEqual(await connectingTo(silent.port), 0, "the connect outlived its run");
  } finally {
    silent.close();
  }
});

Deno.test("a connection nothing refers to is closed when collected, not while a goroutine waits on it", async () => {
  const { outcome, stdout } = await runLuaWithin(`
    local function fds() return #list_dir("/proc/self/fd") end
    local server = assert(tcp_listen(0, "127.0.0.1"))
    local answer_late = chan(nil)
    go(function()
      receive(answer_late)
      local conn = receive(server)
      conn.write("late")
      conn.close()
      while true do
        conn = receive(server)
        if not conn then return end
        conn.write("hello")
        conn.close()
      end
    end)
    local read = chan(nil, 1)
    go(function() send(read, tcp_connect("127.0.0.1", server.port).read()) end)  -- held only by its waiting read
    sleep(0.05)
    collectgarbage() collectgarbage()
    send(answer_late, true)
    print((receive(read)))
    collectgarbage() collectgarbage()
    local before = fds()
    for _ = 1, 200 do
      local conn = assert(tcp_connect("127.0.0.1", server.port))
      while conn.read() do end
    end
    collectgarbage() collectgarbage()
    print(fds() - before < 20)
    server.close()`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "late\ntrue\n");
});

Deno.test("a listener whose reader is behind can still be closed: close() returns and its clients see the end", async () => {
  const { outcome, stdout } = await runLuaWithin(`
    local server = assert(tcp_listen(0, "127.0.0.1"))
    local clients = {}
    for i = 1, ${ACCEPT_QUEUE_LIMIT} + 2 do clients[i] = assert(tcp_connect("127.0.0.1", server.port)) end
    sleep(0.2)
    print(#server)
    server.close()
    print("closed", clients[1].read())`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, `${ACCEPT_QUEUE_LIMIT}\nclosed\tnil\n`);
});

Deno.test("a listener whose reader is behind (tostring shows its bound) leaves further clients in the system's backlog, then takes them", async () => {
  const { outcome, stdout } = await runLuaWithin(`
    local server = assert(tcp_listen(0, "127.0.0.1"))
    local clients = {}
    for i = 1, 300 do clients[i] = assert(tcp_connect("127.0.0.1", server.port)) end
    sleep(0.2)
    print(#server, (tostring(server):match("%(.*%)")))
    for _ = 1, 300 do
      local conn = receive(server)
      conn.write("hi")
      conn.close()
    end
    local answered = 0
    for i = 1, 300 do
      if clients[i].read() == "hi" then answered = answered + 1 end
    end
    print(answered)
    server.close()`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, `${ACCEPT_QUEUE_LIMIT}\t(${ACCEPT_QUEUE_LIMIT}/${ACCEPT_QUEUE_LIMIT} buffered)\n300\n`);
});

Deno.test("a listener stops at close() and at close_channel", async () => {
  // Ports are taken below Linux's ephemeral range (32768+): there, another test running meanwhile may get a freed port
  // (as a connection's local port, or a listener's), and this test would fail for a reason of its own.
  const { outcome, stdout } = await runLuaWithin(`
    local function listen_low()
      for _ = 1, 100 do
        local port = math.random(20000, 32000)
        local server = tcp_listen(port, "127.0.0.1")
        if server then return server, port end
      end
      error("no free port below the ephemeral range")
    end
    local server, port = listen_low()
    go(function() print("accept loop got", receive(server)) end)
    sleep(0.01)
    print(server:close())
    print(tcp_connect("127.0.0.1", port) == nil)
    local again = assert(tcp_listen(port, "127.0.0.1"))
    print(again.close())
    local other = listen_low()
    close_channel(other)  -- the listener closes soon after (not before close_channel returns): wait up to 5 s
    local refused = false
    for _ = 1, 500 do
      refused = tcp_connect("127.0.0.1", other.port) == nil
      if refused then break end
      sleep(0.01)
    end
    print(refused)`);
  deepStrictEqual(outcome, { status: "ok" });
  // close() returns once the accept loop has ended and the port is free.
  strictEqual(stdout, "accept loop got\tnil\tfalse\ntrue\ntrue\ntrue\ntrue\n");
});

Deno.test("a client that connects just as close_channel stops a listener is refused or reset, in tcp_connect's words", async () => {
  const { outcome, stdout } = await runLuaWithin(`
    for _ = 1, 3 do
      local listener = assert(tcp_listen(0, "127.0.0.1"))
      close_channel(listener)  -- returns at once: the port may still take the handshake, then reset it
      local conn, message = tcp_connect("127.0.0.1", listener.port, { timeout = 2 })
      -- Under load the handshake may even complete before the port closes: the connection is then reset later.
      if conn then conn.close() print("connected") else print(conn, message:gsub("%d+%)$", "PORT)")) end
    end`);
  deepStrictEqual(outcome, { status: "ok" });
  for (const line of stdout.trim().split("\n")) {
    match(line, /^(nil\tconnection (refused|reset) \(127\.0\.0\.1:PORT\)\t1|connected)$/);
  }
});

Deno.test("tcp_listen on a port the engine holds, or inside a C call, answers nil and a message at once", async () => {
  const { outcome, stdout } = await runLuaWithin(`
    local first = assert(tcp_listen(0, "127.0.0.1"))
    first.close()
    local held = assert(tcp_listen(first.port, "127.0.0.1"))  -- the port just let go: taken again
    -- Held by our own listener: refused at once, where a port only let go is asked for again for up to 1 s.
    local function refused_at_once()
      local t0 = os.clock()
      return tcp_listen(first.port, "127.0.0.1") == nil and os.clock() - t0 < 0.5
    end
    print(refused_at_once())
    local got
    table.sort({ 2, 1 }, function(a, b) got = got or { tcp_listen(first.port, "127.0.0.1") } return a < b end)
    print(got[1], (got[2]:gsub("%d+%)$", "PORT)")))
    local other = assert(tcp_listen(first.port, "127.0.0.2"))  -- the same port on another host
    other.close()
    print(refused_at_once())                                  -- still held by our own listener
    held.close()`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "true\nnil\taddress already in use (127.0.0.1:PORT)\ntrue\n");
});

Deno.test("closing a listener resets the connections it accepted that nobody received", async () => {
  const { outcome, stdout } = await runLuaWithin(`
    local function queued_client()
      local server = assert(tcp_listen(0, "127.0.0.1"))
      local client = assert(tcp_connect("127.0.0.1", server.port))
      sleep(0.1)  -- accepted by now, waiting in the listener's channel
      return server, client
    end
    local server, client = queued_client()
    server.close()
    print("receive after close:", receive(server))
    print("client reads:", client.read())
    local other, client2 = queued_client()
    close_channel(other)
    print("after close_channel:", client2.read())
    local kept, client3 = queued_client()
    local conn = receive(kept)  -- received before the close: it stays open
    kept.close()
    conn.write("still here")
    print("received one:", client3.read())`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(
    stdout,
    "receive after close:\tnil\tfalse\nclient reads:\tnil\nafter close_channel:\tnil\nreceived one:\tstill here\n",
  );
});

Deno.test("a listener out of file descriptors keeps its port and accepts again once some are free", async () => {
  const dir = await tempFiles({
    "accept.lua": USE_UP_DESCRIPTORS + `
      on_error(function(e) print("on_error:", e) end)
      local server = assert(tcp_listen(0, "127.0.0.1"))
      go(function()
        while true do
          local conn = receive(server)
          if not conn then return end
          conn.write("hi")
          conn.close()
        end
      end)
      local files = use_up_descriptors(1)
      local during = assert(tcp_connect("127.0.0.1", server.port))  -- the last descriptor: the listener has none
      sleep(0.3)
      for _, f in ipairs(files) do f:close() end
      print("during:", during.read())
      print("after:", assert(tcp_connect("127.0.0.1", server.port)).read())
      server.close()`,
  });
  const { code, stdout, stderr } = await solvm(["accept.lua"], { cwd: dir, maxOpenFiles: 128 });
  strictEqual(code, 0, stderr);
  match(
    stdout,
    /^on_error:\tcannot accept connections: Too many open files \(os error 24\); accepting again once descriptors are free\nduring:\thi\nafter:\thi\n$/,
  );
});

Deno.test("without --allow-net, socket calls say which flag is missing and the script goes on", async () => {
  const dir = await Deno.makeTempDir({ prefix: "solvm-sockets-" });
  try {
    await Deno.writeTextFile(
      `${dir}/net.lua`,
      `print(tcp_connect("127.0.0.1", 9))
print(tcp_listen(0, "127.0.0.1"))
print(udp_sendto("127.0.0.1", 9, "x"))
print(udp_recvfrom(0, "127.0.0.1"))
print("still running")
`,
    );
    const { code, stdout, stderr } = await solvmUnder(["--allow-read"], [`${dir}/net.lua`]);
    strictEqual(stderr, "");
    strictEqual(code, 0);
    strictEqual(
      stdout,
      'nil\tpermission denied: net access to "127.0.0.1:9" (run with --allow-net=127.0.0.1:9)\n' +
        // Port 0 is the port the system picks: the flag names the host, whose every port a listener's clients need.
        'nil\tpermission denied: net access to "127.0.0.1:0" (run with --allow-net=127.0.0.1)\n' +
        'nil\tpermission denied: net access to "127.0.0.1:0,127.0.0.1:9" (run with --allow-net=127.0.0.1,127.0.0.1:9)\n' +
        'nil\tpermission denied: net access to "127.0.0.1:0" (run with --allow-net=127.0.0.1)\n' +
        "still running\n",
    );
    // Sending to a loopback address uses a loopback socket: --allow-net=127.0.0.1 is enough.
    await Deno.writeTextFile(
      `${dir}/loop.lua`,
      `local r = assert(udp_recvfrom(0, "127.0.0.1")) print(udp_sendto("127.0.0.1", r.port, "hi")) print(r.receive().data) r.close()`,
    );
    const loop = await solvmUnder(["--allow-read", "--allow-net=127.0.0.1"], [`${dir}/loop.lua`]);
    strictEqual(loop.stderr, "");
    strictEqual(loop.stdout, "true\nhi\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- UDP --------------------------------------------------------------------

Deno.test("udp_sendto reaches a node:dgram socket, binary-safe, by address and by name", async () => {
  const peer = await udpSocket();
  try {
    const { outcome, stdout } = await runLuaWithin(`
      print(udp_sendto("127.0.0.1", ${peer.port}, ${ALL_BYTES_LUA}))
      print(udp_sendto("localhost", ${peer.port}, "by name"))
      print(udp_sendto("127.0.0.1", ${peer.port}, ""))`);
    deepStrictEqual(outcome, { status: "ok" });
    strictEqual(stdout, "true\ntrue\ntrue\n");
    for (let i = 0; i < 100 && peer.data.length < 3; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    deepStrictEqual(peer.data, [ALL_BYTES, new TextEncoder().encode("by name"), new Uint8Array()]);
    strictEqual(peer.got[0].address, "127.0.0.1");
  } finally {
    await closeUdp(peer.socket);
  }
});

Deno.test("udp_recvfrom gets datagrams from a node:dgram sender through obj.receive() and receive(obj)", async () => {
  const sender = await udpSocket();
  const probe = await udpSocket();
  const port = probe.port;
  await closeUdp(probe.socket);
  // Send until Lua has bound its socket and taken three datagrams.
  const ticker = setInterval(() => sender.socket.send(ALL_BYTES, port, "127.0.0.1"), 10);
  try {
    const { outcome, stdout } = await runLuaWithin(`
      local bytes = ${ALL_BYTES_LUA}
      local inbox = assert(udp_recvfrom(${port}, "127.0.0.1"))
      print(inbox.port == ${port})
      local a = inbox.receive()
      local b = receive(inbox)
      local c = inbox:receive()
      print(a.data == bytes, a.addr, a.port == ${sender.port}, b.data == bytes, c.data == bytes)
      print(inbox.close())
      sleep(0.05)
      while true do
        local msg, ok = inbox.receive()
        if not ok then print("drained, then", msg, ok) break end
      end`);
    deepStrictEqual(outcome, { status: "ok" });
    strictEqual(stdout, "true\ntrue\t127.0.0.1\ttrue\ttrue\ttrue\ntrue\ndrained, then\tnil\tfalse\n");
  } finally {
    clearInterval(ticker);
    await closeUdp(sender.socket);
  }
});

Deno.test("a UDP receiver's send() answers from its own port, to a node:dgram client and to a Lua client", async () => {
  const client = await udpSocket();
  // The node client learns the server's port from Lua, asks, and notes where the answer came from.
  const nodeSide = (async () => {
    while (client.data.length === 0) await sleep(10);
    const serverPort = Number(new TextDecoder().decode(client.data[0]));
    client.socket.send("from node", serverPort, "127.0.0.1");
    while (client.data.length < 2) await sleep(10);
    return { serverPort, reply: new TextDecoder().decode(client.data[1]), from: client.got[1].port };
  })();
  try {
    const { outcome, stdout } = await runLuaWithin(`
      local server = assert(udp_recvfrom(0, "127.0.0.1"))
      go(function()
        for _ = 1, 2 do
          local msg = server.receive()
          assert(server:send(msg.addr, msg.port, "echo:" .. msg.data))
        end
      end)
      local me = assert(udp_recvfrom(0, "127.0.0.1"))
      print(me.send("127.0.0.1", server.port, "from lua"))
      local reply = me.receive()
      print(reply.data, reply.port == server.port)
      assert(udp_sendto("127.0.0.1", ${client.port}, tostring(server.port)))
      wait()
      server.close()
      me.close()
      print(server.send("127.0.0.1", ${client.port}, "x"))`);
    deepStrictEqual(outcome, { status: "ok" });
    strictEqual(stdout, "true\necho:from lua\ttrue\nnil\tthe receiver is closed\n");
    const node = await nodeSide;
    deepStrictEqual(node, { serverPort: node.serverPort, reply: "echo:from node", from: node.serverPort });
  } finally {
    await closeUdp(client.socket);
  }
});

Deno.test("udp: a broadcast address may be sent to, as Go's sockets allow (the loopback's 127.255.255.255 here)", async () => {
  const { outcome, stdout } = await runLuaWithin(`
    local inbox = assert(udp_recvfrom(0, "0.0.0.0")) -- a broadcast reaches sockets bound to any address
    local function got(ok, err) return ok and receive(inbox).data or err end
    print(got(udp_sendto("127.255.255.255", inbox.port, "from udp_sendto")))
    print(got(inbox.send("127.255.255.255", inbox.port, "from its send")))
    inbox.close()`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "from udp_sendto\nfrom its send\n");
});

Deno.test("a UDP receiver's send() names bad arguments as the caller counts them, at the caller's line", async () => {
  const { outcome, stdout } = await runLuaWithin(`
    local inbox = assert(udp_recvfrom(0, "127.0.0.1"))
    print(pcall(function() inbox.send("127.0.0.1", inbox.port, {}) end))
    print(pcall(function() inbox:send("127.0.0.1") end))
    inbox.close()`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(
    stdout,
    "false\ttest:3: bad argument #3 to 'send' (string expected, got table)\n" +
      "false\ttest:4: bad argument #2 to 'send' (number expected, got no value)\n",
  );
});

Deno.test("a UDP receiver whose reader is behind holds a bounded queue (tostring shows its bound) and drops the datagrams past it", async () => {
  const { outcome, stdout } = await runLuaWithin(`
    local inbox = assert(udp_recvfrom(0, "127.0.0.1"))
    for i = 1, ${UDP_QUEUE_LIMIT + 500} do
      udp_sendto("127.0.0.1", inbox.port, tostring(i))
      if i % 50 == 0 then sleep(0.005) end  -- the system's own buffer never fills
    end
    sleep(0.1)
    print(#inbox, (tostring(inbox):match("%(.*%)")), inbox.receive().data)
    inbox.close()`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, `${UDP_QUEUE_LIMIT}\t(${UDP_QUEUE_LIMIT}/${UDP_QUEUE_LIMIT} buffered)\t1\n`);
});

Deno.test("udp: a closed receiver frees its port; failures give nil and a message; bad arguments raise", async () => {
  const { outcome, stdout } = await runLuaWithin(`
    local inbox = assert(udp_recvfrom(0, "127.0.0.1"))
    local port = inbox.port
    print(select(2, udp_recvfrom(port, "127.0.0.1")) == "address already in use (127.0.0.1:" .. port .. ")")
    inbox.close()
    local again = assert(udp_recvfrom(port, "127.0.0.1"))
    print(udp_sendto("127.0.0.1", port, string.rep("x", 70000)))
    print(udp_sendto("no-such-host.invalid", 9, "x"))
    -- An empty host (an unset setting) resolves to no address: it was a JavaScript TypeError.
    print(udp_sendto("", 9, "x"))
    print(udp_recvfrom(0, ""))
    print(again.send("", 9, "x"))
    local function try(f, ...) print((select(2, pcall(f, ...)):gsub("^test:%d+: ", ""))) end
    try(udp_sendto, "127.0.0.1", 0, "x")
    try(udp_sendto, "127.0.0.1", 9)
    try(udp_sendto, "127.0.0.1", 9, {})
    try(udp_recvfrom, "x")
    try(udp_recvfrom, 70000)
    -- close_channel stops the receiver (the script can end); a datagram sent to its port goes nowhere.
    close_channel(again)
    print(udp_sendto("127.0.0.1", port, "wake"))`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(
    stdout,
    "true\nnil\tdatagram too large (70000 bytes)\nnil\tunknown host 'no-such-host.invalid'\n" +
      "nil\tunknown host ''\n".repeat(3) +
      "bad argument #2 to 'udp_sendto' (port 1-65535 expected, got 0)\n" +
      "bad argument #3 to 'udp_sendto' (string expected, got no value)\n" +
      "bad argument #3 to 'udp_sendto' (string expected, got table)\n" +
      "bad argument #1 to 'udp_recvfrom' (number expected, got string)\n" +
      "bad argument #1 to 'udp_recvfrom' (port 0-65535 expected, got 70000)\n" +
      "true\n",
  );
});
