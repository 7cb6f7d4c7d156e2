/**
 * Puts JavaScript functions into a WebAssembly function table so C code
 * (Lua) can call them through a function pointer. A JavaScript function
 * cannot sit in a table directly: each is wrapped by a tiny module that
 * imports it and exports it back as a WebAssembly function.
 *
 * @module
 */

const I32 = 0x7f;

/** The signatures SolVM uses, in Emscripten's notation: return type, then parameters. */
export type Signature = "ii" | "iiii" | "iiiii" | "vii";

const wrappers = new Map<Signature, WebAssembly.Module>();

function section(id: number, bytes: number[]): number[] {
  return [id, bytes.length, ...bytes];
}

function wrapperModule(sig: Signature): WebAssembly.Module {
  let module = wrappers.get(sig);
  if (module) return module;
  const results = sig[0] === "v" ? [] : [I32];
  const params = [...sig.slice(1)].map(() => I32);
  const type = [0x01, 0x60, params.length, ...params, results.length, ...results];
  const name = [0x01, 0x66]; // "f"
  const imports = [0x01, 0x01, 0x6d, ...name, 0x00, 0x00]; // import "m" "f" (func type 0)
  const exports = [0x01, ...name, 0x00, 0x00]; // export "f" = func 0
  const bytes = new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00, // magic and version
    ...section(1, type),
    ...section(2, imports),
    ...section(7, exports),
  ]);
  module = new WebAssembly.Module(bytes);
  wrappers.set(sig, module);
  return module;
}

/**
 * A growable function table with free-slot reuse.
 *
 * ```ts
 * import { FunctionTable } from "./_wasm_functions.ts";
 * const table = new FunctionTable(new WebAssembly.Table({ element: "anyfunc", initial: 1 }));
 * const slot = table.add((x: number) => x + 1, "ii");
 * table.remove(slot);
 * ```
 */
export class FunctionTable {
  readonly #free: number[] = [];

  constructor(readonly table: WebAssembly.Table) {}

  /** Adds `fn` with signature `sig`; returns its index (the C function pointer). */
  add(fn: (...args: number[]) => number | void, sig: Signature): number {
    const wrapped = new WebAssembly.Instance(wrapperModule(sig), { m: { f: fn } }).exports.f as CallableFunction;
    const index = this.#free.pop() ?? this.table.grow(1);
    this.table.set(index, wrapped);
    return index;
  }

  /** Frees the slot of a function added with {@linkcode add}. */
  remove(index: number): void {
    this.table.set(index, null);
    this.#free.push(index);
  }
}
