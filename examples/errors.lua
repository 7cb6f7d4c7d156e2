-- A failing goroutine never stops the others; on_error sees every failure.
on_error(function(err, trace)
  print("caught: " .. err)
end)

go(function() error("worker 1 failed") end)
go(function()
  sleep(0.02)
  print("worker 2 finished")
end)
wait()

local ok, err = pcall(json_decode, "{not json")
print("pcall caught:", ok, err ~= nil)
