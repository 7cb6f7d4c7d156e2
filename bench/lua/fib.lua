-- CPU benchmark: recursive fib(32). Prints ROUND/COLD/BENCH lines (seconds, os.clock) for bench/run.ts.
local ROUNDS = tonumber(arg and arg[1]) or 3

local function bench(name, work)
  local best, first
  for r = 1, ROUNDS do
    local t0 = os.clock()
    local check = work()
    local dt = os.clock() - t0
    if r == 1 then first = dt end
    if not best or dt < best then best = dt end
    print(string.format("ROUND %s %d %.6f %s", name, r, dt, tostring(check)))
  end
  print(string.format("COLD %s %.6f", name, first))
  print(string.format("BENCH %s %.6f", name, best))
end

local function fib(n)
  if n < 2 then return n end
  return fib(n - 1) + fib(n - 2)
end

bench("fib32", function() return fib(32) end)
