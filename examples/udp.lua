-- Send datagrams to ourselves over UDP.
local inbox = assert(udp_recvfrom(0, "127.0.0.1")) -- port 0: any free port, see inbox.port

assert(udp_sendto("127.0.0.1", inbox.port, "ping"))
local msg = inbox.receive() -- { data = ..., addr = ..., port = ... }
print("got", msg.data, "from", msg.addr)

assert(udp_sendto("localhost", inbox.port, "pong"))
print("got", receive(inbox).data) -- the receiver is a channel too

inbox.close() -- stops receiving; without it the script would keep listening
print("after close:", inbox.receive())
