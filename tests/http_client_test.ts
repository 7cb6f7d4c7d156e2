import { deepStrictEqual, match, ok, strictEqual } from "node:assert";
import { runLua } from "./_helpers.ts";

/** A real server on 127.0.0.1 with an ephemeral port; `base` is its URL without a trailing slash. */
function serve(handler: (request: Request) => Response | Promise<Response>): { base: string; server: Deno.HttpServer } {
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, handler);
  return { base: `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`, server };
}

/** Answers with what it got: method and path in headers, the body echoed byte for byte. */
async function echo(request: Request): Promise<Response> {
  const url = new URL(request.url);
  return new Response(new Uint8Array(await request.arrayBuffer()), {
    headers: {
      "x-method": request.method,
      "x-path": url.pathname,
      "x-custom": request.headers.get("x-custom") ?? "",
      "x-number": request.headers.get("x-number") ?? "",
    },
  });
}

Deno.test("each method reaches the server with its body and headers", async () => {
  const { base, server } = serve(echo);
  try {
    const { outcome, stdout, stderr } = await runLua(`
      local base = ${JSON.stringify(base)}
      local function show(r)
        print(r.status, r.headers["x-method"], r.headers["x-path"], r.body, r.headers["x-custom"], r.url == base .. r.headers["x-path"])
      end
      show(http_get(base .. "/get", { ["X-Custom"] = "g" }))
      show(http_post(base .. "/post", "posted", { ["X-Custom"] = "p" }))
      show(http_put(base .. "/put", "put body"))
      show(http_delete(base .. "/delete", { ["x-custom"] = "d" }))
      show(http_request("PATCH", base .. "/patch", "patched", { ["X-Custom"] = "r" }))
      show(http_request("get", base .. "/lower", nil, nil))
      show(http_request("OPTIONS", base .. "/options"))
      local head = http_request("HEAD", base .. "/head")
      print(head.status, head.headers["x-method"], #head.body)
      show(http_post(base .. "/empty", ""))`);
    strictEqual(stderr, "");
    deepStrictEqual(outcome, { status: "ok" });
    strictEqual(
      stdout,
      "200\tGET\t/get\t\tg\ttrue\n" +
        "200\tPOST\t/post\tposted\tp\ttrue\n" +
        "200\tPUT\t/put\tput body\t\ttrue\n" +
        "200\tDELETE\t/delete\t\td\ttrue\n" +
        "200\tPATCH\t/patch\tpatched\tr\ttrue\n" +
        "200\tGET\t/lower\t\t\ttrue\n" +
        "200\tOPTIONS\t/options\t\t\ttrue\n" +
        "200\tHEAD\t0\n" +
        "200\tPOST\t/empty\t\t\ttrue\n",
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("bodies are byte-exact both ways: all 256 byte values", async () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const received: Uint8Array[] = [];
  const { base, server } = serve(async (request) => {
    received.push(new Uint8Array(await request.arrayBuffer()));
    return new Response(all.slice().reverse(), { headers: { "content-type": "application/octet-stream" } });
  });
  try {
    const { stdout, stderr } = await runLua(`
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      local all = table.concat(bytes)
      local reversed = all:reverse()
      local r = http_post(${JSON.stringify(base)}, all)
      print(r.status, #r.body, r.body == reversed)
      r = http_put(${JSON.stringify(base)}, all .. all)
      print(#r.body, r.body == reversed)
      r = http_request("POST", ${JSON.stringify(base)}, 12345)
      print(r.body == reversed)`);
    strictEqual(stderr, "");
    strictEqual(stdout, "200\t256\ttrue\n256\ttrue\ntrue\n");
    deepStrictEqual(received[0], all);
    deepStrictEqual(received[1], new Uint8Array([...all, ...all]));
    strictEqual(new TextDecoder().decode(received[2]), "12345");
  } finally {
    await server.shutdown();
  }
});

Deno.test("custom request headers arrive byte for byte, numbers as their text", async () => {
  const seen: Headers[] = [];
  const { base, server } = serve(async (request) => {
    seen.push(request.headers);
    return await echo(request);
  });
  try {
    const { stdout, stderr } = await runLua(`
      local r = http_get(${JSON.stringify(base)}, { ["X-Custom"] = "héllo ✓", ["X-Number"] = 42 })
      print(r.headers["x-custom"], r.headers["x-number"], #r.headers["x-custom"])
      r = http_post(${JSON.stringify(base)}, "{}", { ["X-Number"] = 1.5, ["Content-Type"] = "application/json" })
      print(r.headers["x-number"])`);
    strictEqual(stderr, "");
    strictEqual(stdout, "héllo ✓\t42\t10\n1.5\n");
    // Headers hold one character per byte: the UTF-8 bytes of the Lua string went out unchanged.
    const utf8 = new TextEncoder().encode("héllo ✓");
    strictEqual(seen[0].get("x-custom"), String.fromCharCode(...utf8));
    strictEqual(seen[0].get("x-number"), "42");
    strictEqual(seen[1].get("content-type"), "application/json");
  } finally {
    await server.shutdown();
  }
});

Deno.test("a Host header is sent as given, and dropped on a redirect to another origin", async () => {
  const { base: target, server: targetServer } = serve((request) => new Response(request.headers.get("host")));
  const { base, server } = serve((request) => {
    const path = new URL(request.url).pathname;
    if (path === "/away") return Response.redirect(`${target}/`, 302);
    if (path === "/here") return Response.redirect(`${base}/`, 302);
    return new Response(request.headers.get("host"));
  });
  try {
    const { outcome, stdout, stderr } = await runLua(`
      local host = { Host = "api.example.test" }
      print(http_get(${JSON.stringify(base)}, host).body)
      print(http_get(${JSON.stringify(base)} .. "/here", host).body)
      print(http_get(${JSON.stringify(base)} .. "/away", host).body)
      print(http_get(${JSON.stringify(base)}).body)`);
    strictEqual(stderr, "");
    deepStrictEqual(outcome, { status: "ok" });
    const own = (url: string) => new URL(url).host;
    strictEqual(stdout, `api.example.test\napi.example.test\n${own(target)}\n${own(base)}\n`);
  } finally {
    await Promise.all([server.shutdown(), targetServer.shutdown()]);
  }
});

Deno.test("response headers: lower-case names, any casing finds them", async () => {
  const { base, server } = serve(() => {
    const headers = new Headers({ "X-Custom-Thing": "v1", "Content-Type": "text/html" });
    headers.append("Set-Cookie", "a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT");
    headers.append("Set-Cookie", "b=2");
    return new Response("<p>", { headers });
  });
  try {
    const { stdout, stderr } = await runLua(`
      local r = http_get(${JSON.stringify(base)})
      print(r.headers["Content-Type"], r.headers["CONTENT-TYPE"], r.headers["content-type"])
      print(r.headers["X-Custom-Thing"], table.concat(r.headers["Set-Cookie"], " | "), r.headers.missing, r.headers[1])
      local names = {}
      for name in pairs(r.headers) do names[#names + 1] = name end
      table.sort(names)
      print(table.concat(names, ","))`);
    strictEqual(stderr, "");
    const lines = stdout.split("\n");
    strictEqual(lines[0], "text/html\ttext/html\ttext/html");
    // Several Set-Cookie headers come as a list: joined, the comma of a date could not be told from a separator.
    strictEqual(lines[1], "v1\ta=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT | b=2\tnil\tnil");
    for (const name of lines[2].split(",")) strictEqual(name, name.toLowerCase());
    ok(lines[2].split(",").includes("x-custom-thing"));
  } finally {
    await server.shutdown();
  }
});

Deno.test("non-2xx statuses are responses, and redirects are followed", async () => {
  const { base, server } = serve((request) => {
    const path = new URL(request.url).pathname;
    if (path === "/old") return Response.redirect(new URL("/new", request.url), 302);
    if (path === "/new") return new Response("moved here");
    if (path === "/boom") return new Response("server broke", { status: 500 });
    return new Response("no such page", { status: 404 });
  });
  try {
    const { stdout, stderr } = await runLua(`
      local base = ${JSON.stringify(base)}
      local r = http_get(base .. "/missing")
      print(r.status, r.body)
      r = http_post(base .. "/boom", "x")
      print(r.status, r.body)
      r = http_get(base .. "/old")
      print(r.status, r.body, r.url == base .. "/new")`);
    strictEqual(stderr, "");
    strictEqual(stdout, "404\tno such page\n500\tserver broke\n200\tmoved here\ttrue\n");
  } finally {
    await server.shutdown();
  }
});

Deno.test("a Location sent as raw UTF-8 bytes is followed to the path it names", async () => {
  const { base, server } = serve((request) => {
    const path = new URL(request.url).pathname;
    // Each character below 256 of a header value goes out as that one byte: C3 A9 is "é" in UTF-8.
    if (path === "/old") return new Response(null, { status: 302, headers: { location: "/caf\xc3\xa9?q=\xc3\xa9" } });
    return new Response(path + new URL(request.url).search);
  });
  try {
    const { stdout, stderr } = await runLua(`
      local r = http_get(${JSON.stringify(base)} .. "/old")
      print(r.status, r.body, r.url)`);
    strictEqual(stderr, "");
    strictEqual(stdout, `200\t/caf%C3%A9?q=%C3%A9\t${base}/caf%C3%A9?q=%C3%A9\n`);
  } finally {
    await server.shutdown();
  }
});

Deno.test("a redirect status without Location, or with an empty one, comes back as it is, body and all", async () => {
  const { base, server } = serve((request) => {
    const [, empty, code] = new URL(request.url).pathname.split("/");
    const status = Number(code);
    // An empty Location is no Location (as Go reads it), not a redirect to the same URL again and again.
    return new Response(`see elsewhere (${status})`, { status, headers: empty === "empty" ? { location: "" } : {} });
  });
  try {
    const { outcome, stdout, stderr } = await runLua(`
      for _, kind in ipairs{ "none", "empty" } do
        for _, code in ipairs{ 300, 301, 302, 303, 307, 308 } do
          local r = http_get(${JSON.stringify(base)} .. "/" .. kind .. "/" .. code)
          print(r.status, r.body, r.headers["content-length"] == tostring(#r.body))
        end
      end`);
    strictEqual(stderr, "");
    deepStrictEqual(outcome, { status: "ok" });
    strictEqual(
      stdout,
      [300, 301, 302, 303, 307, 308].map((code) => `${code}\tsee elsewhere (${code})\ttrue\n`).join("").repeat(2),
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("a method in any case follows redirects as fetch's would; a failing later hop is the one named", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const free = closed.addr.port; // nothing listens there once closed
  closed.close();
  const { base, server } = serve(async (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/r302") return new Response(null, { status: 302, headers: { location: "/echo" } });
    if (path === "/r303") return new Response(null, { status: 303, headers: { location: "/echo" } });
    if (path === "/away") {
      return new Response(null, { status: 301, headers: { location: `http://127.0.0.1:${free}/x` } });
    }
    return new Response(`${request.method} [${await request.text()}] ${request.headers.get("content-type")}`);
  });
  try {
    const { outcome, stdout, stderr } = await runLua(`
      for _, m in ipairs({ "POST", "post", "Post" }) do
        print(m, http_request(m, ${JSON.stringify(base)} .. "/r302", "data", { ["Content-Type"] = "text/plain" }).body)
      end
      print(#http_request("head", ${JSON.stringify(base)} .. "/r303").body)
      print(http_request("get", ${JSON.stringify(base)} .. "/r303", nil, { ["Content-Type"] = "text/plain" }).body)
      print(http_get(${JSON.stringify(base)} .. "/away"))`);
    strictEqual(stderr, "");
    deepStrictEqual(outcome, { status: "ok" });
    strictEqual(
      stdout,
      "POST\tGET [] null\npost\tGET [] null\nPost\tGET [] null\n0\nGET [] text/plain\n" +
        `nil\thttp_get: cannot connect to http://127.0.0.1:${free}/x: Connection refused\n`,
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("a redirect to another origin drops the credentials and keeps the other headers", async () => {
  const { base: target, server: targetServer } = serve((request) => {
    const seen = ["authorization", "proxy-authorization", "cookie", "x-keep"].map((name) =>
      request.headers.get(name) ?? "-"
    );
    return new Response(seen.join(" "));
  });
  const { base, server } = serve(() => Response.redirect(`${target}/landed`, 302));
  try {
    const { outcome, stdout, stderr } = await runLua(`
      local r = http_get(${JSON.stringify(base)}, {
        Authorization = "Bearer x", ["Proxy-Authorization"] = "Basic y", Cookie = "a=1", ["X-Keep"] = "kept" })
      print(r.status, r.body, r.url)`);
    strictEqual(stderr, "");
    deepStrictEqual(outcome, { status: "ok" });
    strictEqual(stdout, `200\t- - - kept\t${target}/landed\n`);
  } finally {
    await Promise.all([server.shutdown(), targetServer.shutdown()]);
  }
});

Deno.test("a refused connection returns nil and a message naming the URL and the cause", async () => {
  const { base, server } = serve(() => new Response("gone"));
  await server.shutdown();
  const { outcome, stdout, stderr } = await runLua(`
    local r, err = http_get(${JSON.stringify(base + "/x")})
    print(r, err)
    print(http_post(${JSON.stringify(base)}, "body"))`);
  strictEqual(stderr, "");
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(
    stdout,
    `nil\thttp_get: cannot connect to ${base}/x: Connection refused\n` +
      `nil\thttp_post: cannot connect to ${base}: Connection refused\n`,
  );
});

Deno.test("a port Deno's fetch refuses (the browsers' bad ports) gets a message that says so", async () => {
  const { base, server } = serve(() => Response.redirect("http://127.0.0.1:10080/x", 302));
  try {
    // Nothing needs to listen there: fetch refuses before it connects.
    const { outcome, stdout, stderr } = await runLua(`
      print(http_get("http://127.0.0.1:6000/"))
      print(http_get(${JSON.stringify(base)}))`);
    strictEqual(stderr, "");
    deepStrictEqual(outcome, { status: "ok" });
    strictEqual(
      stdout,
      "nil\thttp_get: cannot request http://127.0.0.1:6000/: Deno refuses HTTP requests to port 6000, which browsers " +
        "block (tcp_connect still reaches it)\n" +
        "nil\thttp_get: cannot request http://127.0.0.1:10080/x: Deno refuses HTTP requests to port 10080, which " +
        "browsers block (tcp_connect still reaches it)\n",
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("a server that hangs up without answering: the message says so, without Deno's noise", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const hangUp = (async () => {
    for await (const conn of listener) {
      await conn.read(new Uint8Array(4096));
      conn.close();
    }
  })();
  const url = `http://127.0.0.1:${listener.addr.port}/x`;
  try {
    const { outcome, stdout } = await runLua(`print(http_get(${JSON.stringify(url)}))`);
    deepStrictEqual(outcome, { status: "ok" });
    strictEqual(stdout, `nil\thttp_get: request to ${url} failed: connection closed before message completed\n`);
  } finally {
    listener.close();
    await hangUp.catch(() => {});
  }
});

Deno.test("a bad URL or an unknown host returns nil and a message", async () => {
  const { stdout, stderr } = await runLua(`
    print(http_get("not a url"))
    print(http_get("http://[::1"))
    print(http_delete("ftp://example.com/file"))
    print(http_request("PUT", "", "x"))
    local r, err = http_get("http://nonexistent.invalid/")
    print(r, err)`);
  strictEqual(stderr, "");
  const lines = stdout.split("\n");
  strictEqual(lines[0], 'nil\thttp_get: bad URL "not a url"');
  strictEqual(lines[1], 'nil\thttp_get: bad URL "http://[::1"');
  strictEqual(lines[2], 'nil\thttp_delete: bad URL "ftp://example.com/file" (only http:// and https:// are supported)');
  strictEqual(lines[3], 'nil\thttp_request: bad URL ""');
  match(lines[4], /^nil\thttp_get: cannot connect to http:\/\/nonexistent\.invalid\/: DNS lookup failed \(.+\)$/);
});

Deno.test("the timeout option gives up on a silent server with nil and a message", async () => {
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  let arrived = 0;
  const { base, server } = serve(async () => {
    arrived++;
    await released;
    return new Response("too late");
  });
  try {
    const started = performance.now();
    const { outcome, stdout, stderr } = await runLua(`
      print(http_get(${JSON.stringify(base + "/slow")}, nil, { timeout = 0.3 }))
      print(http_request("POST", ${JSON.stringify(base)}, "x", nil, { timeout = 0.3 }))`);
    const elapsed = performance.now() - started;
    strictEqual(stderr, "");
    deepStrictEqual(outcome, { status: "ok" });
    strictEqual(
      stdout,
      `nil\thttp_get: request to ${base}/slow timed out after 0.3s\n` +
        `nil\thttp_request: request to ${base} timed out after 0.3s\n`,
    );
    strictEqual(arrived, 2);
    ok(elapsed < 3000, `two 0.3 s timeouts took ${elapsed} ms`);
  } finally {
    release();
    await server.shutdown();
  }
});

Deno.test("a request in flight when the engine stops is aborted, leaking no fetch or timer", async () => {
  // A bare TCP server that reads the request, never answers, and sees when the client hangs up.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const hungUp = (async () => {
    const conn = await listener.accept();
    const buffer = new Uint8Array(4096);
    try {
      while (await conn.read(buffer) !== null);
    } catch {
      // A reset is a hang-up too.
    }
    conn.close();
    return "client hung up";
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const { outcome } = await runLua(`
      go(function() http_get("http://127.0.0.1:${listener.addr.port}/") end)
      sleep(0.05)
      os.exit(3)`);
    deepStrictEqual(outcome, { status: "exit", code: 3 });
    const stillOpen = new Promise<string>((resolve) => timer = setTimeout(() => resolve("still connected"), 2000));
    strictEqual(await Promise.race([hungUp, stillOpen]), "client hung up");
  } finally {
    clearTimeout(timer);
    listener.close();
  }
});

Deno.test("bad argument types raise", async () => {
  const { stdout, stderr } = await runLua(`
    local function try(...) print(select(2, pcall(...))) end
    try(http_get)
    try(http_get, nil)
    try(http_get, {})
    try(http_get, "http://x/", "headers")
    try(http_get, "http://x/", { [1] = "a" })
    try(http_get, "http://x/", { ["X-A"] = true })
    try(http_get, "http://x/", { ["bad name"] = "v" })
    try(http_get, "http://x/", { ["X-A"] = "line\\nbreak" })
    try(http_get, "http://x/", nil, 5)
    try(http_get, "http://x/", nil, { timeout = "1" })
    try(http_get, "http://x/", nil, { timeout = 0 })
    try(http_get, "http://x/", nil, { timout = 1 })
    try(http_post, "http://x/")
    try(http_post, "http://x/", {})
    try(http_put, "http://x/", "b", 7)
    try(http_delete, false)
    try(http_request)
    try(http_request, "BAD METHOD", "http://x/")
    try(http_request, "CONNECT", "http://x/")
    try(http_request, "GET", true)
    try(http_request, "GET", "http://x/", "body")
    try(http_request, "POST", "http://x/", {})
    try(http_request, "POST", "http://x/", nil, nil, { timeout = -1 })`);
  strictEqual(stderr, "");
  strictEqual(
    stdout,
    [
      "bad argument #1 to 'http_get' (string expected, got no value)",
      "bad argument #1 to 'http_get' (string expected, got nil)",
      "bad argument #1 to 'http_get' (string expected, got table)",
      "bad argument #2 to 'http_get' (table expected, got string)",
      "bad argument #2 to 'http_get' (header names must be strings, got number)",
      "bad argument #2 to 'http_get' (header 'X-A' must be a string or number, got boolean)",
      "bad argument #2 to 'http_get' (invalid header 'bad name: v')",
      "bad argument #2 to 'http_get' (invalid header 'X-A: line\nbreak')",
      "bad argument #3 to 'http_get' (table expected, got number)",
      "bad argument #3 to 'http_get' (timeout must be a number of seconds, got string)",
      "bad argument #3 to 'http_get' (timeout must be a positive number of seconds, got 0)",
      "bad argument #3 to 'http_get' (unknown option 'timout'; options are: timeout)",
      "bad argument #2 to 'http_post' (string expected, got no value)",
      "bad argument #2 to 'http_post' (string expected, got table)",
      "bad argument #3 to 'http_put' (table expected, got number)",
      "bad argument #1 to 'http_delete' (string expected, got boolean)",
      "bad argument #1 to 'http_request' (string expected, got no value)",
      "bad argument #1 to 'http_request' (invalid HTTP method 'BAD METHOD')",
      "bad argument #1 to 'http_request' (invalid HTTP method 'CONNECT')",
      "bad argument #2 to 'http_request' (string expected, got boolean)",
      "bad argument #3 to 'http_request' (a GET request cannot have a body)",
      "bad argument #3 to 'http_request' (string expected, got table)",
      "bad argument #5 to 'http_request' (timeout must be a positive number of seconds, got -1)",
    ].join("\n") + "\n",
  );
});

Deno.test("an error raised at a call site carries the script position", async () => {
  const { outcome } = await runLua(`local x = 1\nhttp_get(nil)`, "=script.lua");
  strictEqual(outcome.status, "error");
  if (outcome.status === "error") {
    strictEqual(outcome.message, "script.lua:2: bad argument #1 to 'http_get' (string expected, got nil)");
  }
});

Deno.test("SolVM calls its own server from a goroutine", async () => {
  const { outcome, stdout, stderr } = await runLua(`
    create_server("self", 0, false, nil, nil, { host = "127.0.0.1" })
    handle_http("self", "/hello", function(req)
      return { status = 200, headers = { ["X-Served-By"] = "solvm" }, body = "hello " .. (req.query_params.name or "?") }
    end)
    handle_http("self", "/echo", function(req)
      return { status = 201, body = req.method .. " " .. req.headers["Content-Type"] .. " " .. req.body }
    end)
    local port = start_server("self")
    local base = "http://127.0.0.1:" .. port
    local results = chan("results", 2)
    go(function()
      local r = http_get(base .. "/hello?name=lua")
      send(results, r.status .. " " .. r.headers["X-Served-By"] .. " " .. r.body)
      r = http_post(base .. "/echo", '{"a":1}', { ["Content-Type"] = "application/json" })
      send(results, r.status .. " " .. r.body)
    end)
    print(receive(results))
    print(receive(results))
    print(http_get(base .. "/nowhere").status)
    stop_server("self")`);
  strictEqual(stderr, "");
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, '200 solvm hello lua\ttrue\n201 POST application/json {"a":1}\ttrue\n404\n');
});

// Last in the file: while runtime/engine.ts pushes a whole wake batch (up to 64) without lua_checkstack,
// many requests settling together can corrupt Lua's stack and abort the rest of the module.
Deno.test("50 goroutines wait on their requests in parallel", async () => {
  let inFlight = 0;
  let most = 0;
  const { base, server } = serve(async (request) => {
    most = Math.max(most, ++inFlight);
    await new Promise((resolve) => setTimeout(resolve, 50));
    inFlight--;
    return new Response(new URL(request.url).pathname.slice(1));
  });
  try {
    const started = performance.now();
    const { outcome, stdout, stderr } = await runLua(`
      local got = {}
      for i = 1, 50 do
        go(function()
          local r = http_get(${JSON.stringify(base)} .. "/" .. i)
          got[i] = tonumber(r.body) == i and r.status == 200
        end)
      end
      wait()
      local good = 0
      for i = 1, 50 do if got[i] then good = good + 1 end end
      print(good)`);
    const elapsed = performance.now() - started;
    strictEqual(stderr, "");
    deepStrictEqual(outcome, { status: "ok" });
    strictEqual(stdout, "50\n");
    ok(most >= 10, `at most ${most} requests were in flight at once`);
    ok(elapsed < 1250, `50 requests of 50 ms took ${elapsed} ms`);
  } finally {
    await server.shutdown();
  }
});

Deno.test("a gzip body comes decoded, without the headers that describe the encoded bytes; identity keeps it as sent", async () => {
  const gzipped = new Uint8Array(
    await new Response(new Blob(["hello gzip"]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer(),
  );
  const { base, server } = serve(() =>
    new Response(gzipped, { headers: { "content-encoding": "gzip", "content-length": String(gzipped.length) } })
  );
  try {
    const { outcome, stdout } = await runLua(`
      local r = http_get(${JSON.stringify(base)})
      print(r.body, r.headers["content-encoding"], r.headers["content-length"])
      local raw = http_get(${JSON.stringify(base)}, { ["Accept-Encoding"] = "identity" })
      print(#raw.body, raw.headers["content-encoding"], raw.headers["content-length"] == tostring(#raw.body))`);
    deepStrictEqual(outcome, { status: "ok" });
    strictEqual(stdout, `hello gzip\tnil\tnil\n${gzipped.length}\tgzip\ttrue\n`);
  } finally {
    await server.shutdown();
  }
});

Deno.test("content-encoding and content-length go exactly when fetch decoded the body, whatever was accepted", async () => {
  const compress = async (format: CompressionFormat) =>
    new Uint8Array(
      await new Response(new Blob(["hello coded"]).stream().pipeThrough(new CompressionStream(format))).arrayBuffer(),
    );
  const gzipped = await compress("gzip");
  const deflated = await compress("deflate");
  const { base, server } = serve((request) => {
    const deflate = new URL(request.url).pathname === "/deflate";
    const body = deflate ? deflated : gzipped;
    // Whatever the request accepts, as some servers do.
    return new Response(body, {
      headers: { "content-encoding": deflate ? "deflate" : "gzip", "content-length": String(body.length) },
    });
  });
  try {
    const { outcome, stdout } = await runLua(`
      local function show(r) print(r.body == "hello coded", r.headers["content-encoding"], r.headers["content-length"] == tostring(#r.body)) end
      show(http_get(${JSON.stringify(base)}, { ["Accept-Encoding"] = "br" }))
      show(http_get(${JSON.stringify(base)}, { Range = "bytes=0-" }))
      show(http_get(${JSON.stringify(base)} .. "/deflate"))`);
    deepStrictEqual(outcome, { status: "ok" });
    // Decoded: no content-length, so the last column is false; left as sent: both headers stay.
    strictEqual(stdout, "true\tnil\tfalse\nfalse\tgzip\ttrue\nfalse\tdeflate\ttrue\n");
  } finally {
    await server.shutdown();
  }
});
