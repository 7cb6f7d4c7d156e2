-- One actor of bench/lua/actor_cpu.lua: sums 1..n for every message until stopped.
local n = ...
local function work()
  local s = 0
  for i = 1, n do s = s + i end
  return s
end
work()
work()
parent().send("ready")
while mailbox() ~= nil do parent().send(work()) end
