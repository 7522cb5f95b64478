// How numbers, durations, statuses and times read on the page.

const numbers = new Intl.NumberFormat();

export function count(value) {
  return numbers.format(value ?? 0);
}

/** 5s, 2m 30s, 1h 15m. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return "<1s";
  const whole = Math.round(seconds);
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const rest = whole % 60;
  if (hours) return minutes ? `${hours}h ${minutes}m` : `${hours}h`;
  if (minutes) return rest ? `${minutes}m ${rest}s` : `${minutes}m`;
  return `${rest}s`;
}

export function rate(perSecond) {
  return perSecond === null ? "–" : `${count(Math.round(perSecond))} rows/s`;
}

export function percent(part, whole) {
  return whole > 0 ? Math.floor((100 * part) / whole) : 0;
}

export function capitalize(word) {
  return word ? word[0].toUpperCase() + word.slice(1) : "";
}

export const TERMINAL = new Set(["completed", "failed", "cancelled"]);

const sameDay = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const otherDay = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

/** A moment from the API (ISO 8601, UTC) in the reader's time zone; just the time when it is today. */
export function moment(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  const today = new Date().toDateString() === date.toDateString();
  return (today ? sameDay : otherDay).format(date);
}

const dateAndTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const fullDateAndTime = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });

/** A moment from the API as a date and a time in the reader's time zone, e.g. "7 Dec 2026, 09:12". */
export function dateTime(iso) {
  return iso ? dateAndTime.format(new Date(iso)) : "–";
}

/** The same moment in full, with seconds and the time zone's name (for a title on hover). */
export function fullDateTime(iso) {
  return iso ? fullDateAndTime.format(new Date(iso)) : "";
}
