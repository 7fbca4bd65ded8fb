// How values read on the page: times in UTC, durations, counts and percentages.

const NUMBER = new Intl.NumberFormat("en-US");

/** "2025-01-15 12:30 UTC" ("12:30:07" with `seconds`), or "–" for null. */
export function formatTime(iso, { seconds = false } = {}) {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return `${date
    .toISOString()
    .slice(0, seconds ? 19 : 16)
    .replace("T", " ")} UTC`;
}

/** "3.2 s", "4 min 05 s", "2 h 03 min". */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${Number(seconds).toFixed(seconds < 10 ? 2 : 1)} s`;
  const whole = Math.round(seconds);
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, "0")} s`;
  return `${Math.floor(whole / 3600)} h ${String(Math.floor((whole % 3600) / 60)).padStart(2, "0")} min`;
}

/** "in 4 min", "12 s ago" relative to now. */
export function formatRelative(iso, now = Date.now()) {
  if (!iso) return "–";
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000);
  if (seconds === 0) return "now";
  const text = formatDuration(Math.abs(seconds)).replace(/\.\d+ s$/, " s");
  return seconds > 0 ? `in ${text}` : `${text} ago`;
}

/** "1 config", "3 configs". */
export function plural(count, noun) {
  return `${formatCount(count)} ${noun}${count === 1 ? "" : "s"}`;
}

export function formatCount(value) {
  return value === null || value === undefined ? "–" : NUMBER.format(value);
}

export function formatPercent(value) {
  return value === null || value === undefined ? "–" : `${Number(value).toFixed(value === 100 ? 0 : 1)} %`;
}
