/**
 * What the families that listen (http_server.ts, sockets.ts) share. Ports
 * that listeners of this thread let go a moment ago: the system frees a
 * closed listener's port a little after close() (and Deno's server a moment
 * after shutdown), so a new listener there may meet the old one, and asks
 * again. And a shortage of file descriptors, which a listener waits out.
 *
 * @module
 */

import { delay } from "./core.ts";

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

/** Milliseconds before a listen on a port let go a moment ago is tried again. */
const LISTEN_RETRY_MS = 5;

/**
 * Listens by `attempt` (which throws when it cannot), and while it fails on
 * `port` let go a moment ago (see {@link mayListenAgain}) and `mayRetry`
 * agrees, tries again after a pause. The first attempt is made at once: a
 * listen that needs no second one returns its result, or throws, without a
 * wait; one that does returns a Promise of it.
 *
 * ```ts
 * import { equal } from "node:assert";
 * import { listenAgainIfLetGo } from "./_ports.ts";
 * const listener = listenAgainIfLetGo(0, () => Deno.listen({ port: 0 })) as Deno.Listener;
 * equal(listener.addr.transport, "tcp");
 * listener.close();
 * ```
 */
export function listenAgainIfLetGo<T>(
  port: number,
  attempt: () => T,
  mayRetry: (e: unknown) => boolean = () => true,
): T | Promise<T> {
  const since = performance.now();
  const again = (e: unknown) => mayListenAgain(port, e, since) && mayRetry(e);
  try {
    return attempt();
  } catch (e) {
    if (!again(e)) throw e;
  }
  return (async () => {
    while (true) {
      await delay(LISTEN_RETRY_MS);
      try {
        return attempt();
      } catch (e) {
        if (!again(e)) throw e;
      }
    }
  })();
}

/**
 * Whether `e` says the process or the system is out of file descriptors
 * (EMFILE, ENFILE; Windows' WSAEMFILE): a shortage that passes as
 * connections close.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { outOfDescriptors } from "./_ports.ts";
 * ok(outOfDescriptors(new Error("Too many open files (os error 24)")));
 * ```
 */
export function outOfDescriptors(e: unknown): boolean {
  return e instanceof Error && /\(os error (?:23|24|10024)\)/.test(e.message);
}

/** Milliseconds before a listener out of descriptors tries again. */
export const SHORTAGE_RETRY_MS = 100;
