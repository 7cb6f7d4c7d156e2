-- Shared by the channel benchmarks: N numbers (arg[2], default 1e6) through a channel with `buffer` slots, producer
-- in go(), consumer in main, ROUNDS (arg[1], default 3) rounds timed with os.clock(); prints ROUND/COLD/BENCH lines.
local ROUNDS = tonumber(arg and arg[1]) or 3
local N = tonumber(arg and arg[2]) or 1000000

return function(name, buffer)
  local best, first
  for r = 1, ROUNDS do
    local ch = chan(name .. "-" .. r, buffer)
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
    print(string.format("ROUND %s %d %.6f %d", name, r, dt, count))
  end
  print(string.format("COLD %s %.6f", name, first))
  print(string.format("BENCH %s %.6f %d", name, best, N))
end
