/**
 * HTTP peer for bench/lua/http_json.lua (bench/run.ts net): a bare
 * `Deno.serve` on 127.0.0.1 answering every request with the same JSON body
 * and content type as the Lua handler. Port from the first argument (0, the
 * default, picks a free one); prints `LISTENING <port>` once it accepts
 * connections and runs until killed.
 *
 * @module
 */
const port = Number(Deno.args[0] ?? "0");

Deno.serve({
  hostname: "127.0.0.1",
  port,
  onListen: ({ port }) => console.log(`LISTENING ${port}`),
}, () =>
  new Response(JSON.stringify({ message: "hello", n: 1 }), {
    headers: { "content-type": "application/json" },
  }));
