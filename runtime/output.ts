/**
 * Buffered standard output. The buffer is a SharedArrayBuffer so that the
 * CLI can still write out what a script's worker left in it after stopping
 * a runaway worker.
 *
 * @module
 */

/** Where `print` output goes: buffered writes, flushed before the engine waits. */
export interface OutputSink {
  /** Takes `bytes` of output (they may wait in a buffer). */
  write(bytes: Uint8Array): void;
  /**
   * Writes out what waits in the buffer; a whole-lines buffer keeps a line
   * begun unless `partialLine` (an explicit `io.flush()`: a prompt).
   */
  flush(partialLine?: boolean): void;
  /** When what is written goes out, as C's setvbuf sets (`io.stdout:setvbuf`); a sink without it keeps its own way. */
  setBuffering?(mode: BufferMode): void;
}

/** As C's setvbuf modes: "no" writes at once, "line" at each line end, "full" when the buffer fills or is flushed. */
export type BufferMode = "no" | "line" | "full";

/** Int32 slots: the bytes buffered, and 1 when only whole lines go out before the end (several scripts at once). */
const HEADER = 8;

/** The longest line a whole-lines buffer grows to keep whole; a longer one goes out in pieces. */
const LONGEST_WHOLE_LINE = 16 << 20;

/**
 * A buffer for {@linkcode sharedOutput} and {@linkcode drainSharedOutput}.
 * With `wholeLines`, a line begun stays buffered until it ends or the
 * output is drained, so lines of scripts running at once do not mix; the
 * buffer grows for a line longer than `size`.
 */
export function newSharedOutput(wholeLines = false, size = 1 << 16): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(HEADER + size, wholeLines ? { maxByteLength: HEADER + LONGEST_WHOLE_LINE } : {});
  new Int32Array(buffer, 0, 2)[1] = wholeLines ? 1 : 0;
  return buffer;
}

let readerGone = false;

/** Whether standard output's reader has gone (`solvm x.lua | head`): what is written from then on is dropped. */
export function stdoutClosed(): boolean {
  return readerGone;
}

let failure: Error | undefined;

/**
 * The last failure to write standard output (a full disk, a failing
 * device), taken: the bytes were lost, as C's are, and Lua's `io.write`
 * and `io.flush` return it as theirs.
 */
export function takeStdoutFailure(): Error | undefined {
  const taken = failure;
  failure = undefined;
  return taken;
}

/**
 * Writes `text` to standard error, all of it; a failing stderr (closed, a
 * full disk) drops it, as C's unchecked fprintf(stderr) would: there is
 * nowhere left to report the failure.
 *
 * ```ts
 * import { writeStderr } from "./output.ts";
 * writeStderr("a message\n");
 * ```
 */
export function writeStderr(text: string): void {
  const bytes = new TextEncoder().encode(text);
  try {
    for (let off = 0; off < bytes.length;) off += Deno.stderr.writeSync(bytes.subarray(off));
  } catch {
    // Dropped: see above.
  }
}

function writeAll(bytes: Uint8Array): void {
  let off = 0;
  try {
    while (off < bytes.length && !readerGone) off += Deno.stdout.writeSync(bytes.subarray(off));
  } catch (e) {
    if (e instanceof Deno.errors.BrokenPipe) readerGone = true;
    else failure = e instanceof Error ? e : new Error(String(e));
  }
}

/**
 * An output sink on standard output (or what `out` writes to), buffered in
 * `buffer` (the worker's side when the CLI shares the buffer).
 *
 * ```ts
 * import { newSharedOutput, sharedOutput } from "./output.ts";
 * const out = sharedOutput(newSharedOutput());
 * out.write(new TextEncoder().encode("hi\n"));
 * out.flush();
 * ```
 */
export function sharedOutput(buffer: SharedArrayBuffer, out: (bytes: Uint8Array) => void = writeAll): OutputSink {
  const { used, data, wholeLines } = views(buffer);
  // On a terminal each line shows as it ends, as C's stdout is line-buffered there; pipes and files keep the buffer.
  let mode: BufferMode = Deno.stdout.isTerminal() ? "line" : "full";
  const flush = (partialLine = false) => writeOut(used, data, wholeLines && !partialLine, out);
  return {
    write(bytes) {
      let n = Atomics.load(used, 0);
      if (n + bytes.length > data.length) {
        flush();
        n = Atomics.load(used, 0);
      }
      // A line begun that still leaves no room grows a whole-lines buffer, or else goes out unfinished.
      if (n + bytes.length > data.length && !grow(buffer, n + bytes.length)) {
        writeOut(used, data, false, out);
        n = 0;
      }
      if (bytes.length > data.length) return out(bytes.slice()); // a copy: bytes may be a view of the Lua state's memory
      data.set(bytes, n);
      Atomics.store(used, 0, n + bytes.length);
      if (mode === "no") flush(true); // unbuffered: a line begun goes out too, as a prompt would
      else if (mode === "line" && bytes.includes(10)) flush();
    },
    flush,
    setBuffering: (to) => void (mode = to),
  };
}

/** Grows a growable `buffer` to hold `bytes` of output, at least doubling it; false when it cannot grow that far. */
function grow(buffer: SharedArrayBuffer, bytes: number): boolean {
  if (!buffer.growable || HEADER + bytes > buffer.maxByteLength) return false;
  buffer.grow(Math.min(buffer.maxByteLength, Math.max(HEADER + bytes, 2 * buffer.byteLength)));
  return true;
}

/** A shared output buffer's count of bytes held, its bytes (tracking its growth) and whether it keeps lines whole. */
function views(buffer: SharedArrayBuffer): { used: Int32Array; data: Uint8Array; wholeLines: boolean } {
  const header = new Int32Array(buffer, 0, 2);
  return { used: header.subarray(0, 1), data: new Uint8Array(buffer, HEADER), wholeLines: header[1] === 1 };
}

/** Writes out what `data` holds to `out`: all of it, or with `wholeLines` up to its last line end. */
function writeOut(used: Int32Array, data: Uint8Array, wholeLines: boolean, out: (bytes: Uint8Array) => void): void {
  const n = Atomics.load(used, 0);
  if (n === 0) return;
  const end = wholeLines ? data.subarray(0, n).lastIndexOf(10) + 1 : n;
  if (end === 0) return;
  const pending = data.slice(0, end);
  data.copyWithin(0, end, n);
  Atomics.store(used, 0, n - end);
  out(pending);
}

/**
 * `sink` with `prefix` at the start of every line (several scripts at once).
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { prefixedOutput } from "./output.ts";
 * let text = "";
 * const out = prefixedOutput({ write: (b) => void (text += new TextDecoder().decode(b)), flush() {} }, "[a] ");
 * out.write(new TextEncoder().encode("x\ny\n"));
 * ok(text === "[a] x\n[a] y\n");
 * ```
 */
export function prefixedOutput(sink: OutputSink, prefix: string): OutputSink {
  const label = new TextEncoder().encode(prefix);
  let lineStart = true;
  return {
    write(bytes) {
      let from = 0;
      while (from < bytes.length) {
        if (lineStart) sink.write(label);
        const end = bytes.indexOf(10, from);
        const to = end < 0 ? bytes.length : end + 1;
        sink.write(bytes.subarray(from, to));
        lineStart = end >= 0;
        from = to;
      }
    },
    flush: (partialLine) => sink.flush(partialLine),
    setBuffering: (mode) => sink.setBuffering?.(mode),
  };
}

/** Text written to stderr in whole lines, each with a prefix. */
export interface PrefixedText {
  /** Writes the lines `text` ends; a line it begins waits for its end. */
  write(text: string): void;
  /** Writes a line still begun, ended (the run is over). */
  end(): void;
}

/**
 * A writer of text to stderr with `prefix` at the start of every line,
 * kept whole so that lines of scripts running at once do not mix.
 *
 * ```ts
 * import { prefixedText } from "./output.ts";
 * const errors = prefixedText("[a] ");
 * errors.write("");
 * errors.end();
 * ```
 */
export function prefixedText(prefix: string): PrefixedText {
  let begun = "";
  const writeLines = (lines: string[]) => writeStderr(lines.map((line) => `${prefix}${line}\n`).join(""));
  return {
    write(text) {
      const lines = (begun + text).split("\n");
      begun = lines.pop()!;
      if (lines.length > 0) writeLines(lines);
    },
    end() {
      if (begun !== "") writeLines([begun]);
      begun = "";
    },
  };
}

/**
 * The CLI's side: writes out whatever a stopped worker left buffered (to standard output, or to `out`).
 *
 * ```ts
 * import { drainSharedOutput, newSharedOutput } from "./output.ts";
 * drainSharedOutput(newSharedOutput());
 * ```
 */
export function drainSharedOutput(buffer: SharedArrayBuffer, out: (bytes: Uint8Array) => void = writeAll): void {
  const { used, data, wholeLines } = views(buffer);
  const n = Atomics.load(used, 0);
  const unended = wholeLines && n > 0 && data[n - 1] !== 10;
  writeOut(used, data, false, out);
  // A line left begun is ended, so that the next line another script prints starts on its own.
  if (unended) out(LINE_END.slice());
}

const LINE_END = new Uint8Array([10]);
