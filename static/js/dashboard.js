// The dashboard: the history of imports, newest first, kept live by the all-jobs event stream.
import { request, withQuery } from "./api.js";
import { $, el, fillUrl, setText } from "./dom.js";
import { capitalize, count, duration, moment } from "./format.js";
import { initHeader, notify, showLiveStatus } from "./header.js";
import { LiveStream } from "./live.js";
import { statusBadge } from "./status.js";

const section = $("[data-history]");
const body = $("[data-history-rows]");
const empty = $("[data-history-empty]");
const more = $("[data-history-more]");
const summary = $("[data-history-count]");
const jobPage = document.body.dataset.jobPage;

const rows = new Map(); // job id -> its <tr>
let total = 0;

/** Replace the table with the newest imports (the first event of every (re)connection). */
function showSnapshot({ jobs, total: all }) {
  rows.clear();
  body.replaceChildren();
  total = all;
  for (const job of jobs) body.append(rowFor(job));
  refreshFooter();
}

/** Add a new import on top, or update the row of one already shown. */
function showJob({ job }, created = false) {
  const existing = rows.get(job.id);
  if (existing) {
    existing.replaceWith(rowFor(job));
    return;
  }
  const newest = body.firstElementChild;
  if (!created && newest && Number(newest.dataset.jobId) > job.id) return; // an older one on a page not loaded
  body.prepend(rowFor(job));
  if (created) total += 1;
  refreshFooter();
}

function rowFor(job) {
  const href = fillUrl(jobPage, { id: job.id });
  const known = job.total_records !== null;
  const row = el(
    "tr",
    { "data-job-id": job.id, className: "history__row" },
    el(
      "td",
      { "data-label": "Import", className: "history__import" },
      el("a", { href }, el("span", { className: "history__id" }, `#${job.id}`), " ", el("span", { className: "history__source" }, job.source)),
    ),
    el("td", { "data-label": "Mode" }, capitalize(job.mode)),
    el(
      "td",
      { "data-label": "Status" },
      statusBadge(job),
      job.cancelled_count ? el("span", { className: "history__retried muted" }, ` ${count(job.cancelled_count)} not sent`) : "",
      job.retries ? el("span", { className: "history__retried muted" }, ` retried ${job.retries}\u00d7`) : "",
    ),
    el("td", { "data-label": "Rows", className: "num" }, known ? `${count(job.processed_count)} / ${count(job.total_records)}` : count(job.processed_count)),
    el("td", { "data-label": "Succeeded", className: "num ok" }, count(job.success_count)),
    el("td", { "data-label": "Failed", className: "num failed" }, count(job.failed_count)),
    el("td", { "data-label": "Duration", className: "num" }, duration(job.duration_seconds)),
    el("td", { "data-label": "Started" }, moment(job.started_at || job.created_at)),
  );
  // The whole row opens the import; the link inside keeps keyboard use, middle-click and "open in new tab".
  row.addEventListener("click", (event) => {
    if (!event.target.closest("a")) window.location.assign(href);
  });
  rows.set(job.id, row);
  return row;
}

function refreshFooter() {
  const shown = rows.size;
  empty.hidden = shown > 0;
  section.classList.toggle("is-empty", shown === 0);
  more.hidden = shown >= total;
  setText(summary, total ? `${count(total)} import${total === 1 ? "" : "s"}` : "");
}

more.addEventListener("click", async () => {
  more.disabled = true;
  try {
    const page = await request(withQuery(section.dataset.jobsUrl, { offset: rows.size }));
    total = page.total;
    for (const job of page.jobs) if (!rows.has(job.id)) body.append(rowFor(job));
    refreshFooter();
  } catch (error) {
    notify(error.message, { error: true });
  } finally {
    more.disabled = false;
  }
});

const stream = new LiveStream(
  section.dataset.eventsUrl,
  {
    "jobs.snapshot": showSnapshot,
    "job.created": (state) => showJob(state, true),
    "job.progress": (state) => showJob(state),
    "job.finished": (state) => showJob(state),
  },
  showLiveStatus,
);

initHeader({ onCleared: () => stream.open() });
stream.open();
