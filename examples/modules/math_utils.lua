-- Imported by examples/modules.lua with import("math_utils").
local M = {}

function M.clamp(x, low, high)
  return math.max(low, math.min(high, x))
end

function M.mean(list)
  local sum = 0
  for _, v in ipairs(list) do sum = sum + v end
  return sum / #list
end

return M
