-- Actors benchmark (CPU): arg[1] actors each sum 1..arg[2] once per round, arg[3] rounds (default 3), all
-- actors at once. Each actor warms up (one run, then a second) before the first round. Prints ROUND/COLD/BENCH
-- lines (wall seconds per round, os.clock) for bench/run.ts.
local actors, n, rounds = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3]) or 3
local name = "actors" .. actors

local workers = {}
for i = 1, actors do workers[i] = spawn("actors/cpu_worker.lua", n) end
for _ = 1, actors do assert(mailbox() == "ready") end

local best, first
for r = 1, rounds do
  local t0 = os.clock()
  for i = 1, actors do workers[i].send("go") end
  local check = 0
  for _ = 1, actors do check = check + mailbox() end
  local dt = os.clock() - t0
  if r == 1 then first = dt end
  if not best or dt < best then best = dt end
  print(string.format("ROUND %s %d %.6f %d", name, r, dt, check))
end
print(string.format("COLD %s %.6f", name, first))
print(string.format("BENCH %s %.6f", name, best))
for i = 1, actors do workers[i].stop() end
