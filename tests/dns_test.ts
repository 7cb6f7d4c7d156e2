import { deepStrictEqual, match, ok, strictEqual } from "node:assert";
import dgram from "node:dgram";
import { runLua, solvm, solvmUnder, tempFiles } from "./_helpers.ts";

// A tiny DNS server on 127.0.0.1 speaking the wire format (RFC 1035) over UDP.

const TYPE = { A: 1, NS: 2, CNAME: 5, MX: 15, TXT: 16, AAAA: 28 } as const;
const RCODE_NXDOMAIN = 3;

/** A domain name as length-prefixed labels ending in a zero byte. */
function encodeName(name: string): number[] {
  const out: number[] = [];
  for (const label of name.split(".").filter((l) => l !== "")) {
    const bytes = new TextEncoder().encode(label);
    out.push(bytes.length, ...bytes);
  }
  out.push(0);
  return out;
}

const u16 = (n: number) => [n >> 8, n & 0xff];
const ascii = (s: string) => [...new TextEncoder().encode(s)];

interface Question {
  id: number;
  name: string;
  type: number;
  /** The question section as received, echoed in the answer. */
  section: Uint8Array;
}

/** Reads the header and the first question of a query. */
function decodeQuery(packet: Uint8Array): Question {
  const id = packet[0] << 8 | packet[1];
  const labels: string[] = [];
  let at = 12;
  while (packet[at] !== 0) {
    labels.push(new TextDecoder().decode(packet.subarray(at + 1, at + 1 + packet[at])));
    at += packet[at] + 1;
  }
  at += 1;
  const type = packet[at] << 8 | packet[at + 1];
  return { id, name: labels.join(".").toLowerCase(), type, section: packet.subarray(12, at + 4) };
}

/** One answer record about the question's name (a compression pointer to offset 12). */
function record(type: number, rdata: number[]): number[] {
  return [0xc0, 12, ...u16(type), ...u16(1), 0, 0, 0, 60, ...u16(rdata.length), ...rdata];
}

/** The answers of the test zone, by "name type"; a name absent here is NXDOMAIN. */
const ZONE: Record<string, number[][]> = {
  [`example.test ${TYPE.MX}`]: [record(TYPE.MX, [...u16(10), ...encodeName("mail.example.test")])],
  // One TXT record in two character-strings, which resolve_dns joins: UTF-8 ("ö") and a byte that is not (0xFF).
  [`example.test ${TYPE.TXT}`]: [record(TYPE.TXT, [6, ...ascii("hello "), 4, 0x77, 0xc3, 0xb6, 0xff])],
  [`example.test ${TYPE.A}`]: [record(TYPE.A, [192, 0, 2, 7])],
  [`example.test ${TYPE.AAAA}`]: [record(TYPE.AAAA, [0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 7])],
};
const NAMES = new Set(Object.keys(ZONE).map((k) => k.split(" ")[0]));

function encodeResponse(q: Question): Uint8Array {
  const answers = ZONE[`${q.name} ${q.type}`] ?? [];
  const rcode = NAMES.has(q.name) ? 0 : RCODE_NXDOMAIN;
  return new Uint8Array([
    ...u16(q.id),
    0x81, // QR, RD
    0x80 | rcode, // RA, rcode
    ...u16(1),
    ...u16(answers.length),
    ...u16(0),
    ...u16(0),
    ...q.section,
    ...answers.flat(),
  ]);
}

/** Starts the server; "silent.test" gets no answer at all. Returns its port, the queries seen and a stop function. */
async function startDnsServer(): Promise<{ port: number; queries: string[]; stop: () => Promise<void> }> {
  const socket = dgram.createSocket("udp4");
  const queries: string[] = [];
  socket.on("message", (msg, from) => {
    const q = decodeQuery(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength));
    queries.push(`${q.name} ${q.type}`);
    if (q.name === "silent.test") return;
    socket.send(encodeResponse(q), from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return {
    port: socket.address().port,
    queries,
    stop: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}

Deno.test("resolve_dns asks the system resolver: localhost from the hosts file, first and all", async () => {
  const { outcome, stdout } = await runLua(`
    print(resolve_dns("localhost"))
    local all = resolve_dns("localhost", "all")
    print(type(all), #all >= 1)
    local found = false
    for _, ip in ipairs(all) do if ip == "127.0.0.1" then found = true end end
    print(found)
    print(resolve_dns("127.0.0.1"))
    print(resolve_dns("no-such-host.invalid"))`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "127.0.0.1\ntable\ttrue\ntrue\n127.0.0.1\nnil\tunknown host 'no-such-host.invalid'\n");
});

Deno.test("resolve_dns reads MX, TXT, A and AAAA records from a chosen server", async () => {
  const server = await startDnsServer();
  try {
    const { outcome, stdout } = await runLua(`
      local opts = { server = "127.0.0.1:${server.port}" }
      local mx = assert(resolve_dns("example.test", "MX", opts))
      print(#mx, mx[1].exchange, mx[1].preference)
      local txt = assert(resolve_dns("example.test", "txt", opts))
      print(#txt, txt[1] == "hello w\\195\\182\\255")
      print(resolve_dns("example.test", "A", opts)[1], resolve_dns("example.test", "AAAA", opts)[1])
      print(resolve_dns("example.test", opts))
      print(table.concat(resolve_dns("example.test", "all", opts), " "))`);
    deepStrictEqual(outcome, { status: "ok" });
    strictEqual(
      stdout,
      "1\tmail.example.test\t10\n1\ttrue\n192.0.2.7\t2001:db8::7\n192.0.2.7\n192.0.2.7 2001:db8::7\n",
    );
    ok(server.queries.includes(`example.test ${TYPE.MX}`), server.queries.join(", "));
    ok(server.queries.includes(`example.test ${TYPE.TXT}`));
  } finally {
    await server.stop();
  }
});

Deno.test("resolve_dns: missing names and record types, and a server that never answers, give nil and a message", async () => {
  const server = await startDnsServer();
  try {
    const { outcome, stdout } = await runLua(`
      local opts = { server = "127.0.0.1:${server.port}" }
      print(resolve_dns("missing.test", "MX", opts))
      print(resolve_dns("example.test", "NS", opts))
      print(resolve_dns("missing.test", opts))
      print(resolve_dns("silent.test", "TXT", { server = "127.0.0.1:${server.port}", timeout = 0.3 }))`);
    deepStrictEqual(outcome, { status: "ok" });
    strictEqual(
      stdout,
      "nil\tno MX records for 'missing.test'\nnil\tno NS records for 'example.test'\n" +
        "nil\tunknown host 'missing.test'\n" +
        `nil\tDNS lookup of 'silent.test' timed out after 0.3 s (server 127.0.0.1:${server.port})\n`,
    );
  } finally {
    await server.stop();
  }
});

Deno.test("resolve_dns waits for options.timeout even past the 2 s after which Deno's resolver gives up", async () => {
  const server = await startDnsServer();
  try {
    const { outcome, stdout } = await runLua(`
      local t0 = os.clock()
      local found, err = resolve_dns("silent.test", "TXT", { server = "127.0.0.1:${server.port}", timeout = 2.6 })
      print(found, err, os.clock() - t0 >= 2.5)`);
    deepStrictEqual(outcome, { status: "ok" });
    strictEqual(
      stdout,
      `nil\tDNS lookup of 'silent.test' timed out after 2.6 s (server 127.0.0.1:${server.port})\ttrue\n`,
    );
  } finally {
    await server.stop();
  }
});

Deno.test("resolve_dns: SOLVM_DNS_SERVER chooses the server of record lookups, not of the hosts-file lookup", async () => {
  const server = await startDnsServer();
  Deno.env.set("SOLVM_DNS_SERVER", `127.0.0.1:${server.port}`);
  try {
    const { outcome, stdout } = await runLua(`
      print(resolve_dns("example.test", "MX")[1].exchange)
      print(resolve_dns("localhost"))`);
    deepStrictEqual(outcome, { status: "ok" });
    strictEqual(stdout, "mail.example.test\n127.0.0.1\n");
    Deno.env.set("SOLVM_DNS_SERVER", "not an address");
    const bad = await runLua(`print(pcall(resolve_dns, "example.test", "MX"))`);
    match(bad.stdout, /^false\t.*SOLVM_DNS_SERVER="not an address" is not an address/);
  } finally {
    Deno.env.delete("SOLVM_DNS_SERVER");
    await server.stop();
  }
});

Deno.test("SOLVM_DNS_SERVER reaches a confined script and its actors: the CLI reads it for them", async () => {
  const server = await startDnsServer();
  const address = `127.0.0.1:${server.port}`;
  const dir = await tempFiles({
    "main.lua": `print(resolve_dns("example.test", "MX")[1].exchange)\nprint(spawn("actor.lua").wait())\n`,
    "actor.lua": `return resolve_dns("example.test", "MX")[1].exchange`,
    "refused.lua": `print(resolve_dns("example.test", "MX"))`,
  });
  const env = { SOLVM_DNS_SERVER: address };
  try {
    const allowed = await solvm([`--allow-net=${address}`, `${dir}/main.lua`], { env });
    deepStrictEqual(allowed, { code: 0, stdout: "mail.example.test\nmail.example.test\n", stderr: "" });
    const refused = await solvm(["--sandbox", `${dir}/refused.lua`], { env });
    deepStrictEqual(refused, {
      code: 0,
      stdout: `nil\tpermission denied: net access to "${address}" (run with --allow-net=${address})\n`,
      stderr: "",
    });
  } finally {
    await server.stop();
  }
});

Deno.test("resolve_dns lookups wait only in their goroutine", async () => {
  const server = await startDnsServer();
  try {
    const { stdout } = await runLua(`
      go(function()
        print(resolve_dns("silent.test", "A", { server = "127.0.0.1:${server.port}", timeout = 0.3 }) == nil)
      end)
      sleep(0.05)
      print("main ran meanwhile")`);
    strictEqual(stdout, "main ran meanwhile\ntrue\n");
  } finally {
    await server.stop();
  }
});

Deno.test("resolve_dns rejects bad arguments", async () => {
  const { stdout } = await runLua(`
    print(select(2, pcall(resolve_dns)))
    for _, args in ipairs({
      { {} }, { "" }, { "x", "BOGUS" }, { "x", 5 }, { "x", "MX", 7 },
      { "x", "MX", { server = "nonsense" } }, { "x", "MX", { server = "1.2.3.4:99999" } },
      { "x", { server = 53 } }, { "x", "MX", { timeout = -1 } }, { "x", "MX", { timeout = "soon" } },
      { "x", "MX", { timout = 1 } }, { "x", { [1] = true } },
    }) do
      print(select(2, pcall(resolve_dns, table.unpack(args, 1, 3))))
    end`);
  const lines = stdout.trimEnd().split("\n").map((l) => l.replace(/^test:\d+: /, ""));
  deepStrictEqual(lines, [
    "bad argument #1 to 'resolve_dns' (string expected, got no value)",
    "bad argument #1 to 'resolve_dns' (string expected, got table)",
    "bad argument #1 to 'resolve_dns' (host name expected, got an empty string)",
    `bad argument #2 to 'resolve_dns' ("all" or a record type (A, AAAA, ANAME, CAA, CNAME, MX, NAPTR, NS, PTR, SOA, ` +
    `SRV, TXT) expected, got "BOGUS")`,
    "bad argument #2 to 'resolve_dns' (string or table expected, got number)",
    "bad argument #3 to 'resolve_dns' (table expected, got number)",
    `bad argument #3 to 'resolve_dns' (server must be "ip" or "ip:port", got "nonsense")`,
    `bad argument #3 to 'resolve_dns' (server must be "ip" or "ip:port", got "1.2.3.4:99999")`,
    "bad argument #2 to 'resolve_dns' (server must be a string, got number)",
    "bad argument #3 to 'resolve_dns' (timeout must be a positive number of seconds, got -1)",
    "bad argument #3 to 'resolve_dns' (timeout must be a number, got string)",
    "bad argument #3 to 'resolve_dns' (unknown option 'timout'; options are: server, timeout)",
    "bad argument #2 to 'resolve_dns' (unknown option a number key; options are: server, timeout)",
  ]);
});

Deno.test("resolve_dns without --allow-net says which flag is missing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "solvm-dns-" });
  try {
    await Deno.writeTextFile(
      `${dir}/dns.lua`,
      `print(resolve_dns("localhost"))\nprint(resolve_dns("example.test", "MX", { server = "127.0.0.1:5353" }))\n`,
    );
    const { code, stdout: out, stderr } = await solvmUnder(["--allow-read"], [`${dir}/dns.lua`]);
    strictEqual(stderr, "");
    strictEqual(code, 0);
    strictEqual(
      out,
      'nil\tpermission denied: net access to "localhost" (run with --allow-net=localhost)\n' +
        'nil\tpermission denied: net access to "127.0.0.1:5353" (run with --allow-net=127.0.0.1:5353)\n',
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
