-- Network benchmark (bench/run.ts net): a JSON handler under load from wrk.
-- Usage: solvm --timeout 0 bench/lua/http_json.lua [port]; port 0 (default) picks a free one.
-- Prints "LISTENING <port>" once the server accepts connections; runs until killed.
local port = tonumber(arg[1] or "0")
create_server("bench", port, { host = "127.0.0.1" })
handle_http("bench", "/", function(req)
  return {
    status = 200,
    headers = { ["Content-Type"] = "application/json" },
    body = json_encode({ message = "hello", n = 1 }),
  }
end)
print("LISTENING " .. start_server("bench"))
