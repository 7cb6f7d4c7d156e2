-- Actor B of bench/lua/actor_msgs.lua: counts ticks and replies with the count once a round's are all in.
while true do
  local m = mailbox()
  if m == nil then return end
  local reply_to, expect, count = m.reply_to, m.expect, 0
  while count < expect do
    local tick = mailbox()
    if tick.kind == "tick" then count = count + 1 end
  end
  reply_to.send(count)
end
