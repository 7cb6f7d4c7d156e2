-- A TCP echo server and its client in one script.
-- Port 0 asks the system for a free port; server.port tells which one.
local server = assert(tcp_listen(0, "127.0.0.1"))

-- Each connection gets its own goroutine; a read parks only that goroutine.
go(function()
  while true do
    local conn = receive(server) -- nil once the listener is closed
    if not conn then break end
    go(function()
      while true do
        local data = conn.read() -- nil when the client hangs up
        if not data then break end
        conn.write("echo: " .. data)
      end
      conn.close()
    end)
  end
  print("listener closed")
end)

local conn = assert(tcp_connect("127.0.0.1", server.port))
for _, message in ipairs({ "hello", "binary \0 safe", "bye" }) do
  conn:write(message) -- methods work with a colon too
  print(string.format("%q", conn:read()))
end
conn.close()
server.close() -- stops listening; without it the script would keep serving
