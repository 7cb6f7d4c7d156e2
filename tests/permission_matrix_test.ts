/**
 * The permission matrix, through the real CLI: every kind of access (read,
 * write, net, env, run, sys), in SolVM's globals and in Lua's own
 * libraries. Each row is refused under `--sandbox` with the one wording
 * of host/_permissions.ts (a catchable error or a nil-and-message return,
 * as the function reports failures, and the script goes on), and works
 * when the CLI is given exactly the `--allow-<kind>=<target>` the message
 * names. All rows run in one script per flag set: two CLI processes.
 */
import { deepStrictEqual, strictEqual } from "node:assert";
import { type CliRun, solvm, tempFiles } from "./_helpers.ts";

type Kind = "read" | "write" | "net" | "env" | "run" | "sys";

/** One access probed by the matrix. */
interface Row {
  kind: Kind;
  /** Unique; printed first on the row's output line. */
  name: string;
  /** Lua: the function and its arguments, as pcall takes them. */
  call: string;
  /** Lua: a function of the call's first result, giving what the allowed run prints. */
  check?: string;
  /** What the message names, and what `--allow-<kind>=` gets in the allowed run. */
  target: string;
  /** The row's output under --sandbox: `error\t<message>` when it raises, `nil\t<message>` when it returns. */
  denied: string | { includes: string[] };
  /** The row's output when allowed: `ok\t<check's result>`. */
  allowed: string;
  /** Another grant the access needs in the allowed run. */
  also?: { kind: Kind; target: string };
}

/** The one wording of a refused access; `flag` is the host alone for port 0 (the allowed run still grants `target`). */
const reason = (kind: Kind, target: string, flag = target) =>
  `permission denied: ${kind} access to "${target}" (run with --allow-${kind}=${flag})`;
const raises = (message: string) => `error\t${message}`;
const returns = (message: string) => `nil\t${message}`;

/** Where the rows point: data to read, a folder to write, ports of the test's own servers. */
interface Places {
  data: string;
  out: string;
  httpPort: number;
  tcpPort: number;
  udpPort: number;
}

function rows({ data, out, httpPort, tcpPort, udpPort }: Places): Row[] {
  const read = (name: string, file: string, denied: (path: string) => string | { includes: string[] }) => ({
    kind: "read" as const,
    name,
    target: `${data}/${file}`,
    denied: denied(`${data}/${file}`),
  });
  const write = (name: string, file: string) => ({ kind: "write" as const, name, target: `${out}/${file}` });
  const http = `127.0.0.1:${httpPort}`;
  return [
    {
      ...read("read_file", "read_file.txt", (p) => raises(`read_file: cannot read "${p}": ${reason("read", p)}`)),
      call: `read_file, D .. "/read_file.txt"`,
      allowed: "ok\tcontent",
    },
    {
      ...read("list_dir", "listed", (p) => raises(`list_dir: cannot list "${p}": ${reason("read", p)}`)),
      call: `list_dir, D .. "/listed"`,
      check: `function(entries) return entries[1].name end`,
      allowed: "ok\tinside.txt",
    },
    {
      ...read("io.open", "io_open.txt", (p) => returns(`${p}: ${reason("read", p)}`)),
      call: `io.open, D .. "/io_open.txt"`,
      check: `function(f) local text = f:read("a") f:close() return text end`,
      allowed: "ok\tcontent",
    },
    {
      ...read("io.lines", "io_lines.txt", (p) => raises(`cannot open file '${p}' (${reason("read", p)})`)),
      call: `io.lines, D .. "/io_lines.txt"`,
      check: `function(next_line) return next_line() end`,
      allowed: "ok\tcontent",
    },
    {
      ...read("dofile", "dofile.lua", (p) => raises(`cannot open ${p}: ${reason("read", p)}`)),
      call: `dofile, D .. "/dofile.lua"`,
      allowed: "ok\t7",
    },
    {
      ...read("loadfile", "loadfile.lua", (p) => returns(`cannot open ${p}: ${reason("read", p)}`)),
      call: `loadfile, D .. "/loadfile.lua"`,
      check: `function(chunk) return chunk() end`,
      allowed: "ok\t7",
    },
    {
      // Lua's searcher lists every file it tried; the refused one must say why.
      ...read(
        "require",
        "required.lua",
        (p) => ({ includes: [`error\tmodule 'required' not found:`, reason("read", p)] }),
      ),
      call: `require, "required"`,
      allowed: "ok\t7",
    },
    {
      // import searches modules/ in the working directory (the data folder here) after the script's own folder.
      kind: "read",
      name: "import",
      target: "modules/imported.lua",
      call: `import, "imported"`,
      // A place it may not read is skipped; the not-found message says why.
      denied: {
        includes: [
          "error\timport: module 'imported' not found",
          `modules/imported.lua: ${reason("read", "modules/imported.lua")}`,
        ],
      },
      allowed: "ok\tmodule",
    },
    {
      ...read("watch_file", "watched.txt", (p) => raises(`watch_file: cannot watch "${p}": ${reason("read", p)}`)),
      call: `watch_file, D .. "/watched.txt", function() end`,
      check: `function(id) unwatch_file(id) return "watching" end`,
      allowed: "ok\twatching",
    },
    {
      ...write("write_file", "write_file.txt"),
      call: `write_file, W .. "/write_file.txt", "x"`,
      denied: raises(`write_file: cannot write "${out}/write_file.txt": ${reason("write", `${out}/write_file.txt`)}`),
      allowed: "ok\ttrue",
    },
    {
      ...write("io.open w", "io_open_w.txt"),
      call: `io.open, W .. "/io_open_w.txt", "w"`,
      check: `function(f) f:write("x") f:close() return "written" end`,
      denied: returns(`${out}/io_open_w.txt: ${reason("write", `${out}/io_open_w.txt`)}`),
      allowed: "ok\twritten",
    },
    {
      ...write("os.remove", "removed.txt"),
      call: `os.remove, W .. "/removed.txt"`,
      denied: returns(`${out}/removed.txt: ${reason("write", `${out}/removed.txt`)}`),
      allowed: "ok\ttrue",
    },
    {
      // os.rename's message names no file in Lua's C library; the reason names the first access refused.
      // Deno's rename needs read as well as write access to both paths.
      kind: "write",
      name: "os.rename",
      target: `${out}/renamed.txt,${out}/renamed2.txt`,
      call: `os.rename, W .. "/renamed.txt", W .. "/renamed2.txt"`,
      denied: returns(reason("read", `${out}/renamed.txt`)),
      allowed: "ok\ttrue",
      also: { kind: "read", target: `${out}/renamed.txt,${out}/renamed2.txt` },
    },
    {
      kind: "net",
      name: "http_get",
      target: http,
      call: `http_get, "http://${http}/ping"`,
      check: `function(r) return r.status .. " " .. r.body end`,
      denied: returns(`http_get: cannot connect to http://${http}/ping: ${reason("net", http)}`),
      allowed: "ok\t200 pong",
    },
    {
      kind: "net",
      name: "import url",
      target: http,
      call: `import, "http://${http}/remote.lua"`,
      denied: raises(`import: cannot fetch http://${http}/remote.lua: ${reason("net", http)}`),
      allowed: "ok\tremote",
    },
    {
      kind: "net",
      name: "tcp_connect",
      target: `127.0.0.1:${tcpPort}`,
      call: `tcp_connect, "127.0.0.1", ${tcpPort}`,
      check: `function(conn) conn.close() return "connected" end`,
      denied: returns(reason("net", `127.0.0.1:${tcpPort}`)),
      allowed: "ok\tconnected",
    },
    {
      kind: "net",
      name: "tcp_listen",
      target: "127.0.0.1:0",
      call: `tcp_listen, 0, "127.0.0.1"`,
      check: `function(listener) listener.close() return "listening" end`,
      denied: returns(reason("net", "127.0.0.1:0", "127.0.0.1")),
      allowed: "ok\tlistening",
    },
    {
      // create_server only records the server; start_server listens.
      kind: "net",
      name: "start_server",
      target: "127.0.0.1:0",
      call: `start_server, "srv"`,
      check: `function() stop_server("srv") return "serving" end`,
      denied: raises(`start_server: cannot start 'srv' on port 0: ${reason("net", "127.0.0.1:0", "127.0.0.1")}`),
      allowed: "ok\tserving",
    },
    {
      // Sending binds a local socket first (a loopback one for a loopback target), so both are named.
      kind: "net",
      name: "udp_sendto",
      target: `127.0.0.1:0,127.0.0.1:${udpPort}`,
      call: `udp_sendto, "127.0.0.1", ${udpPort}, "x"`,
      denied: returns(reason("net", `127.0.0.1:0,127.0.0.1:${udpPort}`, `127.0.0.1,127.0.0.1:${udpPort}`)),
      allowed: "ok\ttrue",
    },
    {
      kind: "net",
      name: "udp_recvfrom",
      target: "127.0.0.1:0",
      call: `udp_recvfrom, 0, "127.0.0.1"`,
      check: `function(receiver) receiver.close() return "bound" end`,
      denied: returns(reason("net", "127.0.0.1:0", "127.0.0.1")),
      allowed: "ok\tbound",
    },
    {
      kind: "net",
      name: "resolve_dns",
      target: "localhost",
      call: `resolve_dns, "localhost"`,
      denied: returns(reason("net", "localhost")),
      allowed: "ok\t127.0.0.1",
    },
    {
      kind: "env",
      name: "os.getenv",
      target: "HOME",
      call: `os.getenv, "HOME"`,
      check: `function(home) return type(home) end`,
      denied: raises(reason("env", "HOME")),
      allowed: "ok\tstring",
    },
    {
      kind: "run",
      name: "os.execute",
      target: "sh",
      call: `os.execute, "exit 0"`,
      denied: raises(reason("run", "sh")),
      allowed: "ok\ttrue",
    },
    {
      // Without a command, os.execute tells whether a shell may be run.
      kind: "run",
      name: "os.execute()",
      target: "sh",
      call: `os.execute`,
      denied: "ok\tfalse",
      allowed: "ok\ttrue",
    },
    {
      kind: "run",
      name: "io.popen",
      target: "sh",
      call: `io.popen, "echo popen"`,
      check: `function(f) local line = f:read() f:close() return line end`,
      denied: raises(reason("run", "sh")),
      allowed: "ok\tpopen",
    },
    {
      kind: "sys",
      name: "os.hostname",
      target: "hostname",
      call: `os.hostname`,
      denied: raises(reason("sys", "hostname")),
      allowed: `ok\t${Deno.hostname()}`,
    },
  ];
}

// Each row prints one line: its name, then "error", "nil" or "ok" and a text
// (the script's own position is cut from messages, newlines escaped).
const PROBE_LUA = `
local position = "^" .. arg[0]:gsub("%p", "%%%0") .. ":%d+: "
local function probe(name, check, fn, ...)
  local r = table.pack(pcall(fn, ...))
  local line
  if not r[1] then
    line = "error\\t" .. tostring(r[2]):gsub(position, "")
  elseif r[2] == nil and r.n > 2 then
    line = "nil\\t" .. tostring(r[3])
  else
    local ok, shown = pcall(check or tostring, r[2])
    line = (ok and "ok\\t" or "check failed\\t") .. tostring(shown)
  end
  print(name .. "\\t" .. (line:gsub("\\n", "\\\\n")))
end
`;

function script(places: Places, all: Row[]): string {
  return [
    `local D, W = ${JSON.stringify(places.data)}, ${JSON.stringify(places.out)}`,
    `package.path = D .. "/?.lua"`,
    `create_server("srv", 0, false, nil, nil, { host = "127.0.0.1" })`,
    PROBE_LUA,
    ...all.map((row) => `probe(${JSON.stringify(row.name)}, ${row.check ?? "nil"}, ${row.call})`),
    `print("done")`,
  ].join("\n");
}

/** The `--allow-<kind>=...` flags granting every row's target. */
function allowFlags(all: Row[]): string[] {
  const targets = new Map<Kind, Set<string>>();
  for (const row of all) {
    const set = targets.get(row.kind) ?? new Set();
    for (const target of row.target.split(",")) set.add(target);
    targets.set(row.kind, set);
    if (row.also) {
      const more = targets.get(row.also.kind) ?? new Set();
      for (const target of row.also.target.split(",")) more.add(target);
      targets.set(row.also.kind, more);
    }
  }
  return [...targets].map(([kind, set]) => `--allow-${kind}=${[...set].join(",")}`);
}

/** name -> output of each row, and whether the script went on to its end. */
function parse(stdout: string): { lines: Map<string, string>; done: boolean } {
  const lines = new Map<string, string>();
  const all = stdout.split("\n");
  for (const line of all) {
    const tab = line.indexOf("\t");
    if (tab > 0) lines.set(line.slice(0, tab), line.slice(tab + 1));
  }
  return { lines, done: all.includes("done") };
}

/**
 * Compares every row at once, so one failure shows all the rows that
 * differ, and that the script went on to its end and exited well.
 */
function compare(all: Row[], run: CliRun, pick: (row: Row) => Row["denied"]): void {
  const { lines, done } = parse(run.stdout);
  const actual: Record<string, unknown> = {
    "(went on to the end)": done,
    "(exit code)": run.code,
    "(stderr)": run.stderr,
  };
  const expected: Record<string, unknown> = { "(went on to the end)": true, "(exit code)": 0, "(stderr)": "" };
  for (const row of all) {
    const want = pick(row);
    const got = lines.get(row.name);
    if (typeof want === "string") {
      expected[row.name] = want;
      actual[row.name] = got;
    } else {
      const wanted = `includes ${JSON.stringify(want.includes)}`;
      expected[row.name] = wanted;
      actual[row.name] = got !== undefined && want.includes.every((part) => got.includes(part)) ? wanted : got;
    }
  }
  deepStrictEqual(actual, expected);
}

/** The test's own servers: HTTP (/ping, /remote.lua) and a TCP listener that accepts and closes. */
function startServers() {
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/ping") return new Response("pong");
    if (path === "/remote.lua") return new Response(`return "remote"`);
    return new Response("not found", { status: 404 });
  });
  const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = (async () => {
    for await (const conn of tcp) conn.close();
  })().catch(() => {});
  return {
    httpPort: http.addr.port,
    tcpPort: tcp.addr.port,
    async close() {
      tcp.close();
      await accepting;
      await http.shutdown();
    },
  };
}

Deno.test("permission matrix: each access is refused under --sandbox and granted by the flag its message names", async (t) => {
  const data = await tempFiles({
    "read_file.txt": "content",
    "io_open.txt": "content",
    "io_lines.txt": "content",
    "dofile.lua": "return 7",
    "loadfile.lua": "return 7",
    "required.lua": "return 7",
    "watched.txt": "w",
  });
  await Deno.mkdir(`${data}/listed`);
  await Deno.writeTextFile(`${data}/listed/inside.txt`, "i");
  await Deno.mkdir(`${data}/modules`);
  await Deno.writeTextFile(`${data}/modules/imported.lua`, `return "module"`);
  const out = await tempFiles({ "removed.txt": "r", "renamed.txt": "r" });
  const servers = startServers();
  try {
    // A port for datagrams that nothing listens on: sending succeeds anyway.
    const places = { data, out, httpPort: servers.httpPort, tcpPort: servers.tcpPort, udpPort: servers.tcpPort };
    const all = rows(places);
    strictEqual(new Set(all.map((row) => row.name)).size, all.length, "row names are unique");
    const dir = await tempFiles({ "matrix.lua": script(places, all) });
    const [sandboxed, allowed] = await Promise.all([
      solvm(["--sandbox", `${dir}/matrix.lua`], { cwd: data }),
      solvm([...allowFlags(all), `${dir}/matrix.lua`], { cwd: data }),
    ]);

    await t.step("--sandbox: every access is refused with the one wording, and the script goes on", () => {
      compare(all, sandboxed, (row) => row.denied);
    });

    await t.step("--allow-<kind>=<target> as each message names it: every access works", () => {
      compare(all, allowed, (row) => row.allowed);
    });
  } finally {
    await servers.close();
  }
});
