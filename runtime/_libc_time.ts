/**
 * The C library's time imports (localtime, gmtime, mktime, tzset,
 * strftime) that Lua's `os.date` and `os.time` need, on JavaScript's Date.
 *
 * @module
 */

/** Reads and writes 32-bit ints in WebAssembly memory. */
export interface Memory32 {
  i32(): Int32Array;
  u8(): Uint8Array;
}

// struct tm: ten 32-bit fields, then the zone name pointer.
const SEC = 0, MIN = 1, HOUR = 2, MDAY = 3, MON = 4, YEAR = 5, WDAY = 6, YDAY = 7, ISDST = 8, GMTOFF = 9, ZONE = 10;

function dayOfYear(d: Date, utc: boolean): number {
  const year = utc ? d.getUTCFullYear() : d.getFullYear(), mon = utc ? d.getUTCMonth() : d.getMonth();
  // Counted in UTC days (no daylight-saving hour in between); setUTCFullYear, as Date.UTC takes 0-99 for 1900-1999.
  const day = (m: number, mday: number) => new Date(0).setUTCFullYear(year, m, mday);
  return Math.round((day(mon, utc ? d.getUTCDate() : d.getDate()) - day(0, 1)) / 86_400_000);
}

const DAY_MS = 86_400_000;

let zoneNames: Intl.DateTimeFormat | undefined;

/**
 * Whether `d` is in daylight saving time, as the zone's name then says
 * ("Central European Summer Time", "Eastern Daylight Time"): offsets alone
 * cannot tell a change of standard time (Moscow's in 1991, Nuuk's in 2023)
 * from daylight saving. Where ICU knows no name ("GMT+01:00"), an offset
 * above the lower of 1 January's and 1 July's that year is.
 */
function isDst(d: Date): boolean {
  zoneNames ??= new Intl.DateTimeFormat("en-US", { timeZoneName: "long" });
  const name = zoneNames.formatToParts(d).find((part) => part.type === "timeZoneName")?.value ?? "";
  if (/Daylight|Summer/.test(name)) return true;
  if (!/^GMT([+-]|$)/.test(name)) return false;
  const year = d.getFullYear();
  const january = localDate(year, 0, 1, 0, 0, 0).getTimezoneOffset();
  const july = localDate(year, 6, 1, 0, 0, 0).getTimezoneOffset();
  return d.getTimezoneOffset() < Math.max(january, july); // minutes west: lower is further east
}

function writeTm(mem: Memory32, ptr: number, d: Date, utc: boolean): void {
  const t = mem.i32();
  const at = ptr >> 2;
  t[at + SEC] = utc ? d.getUTCSeconds() : d.getSeconds();
  t[at + MIN] = utc ? d.getUTCMinutes() : d.getMinutes();
  t[at + HOUR] = utc ? d.getUTCHours() : d.getHours();
  t[at + MDAY] = utc ? d.getUTCDate() : d.getDate();
  t[at + MON] = utc ? d.getUTCMonth() : d.getMonth();
  t[at + YEAR] = (utc ? d.getUTCFullYear() : d.getFullYear()) - 1900;
  t[at + WDAY] = utc ? d.getUTCDay() : d.getDay();
  t[at + YDAY] = dayOfYear(d, utc);
  t[at + ISDST] = utc ? 0 : Number(isDst(d));
  t[at + GMTOFF] = utc ? 0 : -60 * d.getTimezoneOffset();
}

/** Seconds in 400 Gregorian years: the calendar repeats after them, weekdays included. */
const CYCLE_SECONDS = 12_622_780_800n;
/** Times (in seconds) whose whole year lies inside Date's range (±8.64e15 ms), a cycle to spare. */
const SAFE_SECONDS = 8_640_000_000_000n - CYCLE_SECONDS;
/** Years inside that range (-271,821 to 275,760), a cycle to spare. */
const SAFE_FIRST_YEAR = -271_400, SAFE_LAST_YEAR = 275_300;

/**
 * The 400-year cycles to move `year` by to bring it inside Date's range: the
 * fewest, so that it lands near the range's edge, where the zone's rules are
 * those of any later year (or, in the past, its local mean time), as for times.
 */
function cyclesOut(year: number): number {
  if (year > SAFE_LAST_YEAR) return Math.ceil((year - SAFE_LAST_YEAR) / 400);
  if (year < SAFE_FIRST_YEAR) return -Math.ceil((SAFE_FIRST_YEAR - year) / 400);
  return 0;
}

/** C's int tm_year for `year - 1900`: clamped past it (glibc fails there, which these imports cannot). */
function tmYear(year: bigint): number {
  const y = year - 1900n;
  return Number(y > 2147483647n ? 2147483647n : y < -2147483648n ? -2147483648n : y);
}

/**
 * localtime's or gmtime's tm of `time` (seconds since 1970). A time past
 * Date's range is moved by whole 400-year cycles into it and its year moved
 * back: the calendar and the zone's rules are the same there.
 */
function brokenDown(mem: Memory32, ptr: number, time: bigint, utc: boolean): void {
  const cycles = time > SAFE_SECONDS
    ? (time - SAFE_SECONDS) / CYCLE_SECONDS + 1n
    : time < -SAFE_SECONDS
    ? -((-SAFE_SECONDS - time) / CYCLE_SECONDS + 1n)
    : 0n;
  writeTm(mem, ptr, new Date(Number(time - cycles * CYCLE_SECONDS) * 1000), utc);
  if (cycles === 0n) return;
  const t = mem.i32();
  t[(ptr >> 2) + YEAR] = tmYear(BigInt(t[(ptr >> 2) + YEAR]) + 1900n + cycles * 400n);
}

/** A local time; years 0-99 stay themselves (Date's constructor would read them as 1900-1999). */
function localDate(year: number, mon: number, mday: number, hour: number, min: number, sec: number): Date {
  const d = new Date(2000, 0, 1);
  d.setFullYear(year, mon, mday);
  d.setHours(hour, min, sec);
  return d;
}

/** The local zone's offset east of UTC at `ms`, to the second (getTimezoneOffset rounds it to minutes). */
function offsetAt(ms: number): number {
  const d = new Date(ms), wall = new Date(0);
  wall.setUTCFullYear(d.getFullYear(), d.getMonth(), d.getDate());
  wall.setUTCHours(d.getHours(), d.getMinutes(), d.getSeconds(), d.getMilliseconds());
  return wall.getTime() - ms;
}

/**
 * The instant (ms) whose local time is `wall` (the fields read as UTC) in
 * daylight saving time or not, as `dst` asks; without one, glibc's way:
 * the wall time in the offset of the nearest time, probed a week at a time
 * up to a year away, that is. Undefined when none is.
 */
function instantOf(wall: number, dst: boolean): number | undefined {
  // Every offset in force within a day of the wall time, each tried: one fits, two in a fall-back hour, none in a gap.
  const offsets = new Set([wall - DAY_MS, wall, wall + DAY_MS].map(offsetAt));
  const instants = [...offsets].map((offset) => wall - offset).filter((ms) => offsetAt(ms) === wall - ms);
  const found = instants.sort((a, b) => a - b).find((ms) => isDst(new Date(ms)) === dst);
  if (found !== undefined) return found;
  for (let delta = 7 * DAY_MS; delta <= 366 * DAY_MS; delta += 7 * DAY_MS) {
    for (const probe of [wall - delta, wall + delta]) {
      if (isDst(new Date(probe)) === dst) return wall - offsetAt(probe);
    }
  }
  return undefined;
}

/**
 * The time a struct tm names, as C's mktime reads it: with tm_isdst 0 or 1
 * the fields are a wall time in standard or daylight saving time (which
 * picks one of the two 01:30s of a fall-back night); with -1, or in a zone
 * that has no such time near it, the zone's rules decide.
 */
function readTm(mem: Memory32, ptr: number): Date {
  const t = mem.i32();
  const at = ptr >> 2;
  const year = t[at + YEAR] + 1900, mon = t[at + MON], mday = t[at + MDAY];
  const hour = t[at + HOUR], min = t[at + MIN], sec = t[at + SEC];
  const d = localDate(year, mon, mday, hour, min, sec);
  if (t[at + ISDST] < 0 || Number.isNaN(d.getTime())) return d;
  const wall = new Date(0);
  wall.setUTCFullYear(year, mon, mday);
  wall.setUTCHours(hour, min, sec);
  const instant = instantOf(wall.getTime(), t[at + ISDST] > 0);
  return instant === undefined ? d : new Date(instant);
}

/** Weeks in ISO 8601 week-numbering year `y`: 53 when it starts on a Thursday (or a Wednesday in a leap year). */
function isoWeeks(y: number): number {
  const p = (y: number) => (((y + Math.floor(y / 4) - Math.floor(y / 100) + Math.floor(y / 400)) % 7) + 7) % 7;
  return p(y) === 4 || p(y - 1) === 3 ? 53 : 52;
}

/** The ISO 8601 week-numbering year and week of a day (`yday` from 0, `wday` from Sunday = 0). */
function isoWeek(year: number, yday: number, wday: number): [number, number] {
  const week = Math.floor((yday + 1 - (wday === 0 ? 7 : wday) + 10) / 7);
  if (week < 1) return [year - 1, isoWeeks(year - 1)];
  if (week > isoWeeks(year)) return [year + 1, 1];
  return [year, week];
}

const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

const pad = (n: number, width = 2, fill = "0") => String(n).padStart(width, fill);

// C's short zone name ("UTC", "EST"), as strftime's %Z and tzname give it.
function zoneName(d: Date): string {
  const part = new Intl.DateTimeFormat("en-US", { timeZoneName: "short" }).formatToParts(d)
    .find((p) => p.type === "timeZoneName");
  return part?.value ?? "UTC";
}

// strftime's %z: the offset east of UTC, +hhmm.
function zoneOffset(seconds: number): string {
  const off = Math.trunc(seconds / 60);
  return (off >= 0 ? "+" : "-") + pad(Math.floor(Math.abs(off) / 60)) + pad(Math.abs(off) % 60);
}

/**
 * Formats like C's strftime for the conversions Lua scripts use. `zone`
 * is the tm's own zone name (gmtime's "GMT", localtime's tzname), when it has one.
 */
export function formatTime(format: string, tm: Int32Array, zone?: string): string {
  const [sec, min, hour, mday, mon, year, wday, yday] = tm;
  const fullYear = year + 1900;
  const cycles = cyclesOut(fullYear); // a year past Date's range: the same date 400k years nearer, as in brokenDown
  const d = localDate(fullYear - cycles * 400, mon, mday, hour, min, sec);
  const hour12 = hour % 12 === 0 ? 12 : hour % 12;
  const yearInCentury = ((fullYear % 100) + 100) % 100; // as C's, never negative
  const [isoYear, isoWeekNumber] = isoWeek(fullYear, yday, wday);
  const conversions: Record<string, () => string> = {
    a: () => DAYS[wday].slice(0, 3),
    A: () => DAYS[wday],
    b: () => MONTHS[mon].slice(0, 3),
    h: () => MONTHS[mon].slice(0, 3),
    B: () => MONTHS[mon],
    c: () => `${DAYS[wday].slice(0, 3)} ${MONTHS[mon].slice(0, 3)} ${pad(mday, 2, " ")} ${conversions.T()} ${fullYear}`,
    C: () => String(Math.floor(fullYear / 100)), // as glibc, not padded (0 for 0-99, -1 for -100..-1)
    d: () => pad(mday),
    D: () => `${pad(mon + 1)}/${pad(mday)}/${pad(yearInCentury)}`,
    e: () => pad(mday, 2, " "),
    F: () => `${fullYear}-${pad(mon + 1)}-${pad(mday)}`,
    g: () => pad(((isoYear % 100) + 100) % 100),
    G: () => String(isoYear),
    H: () => pad(hour),
    I: () => pad(hour12),
    j: () => pad(yday + 1, 3),
    m: () => pad(mon + 1),
    M: () => pad(min),
    n: () => "\n",
    p: () => (hour < 12 ? "AM" : "PM"),
    r: () => `${pad(hour12)}:${pad(min)}:${pad(sec)} ${hour < 12 ? "AM" : "PM"}`,
    R: () => `${pad(hour)}:${pad(min)}`,
    s: () => String(BigInt(Math.floor(d.getTime() / 1000)) + BigInt(cycles) * CYCLE_SECONDS),
    S: () => pad(sec),
    t: () => "\t",
    T: () => `${pad(hour)}:${pad(min)}:${pad(sec)}`,
    u: () => String(wday === 0 ? 7 : wday),
    U: () => pad(Math.floor((yday + 7 - wday) / 7)),
    V: () => pad(isoWeekNumber),
    W: () => pad(Math.floor((yday + 7 - ((wday + 6) % 7)) / 7)),
    w: () => String(wday),
    x: () => `${pad(mon + 1)}/${pad(mday)}/${pad(yearInCentury)}`,
    X: () => conversions.T(),
    y: () => pad(yearInCentury),
    Y: () => String(fullYear),
    // From the tm itself, as C does: a UTC time ("!" in os.date) is not in the local zone.
    z: () => zoneOffset(tm[GMTOFF]),
    Z: () => zone ?? zoneName(d),
    "%": () => "%",
  };
  return format.replace(/%([EO]?)(.)/g, (whole, _modifier, c) => conversions[c]?.() ?? whole);
}

/**
 * The time imports for a module whose memory `mem` exposes; `malloc`
 * allocates the zone names tzset hands to C.
 */
export function timeImports(mem: Memory32, malloc: (size: number) => number) {
  const cString = (s: string) => {
    const bytes = new TextEncoder().encode(s + "\0");
    const p = malloc(bytes.length);
    mem.u8().set(bytes, p);
    return p;
  };
  const text = (p: number) => {
    const u8 = mem.u8();
    let end = p;
    while (u8[end]) end++;
    return new TextDecoder("utf-8", { ignoreBOM: true }).decode(u8.subarray(p, end));
  };
  return {
    _localtime_js: (time: bigint, tm: number) => brokenDown(mem, tm, time, false),
    _gmtime_js: (time: bigint, tm: number) => brokenDown(mem, tm, time, true),
    _mktime_js: (tm: number) => {
      // A year past Date's range is moved by whole 400-year cycles into it, and back after (see brokenDown).
      const t = mem.i32(), at = (tm >> 2) + YEAR;
      const year = t[at] + 1900;
      const cycles = cyclesOut(year);
      t[at] -= cycles * 400;
      const d = readTm(mem, tm);
      if (Number.isNaN(d.getTime())) return -1n; // Lua says it cannot be represented
      writeTm(mem, tm, d, false);
      mem.i32()[at] += cycles * 400;
      return BigInt(Math.floor(d.getTime() / 1000)) + BigInt(cycles) * CYCLE_SECONDS;
    },
    _tzset_js: (timezone: number, daylight: number, stdName: number, dstName: number) => {
      const year = new Date().getFullYear();
      const winter = new Date(year, 0, 1), summer = new Date(year, 6, 1);
      const i32 = mem.i32();
      i32[timezone >> 2] = 60 * Math.max(winter.getTimezoneOffset(), summer.getTimezoneOffset());
      i32[daylight >> 2] = Number(winter.getTimezoneOffset() !== summer.getTimezoneOffset());
      // Standard time is the one further west: January's in the north, July's in the south.
      const [standard, saving] = summer.getTimezoneOffset() <= winter.getTimezoneOffset()
        ? [winter, summer]
        : [summer, winter];
      i32[stdName >> 2] = cString(zoneName(standard));
      i32[dstName >> 2] = cString(zoneName(saving));
    },
    strftime: (s: number, max: number, format: number, tm: number) => {
      const fields = mem.i32().subarray(tm >> 2);
      const formatted = formatTime(text(format), fields, fields[ZONE] ? text(fields[ZONE]) : undefined);
      const bytes = new TextEncoder().encode(formatted);
      if (bytes.length + 1 > max) return 0;
      mem.u8().set(bytes, s);
      mem.u8()[s + bytes.length] = 0;
      return bytes.length;
    },
  };
}
