-- Channel benchmark: 1,000,000 numbers through chan(name, 64), producer in go(), consumer in main.
dofile(arg[0]:match("^(.*/)") .. "channel_rounds.lua")("chan_buffered", 64)
