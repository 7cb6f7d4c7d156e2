-- Start-up benchmark: the smallest script, for `solvm` against plain wasmoon (bench/peers/plain_wasmoon_hi.ts).
print("hi")
