-- CPU benchmark: recursive fib(32). Prints ROUND/COLD/BENCH lines (seconds, os.clock) for bench/run.ts.

local bench = dofile(arg[0]:match("^(.*/)") .. "rounds.lua")

local function fib(n)
  if n < 2 then return n end
  return fib(n - 1) + fib(n - 2)
end

bench("fib32", function() return fib(32) end)
