// The analytics and comparison pages: server-rendered, with charts as images; this wires up the header and
// sends a picker's form as soon as a choice is made.
import { initHeader } from "./header.js";

initHeader({ onCleared: () => window.location.reload() });

for (const form of document.querySelectorAll("form[data-autosubmit]")) {
  for (const select of form.querySelectorAll("select")) {
    select.addEventListener("change", () => form.requestSubmit());
  }
}
