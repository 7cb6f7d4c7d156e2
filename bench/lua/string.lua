-- CPU benchmark: string work (table.concat of 1e6 pieces, string.format, gsub/find over a big string). Prints ROUND/COLD/BENCH lines.

local bench = dofile(arg[0]:match("^(.*/)") .. "rounds.lua")

bench("string_concat", function()
  local parts = {}
  for i = 1, 1000000 do parts[i] = tostring(i) end
  return #table.concat(parts, ",")
end)

bench("string_format", function()
  local n, fmt = 0, string.format
  for i = 1, 300000 do
    n = n + #fmt("%d:%s:%.3f|%5x", i, "item", i / 7, i)
  end
  return n
end)

local words = {}
for i = 1, 200000 do words[i] = "word" .. (i % 97) .. " " .. i end
local big = table.concat(words, ";")   -- about 2.4 MB
bench("string_gsub_find", function()
  local replaced, count = big:gsub("%d+", "#")
  local found, pos = 0, 1
  while true do
    local s, e = big:find("word1", pos, true)
    if not s then break end
    found = found + 1
    pos = e + 1
  end
  local matched = 0
  for w in big:gmatch("word(%d+)") do matched = matched + #w end
  return #replaced + count + found + matched
end)
