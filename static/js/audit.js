// The audit trail: who did what, newest first, with filters and a CSV of the same entries.
import { request, withQuery } from "./api.js";
import { $, el, setText } from "./dom.js";
import { count } from "./format.js";
import { initHeader } from "./header.js";

const PAGE_SIZE = 100; // entries loaded at once; "Show older entries" loads the next page

const section = $("[data-audit]");
const form = $("[data-audit-filters]");
const body = $("[data-audit-rows]");
const empty = $("[data-audit-empty]");
const more = $("[data-audit-more]");
const summary = $("[data-audit-count]");
const failure = $("[data-audit-error]");
const csvLink = $("[data-audit-csv]");

let shown = 0;

/** The filters as query parameters; datetime-local values are taken as UTC, as the labels say. */
function filters() {
  const values = Object.fromEntries(new FormData(form));
  for (const name of ["since", "until"]) if (values[name]) values[name] = `${values[name]}Z`;
  return values;
}

function row(event) {
  const target = event.target_type ? `${event.target_type}${event.target_id ? `:${event.target_id}` : ""}` : "–";
  const details = event.details ? JSON.stringify(event.details) : "";
  return el(
    "tr",
    {},
    el("td", { "data-label": "When" }, el("time", { datetime: event.at }, when(event.at))),
    el(
      "td",
      { "data-label": "Who" },
      el("span", {}, event.actor, event.role ? el("span", { className: "muted" }, ` · ${event.role}`) : null),
    ),
    el("td", { "data-label": "Action" }, el("code", {}, event.action)),
    el("td", { "data-label": "Target" }, target),
    el("td", { "data-label": "From", title: event.user_agent || "" }, event.ip || "–"),
    el("td", { "data-label": "Details", className: "audit__details" }, details),
  );
}

/** The entry's date and time in the browser's time zone: a trail spans days, so the date is always shown. */
function when(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

async function load({ append = false } = {}) {
  const params = filters();
  csvLink.href = withQuery(section.dataset.csvUrl, params);
  try {
    const offset = append ? shown : 0;
    const { events, total } = await request(
      withQuery(section.dataset.eventsUrl, { ...params, limit: PAGE_SIZE, offset }),
    );
    failure.hidden = true;
    if (!append) body.replaceChildren();
    body.append(...events.map(row));
    shown = offset + events.length;
    empty.hidden = total > 0;
    more.hidden = shown >= total;
    setText(summary, `${count(total)} ${total === 1 ? "entry" : "entries"}`);
  } catch (error) {
    setText(failure, error.message);
    failure.hidden = false;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  load();
});
more.addEventListener("click", () => load({ append: true }));
initHeader({ onCleared: () => load() });
load();
