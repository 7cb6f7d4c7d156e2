/**
 * WebSocket peer for bench/lua/ws_echo.lua (bench/run.ts net): a bare
 * `Deno.serve` on 127.0.0.1 that upgrades every request with
 * `Deno.upgradeWebSocket` and sends each message back. Port from the first
 * argument (0, the default, picks a free one); prints `LISTENING <port>` once
 * it accepts connections and runs until killed.
 *
 * @module
 */
const port = Number(Deno.args[0] ?? "0");

Deno.serve({
  hostname: "127.0.0.1",
  port,
  onListen: ({ port }) => console.log(`LISTENING ${port}`),
}, (request) => {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("WebSocket only", { status: 400 });
  }
  const { socket, response } = Deno.upgradeWebSocket(request);
  socket.onmessage = (e) => socket.send(e.data);
  socket.onerror = () => {};
  return response;
});
