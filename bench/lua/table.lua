-- CPU benchmark: table work on 1e6 elements (build + sort, insert + remove, ipairs sum). Prints ROUND/COLD/BENCH lines.
local N = 1000000

local bench = dofile(arg[0]:match("^(.*/)") .. "rounds.lua")

-- Deterministic pseudo-random integers (an LCG), so both runtimes sort the same data.
local function build()
  local t, x = {}, 12345
  for i = 1, N do
    x = (x * 1103515245 + 12345) % 2147483648
    t[i] = x
  end
  return t
end

bench("table_build_sort", function()
  local t = build()
  table.sort(t)
  return t[1] + t[N // 2] + t[N]
end)

bench("table_insert_remove", function()
  local t, insert, remove = {}, table.insert, table.remove
  for i = 1, N do insert(t, i) end
  for _ = 1, 10 do insert(t, 1, 0); remove(t, 1) end  -- 10 front insert/remove pairs: each shifts 1e6 slots
  local s = 0
  for _ = 1, N do s = s + remove(t) end
  return s
end)

local data = build()
bench("table_ipairs_sum", function()
  local s = 0
  for _ = 1, 10 do
    for _, v in ipairs(data) do s = s + v end
  end
  return s
end)
