-- Required by examples/modules.lua with require("strings") (a folder with init.lua).
local M = {}

function M.title(text)
  return (text:gsub("(%a)(%a*)", function(first, rest) return first:upper() .. rest end))
end

return M
