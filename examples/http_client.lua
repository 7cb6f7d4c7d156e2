-- The HTTP client against a server of our own: run with `solvm examples/http_client.lua`.
create_server("api", 0, false, nil, nil, { host = "127.0.0.1" })
handle_http("api", "/greet/:name", function(req)
  return { headers = { ["X-Greeting"] = "yes" }, body = "hello, " .. req.params.name }
end)
handle_http("api", "/items", function(req)
  local item = json_decode(req.body)
  return { status = 201, headers = { ["Content-Type"] = "application/json" },
           body = json_encode({ created = item.name, by = req.headers["x-user"] }) }
end)
handle_http("api", "/slow", function()
  sleep(0.4)
  return "finally"
end)
local port = start_server("api")
local base = "http://127.0.0.1:" .. port

-- GET: status, body and headers (names answer in any casing).
local r = http_get(base .. "/greet/lua")
print(r.status, r.body, r.headers["X-Greeting"], r.headers["content-type"])

-- POST a JSON body with a custom header.
r = http_post(base .. "/items", json_encode({ name = "widget" }), { ["X-User"] = "ada" })
local created = json_decode(r.body)
print(r.status, created.created, created.by)

-- Any method; a 404 is a response, not an error.
r = http_request("DELETE", base .. "/nowhere")
print(r.status, r.body)

-- No response at all is nil plus a message: here, a timeout.
local none, err = http_get(base .. "/slow", nil, { timeout = 0.2 })
print(none, (err:gsub("http://[%d.:]+", "BASE")))

-- Requests from goroutines wait side by side.
local replies = chan("replies", 3)
for _, name in ipairs({ "ann", "bob", "cy" }) do
  go(function() send(replies, http_get(base .. "/greet/" .. name).body) end)
end
local got = {}
for i = 1, 3 do got[i] = receive(replies) end
table.sort(got)
print(table.concat(got, "; "))

stop_server("api")
