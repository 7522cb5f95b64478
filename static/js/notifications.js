// The job page's "Notifications" section: the webhook and email notifications of the import's endings, how
// sending each went, and a button that sends the failed ones again. Self-contained: job.js imports it.
import { request } from "./api.js";
import { $, el, setText } from "./dom.js";
import { count, moment } from "./format.js";
import { notify } from "./header.js";

const section = document.querySelector("[data-notifications]");
const CHANNELS = { webhook: "Webhook", email: "Email" };
const STATUSES = { pending: "Pending", sent: "Sent", failed: "Failed" };
const POLL_MS = 3000; // while notifications may still come or are being sent, the list reloads this often

let timer = null;

async function load() {
  clearTimeout(timer);
  let deliveries;
  try {
    ({ notifications: deliveries } = await request(section.dataset.notificationsUrl));
  } catch (error) {
    setText($("[data-notifications-note]", section), `Notifications could not be loaded: ${error.message}`);
    deliveries = null;
  }
  if (deliveries) render(deliveries);
  // Look again while sending is under way, or while the import may still end and notify (the page's own data says
  // whether it had ended when it was made).
  const pending = !deliveries || deliveries.some((delivery) => delivery.status === "pending");
  const mayStillCome = section.dataset.jobEnded !== "true" && deliveries?.length === 0;
  if (pending || mayStillCome) timer = setTimeout(load, POLL_MS);
}

function render(deliveries) {
  $("[data-notifications-table]", section).hidden = deliveries.length === 0;
  const empty = $("[data-notifications-empty]", section);
  empty.hidden = deliveries.length > 0;
  setText(
    empty,
    section.dataset.jobEnded === "true"
      ? "No notifications: none is set up for how this import ended (its template, or IMPORTDASH_NOTIFY_*)."
      : "Notifications go out when the import ends, if its template or the server's settings name any.",
  );
  const sent = deliveries.filter((delivery) => delivery.status === "sent").length;
  setText(
    $("[data-notifications-note]", section),
    deliveries.length ? `${count(sent)} of ${count(deliveries.length)} sent` : "",
  );
  $("[data-notification-rows]", section).replaceChildren(...deliveries.map(row));
  // Left out of the page for a role that may not send them again.
  const resend = section.querySelector("[data-resend-notifications]");
  if (resend) resend.hidden = !deliveries.some((delivery) => delivery.status === "failed");
}

function row(delivery) {
  const waiting =
    delivery.status === "pending" && delivery.next_attempt_at ? `next try ${moment(delivery.next_attempt_at)}` : "";
  return el(
    "tr",
    { "data-notification": delivery.id },
    el("td", { "data-label": "Channel" }, CHANNELS[delivery.channel] ?? delivery.channel),
    el("td", { "data-label": "Target", className: "notifications__target" }, delivery.target),
    el(
      "td",
      { "data-label": "Status" },
      el("span", { className: `tag tag--${delivery.status}` }, STATUSES[delivery.status] ?? delivery.status),
    ),
    el("td", { "data-label": "Attempts", className: "num" }, count(delivery.attempts)),
    el("td", { "data-label": "Last error", className: "notifications__error" }, delivery.last_error || waiting || "–"),
    el("td", { "data-label": "Created", className: "notifications__time" }, moment(delivery.created_at)),
    el("td", { "data-label": "Sent", className: "notifications__time" }, moment(delivery.sent_at)),
  );
}

const button = section && section.querySelector("[data-resend-notifications]");
if (button) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const { resent, notifications } = await request(section.dataset.resendUrl, { method: "POST" });
      notify(`${count(resent)} failed ${resent === 1 ? "notification goes" : "notifications go"} out again.`);
      render(notifications);
      timer = setTimeout(load, POLL_MS);
    } catch (error) {
      notify(error.message, { error: true });
    } finally {
      button.disabled = false;
    }
  });
}
if (section) load();
