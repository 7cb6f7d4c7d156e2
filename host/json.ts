/**
 * The json family: `json_encode`, `json_decode` and the `json_null` sentinel.
 *
 * Both directions walk Lua values with the raw C API (no wasmoon
 * conversion). Integers and floats stay distinct both ways: `1` and `1.0`
 * survive a round trip as what they were, and integers beyond 2^53 stay exact.
 *
 * @module
 */
import type { Engine } from "../runtime/engine.ts";
import { argError, checkBytes } from "../runtime/args.ts";
import {
  LUA_TBOOLEAN,
  LUA_TLIGHTUSERDATA,
  LUA_TNIL,
  LUA_TNONE,
  LUA_TNUMBER,
  LUA_TSTRING,
  LUA_TTABLE,
  type LuaState,
} from "../runtime/lua.ts";
import type { Family } from "../runtime/family.ts";
import type { LuaVM } from "../runtime/state.ts";

/** Deepest nesting of arrays and objects accepted either way. */
const MAX_DEPTH = 1000;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

// ---- small shared helpers ---------------------------------------------------

/** BigInts of small integers, made once (lua_Integer arguments are BigInts). */
const SMALL_INTS: bigint[] = [];
for (let i = 0; i < 4096; i++) SMALL_INTS.push(BigInt(i));
const bigint = (n: number): bigint => n >= 0 && n < 4096 ? SMALL_INTS[n] : BigInt(n);

// ---- encoding -----------------------------------------------------------------

/** The text of bytes that are all printable ASCII other than '"' and '\'; undefined otherwise. */
function plainAscii(bytes: Uint8Array): string | undefined {
  const n = bytes.length;
  if (n > 64) return undefined;
  for (let i = 0; i < n; i++) {
    const b = bytes[i];
    if (b < 0x20 || b > 0x7e || b === 0x22 || b === 0x5c) return undefined;
  }
  return String.fromCharCode.apply(null, bytes as unknown as number[]);
}

/** The longest JavaScript string (V8's), in UTF-16 units: more bytes than this never decode, however valid. */
const MAX_STRING_LENGTH = 536_870_888;

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new Error(
      bytes.length > MAX_STRING_LENGTH
        ? "json_encode: a string is too long (over 512 MiB)"
        : "json_encode: invalid UTF-8 in string",
    );
  }
}

/** Bytes of a string quoted in one piece: V8 aborts the process (not an exception) quoting one of some 256 MiB. */
const QUOTE_CHUNK = 16 * 1024 * 1024;

/** A Lua string's bytes as a JSON string literal; invalid UTF-8 is an error. */
function quoteBytes(bytes: Uint8Array): string {
  const ascii = plainAscii(bytes);
  if (ascii !== undefined) return `"${ascii}"`;
  if (bytes.length <= QUOTE_CHUNK) return JSON.stringify(decodeUtf8(bytes));
  const parts = ['"'];
  for (let start = 0; start < bytes.length;) {
    const limit = Math.min(start + QUOTE_CHUNK, bytes.length);
    let end = limit;
    while (end < bytes.length && end > start && (bytes[end] & 0xc0) === 0x80) end--; // not inside a character
    if (end === start) end = limit; // no character starts in the piece: it is not UTF-8, as decoding says
    parts.push(JSON.stringify(decodeUtf8(bytes.subarray(start, end))).slice(1, -1));
    start = end;
  }
  parts.push('"');
  return joinText(parts);
}

/** `parts` joined; JavaScript strings hold at most about 512 MiB, which a JSON text may not fit. */
function joinText(parts: string[]): string {
  try {
    return parts.join("");
  } catch (e) {
    if (e instanceof RangeError) throw new Error("json_encode: the JSON text is too long (over 512 MiB)");
    throw e;
  }
}

/** A float in JS's shortest round-trip form, always readable back as a float. */
function formatFloat(d: number): string {
  if (d !== d) throw new Error("json_encode: cannot encode NaN");
  if (d === Infinity) throw new Error("json_encode: cannot encode inf");
  if (d === -Infinity) throw new Error("json_encode: cannot encode -inf");
  if (d === 0) return Object.is(d, -0) ? "-0.0" : "0.0";
  const s = String(d);
  return s.includes(".") || s.includes("e") ? s : s + ".0";
}

/** An object key of a table being encoded: its text and how to fetch its value again. */
interface Key {
  text: string;
  /** `text` remapped so that comparing it as a JavaScript string follows Lua's byte order. */
  order: string;
  quoted: string; // the JSON string literal
  kind: number; // KEY_STRING, KEY_INTEGER or KEY_FLOAT
  integer: bigint;
  float: number;
  /** The value's JSON text when it is not a table (read during the key scan, so not fetched again). */
  json: string | undefined;
}
const KEY_STRING = 0, KEY_INTEGER = 1, KEY_FLOAT = 2;

const byText = (a: Key, b: Key) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0);

/**
 * `text` with its UTF-16 units from U+D800 up remapped so that comparing
 * the result unit by unit follows code points, hence UTF-8 bytes: JavaScript
 * puts surrogates (characters past U+FFFF) before U+E000..U+FFFF, Lua after.
 */
function byteOrder(text: string): string {
  if (!/[\ud800-\uffff]/.test(text)) return text;
  return text.replace(/[\ud800-\uffff]/g, (c) => {
    const u = c.charCodeAt(0);
    return String.fromCharCode(u >= 0xe000 ? u - 0x800 : u + 0x2000);
  });
}

/** One `json_encode` call (state kept per call: a `__gc` metamethod may re-enter). */
/** Tables json_encode writes before it remembers those it meets, to write one met again from its text. */
const UNTRACKED_TABLES = 1 << 18;

class Encoder {
  out: string[] = [];
  readonly #path = new Set<number>();
  readonly #newlines: string[] = [];
  /** Tables met so far, and the text of each met twice (by depth too when pretty-printing, which indents by it). */
  readonly #seen = new Set<number>();
  readonly #texts = new Map<number | string, string>();
  #tables = 0;

  constructor(
    readonly vm: LuaVM,
    readonly L: LuaState,
    readonly gap: string,
    readonly emptyArray: number,
    readonly channel: number,
    readonly memoryLimit: number,
  ) {
  }

  /** "\n" plus `depth` indents (pretty printing only). */
  #newline(depth: number): string {
    return this.#newlines[depth] ??= "\n" + this.gap.repeat(depth);
  }

  /** Appends the value at absolute index `idx`. */
  value(idx: number, depth: number): void {
    if (this.vm.api.lua_type(this.L, idx) === LUA_TTABLE) this.#table(idx, depth + 1);
    else this.out.push(this.#scalar(idx));
  }

  /** The JSON text of the value at `idx`, which is not a table. */
  #scalar(idx: number): string {
    const { vm, L } = this;
    const api = vm.api;
    switch (api.lua_type(L, idx)) {
      case LUA_TNIL:
        return "null";
      case LUA_TBOOLEAN:
        return api.lua_toboolean(L, idx) ? "true" : "false";
      case LUA_TNUMBER:
        return this.#number(idx);
      case LUA_TSTRING:
        return quoteBytes(vm.viewBytes(L, idx));
      case LUA_TLIGHTUSERDATA:
        if (api.lua_topointer(L, idx) === 0) return "null"; // json_null
    }
    throw new Error(`json_encode: cannot encode a value of type ${vm.typeName(L, idx)}`);
  }

  #number(idx: number): string {
    const api = this.vm.api;
    const d = api.lua_tonumberx(this.L, idx, 0);
    if (!api.lua_isinteger(this.L, idx)) return formatFloat(d);
    // Exact as a double below 2^53; beyond, read the int64 (a BigInt).
    return Number.isSafeInteger(d) ? String(d) : String(api.lua_tointegerx(this.L, idx, 0));
  }

  #table(idx: number, depth: number): void {
    const pointer = this.vm.api.lua_topointer(this.L, idx);
    if (this.#path.has(pointer)) throw new Error("json_encode: cannot encode a cyclic table");
    // Tables met are remembered only past the many a large text has anyway, which then pays nothing for it.
    if (++this.#tables <= UNTRACKED_TABLES) return this.#write(idx, depth, pointer);
    if (!this.#seen.has(pointer)) {
      this.#seen.add(pointer);
      return this.#write(idx, depth, pointer);
    }
    // Met before: written from its text, made once ({ t, t } nested 30 deep would be 2^30 tables to write).
    const key = this.gap ? `${pointer} ${depth}` : pointer;
    let text = this.#texts.get(key);
    if (text === undefined) {
      const outer = this.out;
      this.out = [];
      try {
        this.#write(idx, depth, pointer);
        text = this.text();
      } finally {
        this.out = outer;
      }
      this.#texts.set(key, text);
    }
    this.out.push(text);
  }

  /**
   * What was written, joined; measured first, since the join of a text past
   * what the Lua state may hold would take that memory before Lua refused it.
   */
  text(): string {
    if (this.out.reduce((length, part) => length + part.length, 0) > this.memoryLimit) {
      const mib = Math.round(this.memoryLimit / 2 ** 20);
      throw new Error(
        `json_encode: the text would take more than ${mib} MiB, the memory this Lua state may use (a table that ` +
          "appears in several places is written once for each)",
      );
    }
    return joinText(this.out);
  }

  /** Writes the table at `idx` (whose address is `pointer`) out. */
  #write(idx: number, depth: number, pointer: number): void {
    const { vm, L } = this;
    const api = vm.api;
    if (this.#hasMetatable(idx, this.channel)) throw new Error("json_encode: cannot encode a channel");
    if (depth > MAX_DEPTH) throw new Error(`json_encode: nesting deeper than ${MAX_DEPTH} levels`);
    if (!api.lua_checkstack(L, 4)) throw new Error("json_encode: Lua stack overflow");
    this.#path.add(pointer);
    const n = Number(api.lua_rawlen(L, idx));
    if (vm.isList(L, idx, n)) this.#array(idx, n, depth);
    else this.#object(idx, depth);
    this.#path.delete(pointer);
  }

  #array(idx: number, n: number, depth: number): void {
    const { L, out, gap } = this;
    const api = this.vm.api;
    out.push("[");
    for (let i = 1; i <= n; i++) {
      if (i > 1) out.push(",");
      if (gap) out.push(this.#newline(depth));
      api.lua_rawgeti(L, idx, bigint(i));
      this.value(api.lua_gettop(L), depth);
      api.lua_settop(L, -2);
    }
    if (gap) out.push(this.#newline(depth - 1));
    out.push("]");
  }

  #object(idx: number, depth: number): void {
    const { vm, L, out, gap } = this;
    const api = vm.api;
    const keys = this.#keys(idx);
    if (keys.length === 0) {
      out.push(this.#isEmptyArray(idx) ? "[]" : "{}");
      return;
    }
    if (keys.length > 1) {
      keys.sort(byText);
      for (let i = 1; i < keys.length; i++) {
        if (keys[i].text === keys[i - 1].text) {
          throw new Error(`json_encode: table has two keys that both encode as ${JSON.stringify(keys[i].text)}`);
        }
      }
    }
    const colon = gap ? ": " : ":";
    out.push("{");
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      if (i > 0) out.push(",");
      if (gap) out.push(this.#newline(depth));
      out.push(key.quoted, colon);
      if (key.json !== undefined) {
        out.push(key.json);
        continue;
      }
      // Fetch a table again by its key (valid UTF-8 text gives back the same bytes).
      if (key.kind === KEY_STRING) vm.pushString(L, key.text);
      else if (key.kind === KEY_INTEGER) api.lua_pushinteger(L, key.integer);
      else api.lua_pushnumber(L, key.float);
      api.lua_rawget(L, idx);
      this.value(api.lua_gettop(L), depth);
      api.lua_settop(L, -2);
    }
    if (gap) out.push(this.#newline(depth - 1));
    out.push("}");
  }

  /**
   * The keys of the table at `idx`. Number keys are formatted in JS from
   * their value: lua_tolstring on a key would convert it in place and break
   * lua_next.
   */
  #keys(idx: number): Key[] {
    const { vm, L } = this;
    const api = vm.api;
    const keys: Key[] = [];
    api.lua_pushnil(L);
    while (api.lua_next(L, idx)) {
      const json = api.lua_type(L, -1) === LUA_TTABLE ? undefined : this.#scalar(api.lua_gettop(L));
      const type = api.lua_type(L, -2);
      if (type === LUA_TSTRING) {
        const bytes = vm.viewBytes(L, -2);
        const ascii = plainAscii(bytes);
        const text = ascii ?? decodeUtf8(bytes);
        const quoted = ascii !== undefined
          ? `"${ascii}"`
          : text.length > QUOTE_CHUNK
          ? quoteBytes(bytes)
          : JSON.stringify(text);
        const order = ascii ?? byteOrder(text);
        keys.push({ text, order, quoted, kind: KEY_STRING, integer: 0n, float: 0, json });
      } else if (type === LUA_TNUMBER && api.lua_isinteger(L, -2)) {
        const integer = api.lua_tointegerx(L, -2, 0);
        const text = String(integer);
        keys.push({ text, order: text, quoted: `"${text}"`, kind: KEY_INTEGER, integer, float: 0, json });
      } else if (type === LUA_TNUMBER) {
        const float = api.lua_tonumberx(L, -2, 0);
        const text = formatFloat(float);
        keys.push({ text, order: text, quoted: `"${text}"`, kind: KEY_FLOAT, integer: 0n, float, json });
      } else {
        throw new Error(`json_encode: cannot encode a table key of type ${vm.typeName(L, -2)}`);
      }
      api.lua_settop(L, -2);
    }
    return keys;
  }

  /** True when the table at `idx` carries the metatable json_decode gives empty arrays. */
  #isEmptyArray(idx: number): boolean {
    return this.#hasMetatable(idx, this.emptyArray);
  }

  /** True when the metatable of the table at `idx` is the one at address `mt`. */
  #hasMetatable(idx: number, mt: number): boolean {
    const api = this.vm.api;
    if (!api.lua_getmetatable(this.L, idx)) return false;
    const found = api.lua_topointer(this.L, -1);
    api.lua_settop(this.L, -2);
    return found === mt;
  }
}

// ---- decoding -----------------------------------------------------------------

/*
 * JSON.parse alone loses two things: float syntax with an integral value
 * ("1.0", "1e2" come back as 1 and 100, which would become Lua integers)
 * and integers beyond 2^53. A scan finds such number tokens (rare); without
 * them plain JSON.parse is exact: every integral number it returns was an
 * integer token of at most 2^53. With them, the tokens are rewritten as
 * strings "\u0000<token>" that the pusher turns back into numbers, unless
 * the text already holds "\u0000": then a reviver reads each number's
 * source text (V8's JSON.parse source text access), about 10 times slower.
 */

/** Index just past the string literal starting at `i`, or the text's length if unterminated. */
function stringEnd(text: string, i: number): number {
  let j = text.indexOf('"', i + 1);
  while (j > 0) {
    let k = j - 1;
    while (text.charCodeAt(k) === 0x5c) k--; // a quote after an odd run of backslashes is escaped
    if ((j - 1 - k) % 2 === 0) return j + 1;
    j = text.indexOf('"', j + 1);
  }
  return text.length;
}

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

/** RFC 8259's number grammar. */
const JSON_NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;

/**
 * Start and end offsets (flat pairs) of the number tokens JSON.parse would
 * misread: float syntax with an integral value, integers beyond 2^53; and
 * the start of the first token beyond a float's range (1e400), or -1.
 * Exact for valid JSON; a malformed number token is never listed.
 */
function ambiguousNumbers(text: string): { spans: number[]; huge: number } {
  const spans: number[] = [];
  let huge = -1;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      i = stringEnd(text, i);
    } else if (c === 0x2d || isDigit(c)) {
      const start = i++;
      while (i < n && isDigit(text.charCodeAt(i))) i++;
      let float = false;
      if (text.charCodeAt(i) === 0x2e) {
        float = true;
        for (i++; i < n && isDigit(text.charCodeAt(i)); i++);
      }
      const e = text.charCodeAt(i);
      if (e === 0x65 || e === 0x45) {
        float = true;
        i++;
        if (text.charCodeAt(i) === 0x2b || text.charCodeAt(i) === 0x2d) i++;
        while (i < n && isDigit(text.charCodeAt(i))) i++;
      }
      // Up to 15 digits is always safe; only longer integer tokens need a look.
      if (float || i - start > 15) {
        const token = text.slice(start, i);
        const value = Number(token);
        const finite = Number.isFinite(value);
        const misread = !finite ? huge < 0 : float ? Number.isInteger(value) : !Number.isSafeInteger(value);
        // A malformed token stays in place for JSON.parse to reject, as it would without the rewrite.
        if (misread && JSON_NUMBER.test(token)) {
          if (finite) spans.push(start, i);
          else huge = start;
        }
      }
    } else {
      i++;
    }
  }
  return { spans, huge };
}

/** `text` with each span replaced by the string "\u0000<token>". */
function markNumbers(text: string, spans: number[]): string {
  const parts: string[] = [];
  let at = 0;
  for (let s = 0; s < spans.length; s += 2) {
    parts.push(text.slice(at, spans[s]), '"\\u0000', text.slice(spans[s], spans[s + 1]), '"');
    at = spans[s + 1];
  }
  parts.push(text.slice(at));
  return parts.join("");
}

/** A float whose value is integral, as the reviver returns it. */
class Float {
  constructor(readonly value: number) {}
}

/** JSON.parse reviver: integral floats become Float, unsafe integers BigInt (or a float beyond int64). */
function reviveNumber(_key: string, value: unknown, context?: { source?: string }): unknown {
  if (typeof value !== "number" || !Number.isInteger(value)) return value;
  const source = context!.source!;
  return /[.eE]/.test(source) ? new Float(value) : Number.isSafeInteger(value) ? value : integerOf(source, value);
}

/** An integer token beyond 2^53: exact as BigInt within int64, else the float (as Lua's lexer does). */
function integerOf(source: string, value: number): bigint | Float {
  const n = BigInt(source);
  return n >= INT64_MIN && n <= INT64_MAX ? n : new Float(value);
}

/** Where a text stops being JSON: the index of the first character that cannot continue it, and in what. */
interface SyntaxFault {
  at: number;
  context: string;
}

const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const isHex = (c: number) => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
/** The characters allowed after a backslash in a string: " \ / b f n r t u. */
const ESCAPES = new Set([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74, 0x75]);

/**
 * The first spot where `text` breaks RFC 8259's grammar, or undefined when
 * it has none. Run only after JSON.parse refused the text, to say where.
 */
function syntaxFault(text: string): SyntaxFault | undefined {
  const n = text.length;
  const open: number[] = []; // 0x5b or 0x7b for each array or object entered
  let i = 0;
  const fault = (context = ""): SyntaxFault => ({ at: i, context });
  const skipSpace = () => {
    while (isSpace(text.charCodeAt(i))) i++;
  };
  const digits = () => {
    const start = i;
    while (isDigit(text.charCodeAt(i))) i++;
    return i > start;
  };
  const string = (): SyntaxFault | undefined => {
    for (i++; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return undefined;
      }
      if (c < 0x20) return fault(" in a string");
      if (c !== 0x5c) continue;
      const escape = text.charCodeAt(++i);
      if (!ESCAPES.has(escape)) return fault(" after a backslash");
      if (escape === 0x75) {
        for (let k = 0; k < 4; k++) if (!isHex(text.charCodeAt(++i))) return fault(" in a \\u escape");
      }
    }
    return fault();
  };
  const number = (): SyntaxFault | undefined => {
    if (text.charCodeAt(i) === 0x2d) i++;
    if (text.charCodeAt(i) === 0x30) i++;
    else if (!digits()) return fault();
    if (text.charCodeAt(i) === 0x2e) {
      i++;
      if (!digits()) return fault();
    }
    const e = text.charCodeAt(i);
    if (e === 0x65 || e === 0x45) {
      i++;
      const sign = text.charCodeAt(i);
      if (sign === 0x2b || sign === 0x2d) i++;
      if (!digits()) return fault();
    }
    return undefined;
  };
  const word = (w: string): SyntaxFault | undefined => {
    for (let k = 0; k < w.length; k++, i++) if (text.charCodeAt(i) !== w.charCodeAt(k)) return fault();
    return undefined;
  };
  /** An object key and its colon. */
  const key = (): SyntaxFault | undefined => {
    skipSpace();
    if (text.charCodeAt(i) !== 0x22) return fault();
    const failed = string();
    if (failed !== undefined) return failed;
    skipSpace();
    if (text.charCodeAt(i) !== 0x3a) return fault();
    i++;
    return undefined;
  };
  // Each turn reads one value (after a key and colon inside an object), then the commas and closings after it.
  for (;;) {
    skipSpace();
    const c = text.charCodeAt(i);
    let failed: SyntaxFault | undefined;
    if (c === 0x5b || c === 0x7b) {
      i++;
      skipSpace();
      if (text.charCodeAt(i) === c + 2) i++; // "]" or "}": empty
      else {
        open.push(c);
        if (c === 0x7b && (failed = key()) !== undefined) return failed;
        continue;
      }
    } else if (c === 0x22) failed = string();
    else if (c === 0x2d || isDigit(c)) failed = number();
    else if (c === 0x74) failed = word("true");
    else if (c === 0x66) failed = word("false");
    else if (c === 0x6e) failed = word("null");
    else return fault();
    if (failed !== undefined) return failed;
    for (;;) {
      skipSpace();
      if (open.length === 0) return i < n ? fault(" after the JSON value") : undefined;
      const container = open[open.length - 1];
      const next = text.charCodeAt(i);
      if (next === container + 2) {
        open.pop();
        i++;
        continue;
      }
      if (next !== 0x2c) return fault();
      i++;
      if (container === 0x7b && (failed = key()) !== undefined) return failed;
      break;
    }
  }
}

/** " at byte N" (from 1, as string.sub counts; `skipped` bytes came before `text`) for index `at`, with line and column when it has lines. */
function position(text: string, at: number, skipped: number): string {
  let bytes = skipped, line = 1, column = 1;
  for (let k = 0; k < at; k++) {
    const c = text.charCodeAt(k);
    bytes += c < 0x80 ? 1 : c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 2 : 3;
    if (c === 0x0a) {
      line++;
      column = 1;
    } else if (c < 0xdc00 || c > 0xdfff) column++; // a low surrogate ends a character already counted
  }
  return ` at byte ${bytes + 1}` + (text.includes("\n") ? ` (line ${line}, column ${column})` : "");
}

/** The error for `text`, which JSON.parse refused with `e`: what is wrong and where. */
function parseError(text: string, e: unknown, skipped = 0): Error {
  const fault = syntaxFault(text);
  if (fault === undefined) return new Error(`json_decode: ${e instanceof Error ? e.message : e}`);
  const { at, context } = fault;
  if (at >= text.length) return new Error(`json_decode: unexpected end of text${position(text, at, skipped)}`);
  const c = text.codePointAt(at)!;
  // Other than printable ASCII is often invisible (a tab, a byte-order mark, a no-break space): name its code point.
  const shown = c > 0x20 && c < 0x7f
    ? `'${String.fromCharCode(c)}'`
    : `U+${c.toString(16).toUpperCase().padStart(4, "0")}`;
  return new Error(`json_decode: unexpected ${shown}${context}${position(text, at, skipped)}`);
}

/** Index of the first byte of the first ill-formed sequence in `bytes` (as TextDecoder's fatal mode judges), or -1. */
function firstInvalidUtf8(bytes: Uint8Array): number {
  const n = bytes.length;
  for (let i = 0; i < n;) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    // The second byte's range excludes overlong forms, surrogates and code points past U+10FFFF.
    let size = 4, low = 0x80, high = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) size = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      size = 3;
      if (b === 0xe0) low = 0xa0;
      else if (b === 0xed) high = 0x9f;
    } else if (b === 0xf0) low = 0x90;
    else if (b === 0xf4) high = 0x8f;
    else if (b < 0xf1 || b > 0xf3) return i;
    if (i + size > n || bytes[i + 1] < low || bytes[i + 1] > high) return i;
    for (let k = 2; k < size; k++) if ((bytes[i + k] & 0xc0) !== 0x80) return i;
    i += size;
  }
  return -1;
}

/** JSON for both directions, bound to one engine. */
class Json {
  readonly #vm: LuaVM;
  /** Registry reference and address of the metatable marking decoded empty arrays. */
  readonly #emptyArrayRef: number;
  readonly #emptyArray: number;
  /** Address of the metatable of channel objects (the scheduler keeps it alive). */
  readonly #channel: number;
  readonly #memoryLimit: number;

  constructor(engine: Engine) {
    const { vm, L } = engine;
    this.#vm = vm;
    this.#memoryLimit = engine.memoryLimit;
    vm.api.lua_createtable(L, 0, 0);
    this.#emptyArray = vm.api.lua_topointer(L, -1); // tables never move; the ref keeps it alive
    this.#emptyArrayRef = vm.ref(L);
    engine.pushSchedulerField(L, "channel_metatable");
    this.#channel = vm.api.lua_topointer(L, -1);
    vm.api.lua_settop(L, -2);
  }

  /** `json_encode(value [, indent])`: JSON text; `indent` (spaces or a string) pretty-prints. */
  encode(L: LuaState): number {
    const vm = this.#vm;
    const api = vm.api;
    const top = api.lua_gettop(L);
    if (top < 1) throw argError(1, "json_encode", "value expected");
    let gap = "";
    if (top >= 2) {
      // As JSON.stringify: at most 10 spaces, or the first 10 characters of a string of whitespace.
      const type = api.lua_type(L, 2);
      const spaces = (n: number) => " ".repeat(Math.max(0, Math.min(10, Math.floor(n))));
      if (type === LUA_TNUMBER) gap = spaces(api.lua_tonumberx(L, 2, 0));
      else if (type === LUA_TSTRING) {
        const text = vm.toText(L, 2);
        // A number in a string (an indent width from arg, say) counts as that number, as Lua's own functions take it.
        if (api.lua_isnumber(L, 2)) gap = spaces(api.lua_tonumberx(L, 2, 0));
        else if (/^[ \t\n\r]*$/.test(text)) gap = text.slice(0, 10);
        else {
          throw argError(
            2,
            "json_encode",
            `indent must be a number of spaces or a string of whitespace, got "${text}"`,
          );
        }
      } else if (type !== LUA_TNIL && type !== LUA_TNONE) {
        throw argError(2, "json_encode", `number or string expected, got ${vm.typeName(L, 2)}`);
      }
    }
    const encoder = new Encoder(vm, L, gap, this.#emptyArray, this.#channel, this.#memoryLimit);
    encoder.value(1, 0);
    vm.pushString(L, encoder.text());
    return 1;
  }

  /** `json_decode(text)`: the Lua value; null becomes `json_null`, `[]` an array-marked table. */
  decode(L: LuaState): number {
    const vm = this.#vm;
    const bytes = vm.api.lua_type(L, 1) === LUA_TSTRING ? vm.viewBytes(L, 1) : checkBytes(vm, L, 1, "json_decode");
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      throw new Error(
        bytes.length > MAX_STRING_LENGTH
          ? "json_decode: the text is too long (over 512 MiB)"
          : `json_decode: invalid UTF-8 at byte ${firstInvalidUtf8(bytes) + 1}`,
      );
    }
    // A byte-order mark before the text (Notepad writes one) is ignored, as RFC 8259 lets a parser do.
    const skipped = text.charCodeAt(0) === 0xfeff ? 3 : 0;
    if (skipped) text = text.slice(1);
    const { spans, huge } = ambiguousNumbers(text);
    const marked = spans.length > 0 && !text.includes("\\u0000");
    let value: unknown;
    try {
      if (spans.length === 0) value = JSON.parse(text);
      else if (marked) value = JSON.parse(markNumbers(text, spans));
      else value = JSON.parse(text, reviveNumber);
    } catch (e) {
      throw parseError(text, e, skipped);
    }
    // JSON.parse reads it as Infinity, which json_encode refuses: refused here with its place, as Go's decoder does.
    if (huge >= 0) throw new Error(`json_decode: number out of range${position(text, huge, skipped)}`);
    this.#push(L, value, marked ? text : undefined, 0);
    return 1;
  }

  /**
   * Pushes a parsed value. An integral number is an integer (integral
   * floats arrive as Float, or as "\u0000<token>" strings when the text
   * `marked` was parsed with its number tokens rewritten so).
   */
  #push(L: LuaState, v: unknown, marked: string | undefined, depth: number): void {
    const vm = this.#vm;
    const api = vm.api;
    switch (typeof v) {
      case "string":
        if (marked !== undefined && v.charCodeAt(0) === 0) this.#pushToken(L, v.slice(1));
        else vm.pushString(L, v);
        return;
      case "number":
        if (Number.isInteger(v)) api.lua_pushinteger(L, bigint(v));
        else api.lua_pushnumber(L, v);
        return;
      case "bigint":
        api.lua_pushinteger(L, v);
        return;
      case "boolean":
        api.lua_pushboolean(L, v ? 1 : 0);
        return;
    }
    if (v === null) {
      api.lua_pushlightuserdata(L, 0); // json_null
      return;
    }
    if (v instanceof Float) {
      api.lua_pushnumber(L, v.value);
      return;
    }
    if (++depth > MAX_DEPTH) throw new Error(`json_decode: nesting deeper than ${MAX_DEPTH} levels`);
    if (!api.lua_checkstack(L, 3)) throw new Error("json_decode: Lua stack overflow");
    if (Array.isArray(v)) {
      const n = v.length;
      api.lua_createtable(L, n, 0);
      if (n === 0) {
        vm.pushRef(L, this.#emptyArrayRef);
        api.lua_setmetatable(L, -2);
        return;
      }
      for (let i = 0; i < n; i++) {
        this.#push(L, v[i], marked, depth);
        api.lua_rawseti(L, -2, bigint(i + 1));
      }
      return;
    }
    const object = v as Record<string, unknown>;
    const keys = Object.keys(object);
    api.lua_createtable(L, 0, keys.length);
    for (const key of keys) {
      // A rewritten number token as a key: the text had a number where a property name must be.
      if (marked !== undefined && key.charCodeAt(0) === 0) throw parseError(marked, undefined);
      vm.pushString(L, key); // binary-safe: keys may hold NUL
      this.#push(L, object[key], marked, depth);
      api.lua_rawset(L, -3);
    }
  }

  /** Pushes a number token found by ambiguousNumbers. */
  #pushToken(L: LuaState, token: string): void {
    const api = this.#vm.api;
    const value = Number(token);
    if (/[.eE]/.test(token)) api.lua_pushnumber(L, value);
    else {
      const n = integerOf(token, value);
      if (n instanceof Float) api.lua_pushnumber(L, n.value);
      else api.lua_pushinteger(L, n);
    }
  }
}

/** The json family's registration table. */
export const json = (engine: Engine): Family => {
  const codec = new Json(engine);
  // json_null is a value, not a function, so it is set here: a NULL light userdata.
  engine.vm.api.lua_pushlightuserdata(engine.L, 0);
  engine.vm.api.lua_setglobal(engine.L, engine.vm.cstr("json_null"));
  return {
    json_encode: (L) => codec.encode(L),
    json_decode: (L) => codec.decode(L),
  };
};
