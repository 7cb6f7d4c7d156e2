/**
 * What the benchmark groups share: the summary row, a Lua script's parsed
 * timings, number formatting and the report a group module is lent by
 * bench/run.ts.
 *
 * @module
 */

/** One row of the summary table (bench/run.ts adds the group). */
export interface SummaryRow {
  name: string;
  solvm: string;
  peer: string;
  ratio: string;
  target: string;
  /** true = PASS, false = MISS, null = information only or skipped. */
  pass: boolean | null;
}

/** What a Lua benchmark script printed for one name (its ROUND/COLD/BENCH lines). */
export interface LuaTiming {
  best: number;
  cold: number;
  /** The check column of every ROUND line. */
  checks: Set<string>;
}

/** What bench/run.ts lends a group kept in a module of its own. */
export interface GroupReport {
  log(text?: string): void;
  row(row: SummaryRow): void;
  /** A failed or wrong SolVM run, for the list at the end of the report. */
  failure(message: string): void;
}

/** Seconds as "1.234 s" or "12.3 ms". */
export function fmtSec(seconds: number): string {
  return seconds >= 1 ? `${seconds.toFixed(3)} s` : `${(seconds * 1000).toFixed(1)} ms`;
}

/** A rate as "1.23M/s" or "456k/s". */
export function fmtRate(perSecond: number): string {
  return perSecond >= 1e6 ? `${(perSecond / 1e6).toFixed(2)}M/s` : `${(perSecond / 1e3).toFixed(0)}k/s`;
}

/** PASS, MISS, or "-" for information only. */
export function verdict(pass: boolean | null): string {
  return pass === null ? "-" : pass ? "PASS" : "MISS";
}

/** Reports benchmark `name` of `group` as failed: a log line, the failure list, and a MISS row. */
export function reportFailed(report: GroupReport, group: string, name: string, e: unknown, target: string): void {
  const message = e instanceof Error ? e.message.split("\n")[0] : String(e);
  report.log(`  ERROR in ${name}: ${message} MISS`);
  report.failure(`${group} ${name}: ${message}`);
  report.row({ name: `${name} (failed, see log)`, solvm: "ERROR", peer: "-", ratio: "-", target, pass: false });
}
