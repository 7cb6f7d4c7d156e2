-- The smallest SolVM program: run it with `solvm examples/hello.lua [name]`.
local name = arg[1] or "world"
print("Hello, " .. name .. "!")

local data = json_decode(json_encode({ greeting = "hi", values = { 1, 2, 3 } }))
print("JSON round trip:", data.greeting, #data.values)

go(function()
  sleep(0.1)
  print("a goroutine says hello too")
end)
wait()
