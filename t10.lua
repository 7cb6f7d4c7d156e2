local t = os.clock()
local c, e = tcp_connect("127.0.0.1", 18601)
print(c, e, os.clock() - t)
