// The templates page: list the saved import templates, create, edit and delete them through /api/templates.
import { request } from "./api.js";
import { $, el, setText } from "./dom.js";
import { initHeader, notify } from "./header.js";

const root = $("[data-templates]");
const listUrl = root.dataset.templatesUrl;
const table = $("[data-templates-table]");
const rows = $("[data-templates-rows]");
const empty = $("[data-templates-empty]");
// The form and the delete dialog are left out of the page for a role that may not change templates.
const form = document.querySelector("[data-template-form]");
const formTitle = form && $("[data-form-title]");
const formError = form && $("[data-form-error]");
const submit = form && $("[data-form-submit]");
const cancel = form && $("[data-form-cancel]");
const dialog = form && $("[data-delete-dialog]");

const DELIMITER_NAMES = { ",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe" };

let editing = null; // the template being edited, or null for a new one
let deleting = null; // the template the delete dialog asks about

/** Fetch every template and show them. */
async function load() {
  try {
    const { templates } = await request(listUrl);
    show(templates);
  } catch (error) {
    notify(error.message, { error: true });
  }
}

function show(templates) {
  rows.replaceChildren(...templates.map(rowFor));
  table.hidden = templates.length === 0;
  empty.hidden = templates.length > 0;
}

function rowFor(template) {
  const reading = [
    template.format || "any format",
    template.encoding || "encoding detected",
    template.delimiter ? DELIMITER_NAMES[template.delimiter] : "delimiter detected",
  ];
  if (template.sheet) reading.push(`sheet “${template.sheet}”`);
  return el(
    "tr",
    { "data-template-id": template.id },
    el("td", { "data-label": "Name", className: "templates__name" }, template.name),
    el("td", { "data-label": "Reading" }, reading.join(" · ")),
    el("td", { "data-label": "Columns" }, describeMapping(template.mapping)),
    el("td", { "data-label": "Duplicates" }, template.duplicate_policy === "update" ? "Update" : "Skip"),
    el("td", { "data-label": "Notifies", className: "templates__notifies" }, describeNotifications(template)),
    el("td", { className: "templates__cell-actions" }, form ? actionsFor(template) : null),
  );
}

function actionsFor(template) {
  const edit = el("button", { type: "button", className: "button" }, "Edit");
  edit.setAttribute("aria-label", `Edit ${template.name}`);
  edit.addEventListener("click", () => startEditing(template));
  const remove = el("button", { type: "button", className: "button button--danger-quiet" }, "Delete");
  remove.setAttribute("aria-label", `Delete ${template.name}`);
  remove.addEventListener("click", () => askDelete(template));
  return el("div", { className: "templates__actions" }, edit, remove);
}

function describeMapping(mapping) {
  if (!mapping) return "Matched by name";
  const parts = [`name ← ${mapping.name.join(" + ")}`, `email ← ${mapping.email}`];
  if (mapping.company) parts.push(`company ← ${mapping.company}`);
  parts.push(mapping.extra === null ? "other columns kept" : `kept: ${mapping.extra.join(", ") || "none"}`);
  return parts.join("; ");
}

function describeNotifications(template) {
  const targets = [template.notify_webhook_url ? "webhook" : null, ...template.notify_email].filter(Boolean);
  if (!targets.length && !template.notify_on) return "Server's settings";
  const when = template.notify_on ? ` (${template.notify_on.join(", ").replaceAll("_", " ")})` : "";
  return `${targets.join(", ") || "Server's targets"}${when}`;
}

/** The form's fields as the API takes a template. */
function formTemplate() {
  const value = (name) => form.elements[name].value.trim();
  const name = [value("name_column"), value("last_name_column")].filter(Boolean);
  const extra = form.elements.extra_columns.value.split("\n").map((line) => line.trim()).filter(Boolean);
  const mapped = name.length || value("email_column") || value("company_column") || extra.length;
  return {
    name: value("name"),
    format: value("format") || null,
    encoding: value("encoding") || null,
    delimiter: form.elements.delimiter.value || null,
    sheet: value("sheet") || null,
    duplicate_policy: value("duplicate_policy"),
    notify_webhook_url: value("notify_webhook_url") || null,
    notify_email: form.elements.notify_email.value.split(/[\n,]/).map((line) => line.trim()).filter(Boolean),
    notify_on: endingBoxes().some((box) => box.checked)
      ? endingBoxes().filter((box) => box.checked).map((box) => box.value)
      : null,
    mapping: mapped
      ? { name, email: value("email_column"), company: value("company_column") || null, extra: extra.length ? extra : null }
      : null,
  };
}

function endingBoxes() {
  return [...form.querySelectorAll('input[name="notify_on"]')];
}

function fillForm(template) {
  const mapping = template ? template.mapping : null;
  const fields = {
    name: template ? template.name : "",
    format: template ? template.format || "" : "",
    encoding: template ? template.encoding || "" : "",
    delimiter: template ? template.delimiter || "" : "",
    sheet: template ? template.sheet || "" : "",
    duplicate_policy: template ? template.duplicate_policy : "skip",
    name_column: mapping ? mapping.name[0] : "",
    last_name_column: mapping ? mapping.name.slice(1).join(" ") : "",
    email_column: mapping ? mapping.email : "",
    company_column: mapping ? mapping.company || "" : "",
    extra_columns: mapping && mapping.extra ? mapping.extra.join("\n") : "",
    notify_webhook_url: template ? template.notify_webhook_url || "" : "",
    notify_email: template ? template.notify_email.join("\n") : "",
  };
  for (const [name, value] of Object.entries(fields)) form.elements[name].value = value;
  const endings = new Set(template?.notify_on ?? []);
  for (const box of endingBoxes()) box.checked = endings.has(box.value);
}

function startEditing(template) {
  editing = template;
  fillForm(template);
  setText(formTitle, `Edit “${template.name}”`);
  setText(submit, "Save changes");
  cancel.hidden = false;
  formError.hidden = true;
  form.elements.name.focus();
}

function stopEditing() {
  editing = null;
  form.reset();
  fillForm(null);
  setText(formTitle, "New template");
  setText(submit, "Save template");
  cancel.hidden = true;
  formError.hidden = true;
}

form?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const template = formTemplate();
  if (!template.name) {
    showFormError("Give the template a name.");
    return;
  }
  if (template.mapping && !(template.mapping.name.length && template.mapping.email)) {
    showFormError("A mapping needs the name column and the email column.");
    return;
  }
  submit.disabled = true;
  try {
    const url = editing ? `${listUrl}/${editing.id}` : listUrl;
    const { template: saved } = await request(url, { method: editing ? "PUT" : "POST", json: template });
    notify(`Template “${saved.name}” saved.`);
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

function askDelete(template) {
  deleting = template;
  setText($("[data-delete-name]", dialog), `“${template.name}”`);
  dialog.returnValue = "";
  dialog.showModal();
}

dialog?.addEventListener("close", async () => {
  if (dialog.returnValue !== "confirm" || !deleting) return;
  const template = deleting;
  deleting = null;
  try {
    await request(`${listUrl}/${template.id}`, { method: "DELETE" });
    notify(`Template “${template.name}” deleted.`);
    if (editing && editing.id === template.id) stopEditing();
    await load();
  } catch (error) {
    notify(error.message, { error: true });
  }
});

initHeader({ onCleared: () => {} });
load();
