-- Scale benchmark: 100,000 goroutines each sleep(0.5) then send on one channel; main receives all 100,000 values.
local N = tonumber(arg and arg[1]) or 100000
local DELAY = 0.5

local t0 = os.clock()
local done = chan("done", 0)
for i = 1, N do
  go(function()
    sleep(DELAY)
    send(done, i)
  end)
end
local spawned = os.clock() - t0
local sum = 0
for _ = 1, N do
  local v = receive(done)
  sum = sum + v
end
local dt = os.clock() - t0
assert(sum == N * (N + 1) // 2, "lost values")
print(string.format("SPAWN scale %.6f", spawned))
print(string.format("BENCH scale %.6f %d", dt, N))
