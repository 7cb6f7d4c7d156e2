-- Memory and goroutine monitoring: check_memory() and get_goroutines().
chan("jobs")
go(function() receive("jobs") end, "worker")   -- a named goroutine, parked on a channel
go(function() sleep(0.05) end)                  -- an unnamed one, sleeping
sleep(0.01)

local goroutines = get_goroutines(true)
local ids = {}
for id in pairs(goroutines) do ids[#ids + 1] = id end
table.sort(ids)
for _, id in ipairs(ids) do
  local g = goroutines[id]
  print(id, g.name, g.state, g.waiting or "")
end

local before = check_memory()
local data = {}
for i = 1, 100000 do data[i] = { id = i } end
local after = check_memory()
print("goroutines:", after.goroutines)
print("heap grew by more than 1 MB:", after.alloc_diff > 1024 * 1024)
print("process resident memory known:", after.rss > 0 and before.rss > 0)

send("jobs", "done")
