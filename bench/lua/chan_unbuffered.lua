-- Channel benchmark: 1,000,000 numbers through chan(name) (no buffer), producer in go(), consumer in main.
dofile(arg[0]:match("^(.*/)") .. "channel_rounds.lua")("chan_unbuffered")
