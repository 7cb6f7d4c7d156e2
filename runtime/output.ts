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
  /** Writes out whatever waits in the buffer. */
  flush(): void;
}

const HEADER = 4;

/** A buffer for {@linkcode sharedOutput} and {@linkcode drainSharedOutput}. */
export function newSharedOutput(size = 1 << 16): SharedArrayBuffer {
  return new SharedArrayBuffer(HEADER + size);
}

let readerGone = false;

/** Whether standard output's reader has gone (`solvm x.lua | head`): what is written from then on is dropped. */
export function stdoutClosed(): boolean {
  return readerGone;
}

function writeAll(bytes: Uint8Array): void {
  let off = 0;
  try {
    while (off < bytes.length && !readerGone) off += Deno.stdout.writeSync(bytes.subarray(off));
  } catch (e) {
    if (!(e instanceof Deno.errors.BrokenPipe)) throw e;
    readerGone = true;
  }
}

/**
 * An output sink on standard output, buffered in `buffer` (the worker's
 * side when the CLI shares the buffer).
 *
 * ```ts
 * import { newSharedOutput, sharedOutput } from "./output.ts";
 * const out = sharedOutput(newSharedOutput());
 * out.write(new TextEncoder().encode("hi\n"));
 * out.flush();
 * ```
 */
export function sharedOutput(buffer: SharedArrayBuffer): OutputSink {
  const used = new Int32Array(buffer, 0, 1);
  const data = new Uint8Array(buffer, HEADER);
  const flush = () => {
    const n = Atomics.load(used, 0);
    if (n === 0) return;
    const pending = data.slice(0, n);
    Atomics.store(used, 0, 0);
    writeAll(pending);
  };
  return {
    write(bytes) {
      let n = Atomics.load(used, 0);
      if (n + bytes.length > data.length) {
        flush();
        n = 0;
      }
      if (bytes.length > data.length) return writeAll(bytes);
      data.set(bytes, n);
      Atomics.store(used, 0, n + bytes.length);
    },
    flush,
  };
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
    flush: () => sink.flush(),
  };
}

/**
 * A writer of text to stderr with `prefix` at the start of every line.
 *
 * ```ts
 * import { prefixedText } from "./output.ts";
 * prefixedText("[a] ")("");
 * ```
 */
export function prefixedText(prefix: string): (text: string) => void {
  let lineStart = true;
  const encoder = new TextEncoder();
  return (text) => {
    if (text === "") return;
    const lines = text.split("\n");
    const out = lines.map((line, i) =>
      (i === 0 && !lineStart) || (i === lines.length - 1 && line === "") ? line : prefix + line
    );
    lineStart = text.endsWith("\n");
    Deno.stderr.writeSync(encoder.encode(out.join("\n")));
  };
}

/**
 * The CLI's side: writes out whatever a stopped worker left buffered.
 *
 * ```ts
 * import { drainSharedOutput, newSharedOutput } from "./output.ts";
 * drainSharedOutput(newSharedOutput());
 * ```
 */
export function drainSharedOutput(buffer: SharedArrayBuffer): void {
  sharedOutput(buffer).flush();
}
