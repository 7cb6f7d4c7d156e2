-- Hot reload: watch_file runs a function when a file changes; reload_script()
-- starts this script again in a fresh Lua state (timers and goroutines of the
-- old run are stopped). `solvm --watch script.lua` reloads on any change.
-- The marker says "a reload was asked for": written just before reload_script(),
-- so a run stopped earlier leaves none, and an old one (another run's) is ignored.
local marker = "/tmp/solvm-reload-example.reload"
local f = io.open(marker)
local asked = f and tonumber(f:read("a"))
if f then f:close() os.remove(marker) end
local reloaded = asked ~= nil and os.time() - asked <= 5
print(reloaded and "run 2" or "run 1")

if not reloaded then
  local config = os.tmpname()
  write_file(config, "version = 1")
  watch_file(config, function()
    print("config changed: " .. read_file(config))
    os.remove(config)
    write_file(marker, tostring(os.time()))
    reload_script()
  end)
  sleep(0.2)
  write_file(config, "version = 2")
  sleep(10) -- the reload stops this sleep
else
  print("fresh state after reload")
end
