// The preview of a chosen file: how it is read, its mapping (a mapping step when the server needs one), its first
// rows, its counts and the delivery estimate; "Start import" then starts it by the preview's token, with no
// second upload. Opened by the header's file picker (its "file-chosen" event).
import { request } from "./api.js";
import { $, el, fillUrl, setText } from "./dom.js";
import { count, duration } from "./format.js";

const CATEGORIES = {
  valid: "Valid",
  missing_value: "Missing value",
  invalid_format: "Invalid format",
  duplicate_in_file: "Duplicate in the file",
  duplicate_stored: "Already stored",
};
// The tag colour of each category (static/css/app.css .tag--*).
const TAGS = {
  valid: "valid",
  missing_value: "missing_value",
  invalid_format: "invalid_format",
  duplicate_in_file: "duplicate",
  duplicate_stored: "duplicate",
};
const OPTION_FIELDS = ["format", "encoding", "delimiter", "sheet", "template", "duplicate_policy"];

/** Wire up the preview dialog; picker is the header's picker element, which announces each chosen file. */
export function initPreview(picker) {
  const dialog = $("[data-preview]");
  const form = $("[data-preview-form]", dialog);
  const status = $("[data-preview-status]", dialog);
  const result = $("[data-preview-result]", dialog);
  const mappingStep = $("[data-mapping]", dialog);
  const startButtons = [...dialog.querySelectorAll("[data-preview-start]")];
  let file = null; // the chosen file: sent again only while no preview has kept it (its first preview failed)
  let token = null;
  let busy = false;
  let waiting = false;
  let current = null; // the last preview the server answered

  function setBusy(value, message) {
    busy = value;
    dialog.setAttribute("aria-busy", String(value));
    for (const button of startButtons) button.disabled = value || !current || Boolean(current.mapping_required);
    $("[data-mapping-apply]", dialog).disabled = value;
    if (message !== undefined) showStatus(message);
  }

  function showStatus(message, { error = false } = {}) {
    setText(status, message);
    status.classList.toggle("preview__status--error", error);
  }

  function optionsForm() {
    const data = new FormData();
    for (const name of OPTION_FIELDS) data.append(name, form.elements[name].value.trim());
    return data;
  }

  async function send(data) {
    setBusy(true, "Reading the whole file…");
    try {
      const { preview } = await request(dialog.dataset.previewUrl, { method: "POST", form: data });
      token = preview.token;
      current = preview;
      show(preview);
    } catch (error) {
      // Nothing shown may be started: the server keeps the preview as it was, not as the form now says.
      current = null;
      result.hidden = true;
      showStatus(error.message, { error: true });
    } finally {
      setBusy(false);
    }
    if (waiting) {
      waiting = false;
      previewAgain();
    }
  }

  /** Preview a newly chosen file, read the way the form says. */
  function previewFile(chosen) {
    file = chosen;
    token = null;
    current = null;
    form.reset();
    result.hidden = true;
    mappingStep.hidden = true;
    setText($("[data-preview-source]", dialog), file.name);
    if (!dialog.open) dialog.showModal();
    const data = optionsForm();
    data.append("file", file, file.name);
    send(data);
    loadTemplates();
  }

  /** List the saved templates in the template picker (none when the server has no templates API). */
  async function loadTemplates() {
    const select = $("[data-preview-templates]", dialog);
    let templates = [];
    try {
      ({ templates } = await request(dialog.dataset.templatesUrl));
    } catch {
      return; // no templates to offer: the picker keeps "None"
    }
    const chosen = select.value;
    const options = templates.map((template) => el("option", { value: template.name }, template.name));
    select.replaceChildren(el("option", { value: "" }, "None"), ...options);
    select.value = templates.some((template) => template.name === chosen) ? chosen : "";
  }

  /** Preview the kept upload again with the form's options, and the mapping if one is given; the file itself
   * when the server kept none (it refused the file as first read, e.g. in the wrong encoding). */
  function previewAgain(mapping) {
    if (busy) {
      waiting = true; // an option changed while the file was being read: read it again once that ends
      return;
    }
    if (!(token || file)) return;
    const data = optionsForm();
    if (token) data.append("preview", token);
    else data.append("file", file, file.name);
    if (mapping) data.append("mapping", JSON.stringify(mapping));
    send(data);
  }

  function show(preview) {
    if (preview.mapping_required) {
      result.hidden = true;
      showMappingStep(preview.columns, suggested(preview.mapping_required));
      showStatus(preview.mapping_required.message, { error: true });
      setText($("[data-mapping-message]", dialog), "Say which columns hold each field, then apply the mapping.");
      return;
    }
    mappingStep.hidden = true;
    result.hidden = false;
    showStatus(`Read ${plural(preview.counts.total, "row")}. Nothing is imported until you start it.`);
    showMapping(preview);
    showCounts(preview.counts);
    showEstimate(preview.estimate);
    showRows(preview.rows);
  }

  function showMappingStep(columns, mapping) {
    mappingStep.hidden = false;
    const [first, second] = mapping.name;
    fillColumns("name", columns, first, false);
    fillColumns("name2", columns, second, true);
    fillColumns("email", columns, mapping.email, false);
    fillColumns("company", columns, mapping.company, true);
    $('[data-map="name"]', mappingStep).focus();
  }

  function fillColumns(field, columns, chosen, optional) {
    const select = $(`[data-map="${field}"]`, mappingStep);
    const choices = [];
    if (optional) choices.push(el("option", { value: "" }, "None"));
    else if (!chosen) choices.push(el("option", { value: "" }, "Choose a column"));
    for (const column of columns) choices.push(el("option", { value: column }, column));
    select.replaceChildren(...choices);
    select.value = chosen || "";
  }

  function showMapping(preview) {
    const { mapping, columns } = preview;
    const mapped = new Set([...mapping.name, mapping.email, mapping.company]);
    const extra = mapping.extra ?? columns.filter((column) => !mapped.has(column));
    const parts = [
      `Name ← ${mapping.name.map(quoted).join(" + ")}`,
      `Email ← ${quoted(mapping.email)}`,
      mapping.company ? `Company ← ${quoted(mapping.company)}` : "No company column",
      extra.length ? `Extra fields: ${extra.join(", ")}` : "No extra fields",
    ];
    setText($("[data-preview-mapping]", dialog), parts.join(" · "));
  }

  function showCounts(counts) {
    const items = Object.entries(CATEGORIES).map(([name, label]) =>
      el(
        "li",
        { className: `preview__count preview__count--${name}` },
        el("span", { className: "preview__count-value" }, count(counts[name])),
        el("span", { className: "preview__count-label" }, label),
      ),
    );
    $("[data-preview-counts]", dialog).replaceChildren(...items);
  }

  function showEstimate(estimate) {
    const records =
      `${plural(estimate.records, "record")} in ${plural(estimate.calls, "call")} of ${estimate.records_per_call}`;
    const text =
      estimate.seconds === null
        ? `Delivery: ${records}; the rate limit is lifted.`
        : `Delivery takes about ${duration(estimate.seconds)}: ${records} at ${estimate.rate_per_second} calls/s.`;
    setText($("[data-preview-estimate]", dialog), text);
  }

  function showRows(rows) {
    const lines = rows.map((row) => {
      const extra = Object.entries(row.extra || {})
        .filter(([, value]) => value !== "")
        .map(([key, value]) => `${key}: ${value}`)
        .join("; ");
      return el(
        "tr",
        {},
        el("td", { className: "num", "data-label": "Row" }, row.row),
        el("td", { "data-label": "Name" }, row.name ?? ""),
        el("td", { "data-label": "Email" }, row.email ?? ""),
        el("td", { "data-label": "Company" }, row.company ?? ""),
        el("td", { className: "preview__extra", "data-label": "Extra fields" }, extra),
        el(
          "td",
          { "data-label": "Check" },
          el("span", { className: `tag tag--${TAGS[row.category]}`, title: row.message || "" }, CATEGORIES[row.category]),
        ),
      );
    });
    $("[data-preview-rows]", dialog).replaceChildren(...lines);
  }

  async function start(button) {
    if (!token || busy) return;
    setBusy(true, "Starting the import…");
    try {
      const data = new FormData();
      data.append("preview", token);
      const { job } = await request(button.dataset.url, { method: "POST", form: data });
      window.location.assign(fillUrl(document.body.dataset.jobPage, { id: job.id }));
    } catch (error) {
      showStatus(error.message, { error: true });
      setBusy(false);
    }
  }

  picker.addEventListener("file-chosen", (event) => {
    if (event.detail.file) previewFile(event.detail.file);
  });
  // Enter in a field, or a changed option, previews again with the same upload.
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    previewAgain();
  });
  form.addEventListener("change", (event) => {
    if (OPTION_FIELDS.includes(event.target.name)) previewAgain();
  });
  $("[data-mapping-apply]", dialog).addEventListener("click", () => {
    const value = (field) => $(`[data-map="${field}"]`, mappingStep).value;
    if (!value("name") || !value("email")) {
      showStatus("Choose the columns that hold the name and the email.", { error: true });
      return;
    }
    const name = [value("name"), value("name2")].filter(Boolean);
    previewAgain({ name, email: value("email"), company: value("company") || null });
  });
  $("[data-mapping-change]", dialog).addEventListener("click", () => {
    if (current && current.mapping) showMappingStep(current.columns, current.mapping);
    setText($("[data-mapping-message]", dialog), "Change which columns hold each field, then apply the mapping.");
  });
  for (const button of startButtons) button.addEventListener("click", () => start(button));
  for (const button of dialog.querySelectorAll("[data-preview-close]")) {
    button.addEventListener("click", () => dialog.close());
  }
  setBusy(false);
}

/** The mapping to offer first: the server's suggestion for each field, best first. */
function suggested(required) {
  if (required.mapping) return required.mapping;
  const best = (field) => (required.suggestions[field] || [])[0]?.column || null;
  return { name: [best("name")].filter(Boolean), email: best("email"), company: best("company") };
}

function quoted(column) {
  return `"${column}"`;
}

function plural(number, noun) {
  return `${count(number)} ${noun}${number === 1 ? "" : "s"}`;
}
