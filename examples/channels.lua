-- A worker pool: jobs go out on one channel, results come back on another.
chan("jobs", 10)
chan("results", 10)

for w = 1, 3 do
  go(function()
    while true do
      local n = receive("jobs")
      if n == nil then break end       -- the channel is closed and drained
      sleep(0.01)                      -- parks only this worker
      send("results", { worker = w, n = n, square = n * n })
    end
  end)
end

for n = 1, 9 do send("jobs", n) end
close_channel("jobs")

local sum = 0
for _ = 1, 9 do
  local r = receive("results")
  sum = sum + r.square
end
print("sum of squares 1..9 =", sum)

-- select takes whichever channel is ready first.
local fast, slow = chan("fast", 1), chan("slow", 1)
go(function() sleep(0.05) send(slow, "slow") end)
go(function() sleep(0.01) send(fast, "fast") end)
local value, from = select(fast, slow)
print("first:", value, "from", from)
wait()
