/**
 * Start-up peer for bench/lua/hi.lua: plain wasmoon (no SolVM worker, scheduler
 * or families) creating one engine and printing "hi". Run from the project root
 * so that the import map resolves "wasmoon".
 *
 * @module
 */
import { LuaFactory } from "wasmoon";

const engine = await new LuaFactory().createEngine();
await engine.doString('print("hi")');
