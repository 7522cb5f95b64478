// One import's page: live progress from its event stream, its retries, the error categories as filters, and the
// error list, paged and searchable.
import { request, withQuery } from "./api.js";
import { $, el, fillUrl, setText } from "./dom.js";
import { TERMINAL, count, duration, moment, percent, rate } from "./format.js";
import { initHeader, notify, showLiveStatus } from "./header.js";
import { LiveStream } from "./live.js";
import { showStatus, statusLook } from "./status.js";
import "./job-records.js"; // the records panel, with each record's extra fields
import "./notifications.js";

const VALUE_ORDER = ["name", "email", "company"];
const ERROR_PAGE_SIZE = 20; // errors per page of the list
const PHONE_ERROR_PAGE_SIZE = 10; // on a narrow screen, where each error is a card of several lines
const narrowScreen = window.matchMedia("(max-width: 720px)"); // the stylesheet's breakpoint for phones
const REIMPORTED_LIMIT = 100; // rows listed under "Imported again later"; the note says how many there are
const RATE_WINDOW_MS = 5000; // rows/s is measured over this much recent progress
const ERROR_REFRESH_MS = 1000; // while errors keep coming, the list reloads at most this often
const SEARCH_DELAY_MS = 300; // typing in the search box waits this long for the next key before searching
const BEFORE_THE_END = 99; // the most a bar or percentage shows before the import has ended

const page = $("[data-job]");
const urls = page.dataset;
// Rows the file's lines suggest while the true total is unknown (a stream reads its file as it goes).
const rateLimit = Number(page.dataset.rateLimit); // rows/s the rate limit allows (0: none)
const categoryButtons = [...document.querySelectorAll("[data-category]")];
const categoryLabels = Object.fromEntries(
  categoryButtons.map((button) => [button.dataset.category, $("[data-label]", button).textContent]),
);

let state = JSON.parse($("[data-initial-state]").textContent);
let receivedAt = performance.now(); // when `state` arrived, to tick the elapsed time between events
let samples = []; // [time, rows delivered] of recent states, for rows/s
let stale = false; // the live stream is down: the figures are the last ones received
let lastUpdate = new Date(); // when the figures shown last changed, for the note while they are stale

// ---- progress -------------------------------------------------------------------------------------------

function show(next) {
  state = next;
  receivedAt = performance.now();
  lastUpdate = new Date();
  const { job } = state;
  samples.push([receivedAt, job.delivered_count]);
  samples = samples.filter(([time]) => receivedAt - time <= RATE_WINDOW_MS);
  renderProgress();
  renderRetries();
  renderCategories();
  renderActions();
  refreshErrorsSoon();
}

/** The total to measure progress against, and whether it is only an estimate; null while nothing is known. */
function progressTotal(job) {
  if (job.total_records !== null) return { total: job.total_records, estimated: false };
  if (job.estimated_total !== null && !TERMINAL.has(job.status)) {
    // The file may hold more rows than its lines suggested so far: never promise fewer than are read.
    return { total: Math.max(job.estimated_total, job.processed_count), estimated: true };
  }
  return null;
}

function renderProgress() {
  const { job } = state;
  showStatus($("[data-status]"), job);
  document.title = `Import #${job.id}: ${statusLook(job).text} · importdash`;
  renderTimes(job);

  const finished = TERMINAL.has(job.status);
  const measure = progressTotal(job);
  const done = job.processed_count;
  let shown = measure ? percent(done, measure.total) : null;
  if (shown !== null && !finished) shown = Math.min(shown, BEFORE_THE_END);
  const about = measure && measure.estimated ? "about " : "";
  const cancelled = job.cancelled_count ? `, ${count(job.cancelled_count)} cancelled before they were sent` : "";
  let headline = `${count(done)} rows`;
  let subline = "processed so far; the total is known once the whole file is read";
  if (measure) {
    headline = `${measure.estimated ? "≈ " : ""}${shown}%`;
    subline = `${count(done)} of ${about}${count(measure.total)} rows processed${cancelled}`;
    if (measure.estimated) subline += " (estimated from the file's lines)";
  } else if (job.status === "pending") {
    subline = "Waiting to start";
  } else if (finished) {
    subline = `rows processed${cancelled}`;
  }
  setText($("[data-headline]"), headline);
  setText($("[data-subline]"), subline);
  renderBar(job, measure, shown);

  setText($("[data-success]"), count(job.success_count));
  setText($("[data-failed]"), count(job.failed_count));
  // Rows a cancel stopped before they were sent: a resume sends them.
  $("[data-cancelled-stat]").hidden = !job.cancelled_count;
  setText($("[data-cancelled]"), count(job.cancelled_count));
  const error = $("[data-job-error]");
  error.hidden = !job.error;
  setText(error, job.error || "");
  const notice = $("[data-job-notice]");
  notice.hidden = !job.notice || finished;
  setText(notice, job.notice ? `Delivery: ${job.notice}` : "");
  // Asked to cancel, not yet ended: once the status says cancelled the notice goes.
  $("[data-cancelling]").hidden = !(job.cancel_requested && !finished);
  renderClock();
}

/** The bar's segments are shares of the total (or its estimate); with neither, it only says that work goes on. */
function renderBar(job, measure, shown) {
  const finished = TERMINAL.has(job.status);
  const bar = $("[data-bar]");
  const parts = [job.success_count, job.failed_count, job.cancelled_count];
  let widths = parts.map(() => 0);
  if (measure && measure.total > 0) {
    widths = parts.map((part) => (100 * part) / measure.total);
    const filled = widths.reduce((sum, width) => sum + width, 0);
    // A bar is full only at the end: until then the segments share at most BEFORE_THE_END percent of it.
    if (!finished && filled > BEFORE_THE_END) widths = widths.map((width) => (width * BEFORE_THE_END) / filled);
  } else if (finished && job.processed_count > 0) {
    widths = parts.map((part) => (100 * part) / job.processed_count);
  }
  $("[data-bar-ok]").style.width = `${widths[0]}%`;
  $("[data-bar-failed]").style.width = `${widths[1]}%`;
  $("[data-bar-cancelled]").style.width = `${widths[2]}%`;
  bar.classList.toggle("bar--indeterminate", !measure && !finished);
  bar.classList.toggle("bar--estimate", Boolean(measure && measure.estimated));
  const done = job.processed_count;
  if (measure) {
    const about = measure.estimated ? "an estimated " : "";
    bar.setAttribute("aria-valuemax", measure.total);
    bar.setAttribute("aria-valuenow", Math.min(done, measure.total));
    bar.setAttribute("aria-valuetext", `${shown}%: ${count(done)} of ${about}${count(measure.total)} rows processed`);
  } else {
    bar.removeAttribute("aria-valuemax");
    bar.removeAttribute("aria-valuenow");
    bar.setAttribute("aria-valuetext", `${count(done)} rows processed${finished ? "" : "; total not known yet"}`);
  }
}

/** When the import was created, started and ended, in the reader's time zone; the full moment on hover. */
function renderTimes(job) {
  const parts = [["Created", job.created_at]];
  if (job.started_at) parts.push(["started", job.started_at]);
  if (job.completed_at) parts.push([job.retries ? "last ended" : "ended", job.completed_at]);
  const nodes = parts.flatMap(([label, iso], index) => [index ? ", " : "", `${label} `, timeElement(iso)]);
  const times = $("[data-times]");
  const text = nodes.map((node) => (typeof node === "string" ? node : node.textContent)).join("");
  if (times.textContent !== text) times.replaceChildren(...nodes);
}

function timeElement(iso) {
  const full = new Date(iso).toLocaleString(undefined, { dateStyle: "full", timeStyle: "long" });
  return el("time", { datetime: iso, title: full }, moment(iso));
}

/** Elapsed time, rows/s and the time left of the import's own work; ticks every second while it runs. */
function renderClock() {
  const { job } = state;
  // A retry's run is not the import's own work: its time and sends are on its own line, not in these figures.
  const running = job.status === "processing" && job.retries === 0;
  let elapsed = job.duration_seconds;
  if (running && elapsed !== null) elapsed += (performance.now() - receivedAt) / 1000;
  setText($("[data-elapsed]"), duration(elapsed));

  // Rates count rows the downstream answered, never rows a cancel stopped or a retry sent again.
  const measured = running ? measuredRate() : null;
  const average = elapsed ? job.delivered_count / elapsed : null;
  setText($("[data-rate]"), rate(stale ? null : running ? measured ?? average : average));

  const measure = progressTotal(job);
  const left = measure ? measure.total - job.processed_count : null;
  const showEta = running && !stale && measured > 0 && left > 0;
  $("[data-eta-stat]").hidden = !showEta;
  // The pace ahead is the recent one, and never faster than the rate limit (a burst at the start is no pace).
  const pace = rateLimit > 0 ? Math.min(measured, rateLimit) : measured;
  if (showEta) setText($("[data-eta]"), `about ${duration(left / pace)}${measure.estimated ? " (estimate)" : ""}`);
}

function measuredRate() {
  if (samples.length < 2) return null;
  const [firstTime, firstCount] = samples[0];
  const [lastTime, lastCount] = samples[samples.length - 1];
  return lastTime > firstTime ? ((lastCount - firstCount) * 1000) / (lastTime - firstTime) : null;
}

/** The live stream's state: while it is down, the figures are marked as last known, and rate and time left go. */
function showConnection(status) {
  showLiveStatus(status);
  // Down from the first error until the stream is live again (a reopened stream closes and connects first).
  const down = status === "live" ? false : status === "reconnecting" ? true : stale;
  if (down !== stale) {
    stale = down;
    $("[data-progress]").classList.toggle("is-stale", stale);
    const note = $("[data-stale]");
    note.hidden = !stale;
    setText(note, stale ? `Connection lost: these figures are from ${moment(lastUpdate.toISOString())} and not live. Reconnecting…` : "");
    renderClock();
  }
}

// ---- retries ----------------------------------------------------------------------------------------------

/** Each retry on a line of its own: when it ran, what it sent again, how many now succeeded or failed again. */
function renderRetries() {
  const retries = (state.runs || []).filter((run) => run.kind === "retry");
  $("[data-retries]").hidden = retries.length === 0;
  const items = retries.map((run, index) => {
    const running = run.ended_at === null;
    const sent = `${running ? "re-sending" : "re-sent"} ${count(run.sent)} ${run.sent === 1 ? "row" : "rows"}`;
    const outcome = `${count(run.succeeded)} now succeeded, ${count(run.refused)} failed again`;
    const how = running ? " (running)" : run.outcome === "cancelled" ? " (cancelled)" : "";
    return el("li", {}, `Retry ${index + 1}, `, timeElement(run.started_at), `: ${sent}; ${outcome}${how}.`);
  });
  const list = $("[data-retry-runs]");
  const text = items.map((item) => item.textContent).join("\n");
  if (list.dataset.text !== text) {
    list.dataset.text = text;
    list.replaceChildren(...items);
  }
}

// ---- actions (cancel, retry, resume, delete, downloads) ----------------------------------------------------

function renderActions() {
  const { job } = state;
  const finished = TERMINAL.has(job.status);
  // The server leaves out the controls the caller's role may not use: only those present are shown or hidden.
  reveal("[data-cancel]", !(finished || job.cancel_requested));
  // Pause holds a waiting or running import; once its run has stopped, Unpause lets it go on.
  const paused = job.status === "paused";
  reveal("[data-pause]", !(finished || paused || job.cancel_requested || job.pause_requested));
  reveal("[data-unpause]", paused);
  $("[data-pausing]").hidden = !(job.pause_requested && !paused && !finished && !job.cancel_requested);
  $("[data-paused-note]").hidden = !paused;
  if (reveal("[data-priority-form]", !finished)) {
    const input = $("[data-priority-input]");
    if (document.activeElement !== input) input.value = job.priority;
  }
  // Only refusals by the downstream can be sent again; validation errors need a fixed file.
  const retry = reveal("[data-retry]", job.status === "completed" && state.retryable > 0);
  if (retry) setText(retry, `Retry ${count(state.retryable)} failed ${state.retryable === 1 ? "delivery" : "deliveries"}`);
  const note = $("[data-retry-note]");
  const nothingLeft = Boolean(retry) && job.status === "completed" && state.retryable === 0 && (job.retries > 0 || state.error_counts.other > 0);
  const { duplicate, missing_value: missing, invalid_format: invalid } = state.error_counts;
  const fixInFile = duplicate + missing + invalid > 0
    ? " Rows refused by the checks (duplicates, missing or invalid values) need a corrected file: download the errors."
    : "";
  note.hidden = !nothingLeft;
  setText(note, nothingLeft ? `Nothing left to retry: no row waits after a refusal by the downstream.${fixInFile}` : "");
  // A failed or cancelled import goes on from where it stopped.
  reveal("[data-resume]", job.status === "failed" || job.status === "cancelled");
  reveal("[data-delete]", finished);
  const results = $("[data-results]");
  results.hidden = !(job.success_count > 0 || state.error_counts.other > 0);
  results.href = urls.resultsCsvUrl;
  const download = $("[data-download]");
  download.hidden = job.failed_count === 0;
  download.href = withQuery(urls.errorsCsvUrl, { category: currentCategory() });
}

/** Show or hide a control that the caller's role may leave out of the page; return it, or null when it is absent. */
function reveal(selector, visible) {
  const element = document.querySelector(selector);
  if (element) element.hidden = !visible;
  return element;
}

/** Wire up a control if the page has it. */
function wire(selector, wireUp) {
  const element = document.querySelector(selector);
  if (element) wireUp(element);
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

/** Open a confirmation dialog from the button; run work if the person confirms. */
function confirmWith(button, dialog, work) {
  button.addEventListener("click", () => {
    dialog.returnValue = "";
    dialog.showModal();
  });
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "confirm") act(button, work);
    else button.focus();
  });
}

/**
 * Show the import as an action's answer left it, only while the live stream is down. Each action announces the
 * change on the stream, and the answer was read before the run it stops had stopped: coming after the stream's
 * "Paused" or "Cancelled", as it may on a busy server, it would put the page back on "Processing" for good.
 */
function showAnswer(job) {
  if (stale) show({ ...state, job });
}

wire("[data-cancel]", (button) =>
  confirmWith(button, $("[data-cancel-dialog]"), async () => {
    const { job } = await request(urls.cancelUrl, { method: "POST" });
    showAnswer(job);
  }),
);

wire("[data-pause]", (button) =>
  button.addEventListener("click", () =>
    act(button, async () => {
      const { job } = await request(urls.pauseUrl, { method: "POST" });
      showAnswer(job);
    }),
  ),
);

wire("[data-unpause]", (button) =>
  button.addEventListener("click", () =>
    act(button, async () => {
      const { job } = await request(urls.unpauseUrl, { method: "POST" });
      showAnswer(job);
    }),
  ),
);

wire("[data-priority-form]", (form) =>
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("[data-priority-input]", form);
    act(event.submitter || input, async () => {
      const { job } = await request(urls.priorityUrl, { method: "POST", json: { priority: Number(input.value) } });
      showAnswer(job);
      notify(`Priority set to ${job.priority}.`);
    });
  }),
);

wire("[data-delete]", (button) =>
  confirmWith(button, $("[data-delete-dialog]"), async () => {
    await request(urls.deleteUrl, { method: "DELETE" });
    stream.close();
    window.location.assign(urls.dashboardUrl);
  }),
);

wire("[data-retry]", (button) =>
  button.addEventListener("click", () =>
    act(button, async () => {
      // A retry reopens this same import: show it pending, then follow its run.
      const { job } = await request(urls.retryUrl, { method: "POST" });
      show({ ...state, job, retryable: 0 });
      stream.open();
    }),
  ),
);

wire("[data-resume]", (button) =>
  button.addEventListener("click", () =>
    act(button, async () => {
      const { job } = await request(urls.resumeUrl, { method: "POST" });
      show({ ...state, job });
      stream.open();
    }),
  ),
);

// ---- error categories and the error list -----------------------------------------------------------------

const errors = {
  offset: 0, // the first error shown
  query: "", // the search, if any
  shownFor: null, // the counts the shown page was loaded for
  request: 0, // numbers the list's loads, so only the latest one is shown
  timer: null,
};

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

/** What the shown page depends on: the job's error counts, and whether it has ended ("No errors so far"). */
function errorCounts() {
  return JSON.stringify([state.error_counts, TERMINAL.has(state.job.status)]);
}

/** Reload the list when the counts it was loaded for are out of date, at most once per interval. */
function refreshErrorsSoon() {
  if (errorCounts() === errors.shownFor || errors.timer) return;
  errors.timer = setTimeout(() => {
    errors.timer = null;
    if (errorCounts() !== errors.shownFor) loadErrors();
  }, ERROR_REFRESH_MS);
}

async function loadErrors() {
  const number = ++errors.request;
  const category = currentCategory();
  const counts = errorCounts();
  try {
    const { errors: page, total } = await request(
      withQuery(urls.errorsUrl, { category, q: errors.query, limit: errorPageSize(), offset: errors.offset }),
    );
    if (number !== errors.request) return; // a newer load (another filter, search or page) answers instead
    if (page.length === 0 && errors.offset > 0 && total > 0) {
      errors.offset = Math.floor((total - 1) / errorPageSize()) * errorPageSize(); // the list shrank: its last page
      loadErrors();
      return;
    }
    errors.shownFor = counts;
    renderErrors(page, total, category);
  } catch (error) {
    if (number === errors.request) notify(error.message, { error: true });
    return;
  }
  refreshErrorsSoon(); // progress that came in during the load may have added errors
}

// The error list's columns, in order: each a header label, a class and how to show one error in it.
const ERROR_COLUMNS = [
  { label: "Row", className: "num errors__row", cell: (error) => count(error.row) },
  {
    label: "Category",
    className: "errors__category",
    cell: (error) => el("span", { className: `tag tag--${error.category}` }, categoryLabels[error.category] || error.category),
  },
  { label: "Message", className: "errors__message", cell: (error) => error.message },
  { label: "Values", className: "errors__values", cell: (error) => valuesList(error.data || {}) },
];

function renderErrors(page, total, category) {
  const where = [category ? ` in ${categoryLabels[category]}` : "", errors.query ? ` matching “${errors.query}”` : ""].join("");
  $("[data-error-rows]").replaceChildren(...page.map(errorRow));
  $("table.errors").hidden = page.length === 0;
  const empty = $("[data-errors-empty]");
  empty.hidden = page.length > 0;
  setText(empty, `No errors${where}${TERMINAL.has(state.job.status) ? "" : " so far"}.`);
  const first = errors.offset + 1;
  const last = errors.offset + page.length;
  setText($("[data-errors-note]"), total ? `${count(total)} ${total === 1 ? "error" : "errors"}${where}` : "");
  $("[data-pager]").hidden = total <= errorPageSize() && errors.offset === 0;
  setText($("[data-page-position]"), page.length ? `${count(first)}–${count(last)} of ${count(total)}` : "");
  $("[data-page-previous]").disabled = errors.offset === 0;
  $("[data-page-next]").disabled = last >= total;
}

function errorPageSize() {
  return narrowScreen.matches ? PHONE_ERROR_PAGE_SIZE : ERROR_PAGE_SIZE;
}

function errorRow(error) {
  return el(
    "tr",
    {},
    ERROR_COLUMNS.map((column) => el("td", { "data-label": column.label, className: column.className }, column.cell(error))),
  );
}

function valuesList(data) {
  const values = orderedValues(data).map(([column, value]) =>
    el("li", {}, el("span", { className: "values__key" }, column), " ", el("span", { className: "values__value" }, value === "" ? "(empty)" : value)),
  );
  return el("ul", { className: "values" }, values);
}

/** The row's values, the contact's own columns first, then any others the file had, as read. */
function orderedValues(data) {
  const rank = (column) => {
    const index = VALUE_ORDER.indexOf(column.trim().toLowerCase());
    return index === -1 ? VALUE_ORDER.length : index;
  };
  return Object.entries(data).sort(([a], [b]) => rank(a) - rank(b));
}

/** Show the list from its first page again (a new filter or search). */
function reloadErrors() {
  errors.offset = 0;
  errors.shownFor = null;
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
    reloadErrors();
  });
}
window.addEventListener("popstate", reloadErrors);

let searchTimer = null;
$("[data-error-query]").addEventListener("input", (event) => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    errors.query = event.target.value.trim();
    reloadErrors();
  }, SEARCH_DELAY_MS);
});
$("[data-error-search]").addEventListener("submit", (event) => {
  event.preventDefault();
  clearTimeout(searchTimer);
  errors.query = $("[data-error-query]").value.trim();
  reloadErrors();
});

function turnPage(step) {
  errors.offset = Math.max(0, errors.offset + step * errorPageSize());
  errors.shownFor = null;
  loadErrors();
}
$("[data-page-previous]").addEventListener("click", () => turnPage(-1));
$("[data-page-next]").addEventListener("click", () => turnPage(1));
narrowScreen.addEventListener("change", () => {
  errors.shownFor = null;
  loadErrors();
});

// ---- rows imported again by later imports ------------------------------------------------------------------

/** List this import's cancelled or refused rows that a later import stored instead, once it has ended. */
async function loadReimported() {
  const { job } = state;
  if (!TERMINAL.has(job.status) || !(job.cancelled_count || state.error_counts.other)) return;
  try {
    const { rows, total } = await request(withQuery(urls.reimportedUrl, { limit: REIMPORTED_LIMIT }));
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
  showConnection,
);

initHeader({ onCleared: () => window.location.assign($(".brand").href) });
show(state);
loadErrors();
loadReimported();
setInterval(() => {
  if (state.job.status === "processing") renderClock();
}, 1000);
if (!TERMINAL.has(state.job.status)) stream.open();
