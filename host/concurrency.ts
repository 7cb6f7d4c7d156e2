/**
 * The concurrency family: goroutines, named channels, `select`, `wait` and
 * `on_error`. They are written in Lua inside the runtime's scheduler
 * (runtime/scheduler_lua.ts) so a channel operation that need not wait
 * costs no yield; this table is where each global is registered.
 *
 * @module
 */
import { type Family, inScheduler } from "../runtime/family.ts";

/** The concurrency family's registration table. */
export const concurrency = (): Family => ({
  go: inScheduler("go"),
  chan: inScheduler("chan"),
  send: inScheduler("send"),
  receive: inScheduler("receive"),
  close_channel: inScheduler("close_channel"),
  select: inScheduler("select"),
  wait: inScheduler("wait"),
  on_error: inScheduler("on_error"),
});
