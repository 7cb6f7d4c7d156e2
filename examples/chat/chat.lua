-- A WebSocket chat: every message a client sends goes to every connected
-- client. Run it with `solvm examples/chat/chat.lua [port] [host]` (defaults
-- 8080 and 127.0.0.1) and open the address it prints in a browser.
local port = math.tointeger(tonumber(arg[1] or 8080))
  or error("usage: solvm examples/chat/chat.lua [port] [host]", 0)
local host = arg[2] or "127.0.0.1" -- loopback by default: the chat has no authentication

-- arg[0] is the script path as given, so the page is found from any working directory.
local folder = arg[0]:match("^(.*)[/\\]") or "."
local page = read_file(folder .. "/index.html")

-- A client that has had messages waiting for it this long, or this many of
-- them, has stopped reading: it is closed and leaves the room.
local STALLED_SECONDS = 10
local BACKLOG = 1000

-- ws -> { queue = messages waiting for it, behind_since = since when some do }
local clients = {}
local online = 0

-- ws.send waits while a client is 1 MiB behind, so each client has a writer
-- goroutine of its own that sends it what its queue gets. This loop never
-- waits (a send into a queue with room goes through at once), so no other
-- goroutine changes `clients` while it runs, and a slow client holds up
-- no one: only its own queue grows, until it is dropped.
local function broadcast(text)
  local now = os.time()
  for ws, client in pairs(clients) do
    local waiting = #client.queue
    if waiting == 0 then client.behind_since = now end
    if waiting < BACKLOG and now - client.behind_since < STALLED_SECONDS then
      send(client.queue, text)
    else
      clients[ws] = nil
      ws.close()
    end
  end
end

create_server("chat", port, { host = host })

handle_http("chat", "/", function()
  return { status = 200, headers = { ["Content-Type"] = "text/html; charset=utf-8" }, body = page }
end)

-- Each connection runs in its own goroutine, so its blocking ws.receive()
-- waits only for this client.
handle_ws("chat", "/ws", function(ws)
  local queue = chan(nil, BACKLOG)
  go(function() -- the writer: ends when its queue is closed, or the connection is
    while true do
      local text = receive(queue)
      if text == nil or not ws.send(text) then break end
    end
  end)
  clients[ws] = { queue = queue }
  online = online + 1
  broadcast("* someone joined (" .. online .. " online)")
  for message in ws.receive do -- ws.receive() returns nil once the peer has closed
    if clients[ws] then broadcast(message) end -- one dropped for not reading speaks no more
  end
  clients[ws] = nil
  close_channel(queue)
  online = online - 1
  broadcast("* someone left (" .. online .. " online)")
end)

print(("chat listening on http://%s:%d/"):format(host, start_server("chat")))
