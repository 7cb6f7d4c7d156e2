-- Actor A of bench/lua/actor_msgs.lua: sends n ticks to the counter per round and times the round.
local counter, n, rounds = ...
local me = self()
local times = {}
for r = 1, rounds do
  local t0 = os.clock()
  counter.send({ reply_to = me, expect = n })
  for i = 1, n do counter.send({ i = i, kind = "tick" }) end
  local got = mailbox()
  assert(got == n, "counter got " .. tostring(got) .. " of " .. n)
  times[r] = os.clock() - t0
end
return times
