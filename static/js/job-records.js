// The job page's records: the first ones this import stored, each with its extra fields and, for an update of a
// record another import stored first, its version. Reloaded as the page's counts change (job.js draws them).
import { request, withQuery } from "./api.js";
import { $, el, setText } from "./dom.js";
import { count } from "./format.js";
import { notify } from "./header.js";

// Records listed (fewer on a phone, where each is a card); the note says how many the import holds.
const RECORD_LIMIT = 20;
const PHONE_RECORD_LIMIT = 5;
const narrowScreen = window.matchMedia("(max-width: 720px)"); // the stylesheet's breakpoint for phones
const REFRESH_MS = 1500; // while the counts change, the list reloads at most this often
const STATUS_LABELS = {
  pending: "Waiting",
  in_flight: "Sending",
  succeeded: "Delivered",
  failed: "Refused",
  cancelled: "Cancelled",
};

const panel = $("[data-records]");
let timer = null;

async function load() {
  try {
    const { records, total } = await request(
      withQuery(panel.dataset.recordsUrl, {
        job: panel.dataset.jobId,
        limit: narrowScreen.matches ? PHONE_RECORD_LIMIT : RECORD_LIMIT,
      }),
    );
    render(records, total);
  } catch (error) {
    notify(error.message, { error: true });
  }
}

function render(records, total) {
  panel.hidden = total === 0;
  $("[data-record-rows]", panel).replaceChildren(...records.map(recordRow));
  const shown = total > records.length ? `Showing the first ${count(records.length)} of ${count(total)}` : "";
  setText($("[data-records-note]", panel), shown);
}

function recordRow(record) {
  const extra = Object.entries(record.extra || {}).map(([column, value]) =>
    el("li", {}, el("span", { className: "values__key" }, column), " ", el("span", { className: "values__value" }, value === "" ? "(empty)" : value)),
  );
  const update = record.version > 1 ? el("span", { className: "tag tag--update" }, `Update, version ${record.version}`) : null;
  return el(
    "tr",
    {},
    el("td", { "data-label": "Row", className: "num" }, count(record.row)),
    el("td", { "data-label": "Name" }, record.name),
    el("td", { "data-label": "Email", className: "records__email" }, record.email),
    el("td", { "data-label": "Company" }, record.company ?? ""),
    el("td", { "data-label": "Extra fields", className: "records__extra" }, extra.length ? el("ul", { className: "values" }, extra) : el("span", { className: "muted" }, "none")),
    el("td", { "data-label": "Status" }, el("span", {}, STATUS_LABELS[record.status] ?? record.status, update ? [" ", update] : null)),
  );
}

function reloadSoon() {
  if (timer) return;
  timer = setTimeout(() => {
    timer = null;
    narrowScreen.addEventListener("change", load);
load();
  }, REFRESH_MS);
}

// The counts job.js keeps up to date from the live stream: when one changes, records were stored or settled.
const observer = new MutationObserver(reloadSoon);
for (const selector of ["[data-success]", "[data-failed]", "[data-status]"]) {
  observer.observe($(selector), { childList: true, characterData: true, subtree: true });
}
narrowScreen.addEventListener("change", load);
load();
