// How an import's status reads everywhere: words, an icon and a colour (the badge--<look> class), never colour
// alone. A completed import says how it ended (the API's `outcome`), so one in which every row failed is no success.
import { el } from "./dom.js";

const LOOKS = {
  pending: { icon: "\u25F7", text: "Pending" }, // ◷
  processing: { icon: "\u21BB", text: "Processing" }, // ↻
  completed: { icon: "\u2713", text: "Completed" }, // ✓
  completed_with_failures: { icon: "!", text: "Completed with failures" },
  nothing_succeeded: { icon: "\u2715", text: "Nothing succeeded" }, // ✕
  failed: { icon: "\u2715", text: "Failed" },
  cancelled: { icon: "\u2298", text: "Cancelled" }, // ⊘
  paused: { icon: "\u2016", text: "Paused" }, // ‖
};

/** The job's look: its outcome once completed, else its status; {name, icon, text}. */
export function statusLook(job) {
  const name = job.outcome || job.status;
  const look = LOOKS[name] || { icon: "", text: name };
  return { name, ...look };
}

/** A new status badge for the job. */
export function statusBadge(job) {
  const badge = el("span");
  showStatus(badge, job);
  return badge;
}

/** Bring a badge up to date with the job: its words as text, its icon drawn by the stylesheet from data-icon. */
export function showStatus(badge, job) {
  const look = statusLook(job);
  badge.className = `badge badge--${look.name}`;
  badge.dataset.icon = look.icon;
  if (badge.textContent !== look.text) badge.textContent = look.text;
}
