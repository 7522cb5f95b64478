// The dashboard's downstream panel: which downstream, its circuit breaker, a 429's pause, the last check, and
// "Test downstream", which asks it whether it answers with a call that carries no records.
import { request } from "./api.js";
import { $, el, setText } from "./dom.js";
import { dateTime, duration, fullDateTime } from "./format.js";
import { notify } from "./header.js";

const REFRESH_MS = 2000;

/** Wire up the panel and show the downstream's state; returns { refresh, refreshSoon } to read it again. */
export function initDownstream(panel) {
  const kind = $("[data-downstream-kind]", panel);
  const breaker = $("[data-downstream-breaker]", panel);
  const pause = $("[data-downstream-pause]", panel);
  const check = $("[data-downstream-check]", panel);
  const button = panel.querySelector("[data-downstream-test]"); // left out for a role that may not check

  function show(state) {
    setText(kind, state.kind === "webhook" ? `· Webhook ${state.target || ""}`.trim() : "· Simulated (built in)");
    if (!state.state_known) {
      status(breaker, "unknown", "Unknown: the shared rate-limit store does not answer");
    } else if (state.breaker === "open") {
      status(breaker, "bad", `Open after ${state.failures} failed calls in a row: calls wait for a probe`);
    } else {
      const note = state.failures ? ` (${state.failures} failed call${state.failures === 1 ? "" : "s"} in a row)` : "";
      status(breaker, "good", `Closed: calls go out${note}`);
    }
    if (state.paused_seconds > 0) {
      status(pause, "warn", `Paused by a 429 for ${duration(state.paused_seconds)} more`);
    } else {
      status(pause, "good", "Not paused");
    }
    const last = state.last_check;
    if (!last) {
      status(check, "unknown", "Not checked yet");
    } else {
      const verdict = last.ok ? "Answers" : last.answered ? "Answers with an error" : "Does not answer";
      const tone = last.ok ? "good" : last.answered ? "warn" : "bad";
      status(check, tone, `${verdict}: ${last.message} (${Math.round(last.elapsed_ms)} ms)`);
      const when = el("time", { datetime: last.checked_at, title: fullDateTime(last.checked_at) }, dateTime(last.checked_at));
      check.append(" ", el("span", { className: "muted" }, "· ", when));
    }
  }

  async function refresh() {
    try {
      show((await request(panel.dataset.statusUrl)).downstream);
    } catch (error) {
      status(breaker, "unknown", `Unknown: ${error.message}`);
    }
  }

  button?.addEventListener("click", async () => {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    button.classList.add("is-loading");
    try {
      const answer = await request(panel.dataset.checkUrl, { method: "POST" });
      show(answer.downstream);
    } catch (error) {
      notify(error.message, { error: true });
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
      button.classList.remove("is-loading");
    }
  });

  // While imports wait for the downstream (their notice says so), its state is read again, at most this often.
  let lastRefresh = 0;
  function refreshSoon() {
    if (Date.now() - lastRefresh < REFRESH_MS) return;
    lastRefresh = Date.now();
    refresh();
  }

  refresh();
  return { refresh, refreshSoon };
}

const ICONS = { good: "\u2713", warn: "\u26a0", bad: "\u2715", unknown: "?" }; // words say it too: icons are aria-hidden

/** Show a fact with a word-bearing text and an icon, never colour alone. */
function status(element, tone, text) {
  element.dataset.tone = tone;
  element.replaceChildren(el("span", { className: "downstream__icon", "aria-hidden": "true" }, ICONS[tone]), " ", text);
}
