-- Shared by the CPU benchmarks: runs work() ROUNDS times (arg[1], default 3) and prints ROUND/COLD/BENCH lines
-- (seconds, os.clock) for bench/run.ts. Loaded with dofile, which native lua5.4 and SolVM both have.
local ROUNDS = tonumber(arg and arg[1]) or 3

return function(name, work)
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
