-- A supervised worker pool: a supervisor keeps 3 workers (examples/pool/worker.lua) running, each in its own
-- thread. Main hands a job to each free worker through its handle; workers reply to parent(). One job is
-- poison: its worker fails, the supervisor restarts it (one_for_one) and the pool goes on.
local WORKERS = 3
local children = {}
for i = 1, WORKERS do
  children[i] = { name = "worker " .. i, script = "pool/worker.lua", args = { "worker " .. i } }
end
local pool = supervise{ strategy = "one_for_one", max_restarts = 3, within = 5, children = children }

local jobs = { 20, 21, 22, "poison", 23, 24, 25, 26 }
local next_job, settled, results, lost = 1, 0, {}, {}
local busy = {} -- worker name -> the job it is working on

-- Gives the next job, if any, to a free worker.
local function give(name, worker)
  if next_job > #jobs then return end
  busy[name] = next_job
  worker.send({ id = next_job, n = jobs[next_job] })
  next_job = next_job + 1
end

while settled < #jobs do
  local msg = mailbox()
  if msg.ready then
    -- A worker that is ready while it had a job is a restarted one: that job was lost with its predecessor.
    if busy[msg.ready] then
      lost[#lost + 1] = busy[msg.ready]
      settled = settled + 1
    end
    give(msg.ready, msg.worker)
  else
    results[#results + 1] = msg
    settled = settled + 1
    busy[msg.name] = nil
    give(msg.name, msg.worker)
  end
end

-- Replies come in whatever order the workers finish: sort them.
table.sort(results, function(a, b) return a.id < b.id end)
for _, r in ipairs(results) do print(string.format("job %d: fib(%d) = %d", r.id, r.n, r.result)) end
for _, id in ipairs(lost) do print(string.format("job %d: lost, its worker failed and was restarted", id)) end

local restarts, states = 0, {}
for _, c in ipairs(pool.children()) do
  restarts = restarts + c.restarts
  states[#states + 1] = c.state
end
print("restarts:", restarts, "states:", table.concat(states, " "))
pool.stop()
states = {}
for _, c in ipairs(pool.children()) do states[#states + 1] = c.state end
print("after stop:", table.concat(states, " "))
