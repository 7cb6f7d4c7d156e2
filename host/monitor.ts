/**
 * The monitoring family: `check_memory` and `get_goroutines`.
 *
 * @module
 */
import type { Engine } from "../runtime/engine.ts";
import { type Family, inScheduler } from "../runtime/family.ts";

// check_memory(): sizes now and their change since the previous call.
const CHECK_MEMORY_LUA = `
local helpers = ...
local sizes = helpers.sizes
local list_goroutines = get_goroutines -- registered just before, see the table below
local floor, collectgarbage, pairs, error = math.floor, collectgarbage, pairs, error  -- the script may change them
local last_heap, last_wasm, last_rss = 0, 0, 0
return function()
  local count = collectgarbage("count")
  -- Lua 5.4 gives no count while a __gc finalizer runs (its collector is stopped), and nothing else measures the heap.
  if not count then error("check_memory: the Lua heap cannot be measured inside a __gc finalizer", 2) end
  local heap = floor(count * 1024)
  local wasm, rss = sizes()
  local goroutines = 0
  for _ in pairs(list_goroutines()) do goroutines = goroutines + 1 end
  local stats = {
    alloc_diff = heap - last_heap,        -- Lua heap in use
    total_alloc_diff = wasm - last_wasm,  -- memory reserved for the Lua state
    sys_diff = rss - last_rss,            -- the process's resident memory
    goroutines = goroutines,
    lua_heap = heap, lua_reserved = wasm, rss = rss,
  }
  last_heap, last_wasm, last_rss = heap, wasm, rss
  return stats
end`;

/** The monitoring family's registration table. */
export const monitor = (engine: Engine): Family => ({
  get_goroutines: inScheduler("list_goroutines"),
  check_memory: {
    lua: CHECK_MEMORY_LUA,
    helpers: {
      sizes: (L) => {
        engine.vm.api.lua_pushinteger(L, BigInt(engine.vm.lua.heap().byteLength));
        engine.vm.api.lua_pushinteger(L, BigInt(Deno.memoryUsage().rss));
        return 2;
      },
    },
  },
});
