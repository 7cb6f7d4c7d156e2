-- Hot reload: watch_file runs a function when a file changes; reload_script()
-- starts this script again in a fresh Lua state (timers and goroutines of the
-- old run are stopped). `solvm --watch script.lua` reloads on any change.
local marker = "/tmp/solvm-reload-example.count"
local f = io.open(marker, "r")
local run = f and #f:read("a") + 1 or 1
if f then f:close() end
write_file(marker, "x", "a")
print("run " .. run)

if run == 1 then
  local config = os.tmpname()
  write_file(config, "version = 1")
  watch_file(config, function()
    print("config changed: " .. read_file(config))
    os.remove(config)
    reload_script()
  end)
  sleep(0.2)
  write_file(config, "version = 2")
  sleep(10) -- the reload stops this sleep
else
  os.remove(marker)
  print("fresh state after reload")
end
