// The banner every view shows while alerts fire: how many, of which rules, and a link to the
// Alerts view. It asks GET /alerts (304 while nothing changed) when alerts change (the live event
// alerts_changed), at each change of view, and every 15 s.

import { ADMIN, getPolled } from "./api.js";
import { el, replace } from "./dom.js";
import { plural } from "./format.js";
import { ruleTitle } from "./alerts.js";

const CHECK_SECONDS = 15;

/** startBanner(node) -> {refresh(), stop()}: fills `node` while something fires, hides it otherwise. */
export function startBanner(node) {
  let shown = "";

  function render(answer) {
    const counts = new Map();
    for (const alert of answer.firing) counts.set(alert.rule, (counts.get(alert.rule) ?? 0) + 1);
    const listed = answer.firing.length;
    const rules = [...counts].map(([rule, count]) => `${ruleTitle(rule)}${count > 1 ? ` (${count})` : ""}`);
    if (answer.firing_count > listed) rules.push(`${answer.firing_count - listed} more`);
    const text = answer.firing_count ? `${plural(answer.firing_count, "alert")} firing: ${rules.join(", ")}.` : "";
    if (text === shown) return;
    shown = text;
    node.hidden = !text;
    replace(
      node,
      text ? [el("p", {}, el("strong", { text }), " ", el("a", { href: "#/alerts", text: "See the alerts" }))] : [],
    );
  }

  async function refresh() {
    try {
      render((await getPolled(`${ADMIN}/alerts`, { limit: 20 })).data);
    } catch {
      // the view shows connection problems; the banner keeps what it showed
    }
  }

  refresh();
  const timer = setInterval(refresh, CHECK_SECONDS * 1000);
  return {
    refresh,
    stop() {
      clearInterval(timer);
    },
  };
}
