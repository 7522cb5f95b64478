// The dashboard: the downstream's state, and the history of imports (unfinished ones first, then newest first),
// filtered, searched and paged through the API and kept live by the all-jobs event stream.
import { request, withQuery } from "./api.js";
import { $, el, fillUrl, setText } from "./dom.js";
import { initDownstream } from "./downstream.js";
import { TERMINAL, capitalize, count, dateTime, duration, fullDateTime } from "./format.js";
import { initHeader, notify, showLiveStatus } from "./header.js";
import { LiveStream } from "./live.js";
import { statusBadge } from "./status.js";

const RELOAD_DELAY_MS = 300; // events that change the page's order are gathered this long before one reload
const SEARCH_DELAY_MS = 300; // typing pauses this long before the search goes out

const section = $("[data-history]");
const body = $("[data-history-rows]");
const empty = $("[data-history-empty]");
const summary = $("[data-history-count]");
const filters = $("[data-history-filters]");
const reset = $("[data-history-reset]");
const pager = $("[data-history-pager]");
const newer = $("[data-history-newer]");
const older = $("[data-history-older]");
const pageText = $("[data-history-page]");
const jobPage = document.body.dataset.jobPage;
const pageSize = Number(section.dataset.pageSize);
const FILTERS = ["q", "status", "mode"];

const rows = new Map(); // job id -> its <tr>
let view = readView(); // { q, status, mode, offset }: what the table shows, mirrored in the page's URL
let total = 0;
let reloadTimer = null;
let loading = null; // the request in flight, so that an older answer never overwrites a newer one

/** The view named in the URL (so a reload, a bookmark or "back" shows the same page). */
function readView() {
  const params = new URLSearchParams(window.location.search);
  const offset = Number.parseInt(params.get("offset") || "0", 10);
  return {
    q: params.get("q") || "",
    status: params.get("status") || "",
    mode: params.get("mode") || "",
    offset: Number.isFinite(offset) && offset > 0 ? offset : 0,
  };
}

function isFiltered() {
  return FILTERS.some((name) => view[name]);
}

/** The first page of every import is what the stream's snapshot holds; any other view is read from the API. */
function isDefaultView() {
  return !isFiltered() && view.offset === 0;
}

function showFilters() {
  for (const name of FILTERS) filters.elements[name].value = view[name];
  reset.hidden = !isFiltered();
}

function changeView(changes) {
  view = { ...view, ...changes };
  const query = withQuery(window.location.pathname, {
    ...Object.fromEntries(FILTERS.map((name) => [name, view[name]])),
    offset: view.offset || "",
  });
  window.history.replaceState(null, "", query);
  reset.hidden = !isFiltered();
  load();
}

/** Read the view's page from the API and show it. */
async function load() {
  clearTimeout(reloadTimer);
  const wanted = { ...view };
  const url = withQuery(section.dataset.jobsUrl, { ...wanted, offset: wanted.offset || "", limit: pageSize });
  const pending = request(url);
  loading = pending;
  section.setAttribute("aria-busy", "true");
  try {
    const page = await pending;
    if (loading !== pending) return;
    if (page.jobs.length === 0 && wanted.offset > 0 && page.total > 0) {
      // The page emptied (imports were cleared or filtered away): show the last one that has imports.
      changeView({ offset: Math.floor((page.total - 1) / pageSize) * pageSize });
      return;
    }
    showPage(page);
  } catch (error) {
    if (loading === pending) notify(error.message, { error: true });
  } finally {
    if (loading === pending) section.removeAttribute("aria-busy");
  }
}

function scheduleReload() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(load, RELOAD_DELAY_MS);
}

/** Replace the table with a page of imports. */
function showPage({ jobs, total: all }) {
  rows.clear();
  body.replaceChildren();
  total = all;
  for (const job of jobs) body.append(rowFor(job));
  refreshFooter();
}

/** The stream's first event of every (re)connection: the first page of every import. */
function showSnapshot(snapshot) {
  if (isDefaultView()) showPage(snapshot);
  else load();
}

/** Update a row in place; reload the page when the change may move imports on it (a new one, one that ended). */
function showJob({ job }, created = false) {
  const existing = rows.get(job.id);
  if (existing && !created) {
    const moved = existing.dataset.status !== job.status;
    existing.replaceWith(rowFor(job));
    if (!moved) return;
  }
  if (existing || created) scheduleReload();
}

function rowFor(job) {
  const href = fillUrl(jobPage, { id: job.id });
  const known = job.total_records !== null;
  const started = job.started_at || job.created_at;
  const row = el(
    "tr",
    { "data-job-id": job.id, "data-status": job.status, className: "history__row" },
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
    el("td", { "data-label": "Started" }, el("time", { datetime: started, title: fullDateTime(started) }, dateTime(started))),
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
  setText(empty, isFiltered() ? "No imports match these filters." : "No imports yet. Start one with the buttons above.");
  section.classList.toggle("is-empty", shown === 0);
  const noun = total === 1 ? "import" : "imports";
  setText(summary, total ? `${count(total)} ${isFiltered() ? "matching " : ""}${noun}` : "");
  const pages = Math.max(Math.ceil(total / pageSize), 1);
  pager.hidden = pages <= 1 && view.offset === 0;
  newer.disabled = view.offset === 0;
  older.disabled = view.offset + pageSize >= total;
  const first = shown ? view.offset + 1 : 0;
  setText(
    pageText,
    `Page ${count(Math.floor(view.offset / pageSize) + 1)} of ${count(pages)} · ${count(first)}–${count(view.offset + shown)} of ${count(total)}`,
  );
}

newer.addEventListener("click", () => changeView({ offset: Math.max(view.offset - pageSize, 0) }));
older.addEventListener("click", () => changeView({ offset: view.offset + pageSize }));

let searchTimer = null;
filters.addEventListener("input", (event) => {
  if (event.target.name !== "q") return;
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => changeView({ q: event.target.value.trim(), offset: 0 }), SEARCH_DELAY_MS);
});
filters.addEventListener("change", (event) => {
  const { name, value } = event.target;
  if (name === "status" || name === "mode") changeView({ [name]: value, offset: 0 });
});
filters.addEventListener("submit", (event) => {
  event.preventDefault(); // Enter in the search box searches at once
  clearTimeout(searchTimer);
  changeView({ q: filters.elements.q.value.trim(), offset: 0 });
});
filters.addEventListener("reset", (event) => {
  event.preventDefault();
  clearTimeout(searchTimer);
  changeView({ q: "", status: "", mode: "", offset: 0 });
  showFilters();
  filters.elements.q.focus();
});

const downstream = initDownstream($("[data-downstream]"));

const stream = new LiveStream(
  section.dataset.eventsUrl,
  {
    "jobs.snapshot": showSnapshot,
    "job.created": (state) => showJob(state, true),
    "job.progress": (state) => {
      showJob(state);
      if (state.job.notice) downstream.refreshSoon(); // it waits for the downstream: a pause or the breaker
    },
    "job.finished": (state) => {
      showJob(state);
      if (TERMINAL.has(state.job.status)) downstream.refresh(); // a finished import may have opened the breaker
    },
  },
  showLiveStatus,
);

showFilters();
initHeader({ onCleared: () => stream.open() });
stream.open();
