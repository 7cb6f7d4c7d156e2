-- An HTTP server and its client in one script: routes, parameters, JSON and
-- handlers that run side by side. Run it with `solvm examples/http_server.lua`.
create_server("demo", 0, false, nil, nil, { host = "127.0.0.1" })  -- port 0: any free port

handle_http("demo", "/hello", function(req)
  return "Hello, " .. (req.query_params.name or "world") .. "!"   -- a string: 200 text/plain
end)

handle_http("demo", "/users/:id", function(req)
  return {
    status = 200,
    headers = { ["Content-Type"] = "application/json" },
    body = json_encode({ id = tonumber(req.params.id), method = req.method }),
  }
end)

handle_http("demo", "/files/*", function(req)
  return "file " .. req.params["*"]
end)

handle_http("demo", "/echo", function(req)
  return { status = 201, body = req.method .. " " .. #req.body .. " bytes: " .. req.body }
end)

handle_http("demo", "/slow", function(req)
  sleep(0.1)                       -- parks only this request's goroutine
  return "slow " .. req.query_params.n
end)

local port = start_server("demo")
print("listening:", port > 0)
local base = "http://127.0.0.1:" .. port

-- http_get returns nil and a message when the request fails (a refused permission, say): assert shows it.
local r = assert(http_get(base .. "/hello?name=Lua"))
print(r.status, r.body)
r = assert(http_get(base .. "/users/42"))
print(r.status, r.headers["Content-Type"], r.body)
r = assert(http_get(base .. "/files/css/site.css"))
print(r.status, r.body)
r = assert(http_post(base .. "/echo", "ping"))
print(r.status, r.body)
r = assert(http_get(base .. "/missing"))
print(r.status, r.body)

-- Five slow requests at once: each handler runs in its own goroutine.
local answers = chan("answers", 5)
for n = 1, 5 do
  go(function() send(answers, assert(http_get(base .. "/slow?n=" .. n)).body) end)
end
local got = {}
for _ = 1, 5 do got[#got + 1] = receive(answers) end
table.sort(got)
print(table.concat(got, ", "))

stop_server("demo")                -- the script ends once no server runs
print("stopped")
