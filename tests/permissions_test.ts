import { deepStrictEqual, ok, strictEqual } from "node:assert";
import { solvm, tempFiles } from "./_helpers.ts";

// The CLI's own permission flags confine the script (the worker it runs in), as the compiled binary does.

const PROBE = `print(read_file(arg[0]:match("^(.*)/") .. "/own.txt"))
local ok, e = pcall(read_file, "/etc/hostname") print(ok, ok and "read" or e)
print((select(2, io.open("/etc/hostname"))))
print(pcall(write_file, OUT, "x"))
print(select(2, http_get("http://127.0.0.1:12345/")))
local got, home = pcall(os.getenv, "HOME") print(got, got and home ~= nil or home)
`;

async function probe(flags: string[]) {
  const dir = await tempFiles({ "own.txt": "mine" });
  await Deno.writeTextFile(`${dir}/probe.lua`, `OUT = "${dir}/out.txt"\n${PROBE}`);
  return { dir, run: await solvm([...flags, `${dir}/probe.lua`]) };
}

Deno.test("--sandbox: only the script's own folder can be read; every other access is a catchable error", async () => {
  const { dir, run } = await probe(["--sandbox"]);
  strictEqual(run.stderr, "");
  strictEqual(run.code, 0);
  strictEqual(
    run.stdout,
    "mine\n" +
      `false\tread_file: cannot read "/etc/hostname": permission denied: read access to "/etc/hostname" ` +
      `(run with --allow-read=/etc/hostname)\n` +
      '/etc/hostname: permission denied: read access to "/etc/hostname" (run with --allow-read=/etc/hostname)\n' +
      `false\twrite_file: cannot write "${dir}/out.txt": permission denied: write access to "${dir}/out.txt" ` +
      `(run with --allow-write=${dir}/out.txt)\n` +
      'http_get: cannot connect to http://127.0.0.1:12345/: permission denied: net access to "127.0.0.1:12345" (run with --allow-net=127.0.0.1:12345)\n' +
      'false\tpermission denied: env access to "HOME" (run with --allow-env=HOME)\n',
  );
  // The README quotes io.open's results as they are.
  const readme = (await Deno.readTextFile(new URL("../README.md", import.meta.url))).replace(/\s+/g, " ");
  const message = run.stdout.split("\n")[2];
  ok(readme.includes(`\`nil, '${message}'`), `README does not quote: ${message}`);
});

Deno.test("--allow-* flags grant exactly what they list", async () => {
  const dir = await tempFiles({});
  const { run } = await probe(["--allow-read=/etc/hostname", `--allow-write=${dir}`, "--allow-env=HOME"]);
  const lines = run.stdout.split("\n");
  strictEqual(run.code, 0);
  strictEqual(lines[0], "mine");
  strictEqual(lines[1], "true\tread");
  strictEqual(lines[2], "nil");
  // write was granted for another folder only
  strictEqual(lines[3].includes("permission denied: write access"), true, lines[3]);
  strictEqual(lines[5], "true\ttrue");
});

Deno.test("--sandbox with several scripts: each reads its own folder, not the other's", async () => {
  const dir = await tempFiles({});
  for (const name of ["one", "two"]) {
    const other = name === "one" ? "two" : "one";
    await Deno.mkdir(`${dir}/${name}`);
    await Deno.writeTextFile(`${dir}/${name}/own.txt`, `${name}'s`);
    await Deno.writeTextFile(
      `${dir}/${name}/${name}.lua`,
      `print(read_file("${name}/own.txt"), (pcall(read_file, "${other}/own.txt")))`,
    );
  }
  const run = await solvm(["--sandbox", "one/one.lua", "two/two.lua"], { cwd: dir });
  strictEqual(run.stderr, "");
  strictEqual(run.code, 0);
  deepStrictEqual(run.stdout.split("\n").sort(), ["", "[one.lua] one's\tfalse", "[two.lua] two's\tfalse"]);
});

Deno.test("without permission flags the script has the permissions Deno was given", async () => {
  const { dir, run } = await probe([]);
  strictEqual(run.code, 0);
  strictEqual(run.stdout.split("\n")[3], "true\ttrue");
  strictEqual(await Deno.readTextFile(`${dir}/out.txt`), "x");
});

Deno.test("--deny-* lists refuse what Deno or an --allow-* flag grants, in the globals and Lua's own libraries", async () => {
  const dir = await tempFiles({ "open.txt": "open", "ok.lua": "return 1" });
  await Deno.mkdir(`${dir}/secret`);
  await Deno.writeTextFile(`${dir}/secret/key.txt`, "k");
  await Deno.writeTextFile(`${dir}/secret/mod.lua`, "return 2");
  await Deno.writeTextFile(
    `${dir}/deny.lua`,
    `local dir = "${dir}"
print(read_file(dir .. "/open.txt"))
print(pcall(read_file, dir .. "/secret/key.txt"))
print(io.open(dir .. "/secret/key.txt"))
print(pcall(dofile, dir .. "/secret/mod.lua"))
print(pcall(write_file, dir .. "/secret/new.txt", "x"))
print(pcall(os.getenv, "HOME"))
print(select(2, http_get("http://127.0.0.1:9/")))
print(pcall(os.getenv, "PATH") and "path ok")
`,
  );
  const r = await solvm([`--deny-read=${dir}/secret`, "--deny-env=HOME", "--deny-net=127.0.0.1", `${dir}/deny.lua`]);
  strictEqual(r.stderr, "");
  strictEqual(r.code, 0);
  const key = `${dir}/secret/key.txt`;
  strictEqual(
    r.stdout,
    "open\n" +
      `false\tread_file: cannot read "${key}": permission denied: read access to "${key}" ` +
      `(denied by --deny-read=${dir}/secret)\n` +
      `nil\t${key}: permission denied: read access to "${key}" (denied by --deny-read=${dir}/secret)\t13\n` + // errno: EACCES, as on Linux
      `false\tcannot open ${dir}/secret/mod.lua: permission denied: read access to "${dir}/secret/mod.lua" ` +
      `(denied by --deny-read=${dir}/secret)\n` +
      "true\ttrue\n" +
      'false\tpermission denied: env access to "HOME" (denied by --deny-env=HOME)\n' +
      'http_get: cannot connect to http://127.0.0.1:9/: permission denied: net access to "127.0.0.1:9" ' +
      "(denied by --deny-net=127.0.0.1)\n" +
      "path ok\n",
  );
  strictEqual(await Deno.readTextFile(`${dir}/secret/new.txt`), "x");
});

Deno.test("a --deny-read or --deny-write folder is refused however the path is spelled (.., ., //)", async () => {
  const dir = await tempFiles({});
  await Deno.mkdir(`${dir}/secret`);
  await Deno.mkdir(`${dir}/other`);
  await Deno.writeTextFile(`${dir}/secret/key.txt`, "k");
  await Deno.writeTextFile(`${dir}/other/x.txt`, "x");
  await Deno.writeTextFile(
    `${dir}/spell.lua`,
    `local dir = "${dir}"
for _, p in ipairs({ dir .. "/other/../secret/key.txt", dir .. "//secret/key.txt", dir .. "/./secret/./key.txt" }) do
  print((pcall(read_file, p)), io.open(p) == nil, (loadfile(p)) == nil)
end
print((pcall(write_file, dir .. "/other/../secret/new.txt", "x")), io.open(dir .. "/other/..//secret/new2.txt", "w") == nil)
print(os.rename(dir .. "/other/x.txt", dir .. "/other/../secret/moved.txt"))
`,
  );
  const r = await solvm([`--deny-read=${dir}/secret`, `--deny-write=${dir}/secret`, `${dir}/spell.lua`]);
  strictEqual(r.stderr, "");
  // The refused path of a rename is named: here its target.
  strictEqual(
    r.stdout,
    "false\ttrue\ttrue\n".repeat(3) + "false\ttrue\n" +
      `nil\tpermission denied: write access to "${dir}/other/../secret/moved.txt" (denied by --deny-write=${dir}/secret)\t13\n`,
  );
  for (const name of ["new.txt", "new2.txt", "moved.txt"]) {
    strictEqual(await Deno.stat(`${dir}/secret/${name}`).then(() => "written", () => "refused"), "refused", name);
  }
});

Deno.test("a --deny-read or --deny-write folder is refused through a symbolic link that leads into it", async () => {
  // A link made outside the denied folder read and wrote its files (the paths were compared as written).
  const dir = await tempFiles({});
  await Deno.mkdir(`${dir}/secret`);
  await Deno.writeTextFile(`${dir}/secret/key.txt`, "k");
  await Deno.symlink(`${dir}/secret/key.txt`, `${dir}/key-link`);
  await Deno.symlink(`${dir}/secret`, `${dir}/secret-link`);
  await Deno.writeTextFile(
    `${dir}/links.lua`,
    `local dir = "${dir}"
print((pcall(read_file, dir .. "/key-link")), io.open(dir .. "/key-link") == nil)
print((pcall(write_file, dir .. "/secret-link/new.txt", "x")), io.open(dir .. "/secret-link/new2.txt", "w") == nil)
print(pcall(write_file, dir .. "/elsewhere.txt", "fine"))
`,
  );
  const r = await solvm([`--deny-read=${dir}/secret`, `--deny-write=${dir}/secret`, `${dir}/links.lua`]);
  strictEqual(r.stderr, "");
  strictEqual(r.stdout, "false\ttrue\nfalse\ttrue\ntrue\ttrue\n");
  for (const name of ["new.txt", "new2.txt"]) {
    strictEqual(await Deno.stat(`${dir}/secret/${name}`).then(() => "written", () => "refused"), "refused", name);
  }
});

Deno.test("the system's own refusal (EACCES, EPERM) reads as lua5.4's, with no flag advice, with or without flags", async () => {
  // Root is refused too: writing a read-only sysfs file (EACCES), removing a process's /proc folder (EPERM).
  const dir = await tempFiles({});
  await Deno.writeTextFile(
    `${dir}/os.lua`,
    `print(io.open("/sys/kernel/notes", "w"))
print(os.remove("/proc/1"))
print(pcall(write_file, "/sys/kernel/notes", "x"))
`,
  );
  const bare = await solvm([`${dir}/os.lua`]);
  strictEqual(bare.stderr, "");
  strictEqual(
    bare.stdout,
    "nil\t/sys/kernel/notes: Permission denied\t13\n" +
      "nil\t/proc/1: Operation not permitted\t1\n" +
      'false\twrite_file: cannot write "/sys/kernel/notes": permission denied\n',
  );
  // Under flags that grant the file, an immutable file (chattr +i) is refused by the system alone.
  await Deno.writeTextFile(`${dir}/fixed.txt`, "kept");
  await Deno.writeTextFile(
    `${dir}/flags.lua`,
    `print(io.open("fixed.txt", "w"))
print(os.remove("fixed.txt"))
print(pcall(write_file, "fixed.txt", "x"))
`,
  );
  strictEqual((await new Deno.Command("chattr", { args: ["+i", `${dir}/fixed.txt`] }).output()).code, 0);
  try {
    const flagged = await solvm([`--allow-read=${dir}`, `--allow-write=${dir}`, "flags.lua"], { cwd: dir });
    strictEqual(flagged.stderr, "");
    strictEqual(
      flagged.stdout,
      "nil\tfixed.txt: Operation not permitted\t1\n" +
        "nil\tfixed.txt: Operation not permitted\t1\n" +
        'false\twrite_file: cannot write "fixed.txt": operation not permitted\n',
    );
  } finally {
    await new Deno.Command("chattr", { args: ["-i", `${dir}/fixed.txt`] }).output();
  }
  strictEqual(await Deno.readTextFile(`${dir}/fixed.txt`), "kept");
});

Deno.test("--deny-read keeps a file from being moved out of reach (rename needs read) or described by list_dir", async () => {
  const dir = await tempFiles({ "pw.txt": "0123456789" });
  await Deno.mkdir(`${dir}/secret`);
  await Deno.writeTextFile(`${dir}/secret/s.txt`, "s");
  await Deno.writeTextFile(
    `${dir}/move.lua`,
    `print(os.rename("secret/s.txt", "leaked.txt"))
print(os.rename("secret", "opened"))
for _, e in ipairs(list_dir(".")) do
  if e.name == "pw.txt" or e.name == "secret" then print(e.name, e.is_dir, e.size, e.mode, e.mod_time) end
end`,
  );
  const r = await solvm([`--deny-read=${dir}/secret,${dir}/pw.txt`, "move.lua"], { cwd: dir });
  strictEqual(r.stderr, "");
  strictEqual(
    r.stdout,
    `nil\tpermission denied: read access to "secret/s.txt" (denied by --deny-read=${dir}/secret)\t13\n` +
      `nil\tpermission denied: read access to "secret" (denied by --deny-read=${dir}/secret)\t13\n` +
      "pw.txt\tfalse\tnil\tnil\tnil\n" +
      "secret\ttrue\tnil\tnil\tnil\n",
  );
  strictEqual(await Deno.readTextFile(`${dir}/secret/s.txt`), "s");
});

Deno.test("--deny-read and --deny-write refuse renaming a folder that holds a denied path, or onto one", async () => {
  const dir = await tempFiles({});
  await Deno.mkdir(`${dir}/data`);
  await Deno.mkdir(`${dir}/spare`);
  await Deno.writeTextFile(`${dir}/data/secret.txt`, "top secret");
  await Deno.writeTextFile(`${dir}/data/protected.txt`, "kept");
  await Deno.writeTextFile(
    `${dir}/moves.lua`,
    `print(os.rename("data", "moved"))
print(os.rename(".", "../elsewhere"))
print(os.rename("spare", "data"))
print(pcall(read_file, "moved/secret.txt"))`,
  );
  const r = await solvm([`--deny-read=${dir}/data/secret.txt`, `--deny-write=${dir}/data/protected.txt`, "moves.lua"], {
    cwd: dir,
  });
  strictEqual(r.stderr, "");
  const refused = (kind: string, path: string, entry: string) =>
    `nil\tpermission denied: ${kind} access to "${path}" (denied by --deny-${kind}=${dir}/data/${entry})\t13\n`;
  strictEqual(
    r.stdout,
    refused("read", "data", "secret.txt") + refused("read", ".", "secret.txt") +
      refused("write", "data", "protected.txt") +
      `false\tread_file: cannot read "moved/secret.txt": no such file or directory\n`,
  );
  strictEqual(await Deno.readTextFile(`${dir}/data/protected.txt`), "kept");
});

Deno.test("a bare --deny-<kind> refuses the whole kind; --deny-* narrows an --allow-* list", async () => {
  const dir = await tempFiles({ "a.txt": "a", "b.txt": "b" });
  await Deno.writeTextFile(
    `${dir}/bare.lua`,
    `print(pcall(write_file, "${dir}/c.txt", "c"))
print(read_file("${dir}/a.txt"))
print(pcall(read_file, "${dir}/b.txt"))`,
  );
  // The refusal names the bare flag: an --allow-* flag cannot help against it.
  const r = await solvm([
    "--deny-write",
    `--allow-write=${dir}`,
    `--allow-read=${dir}`,
    `--deny-read=${dir}/b.txt`,
    `${dir}/bare.lua`,
  ]);
  strictEqual(r.code, 0);
  strictEqual(
    r.stdout,
    `false\twrite_file: cannot write "${dir}/c.txt": permission denied: write access to "${dir}/c.txt" ` +
      `(denied by --deny-write)\n` +
      "a\n" +
      `false\tread_file: cannot read "${dir}/b.txt": permission denied: read access to "${dir}/b.txt" ` +
      `(denied by --deny-read=${dir}/b.txt)\n`,
  );
});

Deno.test("a bare --deny-read refuses the script itself, naming the flag; an empty --deny-<kind>= or --allow-<kind>= list is bad usage", async () => {
  const dir = await tempFiles({ "s.lua": `print("ran")` });
  const refused = await solvm(["--deny-read", "s.lua"], { cwd: dir });
  strictEqual(refused.code, 1);
  strictEqual(
    refused.stderr,
    'solvm: cannot read script "s.lua": permission denied: read access to "s.lua" (denied by --deny-read)\n',
  );
  // An empty list is what `--allow-read=$DIR` gives when DIR is unset: it must not grant everything.
  for (const flag of ["--deny-write=", "--deny-env=,", "--allow-read=", "--allow-run=", "--allow-net=,"]) {
    const empty = await solvm([flag, "s.lua"], { cwd: dir });
    strictEqual(empty.code, 2);
    strictEqual(empty.stdout, "");
    const [name, kind] = flag.slice(0, flag.indexOf("=")).split(/-(?=[a-z]+$)/);
    const bare = name === "--deny" ? "refuses" : "allows";
    strictEqual(
      empty.stderr,
      `solvm: ${name}-${kind}= lists nothing (a bare ${name}-${kind} ${bare} all ${kind} access)\n`,
    );
  }
});

Deno.test("a refused os.tmpname, io.input or io.output names the flag and the caller's line", async () => {
  const dir = await tempFiles({ "in.txt": "x" });
  await Deno.mkdir(`${dir}/app`); // the script's folder is readable: in.txt is outside it
  await Deno.writeTextFile(
    `${dir}/app/tmp.lua`,
    `print(pcall(io.input, "${dir}/in.txt"))
print(pcall(io.output, "${dir}/out.txt"))
local x = 1
local name = os.tmpname()
`,
  );
  const r = await solvm(["--sandbox", `${dir}/app/tmp.lua`]);
  strictEqual(r.code, 1);
  strictEqual(
    r.stdout,
    `false\tcannot open file '${dir}/in.txt' (permission denied: read access to "${dir}/in.txt" (run with --allow-read=${dir}/in.txt))\n` +
      `false\tcannot open file '${dir}/out.txt' (permission denied: write access to "${dir}/out.txt" (run with --allow-write=${dir}/out.txt))\n`,
  );
  ok(
    r.stderr.startsWith(
      `${dir}/app/tmp.lua:4: unable to generate a unique filename: permission denied: write access to "/tmp" (run with --allow-write=/tmp)\n`,
    ),
    r.stderr,
  );
});

Deno.test("a refused io.tmpfile names every flag it lacks for /tmp (it reads and writes there), with Linux's EACCES", async () => {
  const dir = await tempFiles({ "tmpfile.lua": "print(io.tmpfile())\n" });
  const runs: [string[], string][] = [
    [
      ["--sandbox"],
      'permission denied: read access to "/tmp" (run with --allow-read=/tmp); ' +
      'permission denied: write access to "/tmp" (run with --allow-write=/tmp)',
    ],
    [["--allow-write=/tmp"], 'permission denied: read access to "/tmp" (run with --allow-read=/tmp)'],
    [["--deny-write=/tmp"], 'permission denied: write access to "/tmp" (denied by --deny-write=/tmp)'],
  ];
  for (const [flags, reason] of runs) {
    const r = await solvm([...flags, `${dir}/tmpfile.lua`]);
    strictEqual(r.stderr, "");
    strictEqual(r.stdout, `nil\t${reason}\t13\n`, flags.join(" "));
  }
  const granted = await solvm(["--allow-read=/tmp", "--allow-write=/tmp", `${dir}/tmpfile.lua`]);
  strictEqual(granted.stderr, "");
  ok(granted.stdout.startsWith("file ("), granted.stdout);
});

Deno.test("--deny-net refuses a name that resolves to a denied address (localhost for 127.0.0.1)", async () => {
  const dir = await tempFiles({
    "name.lua": `print(select(2, http_get("http://localhost:9/")))
print(select(2, tcp_connect("localhost", 9)))
print(select(2, tcp_connect("localhost", 10)))`,
  });
  const r = await solvm(["--deny-net=127.0.0.1:9", `${dir}/name.lua`]);
  strictEqual(r.stderr, "");
  strictEqual(
    r.stdout,
    'http_get: cannot connect to http://localhost:9/: permission denied: net access to "127.0.0.1:9" ' +
      "(denied by --deny-net=127.0.0.1:9)\n" +
      'permission denied: net access to "127.0.0.1:9" (denied by --deny-net=127.0.0.1:9)\n' +
      "connection refused (localhost:10)\n",
  );
});

Deno.test("a client refused a port the system picked for the script's own listener is told to allow the host alone", async () => {
  const dir = await tempFiles({
    "own.lua": `local tcp = assert(tcp_listen(0))
go(function() local c = receive(tcp) if c then c.write("accepted") c.close() end end)
local udp = assert(udp_recvfrom(0))
create_server("s", 0)
handle_http("s", "/", function() return "served" end)
local http = start_server("s")
local function show(port, ok, e) print(ok and tostring(ok) or (e:gsub(port, "PORT"))) end
local c, e = tcp_connect("127.0.0.1", tcp.port)
show(tcp.port, c and c.read(), e)
show(udp.port, udp_sendto("127.0.0.1", udp.port, "sent"))
local r, why = http_get("http://127.0.0.1:" .. http .. "/")
show(http, r and r.body, why)
tcp.close() udp.close() stop_server("s")`,
  });
  const refused = await solvm(["--sandbox", "--allow-net=0.0.0.0", `${dir}/own.lua`]);
  strictEqual(refused.stderr, "");
  // The refusal names the port; the flag does not, as the system picks another one each run.
  strictEqual(
    refused.stdout,
    'permission denied: net access to "127.0.0.1:PORT" (run with --allow-net=127.0.0.1)\n' +
      'permission denied: net access to "127.0.0.1:0,127.0.0.1:PORT" (run with --allow-net=127.0.0.1)\n' +
      'http_get: cannot connect to http://127.0.0.1:PORT/: permission denied: net access to "127.0.0.1:PORT" ' +
      "(run with --allow-net=127.0.0.1)\n",
  );
  const granted = await solvm(["--sandbox", "--allow-net=0.0.0.0,127.0.0.1", `${dir}/own.lua`]);
  deepStrictEqual(granted, { code: 0, stdout: "accepted\ntrue\nserved\n", stderr: "" });
});

Deno.test("--deny-net takes a bare IPv6 address (::1) as [::1]; a value that is no host or host:port is bad usage", async () => {
  const dir = await tempFiles({ "v6.lua": `print(select(2, tcp_connect("::1", 9)))` });
  const r = await solvm(["--deny-net=::1", `${dir}/v6.lua`]);
  deepStrictEqual(r, {
    code: 0,
    stdout: 'permission denied: net access to "[::1]:9" (denied by --deny-net=[::1])\n',
    stderr: "",
  });
  for (const value of [":8080", "http://x", "127.0.0.1:99999", "[::1"]) {
    const bad = await solvm([`--deny-net=${value}`, `${dir}/v6.lua`]);
    deepStrictEqual(bad, { code: 2, stdout: "", stderr: `solvm: --deny-net=${value}: not a host or host:port\n` });
  }
});

Deno.test("--deny-sys takes only the system values Deno knows: another name would deny nothing, so it is bad usage", async () => {
  const dir = await tempFiles({ "host.lua": `print(pcall(os.hostname))` });
  for (const value of ["bogus", "Hostname", "hostname,hostnam"]) {
    const bad = await solvm([`--deny-sys=${value}`, `${dir}/host.lua`]);
    strictEqual(bad.code, 2);
    strictEqual(bad.stdout, "");
    ok(
      bad.stderr.startsWith(`solvm: --deny-sys=${value.split(",").at(-1)}: not a system value Deno knows (hostname, `),
    );
  }
  const r = await solvm(["--deny-sys=hostname", `${dir}/host.lua`]);
  deepStrictEqual(r, {
    code: 0,
    stdout: 'false\tpermission denied: sys access to "hostname" (denied by --deny-sys=hostname)\n',
    stderr: "",
  });
});

Deno.test("--deny-net applies to every redirect hop; redirects are followed as fetch does", async () => {
  let deniedHits = 0;
  const denied = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    deniedHits++;
    return new Response("secret");
  });
  const allowed = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const path = new URL(request.url).pathname;
    const redirect = (status: number, location: string) => new Response(null, { status, headers: { location } });
    if (path === "/to-denied") return redirect(302, `http://127.0.0.1:${denied.addr.port}/secret`);
    if (path === "/see-other") return redirect(303, "/final");
    if (path === "/temporary") return redirect(307, "/final");
    if (path === "/loop") return redirect(302, "/loop");
    if (path === "/to-file") return redirect(302, "file:///etc/hostname");
    const body = await request.text();
    return new Response(`${request.method} ${body.length} ${request.headers.get("content-type")}`);
  });
  try {
    const dir = await tempFiles({
      "hops.lua": `local base = "http://127.0.0.1:${allowed.addr.port}"
print(http_get(base .. "/to-denied"))
local r = http_post(base .. "/see-other", "data", { ["Content-Type"] = "text/plain" })
print(r.status, r.body, r.url == base .. "/final")
r = http_post(base .. "/temporary", "data", { ["Content-Type"] = "text/plain" })
print(r.status, r.body, r.url == base .. "/final")
print(http_get(base .. "/loop"))
print(http_get(base .. "/to-file"))
`,
    });
    const r = await solvm([`--deny-net=127.0.0.1:${denied.addr.port}`, `${dir}/hops.lua`]);
    strictEqual(r.stderr, "");
    strictEqual(r.code, 0);
    const target = `127.0.0.1:${denied.addr.port}`;
    strictEqual(
      r.stdout,
      `nil\thttp_get: cannot follow the redirect to http://${target}/secret: permission denied: net access to ` +
        `"${target}" (denied by --deny-net=${target})\n` +
        "200\tGET 0 null\ttrue\n" +
        "200\tPOST 4 text/plain\ttrue\n" +
        `nil\thttp_get: request to http://127.0.0.1:${allowed.addr.port}/loop failed: more than 20 redirects\n` +
        `nil\thttp_get: request to http://127.0.0.1:${allowed.addr.port}/to-file failed: redirected to ` +
        "file:///etc/hostname, which is not http or https\n",
    );
    strictEqual(deniedHits, 0, "the denied server was reached");
  } finally {
    await Promise.all([denied.shutdown(), allowed.shutdown()]);
  }
});

Deno.test("--deny-net refuses every spelling of a denied address, a name in any case, and import's names and hops", async () => {
  let deniedHits = 0;
  const denied = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    deniedHits++;
    return new Response('return "secret"');
  });
  const allowed = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(null, { status: 302, headers: { location: `http://127.0.0.1:${denied.addr.port}/m.lua` } }),
  );
  try {
    const [P, Q] = [denied.addr.port, allowed.addr.port];
    const dir = await tempFiles({
      "spellings.lua": `local P, Q = ${P}, ${Q}
for _, host in ipairs{ "0.0.0.0", "::ffff:127.0.0.1", "127.000.000.001" } do
  print(select(2, tcp_connect(host, P)))
end
print(select(2, http_get("http://0.0.0.0:" .. P .. "/")))
print(select(2, http_get("http://[::ffff:127.0.0.1]:" .. P .. "/")))
print(select(2, udp_sendto("0.0.0.0", P, "x")))
print(select(2, tcp_connect("LOCALHOST", Q)))
print(select(2, pcall(import, "http://localhost:" .. P .. "/m.lua")))
print(select(2, pcall(import, "http://127.0.0.1:" .. Q .. "/hop.lua")))`,
    });
    const r = await solvm([`--deny-net=127.0.0.1:${P},localhost:${Q}`, `${dir}/spellings.lua`]);
    strictEqual(r.stderr, "");
    const refused = (target: string, entry: string) =>
      `permission denied: net access to "${target}" (denied by --deny-net=${entry})`;
    const denial = refused(`127.0.0.1:${P}`, `127.0.0.1:${P}`);
    const at = (line: number) => `${dir}/spellings.lua:${line}: import: cannot fetch`;
    strictEqual(
      r.stdout,
      `${denial}\n${denial}\n${denial}\n` +
        `http_get: cannot connect to http://0.0.0.0:${P}/: ${denial}\n` +
        `http_get: cannot connect to http://[::ffff:127.0.0.1]:${P}/: ${denial}\n` +
        `${denial}\n` +
        `${refused(`LOCALHOST:${Q}`, `localhost:${Q}`)}\n` +
        `${at(9)} http://localhost:${P}/m.lua: ${denial}\n` +
        `${at(10)} http://127.0.0.1:${Q}/hop.lua (redirected to http://127.0.0.1:${P}/m.lua): ${denial}\n`,
    );
    strictEqual(deniedHits, 0, "the denied server was reached");
  } finally {
    await Promise.all([denied.shutdown(), allowed.shutdown()]);
  }
});

Deno.test("--deny-net refuses what the script sends to or binds, not the address SolVM's sending socket takes", async () => {
  const dir = await tempFiles({
    "udp.lua": `local inbox = assert(udp_recvfrom(0, "127.0.0.2"))
print(udp_sendto("127.0.0.2", inbox.port, "ping"), (receive(inbox)).data)
inbox.close()
print(udp_recvfrom(0, "127.0.0.1"))
print(udp_sendto("127.0.0.1", 9, "x"))
`,
  });
  // An explicit limit: the receiver keeps the script alive, and a send refused would leave it waiting.
  const r = await solvm(["--timeout", "5s", "--deny-net=127.0.0.1", `${dir}/udp.lua`]);
  strictEqual(r.stderr, "");
  strictEqual(
    r.stdout,
    // Sending to 127.0.0.2 binds a socket to 127.0.0.1:0, which the deny list refused.
    "true\tping\n" +
      'nil\tpermission denied: net access to "127.0.0.1:0" (denied by --deny-net=127.0.0.1)\n' +
      'nil\tpermission denied: net access to "127.0.0.1:9" (denied by --deny-net=127.0.0.1)\n',
  );
});
