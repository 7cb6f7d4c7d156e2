-- CPU benchmark: a numeric loop of 5e7 integer iterations. Prints ROUND/COLD/BENCH lines for bench/run.ts.

local bench = dofile(arg[0]:match("^(.*/)") .. "rounds.lua")

bench("loop5e7", function()
  local s = 0
  for i = 1, 50000000 do
    s = s + (i % 7) * 3 - i // 5
  end
  return s
end)
