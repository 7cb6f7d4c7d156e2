/**
 * The metatable that lets Lua read HTTP headers in any casing
 * (`headers["Content-Type"]` finds "content-type"), shared by the HTTP
 * client and server families: compiled once per engine.
 *
 * @module
 */
import type { Engine } from "../runtime/engine.ts";

const HEADERS_META_LUA = `
local lower, rawget = string.lower, rawget
return { __index = function(t, k) if type(k) == "string" then return rawget(t, lower(k)) end end }`;

const compiled = new WeakMap<Engine, number>();

/**
 * The registry reference of the case-insensitive headers metatable of `engine`.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { Engine } from "../runtime/engine.ts";
 * import { headersMetatable } from "./_headers.ts";
 * const engine = await Engine.create();
 * ok(headersMetatable(engine) === headersMetatable(engine));
 * engine.close();
 * ```
 */
export function headersMetatable(engine: Engine): number {
  let ref = compiled.get(engine);
  if (ref === undefined) {
    ref = engine.compileLua("http headers", HEADERS_META_LUA);
    compiled.set(engine, ref);
  }
  return ref;
}
