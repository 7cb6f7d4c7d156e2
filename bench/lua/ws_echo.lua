-- Network benchmark (bench/run.ts net): a WebSocket echo handler at /ws.
-- Usage: solvm --timeout 0 bench/lua/ws_echo.lua [port]; port 0 (default) picks a free one.
-- Prints "LISTENING <port>" once the server accepts connections; runs until killed.
local port = tonumber(arg[1] or "0")
create_server("bench", port, { host = "127.0.0.1" })
handle_ws("bench", "/ws", function(ws)
  while true do
    local msg = ws.receive() -- nil once the peer has closed
    if msg == nil then break end
    ws.send(msg)
  end
end)
print("LISTENING " .. start_server("bench"))
