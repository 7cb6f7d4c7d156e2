import { deepStrictEqual, match, ok, strictEqual } from "node:assert";
import { connect as tcpConnect } from "node:net";
import { type LuaRun, runLua, sleep, solvm, tempFiles, USE_UP_DESCRIPTORS, within, WS_UPGRADE } from "./_helpers.ts";

// Each test runs a Lua script that starts its server(s) on port 0 and calls
// ready(port, ...): the ports land in a file the test polls for. The test
// then talks to the server with fetch / WebSocket while the engine runs, and
// finally stops the script (usually GET /quit, see serve()) and checks its output.

/** Defines ready() and serve() for every script; kept on one line so script lines start at 2. */
const PRELUDE = [
  "function ready(...)",
  "  local t = table.pack(...) for i = 1, t.n do t[i] = tostring(t[i]) end",
  '  write_file(DIR .. "/ports", table.concat(t, " ", 1, t.n) .. "\\n")',
  "end",
  // serve(name, ...): /quit on the first server; start all, tell the ports, wait for /quit, stop all.
  "function serve(...)",
  "  local names = table.pack(...)",
  '  local quit = chan("quit", 1)',
  '  handle_http(names[1], "/quit", function() send(quit, true) return "bye" end)',
  "  local ports = {} for i = 1, names.n do ports[i] = start_server(names[i]) end",
  "  ready(table.unpack(ports, 1, names.n))",
  "  receive(quit)",
  "  for i = 1, names.n do stop_server(names[i]) end",
  '  print("stopped")',
  "end",
].join(" ");

const LOCAL = `{ host = "127.0.0.1" }`;

/** A script being run, with the ports it reported. */
interface Running<R> {
  dir: string;
  ports: number[];
  run: Promise<R>;
  url(path: string, server?: number, scheme?: string): string;
}

/** Polls `dir`/ports until the script reports its ports; fails if the script ends first. */
async function waitForPorts(dir: string, run: Promise<unknown>): Promise<number[]> {
  let ended: unknown;
  run.then((r) => ended = r, (e) => ended = e);
  const deadline = performance.now() + 15_000;
  while (performance.now() < deadline) {
    if (ended !== undefined) throw new Error(`the script ended before listening: ${Deno.inspect(ended)}`);
    try {
      const text = await Deno.readTextFile(`${dir}/ports`);
      if (text.endsWith("\n")) return text.trim().split(" ").map(Number);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    await sleep(20);
  }
  throw new Error("the script did not report its ports within 15 s");
}

function running<R>(dir: string, ports: number[], run: Promise<R>): Running<R> {
  return {
    dir,
    ports,
    run,
    url: (path, server = 0, scheme = "http") => `${scheme}://127.0.0.1:${ports[server]}${path}`,
  };
}

/** Runs `script` in an engine of this process (runLua) and waits until it reports its ports. */
async function start(script: string, files: Record<string, string> = {}): Promise<Running<LuaRun>> {
  const dir = await tempFiles(files);
  const run = runLua(`local DIR = ${JSON.stringify(dir)} ${PRELUDE}\n${script}`);
  return running(dir, await waitForPorts(dir, run), run);
}

/** A CLI run: exit code and output, and a kill switch for a run that hangs. */
interface Child {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `script` through the real CLI (a child process), for cases that could take the whole process down. */
async function startCli(script: string, flags: string[] = []): Promise<Running<Child> & { kill(): void }> {
  const dir = await tempFiles({});
  await Deno.writeTextFile(`${dir}/main.lua`, `local DIR = ${JSON.stringify(dir)} ${PRELUDE}\n${script}`);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../main.ts", import.meta.url).pathname, ...flags, `${dir}/main.lua`],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const run = child.output().then(({ code, stdout, stderr }) => {
    const decoder = new TextDecoder();
    return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
  });
  let ports: number[];
  try {
    ports = await waitForPorts(dir, run);
  } catch (e) {
    killChild(child);
    await run;
    throw e;
  }
  return { ...running(dir, ports, run), kill: () => killChild(child) };
}

/** How a CLI run ended; if it has not ended within `ms`, kills it and fails with the output so far. */
async function ended(s: Running<Child> & { kill(): void }, ms: number, what: string): Promise<Child> {
  try {
    return await within(s.run, ms, what);
  } catch (e) {
    s.kill();
    const r = await s.run;
    throw new Error(`${(e as Error).message}; output so far: ${Deno.inspect({ stdout: r.stdout, stderr: r.stderr })}`);
  }
}

function killChild(child: Deno.ChildProcess): void {
  try {
    child.kill("SIGKILL");
  } catch {
    // already ended
  }
}

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  bytes: Uint8Array;
}

/** fetch with a time limit; the body is read completely. */
async function request(url: string, init: RequestInit & { client?: Deno.HttpClient } = {}, ms = 10_000) {
  return await within(
    (async (): Promise<Reply> => {
      const response = await fetch(url, init);
      const bytes = new Uint8Array(await response.arrayBuffer());
      return { status: response.status, headers: response.headers, bytes, text: new TextDecoder().decode(bytes) };
    })(),
    ms,
    `${init.method ?? "GET"} ${url}`,
  );
}

/** GETs `path` and expects 200 with body `text`. */
async function expectText(url: string, text: string): Promise<void> {
  const r = await request(url);
  strictEqual(r.status, 200, `${url}: ${r.text}`);
  strictEqual(r.text, text, url);
}

/** Asks the script to stop (GET /quit on its first server, see serve()) and returns how it ended. */
async function quit<R>(s: Running<R>, init: RequestInit & { client?: Deno.HttpClient } = {}, scheme = "http") {
  const r = await request(s.url("/quit", 0, scheme), init);
  strictEqual(r.text, "bye");
  return await within(s.run, 10_000, "the script to end after /quit");
}

/** Runs `body` against a started script, then stops it with /quit even if `body` failed. */
async function session(s: Running<LuaRun>, body: () => Promise<void>): Promise<LuaRun> {
  try {
    await body();
  } catch (e) {
    await quit(s).catch(() => {});
    throw e;
  }
  return await quit(s);
}

const finishedOk = (r: LuaRun) => {
  deepStrictEqual(r.outcome, { status: "ok" });
};

// ---- routes ----------------------------------------------------------------

Deno.test("routes: exact beats :param beats *, the longest * prefix wins, unknown paths get 404", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    local function show(label)
      return function(req)
        local params = {}
        for k, v in pairs(req.params) do params[#params + 1] = k .. "=" .. v end
        table.sort(params)
        return label .. " " .. req.path .. " [" .. table.concat(params, " ") .. "]"
      end
    end
    handle_http("s", "/", show("root"))
    handle_http("s", "/users/*", show("users*"))
    handle_http("s", "/users/:id", show("user"))
    handle_http("s", "/users/me", show("me"))
    handle_http("s", "/users/:id/posts/:post", show("post"))
    handle_http("s", "/teams/:team/files/*", show("team files*"))
    handle_http("s", "/static/img/*", show("img*"))
    handle_http("s", "/static/*", show("static*"))
    handle_http("s", "/docs/*", show("docs*"))
    handle_http("s", "/docs/api/*", show("api*"))
    handle_http("s", "/café", show("café"))
    handle_http("s", "/hello world", show("hello"))
    serve("s")`);
  const r = await session(s, async () => {
    const cases: [string, string][] = [
      ["/", "root / []"],
      ["/users/me", "me /users/me []"],
      ["/users/42", "user /users/42 [id=42]"],
      // Routes, req.path and params see the decoded path; an encoded / or % stays encoded in req.path (one
      // segment, never taken for the other), and params decode it.
      ["/users/a%20b", "user /users/a b [id=a b]"],
      ["/users/a%2Fb", "user /users/a%2Fb [id=a/b]"],
      ["/users/a%252Fb", "user /users/a%252Fb [id=a%2Fb]"],
      ["/users/100%25", "user /users/100%25 [id=100%]"],
      ["/static/a%2Fb", "static* /static/a%2Fb [*=a/b]"],
      ["/teams/red/files/a/b.txt", "team files* /teams/red/files/a/b.txt [*=a/b.txt team=red]"],
      ["/teams/red/files/", "team files* /teams/red/files/ [*= team=red]"],
      ["/caf%C3%A9", "café /café []"],
      ["/hello%20world", "hello /hello world []"],
      ["/static/my%20site.css", "static* /static/my site.css [*=my site.css]"],
      ["/users/42/posts/7", "post /users/42/posts/7 [id=42 post=7]"],
      ["/users/42/likes", "users* /users/42/likes [*=42/likes]"],
      ["/users/", "users* /users/ [*=]"],
      ["/static/css/site.css", "static* /static/css/site.css [*=css/site.css]"],
      ["/static/img/logo.png", "img* /static/img/logo.png [*=logo.png]"],
      ["/docs/intro", "docs* /docs/intro [*=intro]"],
      ["/docs/api/v1/send", "api* /docs/api/v1/send [*=v1/send]"],
    ];
    for (const [path, want] of cases) await expectText(s.url(path), want);
    for (
      const path of ["/nothing", "/user", "/usersx", "/Users/me", "/static", "/teams/red/files", "/teams//files/x"]
    ) {
      const notFound = await request(s.url(path), { method: path === "/nothing" ? "POST" : "GET" });
      strictEqual(notFound.status, 404, path);
      strictEqual(notFound.text, "Not Found", path);
    }
  });
  finishedOk(r);
  strictEqual(r.stdout, "stopped\n");
  strictEqual(r.stderr, "");
});

Deno.test("routes outside the documented syntax are refused: a query, a * not the whole last segment, a :param unnamed or named twice, a dot segment, an escape", async () => {
  const r = await within(
    runLua(`
      create_server("s", 0, false, nil, nil, ${LOCAL})
      local function route(path) print(pcall(handle_http, "s", path, function() end)) end
      for _, path in ipairs({ "/search?q=1", "/mid/*/end", "/files*", "/*/x", "/a/**", "/a/:id/:id", "/x/:" }) do
        route(path)
      end
      print(pcall(handle_ws, "s", "/ws*", function() end))
      for _, path in ipairs({ "/docs/../admin", "/./x", "/a/.", "/caf%C3%A9", "/a%20b/*", "/a%2fb", "/100%" }) do
        route(path)
      end
      print(pcall(handle_ws, "s", "/ws/..", function() end))
      for _, path in ipairs({ "/*", "/users/:id/*", "/v1/items:batch", "/a/:id/b/:ID", "/a%2Fb", "/100%25/*", "/.../x" }) do
        route(path)
      end`),
    10_000,
    "the script",
  );
  finishedOk(r);
  const star = (path: string) =>
    `false\tbad argument #2 to 'handle_http' (path with '*' only as its whole last segment ("/files/*") expected, ` +
    `got "${path}")\n`;
  const dots = (path: string) =>
    `false\tbad argument #2 to 'handle_http' (path without "." or ".." segments expected, got "${path}" ` +
    `(requests' dot segments are resolved))\n`;
  const escaped = (path: string) =>
    `false\tbad argument #2 to 'handle_http' (path in its decoded form expected ("/café", "/a b"; ` +
    `only %2F and %25 stay encoded), got "${path}")\n`;
  strictEqual(
    r.stdout,
    `false\tbad argument #2 to 'handle_http' (path without a query string expected, got "/search?q=1" (see req.query_params))\n` +
      star("/mid/*/end") + star("/files*") + star("/*/x") + star("/a/**") +
      `false\tbad argument #2 to 'handle_http' (parameter names used once expected, got ':id' twice in "/a/:id/:id")\n` +
      `false\tbad argument #2 to 'handle_http' (a parameter name after ':' expected, got "/x/:")\n` +
      star("/ws*").replace("handle_http", "handle_ws") +
      dots("/docs/../admin") + dots("/./x") + dots("/a/.") +
      escaped("/caf%C3%A9") + escaped("/a%20b/*") + escaped("/a%2fb") + escaped("/100%") +
      dots("/ws/..").replace("handle_http", "handle_ws") +
      "true\n".repeat(7),
  );
  strictEqual(r.stderr, "");
});

Deno.test("routes: the more specific :param route wins whatever the order; a * route by the path it matched, not its text", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    local function show(label) return function() return label end end
    handle_http("s", "/:kind/:id", show(":kind/:id"))
    handle_http("s", "/users/:id", show("users/:id"))
    handle_http("s", "/:kind/new", show(":kind/new"))
    handle_http("s", "/docs/:version/*", show("docs/:version/*"))
    handle_http("s", "/docs/v2/api/*", show("docs/v2/api/*"))
    handle_http("s", "/files/:a/*", show("files/:a/*"))
    handle_http("s", "/files/x/*", show("files/x/*"))
    serve("s")`);
  const r = await session(s, async () => {
    const cases: [string, string][] = [
      ["/users/7", "users/:id"],
      ["/teams/7", ":kind/:id"],
      ["/teams/new", ":kind/new"],
      ["/users/new", "users/:id"], // the first segment decides: users is a literal there
      ["/docs/v2/api/users", "docs/v2/api/*"], // 13 characters of the path against 9
      ["/docs/v3/api/users", "docs/:version/*"],
      ["/files/x/y", "files/x/*"], // the same length matched: the literal wins
      ["/files/z/y", "files/:a/*"],
    ];
    for (const [path, want] of cases) await expectText(s.url(path), want);
  });
  finishedOk(r);
});

Deno.test("req: method, path, raw query, query_params, case-insensitive headers, body, remote_addr", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/info", function(req)
      local q = req.query_params
      return table.concat({
        req.method, req.path, req.query,
        tostring(q.a), tostring(q.msg), tostring(q.plus), tostring(q.empty), tostring(q.missing),
        tostring(req.headers["Content-Type"]), tostring(req.headers["content-type"]),
        tostring(req.headers["X-Custom-Header"]), tostring(req.headers["x-custom-header"]),
        tostring(req.headers["X-CUSTOM-HEADER"]), tostring(req.headers["X-Absent"]),
        req.body, req.remote_addr,
      }, "|")
    end)
    handle_http("s", "/bare", function(req)
      return req.query .. "|" .. tostring(next(req.query_params)) .. "|" .. tostring(next(req.params)) ..
        "|" .. type(req.body) .. "|" .. #req.body
    end)
    serve("s")`);
  const r = await session(s, async () => {
    const info = await request(s.url("/info?a=1&msg=hello%20world&plus=x+y&empty="), {
      method: "PUT",
      headers: { "Content-Type": "application/json", "X-Custom-Header": "yes" },
      body: '{"k":1}',
    });
    strictEqual(info.status, 200);
    strictEqual(
      info.text,
      "PUT|/info|a=1&msg=hello%20world&plus=x+y&empty=|1|hello world|x y||nil|" +
        'application/json|application/json|yes|yes|yes|nil|{"k":1}|127.0.0.1',
    );
    await expectText(s.url("/bare"), "|nil|nil|string|0");
    const deleted = await request(s.url("/info?x"), { method: "DELETE" });
    match(deleted.text, /^DELETE\|\/info\|x\|/);
  });
  finishedOk(r);
  strictEqual(r.stderr, "");
});

Deno.test("a POST body arrives byte-exact (all 256 byte values) and a binary response body goes back intact", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    local expected = table.concat(all):rep(4)
    handle_http("s", "/upload", function(req)
      return {
        status = 200,
        headers = { ["Content-Type"] = "application/octet-stream", ["X-Length"] = #req.body,
                    ["X-Same"] = tostring(req.body == expected) },
        body = req.body:reverse(),
      }
    end)
    serve("s")`);
  const r = await session(s, async () => {
    const body = new Uint8Array(1024).map((_, i) => i % 256);
    const reply = await request(s.url("/upload"), { method: "POST", body });
    strictEqual(reply.status, 200);
    strictEqual(reply.headers.get("x-length"), "1024");
    strictEqual(reply.headers.get("x-same"), "true");
    strictEqual(reply.headers.get("content-type"), "application/octet-stream");
    deepStrictEqual(reply.bytes, body.slice().reverse());
  });
  finishedOk(r);
  strictEqual(r.stderr, "");
});

Deno.test("responses: a string is 200 text/plain; a table gives status, headers and body", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/string", function() return "hello" end)
    handle_http("s", "/utf8", function() return "héllo ✓" end)
    handle_http("s", "/table", function()
      return { status = 201, headers = { ["Content-Type"] = "application/json", ["X-Answer"] = 42 }, body = '{"ok":true}' }
    end)
    handle_http("s", "/teapot", function() return { status = 418, body = "short and stout" } end)
    handle_http("s", "/empty", function() return { status = 204 } end)
    handle_http("s", "/reset", function() return { status = 205, body = "dropped: 205 has no body" } end)
    handle_http("s", "/string-status", function() return { status = "404", body = "as a string" } end)
    handle_http("s", "/cookies", function() return { headers = { ["Set-Cookie"] = { "a=1", "b=2" } }, body = "two" } end)
    handle_http("s", "/redirect", function() return { status = 302, headers = { Location = "/string" } } end)
    serve("s")`);
  const r = await session(s, async () => {
    const text = await request(s.url("/string"));
    strictEqual(text.status, 200);
    strictEqual(text.headers.get("content-type"), "text/plain; charset=utf-8");
    strictEqual(text.text, "hello");
    strictEqual((await request(s.url("/utf8"))).text, "héllo ✓");
    const table = await request(s.url("/table"));
    strictEqual(table.status, 201);
    strictEqual(table.headers.get("content-type"), "application/json");
    strictEqual(table.headers.get("x-answer"), "42");
    strictEqual(table.text, '{"ok":true}');
    const teapot = await request(s.url("/teapot"));
    strictEqual(teapot.status, 418);
    strictEqual(teapot.headers.get("content-type"), "text/plain; charset=utf-8");
    strictEqual(teapot.text, "short and stout");
    const empty = await request(s.url("/empty"));
    strictEqual(empty.status, 204);
    strictEqual(empty.text, "");
    const reset = await request(s.url("/reset"));
    strictEqual(reset.status, 205);
    strictEqual(reset.text, "");
    strictEqual((await request(s.url("/string-status"))).status, 404);
    const cookies = await request(s.url("/cookies"));
    deepStrictEqual(cookies.headers.getSetCookie(), ["a=1", "b=2"]);
    const redirect = await request(s.url("/redirect"), { redirect: "manual" });
    strictEqual(redirect.status, 302);
    strictEqual(redirect.headers.get("location"), "/string");
  });
  finishedOk(r);
  strictEqual(r.stderr, "");
});

// ---- failures in handlers ------------------------------------------------

Deno.test("a handler that errors answers 500, on_error gets the message, and the server keeps serving", async () => {
  const s = await start(`
    on_error(function(message) print("on_error: " .. message) end)
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/boom", function() error("boom") end)
    handle_http("s", "/fine", function() return "fine" end)
    serve("s")`);
  const r = await session(s, async () => {
    const boom = await request(s.url("/boom"));
    strictEqual(boom.status, 500);
    await expectText(s.url("/fine"), "fine");
    strictEqual((await request(s.url("/boom"), { method: "POST", body: "x" })).status, 500);
    await expectText(s.url("/fine"), "fine");
  });
  finishedOk(r);
  strictEqual(r.stdout, "on_error: test:5: boom\non_error: test:5: boom\nstopped\n");
  strictEqual(r.stderr, "");
});

Deno.test("without on_error a handler's error goes to stderr with a traceback", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/boom", function() local t = nil return t.field end)
    serve("s")`);
  const r = await session(s, async () => {
    strictEqual((await request(s.url("/boom"))).status, 500);
  });
  finishedOk(r);
  match(r.stderr, /^error in .*: test:4: attempt to index a nil value \(local 't'\)\nstack traceback:\n/);
});

Deno.test("a handler that returns a bad value (a function, a boolean, a bad status, body, headers or header) answers 500", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/status-word", function() return { status = "teapot" } end)
    handle_http("s", "/table-body", function() return { body = { 1, 2 } } end)
    handle_http("s", "/header-boolean", function() return { headers = { ["X-Cache"] = true }, body = "x" } end)
    handle_http("s", "/function", function() return print end)
    handle_http("s", "/boolean", function() return true end)
    handle_http("s", "/status999", function() return { status = 999, body = "x" } end)
    handle_http("s", "/status99", function() return { status = 99 } end)
    handle_http("s", "/headers-string", function() return { headers = "Content-Type: application/json", body = "{}" } end)
    handle_http("s", "/headers-list", function() return { headers = { "Content-Type: application/json" }, body = "{}" } end)
    handle_http("s", "/fine", function() return "fine" end)
    serve("s")`);
  const r = await session(s, async () => {
    for (
      const path of [
        "/headers-string",
        "/headers-list",
        "/function",
        "/boolean",
        "/status999",
        "/status99",
        "/status-word",
        "/table-body",
        "/header-boolean",
      ]
    ) {
      strictEqual((await request(s.url(path))).status, 500, path);
      await expectText(s.url("/fine"), "fine");
    }
  });
  finishedOk(r);
  strictEqual(r.stdout, "stopped\n");
  match(r.stderr, /function/);
  match(r.stderr, /boolean/);
  match(r.stderr, /999/);
  match(r.stderr, /\b99\b/);
  match(r.stderr, /status "teapot"; expected a number 200-599/);
  match(r.stderr, /returned a table body; expected a string \(json_encode a table\)/);
  match(r.stderr, /header 'X-Cache' as a boolean; expected a string, a number or a list of them/);
  match(r.stderr, /returned headers as a string; expected a table of name = value/);
  match(r.stderr, /returned a header named by a number; expected a table of name = value/);
});

Deno.test("on_error gets a bad result's handler by its server, route and definition line, as stderr would", async () => {
  const s = await start(`
    on_error(function(err, traceback) print("on_error: " .. err) print(traceback == err) end)
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/users/:id", function(req)
      return { body = { id = req.params.id } }
    end)
    handle_http("s", "/thread", coroutine.running)
    serve("s")`);
  const r = await session(s, async () => {
    strictEqual((await request(s.url("/users/7"))).status, 500);
    strictEqual((await request(s.url("/thread"))).status, 500);
  });
  finishedOk(r);
  strictEqual(
    r.stdout,
    "on_error: test:5: http handler (server 's', route /users/:id) returned a table body; " +
      "expected a string (json_encode a table)\ntrue\n" +
      "on_error: http handler (server 's', route /thread) returned a thread; expected a string or a table\ntrue\n" +
      "stopped\n",
  );
  strictEqual(r.stderr, "");
});

Deno.test("a bad result's handler is named by its definition line without the debug library too", async () => {
  // The line was read with debug.getinfo, as found when the first server was made: a sandbox's debug = nil lost it.
  const s = await start(`
    debug = nil
    on_error(function(err) print("on_error: " .. err) end)
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/", function(req)
      return { status = "ok" }
    end)
    serve("s")`);
  const r = await session(s, async () => strictEqual((await request(s.url("/"))).status, 500));
  finishedOk(r);
  match(r.stdout, /^on_error: test:6: http handler \(server 's', route \/\) returned status "ok"/);
});

Deno.test("a result whose metatable supplies its fields is read through it; one whose __index raises answers 500, and the state survives", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    local Reply = { __index = { status = 201, body = "made" } }
    handle_http("s", "/class", function() return setmetatable({}, Reply) end)
    local strict = { __index = function(_, k) error("no field " .. k) end }
    handle_http("s", "/strict", function() return setmetatable({ body = "x" }, strict) end)
    handle_http("s", "/fine", function() return "fine" end)
    serve("s")`);
  const r = await session(s, async () => {
    const made = await request(s.url("/class"));
    deepStrictEqual([made.status, made.text], [201, "made"]);
    // Before, each one printed PANIC and left the Lua state half unwound: a few hundred of them broke it.
    for (let i = 0; i < 300; i++) strictEqual((await request(s.url("/strict"))).status, 500);
    await expectText(s.url("/fine"), "fine");
  });
  finishedOk(r);
  strictEqual(r.stdout, "stopped\n");
  ok(!r.stderr.includes("PANIC"), r.stderr.slice(0, 300));
  match(r.stderr, /returned a result that could not be read: .*no field status/);
});

Deno.test("a response header with an invalid name or value answers 500 and the process survives", async () => {
  // Run through the CLI: a failure here must not take the test runner down with it.
  const s = await startCli(
    `
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/bad-name", function() return { headers = { ["bad header"] = "x" }, body = "b" } end)
    handle_http("s", "/bad-value", function() return { headers = { ["X-Split"] = "a\\nb" }, body = "b" } end)
    handle_http("s", "/fine", function() return "fine" end)
    serve("s")`,
    ["--timeout", "0"],
  );
  try {
    for (const path of ["/bad-name", "/bad-value"]) {
      const reply = await request(s.url(path)).catch((e) => e as Error);
      strictEqual(reply instanceof Error ? `fetch failed: ${reply.message}` : reply.status, 500, path);
      await expectText(s.url("/fine"), "fine");
    }
    const r = await quit(s);
    strictEqual(r.code, 0, r.stderr);
    strictEqual(r.stdout, "stopped\n");
  } finally {
    s.kill();
    await s.run;
  }
});

// ---- concurrency -----------------------------------------------------------

Deno.test("20 requests to a handler that sleeps 0.2 s run at the same time", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/slow", function(req) sleep(0.2) return "done " .. req.query_params.i end)
    serve("s")`);
  const r = await session(s, async () => {
    await expectText(s.url("/slow?i=warmup"), "done warmup");
    const started = performance.now();
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => request(s.url(`/slow?i=${i}`))));
    const elapsed = performance.now() - started;
    deepStrictEqual(replies.map((reply) => reply.text), Array.from({ length: 20 }, (_, i) => `done ${i}`));
    ok(elapsed < 1500, `20 x 0.2 s took ${elapsed.toFixed(0)} ms`);
  });
  finishedOk(r);
  strictEqual(r.stderr, "");
});

Deno.test("handlers that wait (and collect garbage) still read their own request's query, headers and body", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/echo", function(req)
      sleep(0.05)
      collectgarbage()  -- request tables of finished handlers are freed; their addresses may be reused
      return req.method .. " " .. req.query .. " " .. tostring(req.headers["x-n"]) .. " " .. req.body
    end)
    handle_http("s", "/drop", function(req)
      local method = req.method
      req = nil
      collectgarbage()  -- its table must stay known to the server while the handler waits
      sleep(0.03)
      return method
    end)
    serve("s")`);
  const r = await session(s, async () => {
    const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => {
      const init = i % 2 === 0
        ? { method: "POST", headers: { "x-n": String(i) }, body: `body ${i}` }
        : { headers: { "x-n": String(i) } };
      return Promise.all([request(s.url(`/echo?i=${i}`), init), request(s.url("/drop"))]);
    }));
    deepStrictEqual(
      replies.map(([echo, drop]) => `${echo.text}|${drop.text}`),
      Array.from(
        { length: 30 },
        (_, i) => `${i % 2 === 0 ? "POST" : "GET"} i=${i} ${i} ${i % 2 === 0 ? `body ${i}` : ""}|GET`,
      ),
    );
  });
  finishedOk(r);
  strictEqual(r.stderr, "");
});

Deno.test("after the handler returns, goroutines it started still read the request; a table kept elsewhere says why not", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    local seen = chan("seen", 10)
    local function later(req)
      if req.path == "/later-wait" then sleep(0.01) end  -- the handler ends after waiting
      go(function()
        sleep(0.05)
        collectgarbage()
        send(seen, table.concat({ req.method, req.path, req.query, req.query_params.k, req.headers["x-n"], req.body,
          req.remote_addr }, " "))
      end)
      return "accepted"
    end
    handle_http("s", "/later", later)
    handle_http("s", "/later-wait", later)
    local kept
    handle_http("s", "/keep", function(req) kept = req return "kept" end)
    handle_http("s", "/kept", function()
      local ok, err = pcall(function() return kept.body end)
      return kept.method .. " " .. kept.path .. " | " .. tostring(ok) .. " " .. tostring(err)
    end)
    handle_http("s", "/seen", function() return receive(seen) end)
    serve("s")`);
  const r = await session(s, async () => {
    const accepted = await request(s.url("/later?k=v"), { method: "POST", headers: { "x-n": "7" }, body: "payload" });
    strictEqual(accepted.text, "accepted");
    await expectText(s.url("/seen"), "POST /later k=v v 7 payload 127.0.0.1");
    const waited = await request(s.url("/later-wait?k=w"), { method: "PUT", headers: { "x-n": "8" }, body: "more" });
    strictEqual(waited.text, "accepted");
    await expectText(s.url("/seen"), "PUT /later-wait k=w w 8 more 127.0.0.1");
    await expectText(s.url("/keep?q=1"), "kept");
    const kept = await request(s.url("/kept"));
    match(
      kept.text,
      /^GET \/keep \| false .*req\.body: the request has been answered; read it before the handler returns$/,
    );
  });
  finishedOk(r);
  strictEqual(r.stderr, "");
});

Deno.test("pairs(req) lists every field, those made on first use included", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/fields", function(req)
      local keys = {}
      for k, v in pairs(req) do keys[#keys + 1] = k .. ":" .. type(v) end
      table.sort(keys)
      return table.concat(keys, " ")
    end)
    serve("s")`);
  const r = await session(s, async () => {
    await expectText(
      s.url("/fields?a=1"),
      "body:string headers:table method:string params:table path:string query:string query_params:table " +
        "remote_addr:string",
    );
  });
  finishedOk(r);
  strictEqual(r.stderr, "");
});

Deno.test("a GET request's body is dropped (as Deno's server does): req.body is empty", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/len", function(req) return req.method .. " " .. #req.body end)
    serve("s")`);
  const r = await session(s, async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.ports[0] });
    try {
      await conn.write(new TextEncoder().encode("GET /len HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"));
      const buf = new Uint8Array(4096);
      let text = "";
      while (!text.includes("GET ")) {
        const n = await within(conn.read(buf), 10_000, "the answer");
        if (n === null) break;
        text += new TextDecoder().decode(buf.subarray(0, n));
      }
      match(text, /^HTTP\/1\.1 200 OK/);
      ok(text.endsWith("\r\n\r\nGET 0"), text);
    } finally {
      conn.close();
    }
  });
  finishedOk(r);
  strictEqual(r.stderr, "");
});

/** Sends `target` as a raw GET (fetch would resolve its dot segments first) and returns the answer's status and body. */
async function rawGet(port: number, target: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    const text = new TextDecoder().decode(await within(new Response(conn.readable).bytes(), 10_000, "the answer"));
    return `${text.match(/^HTTP\/1\.1 (\d+)/)?.[1]} ${text.slice(text.indexOf("\r\n\r\n") + 4)}`;
  } catch (e) {
    conn.close();
    throw e;
  }
}

Deno.test("a plain HTTP request without a Host header shows none (HTTP/1.0, or 1.1 without one)", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/", function(req) return "host=" .. tostring(req.headers.host) end)
    serve("s")`);
  await session(s, async () => {
    for (const request of ["GET / HTTP/1.0\r\n\r\n", "GET / HTTP/1.1\r\nConnection: close\r\n\r\n"]) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.ports[0] });
      await conn.write(new TextEncoder().encode(request));
      const text = new TextDecoder().decode(await within(new Response(conn.readable).bytes(), 10_000, "the answer"));
      strictEqual(text.slice(text.indexOf("\r\n\r\n") + 4), "host=nil", request);
    }
  });
});

Deno.test("dot segments (.., %2e%2e, .) are resolved before routing, a parameter with one (..%2F) gets 400: a * route cannot climb out", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/static/*", function(req) return "static " .. req.params["*"] .. " " .. req.path end)
    handle_http("s", "/users/:id", function(req) return "user " .. req.params.id end)
    handle_http("s", "/secret.txt", function(req) return "secret " .. req.path end)
    serve("s")`);
  const r = await session(s, async () => {
    const port = s.ports[0];
    strictEqual(await rawGet(port, "/static/a/b.txt"), "200 static a/b.txt /static/a/b.txt");
    strictEqual(await rawGet(port, "/static/../secret.txt"), "200 secret /secret.txt");
    strictEqual(await rawGet(port, "/static/%2e%2E/secret.txt"), "200 secret /secret.txt");
    strictEqual(await rawGet(port, "/static/a/./%2e/b/../c.txt?x=1"), "200 static a/c.txt /static/a/c.txt");
    strictEqual(await rawGet(port, "/../../static/x"), "200 static x /static/x");
    strictEqual(await rawGet(port, "/static/.hidden/..."), "200 static .hidden/... /static/.hidden/...");
    // An encoded / or \ makes no dot segment, but a parameter it would give one (../) is refused.
    for (
      const target of [
        "/static/..%2Fsecret.txt",
        "/static/%2e%2E%2fsecret.txt",
        "/static/.%2e%5Csecret.txt",
        "/static/..\\secret.txt",
        "/static/a%2F..%2F..%2Fx",
        "/static/a%2F..",
        "/users/..%2F",
        "/users/%2E%2E%5c",
      ]
    ) strictEqual(await rawGet(port, target), "400 Bad Request", target);
    // Decoded once only, and a .. inside a name is no segment.
    strictEqual(await rawGet(port, "/static/%252e%252e%252Fx"), "200 static %2e%2e%2Fx /static/%252e%252e%252Fx");
    strictEqual(await rawGet(port, "/static/..%252Fx"), "200 static ..%2Fx /static/..%252Fx");
    strictEqual(await rawGet(port, "/users/a..b"), "200 user a..b");
  });
  finishedOk(r);
  strictEqual(r.stderr, "");
});

Deno.test("a malformed WebSocket handshake gets 400, quietly", async () => {
  const s = await start(`
    on_error(function(msg) print("on_error: " .. msg) end)
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_ws("s", "/ws", function(ws) ws.send("hi") end)
    serve("s")`);
  const r = await session(s, async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.ports[0] });
    await conn.write(
      new TextEncoder().encode(
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n\r\n",
      ),
    );
    const text = new TextDecoder().decode(await within(new Response(conn.readable).bytes(), 10_000, "the answer"));
    match(text, /^HTTP\/1\.1 400 Bad Request/);
  });
  finishedOk(r);
  strictEqual(r.stderr, "");
  strictEqual(r.stdout.includes("on_error"), false);
});

Deno.test("requests are answered while goroutines keep each other ready", async () => {
  // The pipeline runs until a request has been answered during it (or for 5 s): its count tells which.
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    local busy, answered, t0 = true, false, os.clock()
    handle_http("s", "/during", function() answered = busy return tostring(busy) end)
    local jobs = chan("jobs")
    go(function()
      while not answered and os.clock() - t0 < 5 do send(jobs, 1) end
      close_channel(jobs)
    end)
    go(function()
      while select(2, receive(jobs)) do end
      busy = false
    end)
    serve("s")`);
  const r = await session(s, async () => {
    await expectText(s.url("/during"), "true");
  });
  finishedOk(r);
  strictEqual(r.stderr, "");
});

Deno.test("a handler blocked on a channel is released by another request", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    local box = chan("box")
    handle_http("s", "/wait", function() local v = receive(box) return "got " .. v end)
    handle_http("s", "/feed", function(req) send(box, req.query_params.v) return "fed" end)
    handle_http("s", "/ping", function() return "pong" end)
    serve("s")`);
  const r = await session(s, async () => {
    let settled = false;
    const waiting = request(s.url("/wait")).finally(() => settled = true);
    await sleep(150);
    await expectText(s.url("/ping"), "pong");
    strictEqual(settled, false, "/wait answered before anything was fed");
    await expectText(s.url("/feed?v=parcel"), "fed");
    const reply = await waiting;
    strictEqual(reply.text, "got parcel");
  });
  finishedOk(r);
  strictEqual(r.stderr, "");
});

Deno.test("a client that hangs up mid-request (waiting for the answer, or mid-body) harms nothing", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/slow", function() sleep(0.3) print("slow handler finished") return "late" end)
    handle_http("s", "/upload", function(req) print("upload handler ran", #req.body) return "ok" end)
    handle_http("s", "/fine", function() return "fine" end)
    serve("s")`);
  const r = await session(s, async () => {
    const waiting = new AbortController();
    const slow = fetch(s.url("/slow"), { signal: waiting.signal });
    await sleep(50);
    waiting.abort();
    await within(slow.then(() => "answered", (e) => (e as Error).name), 5000, "aborted fetch").then((how) =>
      strictEqual(how, "AbortError")
    );
    await expectText(s.url("/fine"), "fine");

    // A body that starts and never finishes, then the client gives up.
    const uploading = new AbortController();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("the first part of a body that never ends"));
      },
    });
    const upload = fetch(s.url("/upload"), { method: "POST", body, signal: uploading.signal });
    await sleep(150);
    uploading.abort();
    await within(upload.then(() => "answered", (e) => (e as Error).name), 5000, "aborted upload").then((how) =>
      strictEqual(how, "AbortError")
    );
    await expectText(s.url("/fine"), "fine");
    await sleep(400); // the slow handler finishes; its answer goes nowhere
    await expectText(s.url("/fine"), "fine");
  });
  finishedOk(r);
  strictEqual(r.stdout, "slow handler finished\nstopped\n");
  strictEqual(r.stderr, "", "a client hanging up is not a server error");
});

Deno.test("CLI: a client stalled half-way through its request body gets 503 at stop_server, and the script ends", async () => {
  const s = await startCli(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/upload", function(req) print("upload handler ran", #req.body) return "ok" end)
    serve("s")`);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.ports[0] });
  try {
    await conn.write(
      new TextEncoder().encode("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"),
    );
    await sleep(200);
    await request(s.url("/quit"));
    const buffer = new Uint8Array(1024);
    const n = await within(conn.read(buffer), 10_000, "the answer to the stalled upload");
    match(new TextDecoder().decode(buffer.subarray(0, n ?? 0)), /^HTTP\/1\.1 503 /);
    const r = await ended(s, 10_000, "the process to exit after stop_server");
    deepStrictEqual(r, { code: 0, stdout: "stopped\n", stderr: "" });
  } finally {
    conn.close();
    s.kill();
    await s.run;
  }
});

// ---- body limits -----------------------------------------------------------

Deno.test("a body over max_body gets 413 (with and without Content-Length); at the limit it is served", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, { host = "127.0.0.1", max_body = 16 })
    handle_http("s", "/upload", function(req) return "len=" .. #req.body end)
    serve("s")`);
  const r = await session(s, async () => {
    const post = (n: number) => request(s.url("/upload"), { method: "POST", body: new Uint8Array(n).fill(65) });
    const stream = (n: number) =>
      request(s.url("/upload"), {
        method: "POST",
        body: new ReadableStream({
          start(c) {
            for (let i = 0; i < n; i++) c.enqueue(new Uint8Array([66]));
            c.close();
          },
        }),
      });
    strictEqual((await post(16)).text, "len=16");
    const over = await post(17);
    strictEqual(over.status, 413);
    strictEqual(over.text, "Payload Too Large");
    strictEqual((await stream(16)).text, "len=16");
    strictEqual((await stream(17)).status, 413);
    strictEqual((await post(0)).text, "len=0");
  });
  finishedOk(r);
  strictEqual(r.stderr, "");
});

Deno.test("the default body limit is 10 MB: 10 MB is served, 10 MB + 1 byte gets 413", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/upload", function(req) return "len=" .. #req.body .. " last=" .. req.body:sub(-1) end)
    serve("s")`);
  const r = await session(s, async () => {
    const tenMB = 10 * 1024 * 1024;
    const body = new Uint8Array(tenMB + 1).fill(120);
    body[tenMB - 1] = 121;
    const atLimit = await request(s.url("/upload"), { method: "POST", body: body.subarray(0, tenMB) }, 30_000);
    strictEqual(atLimit.text, `len=${tenMB} last=y`);
    const over = await request(s.url("/upload"), { method: "POST", body }, 30_000);
    strictEqual(over.status, 413);
  });
  finishedOk(r);
  strictEqual(r.stderr, "");
});

// ---- servers -----------------------------------------------------------------

Deno.test("two servers at once on different ports, each with its own routes; one stops, the other serves on", async () => {
  const s = await start(`
    create_server("a", 0, false, nil, nil, ${LOCAL})
    create_server("b", 0, false, nil, nil, ${LOCAL})
    handle_http("a", "/who", function() return "server a" end)
    handle_http("a", "/only-a", function() return "a only" end)
    handle_http("b", "/who", function() return "server b" end)
    local quit, stop_a = chan("quit", 1), chan("stop a", 1)
    handle_http("b", "/stop-a", function() send(stop_a, true) return "stopping a" end)
    handle_http("b", "/quit", function() send(quit, true) return "bye" end)
    local pa, pb = start_server("a"), start_server("b")
    print(pa ~= pb)
    ready(pa, pb)
    receive(stop_a)
    stop_server("a")
    print("a stopped")
    receive(quit)
    stop_server("b")
    print("stopped")`);
  try {
    await expectText(s.url("/who", 0), "server a");
    await expectText(s.url("/who", 1), "server b");
    await expectText(s.url("/only-a", 0), "a only");
    strictEqual((await request(s.url("/only-a", 1))).status, 404);
    await expectText(s.url("/stop-a", 1), "stopping a");
    await sleep(200);
    const gone = await request(s.url("/who", 0), {}, 5000).then(() => "answered", (e) => (e as Error).name);
    strictEqual(gone, "TypeError", "server a still answers after stop_server");
    await expectText(s.url("/who", 1), "server b");
  } finally {
    await request(s.url("/quit", 1)).catch(() => {});
  }
  const r = await within(s.run, 10_000, "the script to end");
  finishedOk(r);
  strictEqual(r.stdout, "true\na stopped\nstopped\n");
  strictEqual(r.stderr, "");
});

Deno.test("a server stopped and started again at once, or another server on its port, listens and serves", async () => {
  const s = await start(`
    local probe = assert(tcp_listen(0, "127.0.0.1"))  -- a free port
    probe.close()
    create_server("s", probe.port, false, nil, nil, ${LOCAL})
    handle_http("s", "/who", function() return "again" end)
    local quit = chan("quit", 1)
    handle_http("s", "/quit", function() send(quit, true) return "bye" end)
    local first = start_server("s")
    stop_server("s")
    local again = start_server("s")
    print(first == again)
    stop_server("s")
    create_server("other", again, false, nil, nil, ${LOCAL})  -- another server on the port just let go
    handle_http("other", "/who", function() return "again" end)
    handle_http("other", "/quit", function() send(quit, true) return "bye" end)
    print(start_server("other") == again)
    ready(again)
    receive(quit)
    stop_server("other")
    print("stopped")`);
  const r = await session(s, async () => {
    await expectText(s.url("/who"), "again");
  });
  finishedOk(r);
  strictEqual(r.stdout, "true\ntrue\nstopped\n");
  strictEqual(r.stderr, "");
});

Deno.test("a server created with port 0 picks a free port again at each start", async () => {
  const r = await within(
    runLua(`
      create_server("s", 0, ${LOCAL})
      handle_http("s", "/", function() return "ok" end)
      local first = start_server("s")
      stop_server("s")
      local other = assert(tcp_listen(first, "127.0.0.1"))  -- something else takes the port it had
      local second = start_server("s")
      print(second ~= first, http_get("http://127.0.0.1:" .. second .. "/").body)
      stop_server("s")
      other.close()`),
    10_000,
    "the script",
  );
  finishedOk(r);
  strictEqual(r.stdout, "true\tok\n");
});

Deno.test("create_server on a stopped server's name replaces it and frees its handlers", async () => {
  const r = await within(
    runLua(`
      local held = setmetatable({}, { __mode = "k" })
      do
        local captured = {}
        held[captured] = true
        create_server("api", 0, ${LOCAL})
        handle_http("api", "/", function() return captured and "v1" end)
      end
      local port = start_server("api")
      print(pcall(create_server, "api", 0, ${LOCAL}))
      print(http_get("http://127.0.0.1:" .. port .. "/").body)
      stop_server("api")
      print(pcall(create_server, "api", 0, ${LOCAL}))
      handle_http("api", "/", function() return "v2" end)
      port = start_server("api")
      print(http_get("http://127.0.0.1:" .. port .. "/").body)
      stop_server("api")
      sleep(0.1)  -- the first server has answered its last requests
      collectgarbage() collectgarbage()
      print(next(held) == nil)
      -- Stopped, then failing to start again (its port taken meanwhile): its name is free too.
      local probe = assert(tcp_listen(0, "127.0.0.1"))
      probe.close()
      create_server("fixed", probe.port, ${LOCAL})
      start_server("fixed")
      stop_server("fixed")
      local other = assert(tcp_listen(probe.port, "127.0.0.1"))
      print(pcall(start_server, "fixed"))
      print(pcall(create_server, "fixed", 0, ${LOCAL}))
      other.close()`),
    10_000,
    "the script",
  );
  finishedOk(r);
  strictEqual(
    r.stdout.replace(/port \d+/, "port PORT"),
    "false\tcreate_server: a server named 'api' already exists\nv1\ntrue\ttrue\nv2\ntrue\n" +
      "false\tstart_server: cannot start 'fixed' on port PORT: address already in use\ntrue\ttrue\n",
  );
});

Deno.test("API errors: unknown server, duplicate name, bad port, bad path, start twice, port in use", async () => {
  const r = await within(
    runLua(`
      create_server("s", 0, false, nil, nil, ${LOCAL})
      print(pcall(create_server, "s", 0))
      print(pcall(create_server, "t", 70000))
      print(pcall(create_server, "t", -1))
      print(pcall(create_server, "t", 0, { hots = "127.0.0.1" }))
      print(pcall(create_server, "t", 0, { max_body = "10" }))
      print(pcall(create_server, "t", 0, { max_body = -5 }))
      print(pcall(create_server, "t", 0, { max_body = 1.5 }))
      print(pcall(create_server, "t", 0, { max_body = 0/0 }))
      print(pcall(create_server, "", 0))
      print(pcall(create_server, "t", 0, { host = 127 }))
      print(pcall(handle_http, "nope", "/", function() end))
      print(pcall(handle_ws, "nope", "/", function() end))
      print(pcall(start_server, "nope"))
      print(pcall(handle_http, "s", "relative", function() end))
      print(pcall(handle_http, "s", "/", "not a function"))
      print(pcall(handle_ws, "s", "/ws", function() end, 5))
      print(pcall(handle_ws, "s", "/ws", function() end, { protocol = "chat" }))
      print(pcall(handle_ws, "s", "/ws", function() end, { protocols = "chat" }))
      print(pcall(handle_ws, "s", "/ws", function() end, { protocols = { "chat", "two words" } }))
      print(pcall(handle_ws, "s", "/ws", function() end, { protocols = { 1 } }))
      local port = start_server("s")
      print(math.type(port), port > 0)
      print(pcall(start_server, "s"))
      create_server("u", port, false, nil, nil, ${LOCAL})
      local ok, err = pcall(start_server, "u")
      print(ok, err == "start_server: cannot start 'u' on port " .. port .. ": address already in use" or err)
      stop_server("s")
      print("done")`),
    10_000,
    "the script",
  );
  finishedOk(r);
  strictEqual(
    r.stdout,
    "false\tcreate_server: a server named 's' already exists\n" +
      "false\tbad argument #2 to 'create_server' (port 0-65535 expected, got 70000)\n" +
      "false\tbad argument #2 to 'create_server' (port 0-65535 expected, got -1)\n" +
      "false\tbad argument #3 to 'create_server' (unknown option 'hots'; options are: host, max_body)\n" +
      "false\tbad argument #3 to 'create_server' (option max_body must be a whole number of bytes >= 0, got string)\n" +
      "false\tbad argument #3 to 'create_server' (option max_body must be a whole number of bytes >= 0, got -5)\n" +
      "false\tbad argument #3 to 'create_server' (option max_body must be a whole number of bytes >= 0, got 1.5)\n" +
      "false\tbad argument #3 to 'create_server' (option max_body must be a whole number of bytes >= 0, got nan)\n" +
      "false\tbad argument #1 to 'create_server' (a server name expected, got an empty string)\n" +
      "false\tbad argument #3 to 'create_server' (option host must be a string, got number)\n" +
      "false\thandle_http: no server named 'nope' (create it with create_server)\n" +
      "false\thandle_ws: no server named 'nope' (create it with create_server)\n" +
      "false\tstart_server: no server named 'nope' (create it with create_server)\n" +
      `false\tbad argument #2 to 'handle_http' (path starting with "/" expected, got "relative")\n` +
      "false\tbad argument #3 to 'handle_http' (function expected, got string)\n" +
      "false\tbad argument #4 to 'handle_ws' (table expected, got number)\n" +
      "false\tbad argument #4 to 'handle_ws' (unknown option 'protocol'; options are: protocols)\n" +
      "false\tbad argument #4 to 'handle_ws' (option protocols must be a list of protocol names, got string)\n" +
      `false\tbad argument #4 to 'handle_ws' (option protocols must list protocol names (HTTP tokens), got "two words" (item 2))\n` +
      "false\tbad argument #4 to 'handle_ws' (option protocols must list protocol names (HTTP tokens), got a number (item 1))\n" +
      "integer\ttrue\n" +
      "false\tstart_server: server 's' is already running\n" +
      "false\ttrue\n" +
      "done\n",
  );
  strictEqual(r.stderr, "");
});

Deno.test("create_server's 3rd argument must be a boolean, nil or the options table: a string is not taken for HTTPS", async () => {
  const r = await within(
    runLua(`
      print(pcall(create_server, "a", 0, "false"))
      print(pcall(create_server, "b", 0, 1))
      print(pcall(create_server, "c", 0, print))
      print(pcall(create_server, "d", 0, nil, nil, nil, ${LOCAL}))
      print(pcall(create_server, "e", 0, false))
      print(pcall(create_server, "f", 0, true))
      print(pcall(create_server, "g", 0, false, { hots = "127.0.0.1" }))
      print(pcall(create_server, "h", 0, nil, { max_body = -1 }))`),
    10_000,
    "the script",
  );
  finishedOk(r);
  strictEqual(
    r.stdout,
    "false\tbad argument #3 to 'create_server' (boolean or options table expected, got string)\n" +
      "false\tbad argument #3 to 'create_server' (boolean or options table expected, got number)\n" +
      "false\tbad argument #3 to 'create_server' (boolean or options table expected, got function)\n" +
      "true\ttrue\n" +
      "true\ttrue\n" +
      "false\tbad argument #4 to 'create_server' (string expected, got no value)\n" +
      "false\tbad argument #4 to 'create_server' (unknown option 'hots'; options are: host, max_body)\n" +
      "false\tbad argument #4 to 'create_server' (option max_body must be a whole number of bytes >= 0, got -1)\n",
  );
});

Deno.test("the options table may be the 3rd argument when not https", async () => {
  const s = await start(`
    create_server("s", 0, { host = "127.0.0.1", max_body = 8 })
    handle_http("s", "/upload", function(req) return "len=" .. #req.body end)
    serve("s")`);
  const r = await session(s, async () => {
    strictEqual((await request(s.url("/upload"), { method: "POST", body: "12345678" })).text, "len=8");
    strictEqual((await request(s.url("/upload"), { method: "POST", body: "123456789" })).status, 413);
  });
  finishedOk(r);
});

Deno.test("the options table may follow https off (false or nil, as the spec writes it) as the 4th argument", async () => {
  const s = await start(`
    create_server("s", 0, ${LOCAL})
    create_server("off", 0, false, { host = "127.0.0.2", max_body = 8 })
    create_server("none", 0, nil, { host = "127.0.0.2" })
    for _, name in ipairs{ "off", "none" } do
      handle_http(name, "/upload", function(req) return name .. " len=" .. #req.body end)
    end
    serve("s", "off", "none")`);
  const r = await session(s, async () => {
    const at = (host: string, server: number) => `http://${host}:${s.ports[server]}/upload`;
    strictEqual((await request(at("127.0.0.2", 1), { method: "POST", body: "12345678" })).text, "off len=8");
    strictEqual((await request(at("127.0.0.2", 1), { method: "POST", body: "123456789" })).status, 413);
    await expectText(at("127.0.0.2", 2), "none len=0");
    for (const server of [1, 2]) {
      const refused = await request(at("127.0.0.1", server)).then((r) => r.status, (e) => e.name);
      strictEqual(refused, "TypeError", `server ${server} answered on 127.0.0.1, outside its host`);
    }
  });
  finishedOk(r);
});

Deno.test("a running server keeps the script alive after the main chunk returns, until stop_server", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/hello", function() return "still here" end)
    handle_http("s", "/stop", function()
      go(function() stop_server("s") print("stopped") end)
      return "stopping"
    end)
    ready(start_server("s"))
    print("main chunk done")`);
  await sleep(300);
  await expectText(s.url("/hello"), "still here");
  await expectText(s.url("/stop"), "stopping");
  const r = await within(s.run, 10_000, "the script to end after stop_server");
  finishedOk(r);
  strictEqual(r.stdout, "main chunk done\nstopped\n");
  strictEqual(r.stderr, "");
});

Deno.test("CLI: a server (on all interfaces by default) outlives the main chunk; exit 0 after stop_server", async () => {
  const s = await startCli(`
    create_server("s", 0) -- all interfaces by default
    handle_http("s", "/hello", function() return "still here" end)
    handle_http("s", "/stop", function()
      go(function() stop_server("s") print("stopped") end)
      return "stopping"
    end)
    ready(start_server("s"))
    print("main chunk done")`);
  try {
    await expectText(s.url("/hello"), "still here");
    await expectText(s.url("/stop"), "stopping");
    const r = await ended(s, 10_000, "the process to exit");
    strictEqual(r.stderr, "");
    strictEqual(r.code, 0);
    strictEqual(r.stdout, "main chunk done\nstopped\n");
  } finally {
    s.kill();
    await s.run;
  }
});

Deno.test("CLI: os.exit while a handler waits ends quietly: stderr stays empty", async () => {
  const s = await startCli(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    local waiting = chan("waiting", 1)
    handle_http("s", "/slow", function() send(waiting, true) sleep(30) return "late" end)
    handle_http("s", "/exit", function()
      receive(waiting)
      print("exiting")
      os.exit(3)
    end)
    ready(start_server("s"))`);
  try {
    // The process may exit before it answers.
    const slow = request(s.url("/slow")).then((r) => r.status, () => "connection closed");
    await request(s.url("/exit")).catch(() => {}); // no answer: the process exits
    const answer = await slow;
    ok(answer === 500 || answer === "connection closed", `the waiting request got ${answer}`);
    const r = await ended(s, 10_000, "the process to exit");
    strictEqual(r.stderr, "");
    strictEqual(r.stdout, "exiting\n");
    strictEqual(r.code, 3);
  } finally {
    s.kill();
    await s.run;
  }
});

Deno.test("stop_server called inside a handler of the same server answers that request and stops", async () => {
  const s = await startCli(
    `
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/quit", function()
      stop_server("s")
      print("stopped")
      return "bye"
    end)
    ready(start_server("s"))`,
    ["--timeout", "0"],
  );
  try {
    const reply = await request(s.url("/quit"), {}, 3000).then((r) => r.text, (e) => `no answer: ${e.message}`);
    strictEqual(reply, "bye");
    const r = await ended(s, 3000, "the process to exit after stop_server");
    strictEqual(r.code, 0);
    strictEqual(r.stdout, "stopped\n");
  } finally {
    s.kill();
    await s.run;
  }
});

// ---- HTTPS -------------------------------------------------------------------

async function makeCertificate(dir: string): Promise<string> {
  const { code, stderr } = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${dir}/key.pem`,
      "-out",
      `${dir}/cert.pem`,
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-addext",
      "basicConstraints=critical,CA:FALSE",
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  strictEqual(code, 0, new TextDecoder().decode(stderr));
  return await Deno.readTextFile(`${dir}/cert.pem`);
}

Deno.test("HTTPS with a PEM certificate and key; req.headers.host is there over HTTP/2 too", async () => {
  const certDir = await tempFiles({});
  const certPem = await makeCertificate(certDir);
  const client = Deno.createHttpClient({ caCerts: [certPem] });
  try {
    const [cert, key] = [`${certDir}/cert.pem`, `${certDir}/key.pem`].map((path) => JSON.stringify(path));
    const s = await start(`
      create_server("tls", 0, true, ${cert}, ${key}, ${LOCAL})
      handle_http("tls", "/hello", function(req)
        return "secure " .. req.method .. " " .. req.body .. " " .. tostring(req.headers.Host)
      end)
      serve("tls")`);
    let r: LuaRun;
    try {
      // fetch speaks HTTP/2 here, which names the host in :authority, not in a Host header
      const reply = await request(s.url("/hello", 0, "https"), { client, method: "POST", body: "data" });
      strictEqual(reply.status, 200);
      strictEqual(reply.text, `secure POST data 127.0.0.1:${s.ports[0]}`);
      const plainHttp = await request(s.url("/hello"), {}, 5000).then(() => "answered", (e) => (e as Error).name);
      strictEqual(plainHttp, "TypeError", "plain HTTP to the TLS port must fail");
    } finally {
      r = await quit(s, { client }, "https");
    }
    finishedOk(r);
    strictEqual(r.stdout, "stopped\n");
  } finally {
    client.close();
  }
});

Deno.test("a missing certificate or key, or a garbage certificate, is a clear error", async () => {
  const dir = await tempFiles({ "garbage.pem": "this is not a certificate\n" });
  await makeCertificate(dir);
  const r = await within(
    runLua(`
      local DIR = ${JSON.stringify(dir)}
      print(pcall(create_server, "a", 0, true, DIR .. "/missing.pem", DIR .. "/key.pem"))
      print(pcall(create_server, "b", 0, true, DIR .. "/cert.pem", DIR .. "/missing-key.pem"))
      print(pcall(create_server, "c", 0, true))
      local ok, err = pcall(function()
        create_server("d", 0, true, DIR .. "/garbage.pem", DIR .. "/garbage.pem", { host = "127.0.0.1" })
        return start_server("d")
      end)
      print(ok, err)
      local ok2, err2 = pcall(function()
        create_server("e", 0, true, DIR .. "/cert.pem", DIR .. "/garbage.pem", { host = "127.0.0.1" })
        return start_server("e")
      end)
      print(ok2, err2)
      print("done")`),
    10_000,
    "the script",
  );
  finishedOk(r);
  const lines = r.stdout.split("\n");
  strictEqual(
    lines[0],
    `false\tcreate_server: cannot read TLS certificate "${dir}/missing.pem": no such file or directory`,
  );
  strictEqual(
    lines[1],
    `false\tcreate_server: cannot read TLS key "${dir}/missing-key.pem": no such file or directory`,
  );
  strictEqual(lines[2], "false\tbad argument #4 to 'create_server' (string expected, got no value)");
  match(lines[3], /^false\t.*certificate/i);
  match(lines[4], /^false\t.*key/i);
  strictEqual(lines.slice(5).join("\n"), "done\n");
  strictEqual(r.stderr, "");
});

// ---- WebSockets --------------------------------------------------------------

/** A WebSocket client whose messages can be awaited one at a time. */
class WsClient {
  readonly socket: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<CloseEvent>;
  readonly #queue: (string | ArrayBuffer)[] = [];
  readonly #waiters: ((m: string | ArrayBuffer) => void)[] = [];

  constructor(url: string, protocols?: string[]) {
    this.socket = new WebSocket(url, protocols);
    this.socket.binaryType = "arraybuffer";
    this.opened = new Promise((resolve, reject) => {
      this.socket.onopen = () => resolve();
      this.socket.onerror = () => reject(new Error(`WebSocket ${url} failed`));
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => this.socket.onclose = resolve);
    this.socket.onmessage = (e) => {
      const waiter = this.#waiters.shift();
      if (waiter) waiter(e.data);
      else this.#queue.push(e.data);
    };
  }

  next(): Promise<string | ArrayBuffer> {
    const queued = this.#queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return within(new Promise((resolve) => this.#waiters.push(resolve)), 10_000, "a WebSocket message");
  }

  async close(): Promise<CloseEvent> {
    this.socket.close();
    return await within(this.closed, 10_000, "the WebSocket to close");
  }
}

Deno.test("req.query_params is byte-exact: escapes of bytes that are not UTF-8 stay those bytes", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/q", function(req)
      local out = {}
      for name, value in pairs(req.query_params) do
        out[#out + 1] = name:gsub(".", function(c) return string.format("%02X", c:byte()) end) .. "=" ..
          value:gsub(".", function(c) return string.format("%02X", c:byte()) end)
      end
      table.sort(out)
      return table.concat(out, " ")
    end)
    serve("s")`);
  await session(s, async () => {
    // Latin-1 "José", two bytes that are no UTF-8, a name that is not UTF-8, and UTF-8 as it was
    await expectText(s.url("/q?q=Jos%E9&b=%FF%FE&%E9=1&u=%C3%A9"), "62=FFFE 71=4A6F73E9 75=C3A9 E9=31");
  });
});

Deno.test("req.query_params: a name given more than once gives the list of its values, in order", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/q", function(req)
      local out = {}
      for _, name in ipairs({ "tag", "one", "__proto__" }) do
        local v = req.query_params[name]
        out[#out + 1] = name .. "=" .. (type(v) == "table" and "{" .. table.concat(v, ",") .. "}" or tostring(v))
      end
      return table.concat(out, " ")
    end)
    serve("s")`);
  await session(s, async () => {
    await expectText(s.url("/q?tag=a&one=1&tag=b+c&tag=&__proto__=x"), "tag={a,b c,} one=1 __proto__=x");
    await expectText(s.url("/q"), "tag=nil one=nil __proto__=nil");
  });
});

const wsUrl = (s: Running<unknown>, path: string) => s.url(path).replace("http:", "ws:");

Deno.test("WebSocket: welcome message, text and binary echo, receive() is nil after the client closes", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    local done = chan("done", 1)
    handle_ws("s", "/ws", function(ws)
      ws.send("welcome")
      local n = 0
      while true do
        local m = ws.receive()
        if m == nil then break end
        n = n + 1
        print("got", #m)
        ws:send(m)
      end
      print("late send:", ws.send("late"))
      send(done, "closed after " .. n .. " messages")
    end)
    handle_http("s", "/ws", function() return "plain HTTP on a WebSocket path" end)
    ready(start_server("s"))
    print((receive(done)))
    stop_server("s")
    print("stopped")`);
  const client = new WsClient(wsUrl(s, "/ws"));
  try {
    await within(client.opened, 10_000, "the WebSocket to open");
    strictEqual(await client.next(), "welcome");
    client.socket.send("hello");
    strictEqual(await client.next(), "hello");
    client.socket.send("héllo ✓");
    strictEqual(await client.next(), "héllo ✓");
    const bytes = new Uint8Array(256).map((_, i) => i);
    client.socket.send(bytes);
    const back = await client.next();
    ok(back instanceof ArrayBuffer, `binary came back as ${typeof back}`);
    deepStrictEqual(new Uint8Array(back), bytes);
    await expectText(s.url("/ws"), "plain HTTP on a WebSocket path");
  } finally {
    await client.close();
  }
  const r = await within(s.run, 10_000, "the script to end");
  finishedOk(r);
  strictEqual(
    r.stdout,
    "got\t5\ngot\t10\ngot\t256\nlate send:\tnil\tconnection closed\nclosed after 3 messages\nstopped\n",
  );
  strictEqual(r.stderr, "");
});

Deno.test("WebSocket: the handler gets the upgrade request as its second argument, every field readable", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_ws("s", "/rooms/:room", function(ws, req)
      sleep(0.05)  -- the fields are there after the upgrade, too
      ws.send(table.concat({ req.method, req.path, req.params.room, req.query, req.query_params.user,
        tostring(req.headers["Sec-WebSocket-Version"]), req.remote_addr, "[" .. req.body .. "]" }, "|"))
    end)
    serve("s")`);
  await session(s, async () => {
    const client = new WsClient(wsUrl(s, "/rooms/lobby?user=ann"));
    try {
      await within(client.opened, 10_000, "the WebSocket to open");
      strictEqual(await client.next(), "GET|/rooms/lobby|lobby|user=ann|ann|13|127.0.0.1|[]");
    } finally {
      await client.close();
    }
  });
});

Deno.test("WebSocket subprotocols: the first one offered that handle_ws's protocols accepts is answered; ws.protocol names it", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_ws("s", "/ws", function(ws) ws.send(tostring(ws.protocol)) end, { protocols = { "json", "chat" } })
    handle_ws("s", "/plain", function(ws) ws.send(tostring(ws.protocol)) end)
    serve("s")`);
  const r = await session(s, async () => {
    for (
      const [path, offered, chosen] of [
        ["/ws", ["mqtt", "chat", "json"], "chat"],
        ["/ws", ["json"], "json"],
        ["/ws", [], ""],
        ["/plain", [], ""],
      ] as const
    ) {
      const client = new WsClient(wsUrl(s, path), [...offered]);
      try {
        await within(client.opened, 10_000, `the WebSocket offering ${offered} to open`);
        strictEqual(client.socket.protocol, chosen, `${path} offering ${offered}`);
        strictEqual(await client.next(), chosen || "nil", `${path} offering ${offered}: ws.protocol`);
      } finally {
        await client.close();
      }
    }
  });
  finishedOk(r);
  strictEqual(r.stderr, "");
});

Deno.test("WebSocket frame kinds: receive() says text or binary, send(data, kind) chooses", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_ws("s", "/ws", function(ws)
      for _ = 1, 3 do
        local m, kind = ws.receive()
        ws:send(kind .. ":" .. m)
        ws.send(m, kind)  -- echoed as the kind it came in, UTF-8 or not
      end
      print(pcall(ws.send, "x", "bogus"))
      print(pcall(ws.send, "\\255", "text"))
      ws.send("forced", "binary")
    end)
    serve("s")`);
  const r = await session(s, async () => {
    const client = new WsClient(wsUrl(s, "/ws"));
    try {
      await within(client.opened, 10_000, "the WebSocket to open");
      client.socket.send("héllo");
      strictEqual(await client.next(), "text:héllo");
      strictEqual(await client.next(), "héllo");
      client.socket.send(new TextEncoder().encode("abc"));
      strictEqual(await client.next(), "binary:abc");
      deepStrictEqual(new Uint8Array(await client.next() as ArrayBuffer), new TextEncoder().encode("abc"));
      client.socket.send(new Uint8Array(0));
      strictEqual(await client.next(), "binary:");
      strictEqual((await client.next() as ArrayBuffer).byteLength, 0);
      deepStrictEqual(new Uint8Array(await client.next() as ArrayBuffer), new TextEncoder().encode("forced"));
    } finally {
      await client.close();
    }
  });
  finishedOk(r);
  strictEqual(
    r.stdout,
    `false\tbad argument #2 to 'send' ("text" or "binary" expected, got bogus)\n` +
      `false\tbad argument #1 to 'send' (a text frame must be UTF-8; send it as "binary")\nstopped\n`,
  );
});

Deno.test("20 WebSocket connections at once, each its own goroutine, each echoing", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    local done = chan("done", 100)
    handle_ws("s", "/echo", function(ws)
      ws.send("hi")
      local m = ws.receive()
      sleep(0.2)
      ws.send("echo:" .. m)
      if ws.receive() == nil then send(done, m) end
    end)
    ready(start_server("s"))
    local seen = {}
    for i = 1, 20 do seen[#seen + 1] = receive(done) end
    table.sort(seen, function(a, b) return tonumber(a) < tonumber(b) end)
    print(table.concat(seen, ","))
    stop_server("s")
    print("stopped")`);
  const clients = Array.from({ length: 20 }, () => new WsClient(wsUrl(s, "/echo")));
  try {
    const started = performance.now();
    await Promise.all(clients.map(async (client, i) => {
      await within(client.opened, 10_000, "a WebSocket to open");
      strictEqual(await client.next(), "hi");
      client.socket.send(String(i + 1));
      strictEqual(await client.next(), `echo:${i + 1}`);
    }));
    const elapsed = performance.now() - started;
    ok(elapsed < 2000, `20 handlers sleeping 0.2 s took ${elapsed.toFixed(0)} ms`);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
  const r = await within(s.run, 10_000, "the script to end");
  finishedOk(r);
  strictEqual(r.stdout, `${Array.from({ length: 20 }, (_, i) => i + 1).join(",")}\nstopped\n`);
  strictEqual(r.stderr, "");
});

Deno.test("ws.send waits while a client that does not read is 1 MiB behind, and goes on once it reads", async () => {
  const total = 800, size = 60_000; // 48 MB: far more than the system's socket buffers hold
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    local sent = 0
    handle_ws("s", "/ws", function(ws)
      local frame = string.rep("x", ${size})
      for i = 1, ${total} do
        assert(ws.send(frame))
        sent = i
      end
    end)
    handle_http("s", "/sent", function() return tostring(sent) end)
    serve("s")`);
  const sent = async () => Number((await request(s.url("/sent"))).text);
  // A raw client: it shakes hands, then reads nothing until told to.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.ports[0] });
  await session(s, async () => {
    try {
      await conn.write(new TextEncoder().encode(WS_UPGRADE));
      const buffer = new Uint8Array(1 << 16);
      let head = "";
      let received = 0;
      while (!head.includes("\r\n\r\n")) {
        const n = await conn.read(buffer);
        ok(n !== null, "the connection closed during the handshake");
        head += new TextDecoder().decode(buffer.subarray(0, n));
      }
      match(head, /^HTTP\/1.1 101/);
      received += head.length - head.indexOf("\r\n\r\n") - 4;
      // The sender stalls: its count stops growing well before the end.
      let last = -1, now = await sent();
      while (now !== last) {
        await sleep(300);
        [last, now] = [now, await sent()];
      }
      ok(now < total, `all ${total} frames were sent to a client that read none`);
      const expected = total * (size + 4); // each frame: 2 header bytes, 2 length bytes, the payload
      while (received < expected) {
        const n = await within(conn.read(buffer), 10_000, "the next frame");
        ok(n !== null, `the connection closed after ${received} of ${expected} bytes`);
        received += n;
      }
      strictEqual(await sent(), total);
    } finally {
      conn.close();
    }
  }).then(finishedOk);
});

Deno.test("CLI: ws.receive after it returned nil is an error at the caller's line: a loop without a nil check ends", async () => {
  // A child process: were the loop to spin, it would hold up only the child, which is killed.
  const s = await startCli(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    on_error(function(e) print("on_error: " .. tostring(e)) end)
    handle_ws("s", "/ws", function(ws)
      ws.send("Connected!")
      while true do
        local msg = ws.receive()
        if msg then ws.send("Echo: " .. msg) end
      end
    end)
    handle_http("s", "/", function() return "Hello World!" end)
    serve("s")`);
  try {
    const client = new WsClient(wsUrl(s, "/ws"));
    try {
      strictEqual(await client.next(), "Connected!");
      client.socket.send("hi");
      strictEqual(await client.next(), "Echo: hi");
    } finally {
      await client.close();
    }
    await quit(s); // the loop ended: the server answers
    const r = await ended(s, 10_000, "the process to exit");
    strictEqual(r.stderr, "");
    match(
      r.stdout,
      /^on_error: .*:8: ws\.receive: the connection is closed \(a receive returned nil already\)\nstopped\n$/,
    );
  } finally {
    s.kill();
    await s.run;
  }
});

/**
 * A handler busy elsewhere while a client sends `message` (one at a time, each once the last has gone) up to `count`
 * times: how the connection closed, and the script's output once the handler received what was kept.
 */
async function sendUnread(message: string | Uint8Array, count: number): Promise<{ closed: CloseEvent; run: LuaRun }> {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    on_error(function(e) print("on_error: " .. tostring(e)) end)
    local go_on = chan("go on", 1)
    handle_ws("s", "/ws", function(ws)
      ws.send("ready")
      receive(go_on) -- busy elsewhere: nothing is received meanwhile
      local n, bytes = 0, 0
      for message in ws.receive do n, bytes = n + 1, bytes + #message end
      print("received afterwards", n, bytes)
    end)
    handle_http("s", "/go-on", function() send(go_on, true) return "ok" end)
    serve("s")`);
  let closed!: CloseEvent;
  const run = await session(s, async () => {
    const client = new WsClient(wsUrl(s, "/ws"));
    strictEqual(await client.next(), "ready");
    for (let i = 0; i < count && client.socket.readyState === WebSocket.OPEN; i++) {
      client.socket.send(message);
      while (client.socket.bufferedAmount > 0 && client.socket.readyState === WebSocket.OPEN) await sleep(1);
    }
    closed = await within(client.closed, 10_000, "the server to close the connection");
    await expectText(s.url("/go-on"), "ok");
  });
  finishedOk(run);
  return { closed, run };
}

const UNREAD_REPORT =
  "on_error: the client sent more than 64 MiB the handler has not received; the connection is closed (1008)\n";

Deno.test("a client that sends more than 64 MiB its handler has not received is closed (1008) and reported", async () => {
  // 65 MiB, the first past the limit, and no more: a 66th on its way as the server closed would end the connection
  // abruptly (code 0 in a loaded run), since the server reads no further.
  const { closed, run } = await sendUnread(new Uint8Array(1024 * 1024), 65);
  // The server's close frame met an idle client: a clean close.
  strictEqual(closed.code, 1008);
  strictEqual(closed.reason, "too much unread data");
  strictEqual(run.stdout, `${UNREAD_REPORT}received afterwards\t64\t${64 * 1024 * 1024}\nstopped\n`);
});

Deno.test("CLI: a goroutine that reads a WebSocket after its handler returned gets nil once, then an error", async () => {
  const s = await startCli(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    on_error(function(e) print("on_error: " .. tostring(e)) end)
    handle_ws("s", "/ws", function(ws)
      go(function()
        local n = 0
        while true do -- no nil check
          local m = ws.receive()
          n = n + 1
          print("receive " .. n .. ": " .. tostring(m))
        end
      end)
      ws.send("bye")
    end)
    serve("s")`);
  try {
    const client = new WsClient(wsUrl(s, "/ws"));
    strictEqual(await client.next(), "bye");
    await within(client.closed, 10_000, "the handler's end to close the connection");
    await quit(s); // the reader ended: the server answers
    const r = await ended(s, 10_000, "the process to exit");
    strictEqual(r.stderr, "");
    match(
      r.stdout,
      /^receive 1: nil\non_error: .*:9: ws\.receive: the connection is closed \(a receive returned nil already\)\nstopped\n$/,
    );
  } finally {
    s.kill();
    await s.run;
  }
});

Deno.test("ws.send waiting on a client that reads nothing returns nil once the client has gone", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    local results = {}
    handle_ws("s", "/ws", function(ws)
      for i = 1, 8 do
        local ok, err = ws.send(string.rep("x", 2 * 1024 * 1024))
        results[#results + 1] = tostring(ok) .. " " .. tostring(err)
        if not ok then break end
      end
      print(table.concat(results, ", "))
    end)
    serve("s")`);
  const r = await session(s, async () => {
    // A raw client: it shakes hands, reads nothing more and leaves.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.ports[0] });
    await conn.write(new TextEncoder().encode(
      "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ));
    await sleep(500);
    conn.close();
    await sleep(300);
  });
  finishedOk(r);
  strictEqual(r.stdout, "true nil, nil connection closed\nstopped\n");
});

Deno.test("the 64 MiB a WebSocket may hold unread counts text as UTF-8 bytes", async () => {
  const { closed, run } = await sendUnread("€".repeat(1024 * 1024), 40); // 3 MiB as UTF-8, 1 Mi UTF-16 units
  // 1008, or an abrupt end when a message was on its way as the server closed (the server read no further)
  ok([1008, 1006, 0].includes(closed.code), `closed with ${closed.code}`);
  strictEqual(run.stdout, `${UNREAD_REPORT}received afterwards\t21\t${21 * 3 * 1024 * 1024}\nstopped\n`);
});

Deno.test("stop_server closes open WebSockets; their handlers see nil and the script ends", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_ws("s", "/ws", function(ws)
      ws.send("welcome")
      while ws.receive() ~= nil do end
      print("handler saw the close")
    end)
    serve("s")`);
  const clients = [new WsClient(wsUrl(s, "/ws")), new WsClient(wsUrl(s, "/ws"))];
  let r: LuaRun;
  try {
    for (const client of clients) {
      await within(client.opened, 10_000, "the WebSocket to open");
      strictEqual(await client.next(), "welcome");
    }
  } finally {
    r = await quit(s);
  }
  for (const client of clients) {
    const event = await within(client.closed, 10_000, "the server to close the WebSocket");
    strictEqual(event.code, 1001);
  }
  finishedOk(r);
  deepStrictEqual(r.stdout.split("\n").sort(), ["", "handler saw the close", "handler saw the close", "stopped"]);
  strictEqual(r.stderr, "");
});

Deno.test("CLI: WebSocket clients that reset right after their upgrade request do not keep a stopped server alive", async () => {
  const s = await startCli(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_ws("s", "/ws", function(ws) print("handler ran") ws.receive() end)
    serve("s")`);
  try {
    // A reset (not a close) before the 101 arrives: Deno's upgrade then never completes, nor fails. One that comes
    // after it (on a busy machine) lets the handler run, as for any client that leaves.
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve, reject) => {
        const client = tcpConnect(
          s.ports[0],
          "127.0.0.1",
          () => client.write(WS_UPGRADE, () => client.resetAndDestroy()),
        );
        client.on("close", () => resolve());
        client.on("error", reject);
      });
    }
    await sleep(200);
    await request(s.url("/quit"));
    const r = await ended(s, 10_000, "the process to exit after stop_server");
    deepStrictEqual({ code: r.code, stderr: r.stderr }, { code: 0, stderr: "" });
    match(r.stdout, /^(handler ran\n)*stopped\n$/);
  } finally {
    s.kill();
    await s.run;
  }
});

Deno.test("a WebSocket handler that errors reports to on_error and closes its connection; others go on", async () => {
  const s = await start(`
    on_error(function(message) print("on_error: " .. message) end)
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_ws("s", "/fail", function(ws) ws.send("about to fail") ws.receive() error("ws boom") end)
    handle_ws("s", "/echo", function(ws) local m = ws.receive() ws.send("echo:" .. m) ws.close() end)
    serve("s")`);
  const r = await session(s, async () => {
    const failing = new WsClient(wsUrl(s, "/fail"));
    strictEqual(await failing.next(), "about to fail");
    failing.socket.send("go");
    strictEqual((await within(failing.closed, 10_000, "the failed handler's WebSocket to close")).code, 1011);
    const echo = new WsClient(wsUrl(s, "/echo"));
    await within(echo.opened, 10_000, "the WebSocket to open");
    echo.socket.send("still works");
    strictEqual(await echo.next(), "echo:still works");
    const closed = await within(echo.closed, 10_000, "ws.close() to close the WebSocket");
    strictEqual(closed.code, 1000);
  });
  finishedOk(r);
  strictEqual(r.stdout, "on_error: test:5: ws boom\nstopped\n");
  strictEqual(r.stderr, "");
});

Deno.test("a malformed percent-escape in a :param segment is a client error, not a server error", async () => {
  const s = await start(`
    create_server("s", 0, false, nil, nil, ${LOCAL})
    handle_http("s", "/users/:id", function(req) return "id=" .. req.params.id end)
    serve("s")`);
  const r = await session(s, async () => {
    const bad = await request(s.url("/users/%E0%A4%A"));
    ok(bad.status >= 400 && bad.status < 500, `status ${bad.status} for a malformed escape`);
    await expectText(s.url("/users/%C3%A9"), "id=é");
  });
  finishedOk(r);
  strictEqual(r.stderr, "");
});

Deno.test("two goroutines in ws.receive() on one connection both return (a message or nil) and the script ends", async () => {
  // Run through the CLI so that a goroutine parked for ever cannot hang the test runner.
  const s = await startCli(
    `
    create_server("s", 0, false, nil, nil, ${LOCAL})
    local got = chan("got", 2)
    handle_ws("s", "/ws", function(ws)
      -- The connection closes when the handler returns, so it waits for its helper goroutine.
      local helper_done = chan(nil, 1)
      go(function() send(got, "A " .. tostring(ws.receive())) send(helper_done, true) end)
      send(got, "B " .. tostring(ws.receive()))
      receive(helper_done)
    end)
    ready(start_server("s"))
    local lines = { (receive(got)), (receive(got)) }
    table.sort(lines)
    print(table.concat(lines, ", "))
    stop_server("s")
    print("stopped")`,
    ["--timeout", "0"],
  );
  try {
    const client = new WsClient(wsUrl(s, "/ws"));
    await within(client.opened, 10_000, "the WebSocket to open");
    await sleep(100); // both goroutines are in ws.receive() now
    client.socket.send("one");
    client.socket.send("two");
    await sleep(100);
    await client.close();
    const r = await ended(s, 5000, "the script to end");
    strictEqual(r.code, 0);
    match(r.stdout, /^A (one|two), B (one|two)\nstopped\n$/);
    ok(r.stdout.includes("one") && r.stdout.includes("two"), r.stdout);
  } finally {
    s.kill();
    await s.run;
  }
});

Deno.test("a running handler is listed by get_goroutines and counted by check_memory, under its route's name", async () => {
  const { stdout, outcome } = await within(
    runLua(`
    create_server("api", 0, { host = "127.0.0.1" })
    handle_http("api", "/work", function(req)
      local seen = { before = get_goroutines(), count = check_memory().goroutines }
      sleep(0.01)
      seen.after = get_goroutines()
      return json_encode(seen)
    end)
    local port = start_server("api")
    print(http_get("http://127.0.0.1:" .. port .. "/work").body)
    stop_server("api")`),
    10_000,
    "the run",
  );
  deepStrictEqual(outcome, { status: "ok" });
  deepStrictEqual(JSON.parse(stdout), {
    before: ["main", "http api /work"],
    count: 2,
    after: ["main", "http api /work"],
  });
});

Deno.test("a server out of file descriptors says so once and listens again on its port once some are free", async () => {
  const dir = await tempFiles({
    "serve.lua": USE_UP_DESCRIPTORS + `
      on_error(function(e) print("on_error:", e) end)
      create_server("s", 0, { host = "127.0.0.1" })
      handle_http("s", "/", function() return "ok" end)
      local port = start_server("s")
      local files = use_up_descriptors(1)
      local during = tcp_connect("127.0.0.1", port)  -- the last descriptor: Deno's server cannot accept
      sleep(0.3)
      for _, f in ipairs(files) do f:close() end
      local r
      for _ = 1, 100 do  -- the server listens again after a pause
        r = http_get("http://127.0.0.1:" .. port .. "/")
        if r then break end
        sleep(0.05)
      end
      print("after:", r and r.body)
      stop_server("s")`,
  });
  const { code, stdout, stderr } = await solvm(["serve.lua"], { cwd: dir, maxOpenFiles: 128 });
  strictEqual(code, 0, stderr);
  strictEqual(
    stdout,
    "on_error:\tcannot accept connections: Too many open files (os error 24); " +
      "listening again once descriptors are free\nafter:\tok\n",
  );
});
