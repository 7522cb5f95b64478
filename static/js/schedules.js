// The schedules page: list the schedules with their last and next runs; create, edit, pause, resume, run now and
// delete them, and show one schedule's runs with their imports, through /api/schedules.
import { request } from "./api.js";
import { $, el, fillUrl, setText } from "./dom.js";
import { capitalize, count, dateTime, fullDateTime } from "./format.js";
import { initHeader, notify } from "./header.js";

const root = $("[data-schedules]");
const listUrl = root.dataset.schedulesUrl;
const templatesUrl = root.dataset.templatesUrl;
const jobPage = document.body.dataset.jobPage;
const table = $("[data-schedules-table]");
const rows = $("[data-schedules-rows]");
const empty = $("[data-schedules-empty]");
const runsPanel = $("[data-runs-panel]");
const runsTitle = $("[data-runs-title]");
const runRows = $("[data-runs-rows]");
const runsEmpty = $("[data-runs-empty]");
// The form, the delete dialog and the controls that change schedules are left out for a role that may not.
const form = document.querySelector("[data-schedule-form]");
const formTitle = form && $("[data-form-title]");
const formError = form && $("[data-form-error]");
const submit = form && $("[data-form-submit]");
const cancel = form && $("[data-form-cancel]");
const templateSelect = form && $("[data-template-select]");
const dialog = form && $("[data-delete-dialog]");

let editing = null; // the schedule being edited, or null for a new one
let deleting = null; // the schedule the delete dialog asks about
let shownRuns = null; // the schedule whose runs are shown

/** Fetch every schedule and show them (and the runs shown, which a run may have added to). */
async function load() {
  try {
    const { schedules } = await request(listUrl);
    show(schedules);
    if (shownRuns) {
      const still = schedules.find((schedule) => schedule.id === shownRuns.id);
      if (still) await showRuns(still);
      else runsPanel.hidden = true;
    }
  } catch (error) {
    notify(error.message, { error: true });
  }
}

function show(schedules) {
  rows.replaceChildren(...schedules.map(rowFor));
  table.hidden = schedules.length === 0;
  empty.hidden = schedules.length > 0;
}

function timeCell(label, iso) {
  return el("td", { "data-label": label, title: fullDateTime(iso) || null }, dateTime(iso));
}

function rowFor(schedule) {
  const last = el("td", { "data-label": "Last run" });
  if (schedule.last_run_at) {
    last.append(el("span", { title: fullDateTime(schedule.last_run_at) }, dateTime(schedule.last_run_at)));
    if (schedule.last_job_id) {
      last.append(" · ", el("a", { href: fillUrl(jobPage, { id: schedule.last_job_id }) }, `#${schedule.last_job_id}`));
    }
  } else {
    last.append("Never");
  }
  if (schedule.last_error) {
    last.append(el("p", { className: "schedules__error", "data-last-error": true }, schedule.last_error));
  }
  const next = schedule.paused
    ? el("td", { "data-label": "Next run" }, el("span", { className: "badge badge--paused" }, "Paused"))
    : timeCell("Next run", schedule.next_run_at);
  const actions = [button("Runs", `Show the runs of ${schedule.name}`, () => showRuns(schedule))];
  if (form) {
    actions.push(
      button("Run now", `Run ${schedule.name} now`, () => runNow(schedule)),
      schedule.paused
        ? button("Resume", `Resume ${schedule.name}`, () => act(schedule, "resume", "resumed"))
        : button("Pause", `Pause ${schedule.name}`, () => act(schedule, "pause", "paused")),
      button("Edit", `Edit ${schedule.name}`, () => startEditing(schedule)),
      button("Delete", `Delete ${schedule.name}`, () => askDelete(schedule), "button--danger-quiet"),
    );
  }
  return el(
    "tr",
    { "data-schedule-id": schedule.id },
    el("td", { "data-label": "Name", className: "schedules__name" }, el("span", {}, schedule.name),
      el("span", { className: "muted schedules__sub" }, `${schedule.template} · ${capitalize(schedule.mode)}`)),
    el("td", { "data-label": "When" }, el("code", {}, schedule.cron), el("span", { className: "muted schedules__sub" }, schedule.timezone)),
    el("td", { "data-label": "Source", className: "schedules__source" }, schedule.source),
    last,
    next,
    el("td", { className: "schedules__cell-actions" }, el("div", { className: "schedules__actions" }, ...actions)),
  );
}

function button(text, label, onClick, variant = "") {
  const element = el("button", { type: "button", className: `button ${variant}`.trim() }, text);
  element.setAttribute("aria-label", label);
  element.addEventListener("click", onClick);
  return element;
}

function scheduleUrl(schedule, action = "") {
  return `${listUrl}/${schedule.id}${action ? `/${action}` : ""}`;
}

async function act(schedule, action, done) {
  try {
    await request(scheduleUrl(schedule, action), { method: "POST" });
    notify(`Schedule “${schedule.name}” ${done}.`);
    await load();
  } catch (error) {
    notify(error.message, { error: true });
  }
}

async function runNow(schedule) {
  try {
    const { run } = await request(scheduleUrl(schedule, "run"), { method: "POST" });
    if (run.job) {
      notify(`Schedule “${schedule.name}” started import #${run.job.id}.`, {
        link: { href: fillUrl(jobPage, { id: run.job.id }), text: "Open it" },
      });
    } else {
      notify(`Schedule “${schedule.name}” could not run: ${run.error}`, { error: true });
    }
    shownRuns = schedule;
    await load();
  } catch (error) {
    notify(error.message, { error: true });
  }
}

async function showRuns(schedule) {
  shownRuns = schedule;
  try {
    const { runs, total } = await request(scheduleUrl(schedule, "runs"));
    setText(runsTitle, `Runs of “${schedule.name}” (${count(total)})`);
    runRows.replaceChildren(...runs.map(runRow));
    runsEmpty.hidden = runs.length > 0;
    runsPanel.hidden = false;
  } catch (error) {
    notify(error.message, { error: true });
  }
}

function runRow(run) {
  const outcome = run.outcome === "failed"
    ? el("td", { "data-label": "Outcome" }, el("span", { className: "badge badge--failed" }, "Failed"), " ",
      el("span", { className: "schedules__error" }, run.error))
    : el("td", { "data-label": "Outcome" }, el("span", { className: "badge" }, capitalize(run.outcome || "fetching")));
  const job = run.job;
  return el(
    "tr",
    { "data-run-id": run.id },
    timeCell("Due", run.due_at),
    outcome,
    el("td", { "data-label": "Import" },
      job
        ? [el("a", { href: fillUrl(jobPage, { id: job.id }) }, `#${job.id} ${job.source}`), " ",
          el("span", { className: `badge badge--${job.status}` }, capitalize(job.status))]
        : "–"),
    el("td", { "data-label": "Records" },
      job ? `${count(job.success_count)} delivered, ${count(job.failed_count)} failed of ${count(job.total_records ?? job.processed_count)}` : "–"),
  );
}

/** The form's fields as the API takes a schedule. */
function formSchedule() {
  const value = (name) => form.elements[name].value.trim();
  return {
    name: value("name"),
    template: value("template"),
    source_kind: value("source_kind"),
    source: value("source"),
    cron: value("cron"),
    timezone: value("timezone") || "UTC",
    mode: value("mode"),
    paused: form.elements.paused.checked,
  };
}

function fillForm(schedule) {
  const fields = {
    name: schedule ? schedule.name : "",
    template: schedule ? schedule.template : templateSelect.options[0]?.value || "",
    source_kind: schedule ? schedule.source_kind : "path",
    source: schedule ? schedule.source : "",
    cron: schedule ? schedule.cron : "",
    timezone: schedule ? schedule.timezone : browserZone(),
    mode: schedule ? schedule.mode : "batch",
  };
  for (const [name, value] of Object.entries(fields)) form.elements[name].value = value;
  form.elements.paused.checked = schedule ? schedule.paused : false;
}

function browserZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

function startEditing(schedule) {
  editing = schedule;
  fillForm(schedule);
  setText(formTitle, `Edit “${schedule.name}”`);
  setText(submit, "Save changes");
  cancel.hidden = false;
  formError.hidden = true;
  form.elements.name.focus();
}

function stopEditing() {
  editing = null;
  form.reset();
  fillForm(null);
  setText(formTitle, "New schedule");
  setText(submit, "Save schedule");
  cancel.hidden = true;
  formError.hidden = true;
}

// The source's kind follows what is typed when it says so plainly (a URL, s3://); the select can still change it.
form?.elements.source.addEventListener("input", () => {
  const source = form.elements.source.value.trim().toLowerCase();
  if (source.startsWith("http://") || source.startsWith("https://")) form.elements.source_kind.value = "url";
  else if (source.startsWith("s3://")) form.elements.source_kind.value = "s3";
});

form?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const schedule = formSchedule();
  const missing = ["name", "template", "source", "cron"].find((field) => !schedule[field]);
  if (missing) {
    showFormError(missing === "template" ? "Save a template first: a schedule imports with one." : `Give the schedule a ${missing}.`);
    return;
  }
  submit.disabled = true;
  try {
    const url = editing ? scheduleUrl(editing) : listUrl;
    const { schedule: saved } = await request(url, { method: editing ? "PUT" : "POST", json: schedule });
    notify(`Schedule “${saved.name}” saved.`);
    stopEditing();
    await load();
  } catch (error) {
    showFormError(error.message);
  } finally {
    submit.disabled = false;
  }
});

function showFormError(message) {
  setText(formError, message);
  formError.hidden = false;
}

cancel?.addEventListener("click", stopEditing);

function askDelete(schedule) {
  deleting = schedule;
  setText($("[data-delete-name]", dialog), `“${schedule.name}”`);
  dialog.returnValue = "";
  dialog.showModal();
}

dialog?.addEventListener("close", async () => {
  if (dialog.returnValue !== "confirm" || !deleting) return;
  const schedule = deleting;
  deleting = null;
  try {
    await request(scheduleUrl(schedule), { method: "DELETE" });
    notify(`Schedule “${schedule.name}” deleted.`);
    if (editing && editing.id === schedule.id) stopEditing();
    if (shownRuns && shownRuns.id === schedule.id) shownRuns = null;
    await load();
  } catch (error) {
    notify(error.message, { error: true });
  }
});

/** Fill the template choices from /api/templates, and the time zones the browser knows. */
async function loadChoices() {
  try {
    const { templates } = await request(templatesUrl);
    templateSelect.replaceChildren(...templates.map((template) => el("option", { value: template.name }, template.name)));
  } catch (error) {
    notify(error.message, { error: true });
  }
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  $("[data-timezones]").replaceChildren(...zones.map((zone) => el("option", { value: zone })));
  fillForm(null);
}

initHeader({ onCleared: () => load() });
if (form) await loadChoices();
load();
