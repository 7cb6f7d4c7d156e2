import { strictEqual } from "node:assert";
import { solvm } from "./_helpers.ts";

const dir = new URL("../examples/", import.meta.url).pathname;

/** What each example must print; every .lua file in examples/ needs an entry. */
const expected: Record<string, string> = {
  "monitoring.lua": "1\tmain\trunning\t\n2\tworker\tparked\treceive on channel 'jobs'\n3\tgoroutine 3\tparked\tsleep\n" +
    "goroutines:\t3\nheap grew by more than 1 MB:\ttrue\nprocess resident memory known:\ttrue\n",
  "reload.lua": "run 1\nconfig changed: version = 2\nrun 2\nfresh state after reload\n",
  "hello.lua": "Hello, world!\nJSON round trip:\thi\t3\na goroutine says hello too\n",
  "channels.lua": "sum of squares 1..9 =\t285\nfirst:\tfast\tfrom\tfast\n",
  "errors.lua": "caught: examples/errors.lua:6: worker 1 failed\nworker 2 finished\npcall caught:\tfalse\ttrue\n",
  "json.lua": 'SolVM\t2\tinteger\tfloat\ttrue\n{"empty":{},"greeting":"héllo ✓","list":[1,2.5,true]}\n' +
    '{\n  "nested": {\n    "a": {\n      "b": {\n        "c": 1\n      }\n    }\n  }\n}\n',
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
