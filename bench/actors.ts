/**
 * The `actors` group of bench/run.ts: actors (host/actors.ts) under the CLI.
 *
 * - CPU scaling: bench/lua/actor_cpu.lua runs {@linkcode CPU_LOOP}
 *   iterations of a summing loop in 1 actor, then in 2 actors at once; each
 *   actor warms up (two runs) before the timed rounds, which the main script
 *   times with os.clock (wall clock under SolVM). Processes for 1 and 2
 *   actors are interleaved; best round of each. Throughput ratio = 2 x the
 *   1-actor time / the 2-actor time. Target: >= 1.7x on 2 cores. The load
 *   other processes put on the machine is sampled for 0.5 s before each
 *   process and noted when it could have held a core.
 * - Messages: bench/lua/actor_msgs.lua, actor A sends {@linkcode MESSAGES}
 *   small tables `{ i = i, kind = "tick" }` to actor B, which counts them
 *   and replies once; A times each round on its own clock (first send to
 *   the reply). Best round. Target: >= 100k messages/s.
 *
 * Every result is checked (sums, counts); a wrong one turns the row into MISS.
 *
 * @module
 */
import { fmtRate, fmtSec, type GroupReport, type LuaTiming, reportFailed, verdict } from "./_report.ts";

const CPU_LOOP = 100_000_000;
const CPU_ROUNDS = 3;
const CPU_PROCESS_RUNS = 2;
const CPU_TARGET = 1.7;

const MESSAGES = 200_000;
const MESSAGE_ROUNDS = 3;
const MESSAGE_PROCESS_RUNS = 2;
const MESSAGE_TARGET = 100_000;

/** What bench/run.ts lends this group. */
export interface ActorsReport extends GroupReport {
  /** Runs bench/lua/`file`.lua under SolVM with `args` (retried on failure) and parses its timings. */
  timings(file: string, args: (string | number)[]): Promise<Map<string, LuaTiming>>;
}

function machineJiffies(): [number, number] {
  try {
    const fields = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = fields[3] + (fields[4] ?? 0);
    const total = fields.reduce((a, b) => a + b, 0);
    return [total - idle, total];
  } catch {
    return [NaN, NaN];
  }
}

/** How many cores other processes kept busy over the next `ms` milliseconds (before a run, when SolVM is idle). */
async function otherLoad(ms: number): Promise<number> {
  const [busy0, total0] = machineJiffies();
  await new Promise((r) => setTimeout(r, ms));
  const [busy1, total1] = machineJiffies();
  return ((busy1 - busy0) / (total1 - total0)) * navigator.hardwareConcurrency;
}

/** Runs the whole group, reporting rows as it goes. */
export async function benchActors(report: ActorsReport): Promise<void> {
  await benchCpu(report);
  await benchMessages(report);
}

async function benchCpu(report: ActorsReport): Promise<void> {
  const name = `CPU: 2 actors vs 1, sum loop ${CPU_LOOP.toExponential(0).replace("+", "")}`;
  report.log(
    `== Actors CPU: a loop of ${CPU_LOOP} iterations per actor, 1 actor vs 2 actors at once, ` +
      `${CPU_ROUNDS} rounds x ${CPU_PROCESS_RUNS} processes each (interleaved), best round`,
  );
  try {
    const best = new Map<number, number>();
    let wrong = "";
    let busiest = 0;
    for (let rep = 0; rep < CPU_PROCESS_RUNS; rep++) {
      for (const actors of rep % 2 === 0 ? [1, 2] : [2, 1]) {
        busiest = Math.max(busiest, await otherLoad(500));
        const t = (await report.timings("actor_cpu", [actors, CPU_LOOP, CPU_ROUNDS])).get(`actors${actors}`);
        if (!t) throw new Error(`actor_cpu.lua with ${actors} actor(s) printed no timings`);
        const want = String(BigInt(actors) * BigInt(CPU_LOOP) * BigInt(CPU_LOOP + 1) / 2n);
        if (t.checks.size !== 1 || !t.checks.has(want)) wrong = `${[...t.checks].join(", ")} (want ${want})`;
        best.set(actors, Math.min(best.get(actors) ?? Infinity, t.best));
        report.log(`  run ${rep + 1}, ${actors} actor(s): best round ${fmtSec(t.best)}, cold ${fmtSec(t.cold)}`);
      }
    }
    const one = best.get(1)!;
    const two = best.get(2)!;
    const ratio = (2 * one) / two;
    const pass = ratio >= CPU_TARGET && !wrong;
    report.log(
      `  best: 1 actor ${fmtSec(one)}, 2 actors ${fmtSec(two)} for twice the work -> ${ratio.toFixed(2)}x the ` +
        `throughput (target >= ${CPU_TARGET}x, ${navigator.hardwareConcurrency} CPUs, load average ` +
        `${Deno.loadavg().map((l) => l.toFixed(2)).join(" ")}) ${verdict(pass)}${wrong ? ` WRONG SUM ${wrong}` : ""}`,
    );
    if (busiest > 0.3) {
      report.log(
        `  NOTE: other processes kept up to ${busiest.toFixed(2)} cores busy just before a run: with a core held ` +
          "elsewhere this ratio measures the machine more than the actors",
      );
    }
    report.row({
      name,
      solvm: `${fmtSec(two)} (2 actors)`,
      peer: `${fmtSec(one)} (1 actor)`,
      ratio: `${ratio.toFixed(2)}x`,
      target: `>= ${CPU_TARGET}x`,
      pass,
    });
  } catch (e) {
    reportFailed(report, "actors", name, e, `>= ${CPU_TARGET}x`);
  }
}

async function benchMessages(report: ActorsReport): Promise<void> {
  const name = `messages A -> B, ${MESSAGES / 1000}k small tables`;
  report.log(
    `== Actors messages: actor A sends ${MESSAGES} tables { i = i, kind = "tick" } to actor B, which replies once; ` +
      `${MESSAGE_ROUNDS} rounds x ${MESSAGE_PROCESS_RUNS} processes, best round`,
  );
  try {
    let best = Infinity;
    let cold = Infinity;
    let wrong = "";
    for (let rep = 0; rep < MESSAGE_PROCESS_RUNS; rep++) {
      const t = (await report.timings("actor_msgs", [MESSAGE_ROUNDS, MESSAGES])).get("actor_msgs");
      if (!t) throw new Error("actor_msgs.lua printed no timings");
      if (t.checks.size !== 1 || !t.checks.has(String(MESSAGES))) wrong = [...t.checks].join(", ");
      best = Math.min(best, t.best);
      cold = Math.min(cold, t.cold);
      report.log(`  run ${rep + 1}: best round ${fmtSec(t.best)} = ${fmtRate(MESSAGES / t.best)}`);
    }
    const rate = MESSAGES / best;
    const pass = rate >= MESSAGE_TARGET && !wrong;
    report.log(
      `  best ${fmtSec(best)} = ${fmtRate(rate)} (target >= ${fmtRate(MESSAGE_TARGET)}) ${verdict(pass)}; ` +
        `first round ${fmtRate(MESSAGES / cold)}${wrong ? ` WRONG COUNT ${wrong}` : ""}`,
    );
    report.row({
      name,
      solvm: `${fmtRate(rate)} (first round ${fmtRate(MESSAGES / cold)})`,
      peer: "-",
      ratio: `${(rate / MESSAGE_TARGET).toFixed(2)}x target`,
      target: `>= ${fmtRate(MESSAGE_TARGET)}`,
      pass,
    });
  } catch (e) {
    reportFailed(report, "actors", name, e, `>= ${fmtRate(MESSAGE_TARGET)}`);
  }
}
