-- Context for the channel benchmarks: 1,000,000 values passed by coroutine.resume/yield (runs on lua5.4 and SolVM).
local ROUNDS = tonumber(arg and arg[1]) or 3
local N = tonumber(arg and arg[2]) or 1000000

local best, first
for r = 1, ROUNDS do
  local t0 = os.clock()
  local co = coroutine.create(function()
    for i = 1, N do coroutine.yield(i) end
  end)
  local sum, count = 0, 0
  while true do
    local _, v = coroutine.resume(co)
    if v == nil then break end
    sum, count = sum + v, count + 1
  end
  local dt = os.clock() - t0
  assert(count == N and sum == N * (N + 1) // 2, "lost values")
  if r == 1 then first = dt end
  if not best or dt < best then best = dt end
  print(string.format("ROUND coro_pingpong %d %.6f %d", r, dt, count))
end
print(string.format("COLD coro_pingpong %.6f", first))
print(string.format("BENCH coro_pingpong %.6f %d", best, N))
