// The page's frame: session, navigation between views (#/overview, #/configs, #/logs, #/data,
// #/alerts), the banner of firing alerts, the live connection and its indicator, and polling with
// If-None-Match while the socket is down.

import { mountAlerts } from "./alerts.js";
import { ADMIN, currentSession, endSession, getJson, getPolled, onSessionEnd, updateUser } from "./api.js";
import { startBanner } from "./banner.js";
import { mountConfigs } from "./configs.js";
import { mountData } from "./data.js";
import { el } from "./dom.js";
import { startLive } from "./live.js";
import { mountLogin } from "./login.js";
import { mountLogs } from "./logs.js";
import { mountOverview } from "./overview.js";

const POLL_SECONDS = 5;
const VIEWS = {
  overview: { title: "Overview", mount: mountOverview },
  configs: { title: "Configs", mount: mountConfigs },
  logs: { title: "Execution logs", mount: mountLogs },
  data: { title: "Data", mount: mountData },
  alerts: { title: "Alerts", mount: mountAlerts },
};

const app = document.getElementById("app");
let view = null; // {refresh(), onEvent(event), dispose()}
let stopLive = null;
let banner = null;
let pollTimer = null;
let expiryTimer = null;
let shell = null;

/** "#/logs/12?status=failed" -> {name: "logs", id: "12", params} */
function parseRoute() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [name, id = null] = path.split("/");
  return { name: VIEWS[name] ? name : "overview", id, params: new URLSearchParams(query) };
}

function showLogin(notice) {
  teardown();
  mountLogin(app, {
    notice,
    onLoggedIn: () => {
      showShell();
      renderRoute(false);
    },
  });
}

function teardown() {
  view?.dispose();
  view = null;
  stopLive?.();
  stopLive = null;
  banner?.stop();
  banner = null;
  clearInterval(pollTimer);
  pollTimer = null;
  clearTimeout(expiryTimer);
  shell = null;
}

function setConnection(state, detail) {
  if (!shell) return;
  const texts = {
    live: "Live",
    connecting: "Connecting…",
    offline: `Offline: reconnecting in ${detail.retryInSeconds} s, checking every ${POLL_SECONDS} s`,
    unreachable: "Offline: the server does not answer",
  };
  shell.connection.textContent = texts[state];
  shell.connection.className = `connection connection-${state}`;
  if (state === "live") {
    clearInterval(pollTimer);
    pollTimer = null;
  } else if (state === "offline" && !pollTimer) {
    pollTimer = setInterval(poll, POLL_SECONDS * 1000);
  }
}

/** While the socket is down: one conditional request; the view refetches only when data changed. */
async function poll() {
  try {
    const { changed } = await getPolled(`${ADMIN}/status`);
    if (changed) {
      view?.refresh();
      banner?.refresh();
    }
  } catch (error) {
    if (error.status === 0) setConnection("unreachable", {});
  }
}

function showShell() {
  teardown();
  const session = currentSession();
  const connection = el("p", { class: "connection connection-connecting", role: "status", text: "Connecting…" });
  const links = Object.entries(VIEWS).map(([name, { title }]) =>
    el("a", { href: `#/${name}`, "data-view": name, text: title }),
  );
  const main = el("main", { id: "main", class: "view", tabindex: "-1" });
  const alerts = el("div", { class: "alert-banner", role: "alert", hidden: true });
  const logout = el("button", {
    type: "button",
    class: "secondary",
    text: "Log out",
    onclick: () => endSession("logout"),
  });
  app.replaceChildren(
    el("a", {
      class: "skip-link",
      href: "#main",
      text: "Skip to content",
      onclick: (event) => {
        event.preventDefault();
        main.focus();
      },
    }),
    el(
      "header",
      { class: "top" },
      el("p", { class: "brand" }, "Altar Trader Hub ", el("span", { text: "Control Center" })),
      el("nav", { "aria-label": "Views" }, links),
      el(
        "div",
        { class: "session" },
        connection,
        el("p", { class: "user", text: `${session.user.email} (${session.user.role})` }),
        logout,
      ),
    ),
    alerts,
    main,
  );
  shell = { connection, main, links };
  banner = startBanner(alerts);
  stopLive = startLive({
    token: session.token,
    onState: setConnection,
    onEvent: (event) => {
      if (event.type === "resync" || event.type === "alerts_changed") banner?.refresh();
      if (event.type === "resync") view?.refresh();
      else view?.onEvent(event);
    },
    onRefused: () => getJson("/api/v1/auth/me").catch(() => null), // a 401 there ends the session
  });
  const left = session.expiresAt - Date.now();
  if (Number.isFinite(left)) expiryTimer = setTimeout(() => endSession("expired"), Math.max(left, 0));
}

function renderRoute(moveFocus = true) {
  if (!shell) return;
  const route = parseRoute();
  const { title, mount } = VIEWS[route.name];
  for (const link of shell.links) {
    if (link.dataset.view === route.name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${title} · Control Center`;
  view?.dispose();
  shell.main.replaceChildren();
  view = mount(shell.main, { id: route.id, params: route.params });
  banner?.refresh();
  window.scrollTo(0, 0);
  if (moveFocus) shell.main.focus({ preventScroll: true });
}

onSessionEnd((reason) =>
  showLogin(reason === "expired" ? "Your session has expired. Log in again." : "You are logged out."),
);
window.addEventListener("hashchange", () => renderRoute(true));

async function boot() {
  const session = currentSession();
  if (!session) return showLogin("");
  if (session.expiresAt <= Date.now()) return endSession("expired");
  try {
    updateUser(await getJson("/api/v1/auth/me")); // the role may have changed since login
  } catch (error) {
    if (error.status === 401) return undefined; // the session ended: the login view is shown
  }
  showShell();
  renderRoute(false);
  return undefined;
}

boot();
