-- Actors benchmark (messages): actor A sends arg[2] (default 200000) small tables { i = i, kind = "tick" } to
-- actor B, which counts them and replies once per round; arg[1] rounds (default 3). A times each round (send of
-- the first message to the arrival of B's reply, on A's own clock). Prints ROUND/COLD/BENCH lines for bench/run.ts.
local rounds, n = tonumber(arg[1]) or 3, tonumber(arg[2]) or 200000
local b = spawn("actors/msgs_counter.lua")
local a = spawn("actors/msgs_sender.lua", b, n, rounds)
local times = a.wait()
local best
for r, dt in ipairs(times) do
  best = math.min(best or dt, dt)
  print(string.format("ROUND actor_msgs %d %.6f %d", r, dt, n))
end
print(string.format("COLD actor_msgs %.6f", times[1]))
print(string.format("BENCH actor_msgs %.6f", best))
b.stop()
