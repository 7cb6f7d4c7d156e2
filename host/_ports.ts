/**
 * Ports that listeners of this thread let go a moment ago. The system frees
 * a closed listener's port a little after close() (and Deno's server a
 * moment after shutdown), so a new listener there may meet the old one: the
 * families that listen (http_server.ts, sockets.ts) then ask again.
 *
 * @module
 */

/** How long after a port was let go a listen there is tried again, and for how long. */
const LET_GO_MS = 1000;
const letGoAt = new Map<number, number>();

/**
 * Notes that a listener on `port` is closing.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { lettingGo, mayListenAgain } from "./_ports.ts";
 * lettingGo(45678);
 * ok(mayListenAgain(45678, new Deno.errors.AddrInUse(), performance.now()));
 * ```
 */
export function lettingGo(port: number): void {
  letGoAt.set(port, performance.now());
}

/** Whether a listen on `port`, first tried at `since`, that failed with `e` should be tried again in a moment. */
export function mayListenAgain(port: number, e: unknown, since: number): boolean {
  const at = letGoAt.get(port);
  return e instanceof Deno.errors.AddrInUse && at !== undefined && since - at < LET_GO_MS &&
    performance.now() - since < LET_GO_MS;
}

/** The pause before a listen is tried again. */
export function shortly(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 5));
}
