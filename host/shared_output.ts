/**
 * Standard output shared between the script's worker and the CLI. The
 * worker buffers `print` output in a SharedArrayBuffer; the CLI can still
 * write out what is buffered after it has stopped a runaway worker.
 *
 * @module
 */
import type { OutputSink } from "../runtime/engine.ts";

const HEADER = 4;

/** A buffer for {@linkcode sharedOutput} and {@linkcode drainSharedOutput}. */
export function newSharedOutput(size = 1 << 16): SharedArrayBuffer {
  return new SharedArrayBuffer(HEADER + size);
}

function writeAll(bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
}

/**
 * The worker's side: an output sink over `buffer`.
 *
 * ```ts
 * import { newSharedOutput, sharedOutput } from "./shared_output.ts";
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
 * The CLI's side: writes out whatever a stopped worker left buffered.
 *
 * ```ts
 * import { drainSharedOutput, newSharedOutput } from "./shared_output.ts";
 * drainSharedOutput(newSharedOutput());
 * ```
 */
export function drainSharedOutput(buffer: SharedArrayBuffer): void {
  sharedOutput(buffer).flush();
}
