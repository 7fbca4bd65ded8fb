// Alerts: what fires now, what resolved in the last 24 hours, and the webhook's outbox, from
// GET /alerts. The banner every view shows while something fires lives in banner.js.

import { ADMIN, getPolled } from "./api.js";
import { el, replace } from "./dom.js";
import { formatCount, formatDuration, plural } from "./format.js";
import { dataTable, facts, messageLine, refresher, section, showMessage, timeStamp } from "./widgets.js";

const CHECK_SECONDS = 15; // alerts change at evaluations (each minute): re-check, 304 while nothing changed
export const RULE_TITLES = {
  config_failing: "Runs failing",
  series_stale: "Series stale",
  scheduler_silent: "Scheduler silent",
  exchange_paused: "Exchange paused",
  slots_missed: "Slots missed",
};

export function ruleTitle(rule) {
  return RULE_TITLES[rule] ?? rule;
}

function ruleBadge(alert) {
  const kind = alert.state === "firing" ? "status-failed" : "status-success";
  return el("span", { class: `badge ${kind}`, text: ruleTitle(alert.rule) });
}

/** A summary may hold a long URL (an exchange's error): it wraps anywhere rather than widen the page. */
function summary(alert) {
  return el("span", { class: "alert-summary", text: alert.summary });
}

function lasted(alert) {
  const seconds = (new Date(alert.resolved_at) - new Date(alert.firing_since)) / 1000;
  return el("span", { class: "duration", text: formatDuration(seconds) });
}

export function mountAlerts(root) {
  const errorLine = messageLine("error");
  const firing = el("div");
  const recent = el("div");
  const webhook = el("div");
  root.append(
    el("h1", { text: "Alerts" }),
    el("p", {
      class: "view-note",
      text:
        "The service reads its rules once a minute: failing configs, stale series, a silent scheduler, " +
        "paused exchanges and missed slots.",
    }),
    errorLine,
    section("Firing now", firing),
    section("Resolved in the last 24 hours", recent),
    section("Notifications", webhook),
  );

  function render(answer) {
    replace(
      firing,
      dataTable({
        caption: "Alerts firing now",
        empty: "Nothing is firing.",
        rows: answer.firing,
        columns: [
          { label: "Rule", cell: ruleBadge },
          { label: "What", cell: summary },
          { label: "Firing since", cell: (alert) => timeStamp(alert.firing_since) },
          {
            label: "Last notified",
            cell: (alert) => (alert.last_notified_at ? timeStamp(alert.last_notified_at) : "not sent"),
          },
        ],
      }),
      answer.firing_count > answer.firing.length
        ? el("p", { text: `${formatCount(answer.firing.length)} of ${formatCount(answer.firing_count)} shown.` })
        : null,
    );
    replace(
      recent,
      dataTable({
        caption: "Alerts resolved in the last 24 hours",
        empty: "Nothing resolved in the last 24 hours.",
        rows: answer.recent,
        columns: [
          { label: "Rule", cell: ruleBadge },
          { label: "What", cell: summary },
          { label: "Fired", cell: (alert) => timeStamp(alert.firing_since) },
          { label: "Resolved", cell: (alert) => timeStamp(alert.resolved_at) },
          { label: "Lasted", numeric: true, cell: lasted },
        ],
      }),
    );
    const delivery = answer.delivery;
    replace(
      webhook,
      facts([
        ["Webhook", delivery.webhook_configured ? "set (ALERT_WEBHOOK_URL)" : "not set: alerts show here only"],
        ["Waiting to be sent", plural(delivery.undelivered, "message")],
        ["Latest error", delivery.last_error ?? "none"],
        ["Next attempt", delivery.next_attempt_at ? timeStamp(delivery.next_attempt_at, { seconds: true }) : "–"],
        ["Last delivered", delivery.last_delivered_at ? timeStamp(delivery.last_delivered_at) : "never"],
        ["Given up in the last 24 hours", plural(delivery.given_up, "message")],
        [
          "Next evaluation",
          answer.next_evaluation_at ? timeStamp(answer.next_evaluation_at, { seconds: true }) : "not yet",
        ],
      ]),
    );
  }

  async function load() {
    const { data } = await getPolled(`${ADMIN}/alerts`);
    showMessage(errorLine, "");
    render(data);
  }

  const loads = refresher(load, (error) => showMessage(errorLine, error.message));
  loads.run();
  const timer = setInterval(loads.run, CHECK_SECONDS * 1000);
  return {
    refresh: loads.run,
    onEvent: () => loads.soon(),
    dispose() {
      loads.cancel();
      clearInterval(timer);
    },
  };
}
