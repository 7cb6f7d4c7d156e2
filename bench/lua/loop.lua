-- CPU benchmark: a numeric loop of 5e7 integer iterations. Prints ROUND/COLD/BENCH lines for bench/run.ts.
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

bench("loop5e7", function()
  local s = 0
  for i = 1, 50000000 do
    s = s + (i % 7) * 3 - i // 5
  end
  return s
end)
