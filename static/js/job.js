// One import's page: live progress from its event stream, the error categories as filters, the error list.
import { request, withQuery } from "./api.js";
import { $, el, fillUrl, setText } from "./dom.js";
import { TERMINAL, capitalize, count, duration, percent, rate } from "./format.js";
import { initHeader, notify, showLiveStatus } from "./header.js";
import { LiveStream } from "./live.js";

const VALUE_ORDER = ["name", "email", "company"];
const ERROR_LIMIT = 100; // errors listed at once; the note says how many more the filter matches
const RATE_WINDOW_MS = 5000; // rows/s is measured over this much recent progress
const ERROR_REFRESH_MS = 1000; // while errors keep coming, the list reloads at most this often
const BOTTLENECK_SHARE = 0.7; // at this share of the rate limit or more, the limit is what the import waits for

const page = $("[data-job]");
const urls = page.dataset;
const rateLimit = Number(page.dataset.rateLimit);
// What the caller's role lets them do here, as the server decided it.
const allowed = {
  cancel: page.dataset.mayCancel === "true",
  retry: page.dataset.mayRetry === "true",
  resume: page.dataset.mayResume === "true",
};
const categoryButtons = [...document.querySelectorAll("[data-category]")];
const categoryLabels = Object.fromEntries(
  categoryButtons.map((button) => [button.dataset.category, $("[data-label]", button).textContent]),
);

let state = JSON.parse($("[data-initial-state]").textContent);
let receivedAt = performance.now(); // when `state` arrived, to tick the elapsed time between events
let samples = []; // [time, processed] of recent states, for rows/s
let shownErrorTotal = null; // the error count the list was last loaded for
let errorsRequest = 0; // numbers the list's loads, so only the latest one is shown
let errorsTimer = null;

// ---- progress -------------------------------------------------------------------------------------------

function show(next) {
  state = next;
  receivedAt = performance.now();
  const { job } = state;
  samples.push([receivedAt, job.processed_count]);
  samples = samples.filter(([time]) => receivedAt - time <= RATE_WINDOW_MS);
  renderProgress();
  renderCategories();
  renderActions();
  refreshErrorsSoon();
}

function renderProgress() {
  const { job } = state;
  const status = $("[data-status]");
  setText(status, capitalize(job.status));
  status.className = `badge badge--${job.status}`;

  const known = job.total_records !== null;
  const done = job.processed_count;
  const headline = known ? `${percent(done, job.total_records)}%` : `${count(done)} rows`;
  const cancelled = job.cancelled_count ? `, ${count(job.cancelled_count)} cancelled before they were sent` : "";
  const subline = known
    ? `${count(done)} of ${count(job.total_records)} rows processed${cancelled}`
    : job.status === "pending"
      ? "Waiting to start"
      : "processed so far; the total is known once the whole file is read";
  setText($("[data-headline]"), headline);
  setText($("[data-subline]"), subline);

  // Bar segments are shares of the total, or of the rows processed so far while the total is unknown.
  const whole = known ? job.total_records : done;
  const bar = $("[data-bar]");
  $("[data-bar-ok]").style.width = `${whole ? (100 * job.success_count) / whole : 0}%`;
  $("[data-bar-failed]").style.width = `${whole ? (100 * job.failed_count) / whole : 0}%`;
  $("[data-bar-cancelled]").style.width = `${whole ? (100 * job.cancelled_count) / whole : 0}%`;
  bar.classList.toggle("bar--indeterminate", !known && !TERMINAL.has(job.status));
  if (known) {
    bar.setAttribute("aria-valuemax", job.total_records);
    bar.setAttribute("aria-valuenow", done);
    bar.setAttribute("aria-valuetext", `${headline}: ${count(done)} of ${count(job.total_records)} rows processed`);
  } else {
    bar.removeAttribute("aria-valuemax");
    bar.removeAttribute("aria-valuenow");
    bar.setAttribute("aria-valuetext", `${count(done)} rows processed; total not known yet`);
  }

  setText($("[data-success]"), count(job.success_count));
  setText($("[data-failed]"), count(job.failed_count));
  // Rows a cancel stopped before they were sent: a resume sends them.
  $("[data-cancelled-stat]").hidden = !job.cancelled_count;
  setText($("[data-cancelled]"), count(job.cancelled_count));
  const error = $("[data-job-error]");
  error.hidden = !job.error;
  setText(error, job.error || "");
  const notice = $("[data-job-notice]");
  notice.hidden = !job.notice;
  setText(notice, job.notice ? `Delivery: ${job.notice}` : "");
  const retries = $("[data-job-retries]");
  retries.hidden = !job.retries;
  setText(retries, job.retries ? `Retried ${job.retries}×, last ${new Date(job.last_retried_at).toLocaleString()}` : "");
  renderClock();
}

/** Elapsed time, rows/s and the time left; ticks every second while the import runs. */
function renderClock() {
  const { job } = state;
  const running = job.status === "processing";
  let elapsed = job.duration_seconds;
  if (running && elapsed !== null) elapsed += (performance.now() - receivedAt) / 1000;
  setText($("[data-elapsed]"), duration(elapsed));

  const measured = running ? measuredRate() : null;
  const average = elapsed ? job.processed_count / elapsed : null;
  setText($("[data-rate]"), rate(running ? measured ?? average : TERMINAL.has(job.status) ? average : null));

  // The time left is only honest while the rate limit is the bottleneck: then the pace is known in advance.
  const left = job.total_records !== null ? job.total_records - job.processed_count : null;
  const limited = running && rateLimit > 0 && measured !== null && measured >= BOTTLENECK_SHARE * rateLimit;
  const showEta = limited && left > 0;
  $("[data-eta-stat]").hidden = !showEta;
  if (showEta) setText($("[data-eta]"), `about ${duration(left / rateLimit)} at the rate limit`);
}

function measuredRate() {
  if (samples.length < 2) return null;
  const [firstTime, firstCount] = samples[0];
  const [lastTime, lastCount] = samples[samples.length - 1];
  return lastTime > firstTime ? ((lastCount - firstCount) * 1000) / (lastTime - firstTime) : null;
}

// ---- actions (cancel, retry, download) -------------------------------------------------------------------

function renderActions() {
  const { job } = state;
  const finished = TERMINAL.has(job.status);
  // A button the caller's role may not use stays hidden (the API would refuse it with 403 anyway).
  $("[data-cancel]").hidden = finished || !allowed.cancel;
  // Only refusals by the downstream can be sent again; validation errors need a fixed file.
  $("[data-retry]").hidden = !(allowed.retry && job.status === "completed" && state.error_counts.other > 0);
  // A failed or cancelled import goes on from where it stopped.
  $("[data-resume]").hidden = !(allowed.resume && (job.status === "failed" || job.status === "cancelled"));
  const download = $("[data-download]");
  download.hidden = job.failed_count === 0;
  download.href = withQuery(urls.errorsCsvUrl, { category: currentCategory() });
}

async function act(button, work) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    await work();
  } catch (error) {
    notify(error.message, { error: true });
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

$("[data-cancel]").addEventListener("click", (event) =>
  act(event.currentTarget, async () => {
    await request(urls.cancelUrl, { method: "POST" });
    notify("Cancelling: the import stops after the call in flight.");
  }),
);

$("[data-retry]").addEventListener("click", (event) =>
  act(event.currentTarget, async () => {
    // A retry reopens this same import: show it pending, then follow its run.
    const { job } = await request(urls.retryUrl, { method: "POST" });
    show({ job, error_counts: state.error_counts });
    stream.open();
  }),
);

$("[data-resume]").addEventListener("click", (event) =>
  act(event.currentTarget, async () => {
    const { job } = await request(urls.resumeUrl, { method: "POST" });
    show({ job, error_counts: state.error_counts });
    stream.open();
  }),
);

// ---- error categories and the error list -----------------------------------------------------------------

function currentCategory() {
  return new URLSearchParams(window.location.search).get("category") || "";
}

function renderCategories() {
  const selected = currentCategory();
  for (const button of categoryButtons) {
    const category = button.dataset.category;
    setText($("[data-count]", button), count(state.error_counts[category]));
    button.setAttribute("aria-pressed", String(category === selected));
  }
}

/** How many errors the current filter matches, according to the latest state. */
function matchingErrors() {
  const category = currentCategory();
  return category ? state.error_counts[category] ?? 0 : state.job.failed_count;
}

/** Reload the list when the count it was loaded for is out of date, at most once per interval. */
function refreshErrorsSoon() {
  if (matchingErrors() === shownErrorTotal || errorsTimer) return;
  errorsTimer = setTimeout(() => {
    errorsTimer = null;
    if (matchingErrors() !== shownErrorTotal) loadErrors();
  }, ERROR_REFRESH_MS);
}

async function loadErrors() {
  const number = ++errorsRequest;
  const category = currentCategory();
  const expected = matchingErrors();
  try {
    const { errors, total } = await request(withQuery(urls.errorsUrl, { category, limit: ERROR_LIMIT }));
    if (number !== errorsRequest) return; // a newer load (another filter) answers instead
    shownErrorTotal = expected;
    renderErrors(errors, total, category);
  } catch (error) {
    if (number === errorsRequest) notify(error.message, { error: true });
    return;
  }
  refreshErrorsSoon(); // progress that came in during the load may have added errors
}

function renderErrors(errors, total, category) {
  const where = category ? ` in ${categoryLabels[category]}` : "";
  $("[data-error-rows]").replaceChildren(...errors.map(errorRow));
  $("table.errors").hidden = errors.length === 0;
  const empty = $("[data-errors-empty]");
  empty.hidden = errors.length > 0;
  setText(empty, `No errors${where}${TERMINAL.has(state.job.status) ? "" : " so far"}.`);
  const note = total > errors.length ? `Showing ${count(errors.length)} of ${count(total)} errors${where}` : "";
  setText($("[data-errors-note]"), note);
}

function errorRow(error) {
  const values = orderedValues(error.data || {}).map(([column, value]) =>
    el("li", {}, el("span", { className: "values__key" }, column), " ", el("span", { className: "values__value" }, value === "" ? "(empty)" : value)),
  );
  return el(
    "tr",
    {},
    el("td", { "data-label": "Row", className: "num" }, count(error.row)),
    el("td", { "data-label": "Category" }, el("span", { className: `tag tag--${error.category}` }, categoryLabels[error.category] || error.category)),
    el("td", { "data-label": "Message", className: "errors__message" }, error.message),
    el("td", { "data-label": "Values", className: "errors__values" }, el("ul", { className: "values" }, values)),
  );
}

/** The row's values, the contact's own columns first, then any others the file had, as read. */
function orderedValues(data) {
  const rank = (column) => {
    const index = VALUE_ORDER.indexOf(column.trim().toLowerCase());
    return index === -1 ? VALUE_ORDER.length : index;
  };
  return Object.entries(data).sort(([a], [b]) => rank(a) - rank(b));
}

function applyFilter() {
  shownErrorTotal = null;
  renderCategories();
  renderActions();
  loadErrors();
}

for (const button of categoryButtons) {
  button.addEventListener("click", () => {
    const category = button.dataset.category;
    const url = new URL(window.location.href);
    if (currentCategory() === category) url.searchParams.delete("category");
    else url.searchParams.set("category", category);
    history.pushState(null, "", url);
    applyFilter();
  });
}
window.addEventListener("popstate", applyFilter);

// ---- rows imported again by later imports ------------------------------------------------------------------

/** List this import's cancelled or refused rows that a later import stored instead, once it has ended. */
async function loadReimported() {
  const { job } = state;
  if (!TERMINAL.has(job.status) || !(job.cancelled_count || state.error_counts.other)) return;
  try {
    const { rows, total } = await request(withQuery(urls.reimportedUrl, { limit: ERROR_LIMIT }));
    renderReimported(rows, total);
  } catch (error) {
    notify(error.message, { error: true });
  }
}

function renderReimported(rows, total) {
  $("[data-reimported]").hidden = rows.length === 0;
  const note = `${count(total)} ${total === 1 ? "row" : "rows"} of this import ${total === 1 ? "was" : "were"} imported again by a later import`;
  setText($("[data-reimported-note]"), total > rows.length ? `${note}; showing the first ${count(rows.length)}` : note);
  $("[data-reimported-rows]").replaceChildren(...rows.map(reimportedRow));
}

function reimportedRow(row) {
  const holder = row.imported_by;
  const link = el("a", { href: fillUrl(document.body.dataset.jobPage, { id: holder.job_id }) }, `Import #${holder.job_id}`);
  return el(
    "tr",
    {},
    el("td", { "data-label": "Row", className: "num" }, count(row.row)),
    el("td", { "data-label": "Email" }, row.email),
    el("td", { "data-label": "Here" }, row.status === "cancelled" ? "Cancelled" : "Refused by the downstream"),
    el("td", { "data-label": "Now imported by" }, link, `, row ${count(holder.row)}`),
  );
}

// ---- live updates ----------------------------------------------------------------------------------------

const stream = new LiveStream(
  urls.eventsUrl,
  {
    "job.progress": show,
    "job.finished": (next) => {
      stream.close();
      show(next);
      loadReimported();
    },
  },
  showLiveStatus,
);

initHeader({ onCleared: () => window.location.assign($(".brand").href) });
show(state);
loadErrors();
loadReimported();
setInterval(() => {
  if (state.job.status === "processing") renderClock();
}, 1000);
if (!TERMINAL.has(state.job.status)) stream.open();
