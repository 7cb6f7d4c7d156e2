import { ok, strictEqual } from "node:assert";
import { solvm, tempFiles } from "./_helpers.ts";

const dir = new URL("../examples/", import.meta.url).pathname;

/** What each example must print; every .lua file in examples/ needs an entry. */
const expected: Record<string, string> = {
  "tcp_echo.lua": '"echo: hello"\n"echo: binary \\0 safe"\n"echo: bye"\nlistener closed\n',
  "udp.lua": "got\tping\tfrom\t127.0.0.1\ngot\tpong\nafter close:\tnil\tfalse\n",
  "http_client.lua": "200\thello, lua\tyes\ttext/plain; charset=utf-8\n201\twidget\tada\n404\tNot Found\n" +
    "nil\thttp_get: request to BASE/slow timed out after 0.2s\nhello, ann; hello, bob; hello, cy\n",
  "monitoring.lua":
    "1\tmain\trunning\t\n2\tworker\tparked\treceive on channel 'jobs'\n3\tgoroutine 3\tparked\tsleep\n" +
    "goroutines:\t3\nheap grew by more than 1 MB:\ttrue\nprocess resident memory known:\ttrue\n",
  "reload.lua": "run 1\nconfig changed: version = 2\nrun 2\nfresh state after reload\n",
  "http_server.lua": "listening:\ttrue\n200\tHello, Lua!\n200\tapplication/json\t" + '{"id":42,"method":"GET"}\n' +
    "200\tfile css/site.css\n201\tPOST 4 bytes: ping\n404\tNot Found\n" +
    "slow 1, slow 2, slow 3, slow 4, slow 5\nstopped\n",
  "hello.lua": "Hello, world!\nJSON round trip:\thi\t3\na goroutine says hello too\n",
  "channels.lua": "sum of squares 1..9 =\t285\nfirst:\tfast\tfrom\tfast\n",
  "errors.lua": "caught: examples/errors.lua:6: worker 1 failed\nworker 2 finished\npcall caught:\tfalse\ttrue\n",
  "files.lua": "first line\nsecond line\nbytes:\t0\t1\t2\t255\ntotal score:\t175\n" +
    "bytes.bin\tfalse\t4 bytes\t-rw\tinteger\nnotes.txt\tfalse\t23 bytes\t-rw\tinteger\n" +
    "scores.csv\tfalse\t27 bytes\t-rw\tinteger\n" +
    'false\tread_file: cannot read "examples/no-such-file.txt": no such file or directory\n' +
    "nil\texamples/no-such-file.txt: No such file or directory\n",
  "modules.lua": "import:\t10\t5.0\nrequire:\tHello Modules\texamples/modules/strings/init.lua\ncached:\ttrue\ttrue\n",
  "json.lua": 'SolVM\t2\tinteger\tfloat\ttrue\n{"empty":{},"greeting":"héllo ✓","list":[1,2.5,true]}\n' +
    '{\n  "nested": {\n    "a": {\n      "b": {\n        "c": 1\n      }\n    }\n  }\n}\n',
  "supervised_pool.lua": "job 1: fib(20) = 6765\njob 2: fib(21) = 10946\njob 3: fib(22) = 17711\n" +
    "job 5: fib(23) = 28657\njob 6: fib(24) = 46368\njob 7: fib(25) = 75025\njob 8: fib(26) = 121393\n" +
    "job 4: lost, its worker failed and was restarted\n" +
    "restarts:\t1\tstates:\trunning running running\nafter stop:\tstopped stopped stopped\n",
  "timers.lua": "timeout cancelled:\ttrue\ncron jobs cleared:\ttrue\ttrue\tagain:\tfalse\n" +
    'false\tcron: invalid expression "every day"\ntimeout: fired after 0.1 s\n' +
    "interval: tick 1\ninterval: tick 2\ninterval: tick 3\ninterval cleared:\ttrue\n",
};

for (const entry of Deno.readDirSync(dir)) {
  if (!entry.isFile || !entry.name.endsWith(".lua")) continue;
  Deno.test(`example ${entry.name} runs`, async () => {
    const want = expected[entry.name];
    strictEqual(typeof want, "string", `no expected output for examples/${entry.name}`);
    const r = await solvm([`examples/${entry.name}`], { cwd: `${dir}..` });
    strictEqual(r.stderr, "");
    strictEqual(r.code, 0);
    strictEqual(r.stdout, want);
  });
}

Deno.test("the README's TCP, UDP and DNS block runs to its end under the default time limit", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const block = /### TCP, UDP and DNS\n\n```lua\n([^]*?)```/.exec(readme)![1];
  const folder = await tempFiles({ "readme.lua": block });
  const r = await solvm([`${folder}/readme.lua`]);
  strictEqual(r.stderr, "");
  strictEqual(r.code, 0);
  // The last line is the MX lookup's message: nothing answers on 127.0.0.1:5353.
  ok(r.stdout.startsWith("echo: hi\nping\n127.0.0.1\n"), r.stdout);
});

Deno.test("example reload.lua: a run stopped before its reload leaves the next run a first run", async () => {
  const stopped = await solvm(["--timeout", "0.1s", "examples/reload.lua"], { cwd: `${dir}..` });
  strictEqual(stopped.code, 124);
  const next = await solvm(["examples/reload.lua"], { cwd: `${dir}..` });
  strictEqual(next.stderr, "");
  strictEqual(next.stdout, expected["reload.lua"]);
});
