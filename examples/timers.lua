-- Timers and cron jobs. Callbacks run as goroutines, so they may block.

-- A timeout runs once, later; clear_timeout cancels one that has not fired.
set_timeout(function() print("timeout: fired after 0.1 s") end, 0.1)
local never = set_timeout(function() print("not printed") end, 0.2)
print("timeout cancelled:", clear_timeout(never))

-- An interval runs until it is cleared; this one stops itself after 3 ticks.
local ticks, interval = 0, nil
interval = set_interval(function()
  ticks = ticks + 1
  print("interval: tick " .. ticks)
  if ticks == 3 then print("interval cleared:", clear_interval(interval)) end
end, 0.25)

-- Cron takes six fields (seconds first) or the usual five.
local nightly = cron("0 30 2 * * *", function() print("02:30:00 every night") end)
local weekdays = cron("0 9 * * 1-5", function() print("09:00 on weekdays") end)
print("cron jobs cleared:", clear_cron(nightly), clear_cron(weekdays), "again:", clear_cron(nightly))

-- An invalid expression raises an error that quotes it.
local ok, err = pcall(cron, "every day", function() end)
print(ok, err:match('^cron: invalid expression "every day"'))

-- The script ends once no timeout, interval or cron job is left.
