-- Channel benchmark: 1,000,000 numbers through chan(name, 64), producer in go(), consumer in main. Rounds timed with os.clock().
local ROUNDS = tonumber(arg and arg[1]) or 3
local N = tonumber(arg and arg[2]) or 1000000
local BUFFER = 64

local best, first
for r = 1, ROUNDS do
  local ch = chan("buffered-" .. r, BUFFER)
  local t0 = os.clock()
  go(function()
    for i = 1, N do send(ch, i) end
    close_channel(ch)
  end)
  local sum, count = 0, 0
  while true do
    local v, ok = receive(ch)
    if not ok then break end
    sum, count = sum + v, count + 1
  end
  local dt = os.clock() - t0
  assert(count == N and sum == N * (N + 1) // 2, "lost messages")
  if r == 1 then first = dt end
  if not best or dt < best then best = dt end
  print(string.format("ROUND chan_buffered %d %.6f %d", r, dt, count))
end
print(string.format("COLD chan_buffered %.6f", first))
print(string.format("BENCH chan_buffered %.6f %d", best, N))
