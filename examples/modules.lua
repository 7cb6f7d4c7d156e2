-- Modules: `import` SolVM's way, `require` Lua's way. Run from the project root:
--   solvm examples/modules.lua
-- import("math_utils") looks beside this script, then in modules/ of the working
-- directory, then in modules/ beside this script: examples/modules/math_utils.lua.
-- It also sets the global `math_utils`.
import("math_utils")
print("import:", math_utils.clamp(15, 0, 10), math_utils.mean({ 2, 4, 9 }))

-- require("strings") finds examples/modules/strings/init.lua through package.path.
local strings, from = require("strings")
print("require:", strings.title("hello modules"), from)

-- Both load a module once: the same table comes back.
print("cached:", import("math_utils") == math_utils, require("strings") == strings)
