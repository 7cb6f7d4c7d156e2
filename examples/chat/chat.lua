-- A WebSocket chat: every message a client sends goes to every connected
-- client. Run it with `solvm examples/chat/chat.lua [port] [host]` (defaults
-- 8080 and 127.0.0.1) and open the address it prints in a browser.
local port = math.tointeger(tonumber(arg[1] or 8080))
  or error("usage: solvm examples/chat/chat.lua [port] [host]", 0)
local host = arg[2] or "127.0.0.1" -- loopback by default: the chat has no authentication

-- arg[0] is the script path as given, so the page is found from any working directory.
local folder = arg[0]:match("^(.*)[/\\]") or "."
local page = read_file(folder .. "/index.html")

local clients = {} -- ws -> true for every open connection
local online = 0

-- ws.send never blocks, so no other goroutine can change `clients` while
-- this loop runs; a client that is just leaving gets nil, "connection closed".
local function broadcast(text)
  for client in pairs(clients) do client.send(text) end
end

create_server("chat", port, { host = host })

handle_http("chat", "/", function()
  return { status = 200, headers = { ["Content-Type"] = "text/html; charset=utf-8" }, body = page }
end)

-- Each connection runs in its own goroutine, so its blocking ws.receive()
-- waits only for this client.
handle_ws("chat", "/ws", function(ws)
  clients[ws] = true
  online = online + 1
  broadcast("* someone joined (" .. online .. " online)")
  for message in ws.receive do -- ws.receive() returns nil once the peer has closed
    broadcast(message)
  end
  clients[ws] = nil
  online = online - 1
  broadcast("* someone left (" .. online .. " online)")
end)

print(("chat listening on http://%s:%d/"):format(host, start_server("chat")))
