import { strictEqual } from "node:assert";
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
      "/etc/hostname: Permission denied\n" +
      `false\twrite_file: cannot write "${dir}/out.txt": permission denied: write access to "${dir}/out.txt" ` +
      `(run with --allow-write=${dir}/out.txt)\n` +
      "http_get: cannot connect to http://127.0.0.1:12345/: permission denied (run with --allow-net=127.0.0.1:12345)\n" +
      'false\tpermission denied: env access to "HOME" (run with --allow-env=HOME)\n',
  );
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

Deno.test("without permission flags the script has the permissions Deno was given", async () => {
  const { dir, run } = await probe([]);
  strictEqual(run.code, 0);
  strictEqual(run.stdout.split("\n")[3], "true\ttrue");
  strictEqual(await Deno.readTextFile(`${dir}/out.txt`), "x");
});
