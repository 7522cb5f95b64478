// The header on every page: the import buttons, the file picker, "Clear records", notices and the live badge.
import { request } from "./api.js";
import { $, el, fillUrl, setText } from "./dom.js";
import { count } from "./format.js";
import { initPreview } from "./preview.js";

const NOTICE_MS = 8000;

let noticeTimer = null;

/** Show a message under the header, with an optional link ({ href, text }) after it; errors stay until dismissed,
 * other notes fade after a while. */
export function notify(message, { error = false, link = null } = {}) {
  const notice = $("[data-notice]");
  clearTimeout(noticeTimer);
  const text = $("[data-notice-text]", notice);
  setText(text, message);
  if (link) text.append(" ", el("a", { href: link.href }, link.text));
  notice.classList.toggle("notice--error", error);
  notice.hidden = false;
  if (!error) noticeTimer = setTimeout(() => (notice.hidden = true), NOTICE_MS);
}

const LIVE_TEXT = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…" };

/** Show whether the page's live stream is connected. */
export function showLiveStatus(status) {
  const badge = $("[data-live]");
  badge.hidden = !(status in LIVE_TEXT);
  badge.dataset.state = status;
  setText(badge, LIVE_TEXT[status] || "");
}

/** Wire up the header; onCleared runs after "Clear records" succeeded. Controls the caller's role may not use are
 * left out of the page by the server, so only those present are wired. */
export function initHeader({ onCleared }) {
  const picker = document.querySelector("[data-picker]") ? initPicker() : null;
  if (picker) initPreview($("[data-picker]"));
  if (document.querySelector("[data-import]")) initImportButtons(picker);
  if (document.querySelector("[data-clear]")) initClear(onCleared);
  $("[data-notice-close]").addEventListener("click", () => ($("[data-notice]").hidden = true));
}

function initImportButtons(picker) {
  const buttons = [...document.querySelectorAll("[data-import]")];
  for (const button of buttons) {
    button.addEventListener("click", async () => {
      const mode = button.dataset.import;
      const file = mode === "default" || !picker ? null : picker.file();
      const label = button.textContent;
      for (const other of buttons) other.disabled = true;
      button.setAttribute("aria-busy", "true");
      button.classList.add("is-loading");
      button.textContent = "Starting…";
      try {
        const options = { method: "POST" };
        if (file) {
          options.form = new FormData();
          options.form.append("file", file, file.name);
        }
        const { job } = await request(button.dataset.url, options);
        window.location.assign(fillUrl(document.body.dataset.jobPage, { id: job.id }));
      } catch (error) {
        notify(error.message, { error: true });
        for (const other of buttons) other.disabled = false;
        button.removeAttribute("aria-busy");
        button.classList.remove("is-loading");
        button.textContent = label;
      }
    });
  }
}

function initPicker() {
  const zone = $("[data-dropzone]");
  const input = $("[data-file-input]");
  const label = $("[data-file-label]");
  const clear = $("[data-file-clear]");
  const emptyText = label.textContent;
  let chosen = null;

  function choose(file) {
    chosen = file || null;
    zone.classList.toggle("has-file", Boolean(chosen));
    clear.hidden = !chosen;
    setText(label, chosen ? `${chosen.name} · ${size(chosen.size)} · for Batch and Stream` : emptyText);
    if (!chosen) input.value = "";
    // The preview (preview.js) opens for each file chosen.
    $("[data-picker]").dispatchEvent(new CustomEvent("file-chosen", { detail: { file: chosen } }));
  }

  input.addEventListener("change", () => choose(input.files[0]));
  clear.addEventListener("click", () => choose(null));
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("is-dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("is-dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("is-dragging");
    if (event.dataTransfer.files.length) choose(event.dataTransfer.files[0]);
  });
  // A file dropped beside the zone must not make the browser leave the page to show it.
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());

  return { file: () => chosen };
}

function initClear(onCleared) {
  const button = $("[data-clear]");
  const dialog = $("[data-clear-dialog]");
  button.addEventListener("click", () => {
    dialog.returnValue = "";
    dialog.showModal();
  });
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "confirm") return;
    button.disabled = true;
    try {
      const url = `${button.dataset.url}?confirm=true`;
      const { deleted } = await request(url, { method: "DELETE" });
      notify(`Deleted ${count(deleted.records)} records, ${count(deleted.errors)} errors and ${count(deleted.jobs)} imports.`);
      onCleared();
    } catch (error) {
      notify(error.message, { error: true, link: runningImportLink(error) });
    } finally {
      button.disabled = false;
    }
  });
}

/** A refusal that names the import still running links to it. */
function runningImportLink(error) {
  const jobId = error.details && error.details.job_id;
  return jobId ? { href: fillUrl(document.body.dataset.jobPage, { id: jobId }), text: `Open import #${jobId}` } : null;
}

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}
