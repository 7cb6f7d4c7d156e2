-- A worker of examples/supervised_pool.lua: says it is ready, then computes fib(n) for every job until the pool
-- stops. A "poison" job makes it fail; its supervisor starts a fresh one, which says it is ready again.
local name = ...

local function fib(n)
  if n < 2 then return n end
  return fib(n - 1) + fib(n - 2)
end

parent().send({ ready = name, worker = self() })
while true do
  local job = mailbox()
  if job == nil then return end -- the pool was stopped
  if job.n == "poison" then error(name .. " swallowed poison (job " .. job.id .. ")") end
  parent().send({ id = job.id, n = job.n, result = fib(job.n), name = name, worker = self() })
end
