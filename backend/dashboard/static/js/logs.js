// Execution logs: filters (kept in the address, e.g. #/logs?status=failed), pages counted from
// X-Total-Count, a run's detail (#/logs/12) and "Export CSV" with the same filters.

import { ADMIN, download, getJson, getPage } from "./api.js";
import { el, replace } from "./dom.js";
import { formatCount, formatDuration, formatTime } from "./format.js";
import {
  dataTable,
  facts,
  keepingFocus,
  messageLine,
  refresher,
  section,
  selectField,
  showMessage,
  statusBadge,
  textField,
  timeStamp,
} from "./widgets.js";

const PAGE_SIZE = 50;
const FILTERS = ["symbol", "exchange", "status", "job_type", "start_date", "end_date", "config_id"];
const STATUSES = [
  ["", "Any"],
  ["running", "running"],
  ["success", "success"],
  ["failed", "failed"],
  ["partial", "partial"],
];
const JOB_TYPES = [
  ["", "Any"],
  ["data_collection", "data_collection"],
  ["cleanup", "cleanup"],
];

export function mountLogs(root, { id, params }) {
  return id ? mountDetail(root, Number(id)) : mountList(root, params);
}

function mountList(root, params) {
  const errorLine = messageLine("error");
  const noticeLine = messageLine("info");
  const filters = Object.fromEntries(FILTERS.map((name) => [name, params.get(name) ?? ""]));
  let page = Math.max(1, Number(params.get("page")) || 1);

  const fields = {
    symbol: textField({
      label: "Symbol",
      name: "symbol",
      value: filters.symbol,
      attributes: { placeholder: "e.g. BTC/USDT", autocomplete: "off" },
    }),
    exchange: textField({
      label: "Exchange",
      name: "exchange",
      value: filters.exchange,
      attributes: { placeholder: "e.g. binance", autocomplete: "off" },
    }),
    status: selectField({ label: "Status", name: "status", options: STATUSES, value: filters.status }),
    job_type: selectField({ label: "Job type", name: "job_type", options: JOB_TYPES, value: filters.job_type }),
    start_date: textField({ label: "From (UTC)", name: "start_date", type: "date", value: filters.start_date }),
    end_date: textField({ label: "To (UTC)", name: "end_date", type: "date", value: filters.end_date }),
  };
  const configChip = el("p", { class: "chip-line" });
  const exportButton = el("button", { type: "button", class: "secondary", text: "Export CSV", onclick: exportCsv });
  const form = el(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter execution logs" },
    Object.values(fields).map((field) => field.root),
    el(
      "div",
      { class: "actions" },
      el("button", { type: "submit", class: "primary", text: "Apply filters" }),
      el("button", { type: "button", class: "secondary", text: "Reset", onclick: reset }),
      exportButton,
    ),
  );
  const summary = el("p", { class: "page-summary", role: "status" });
  const previous = el("button", { type: "button", class: "secondary", text: "Previous page", onclick: () => turn(-1) });
  const next = el("button", { type: "button", class: "secondary", text: "Next page", onclick: () => turn(1) });
  const tableBox = el("div");

  root.append(
    el("h1", { text: "Execution logs" }),
    errorLine,
    noticeLine,
    form,
    configChip,
    summary,
    tableBox,
    el("nav", { class: "pager", "aria-label": "Pages" }, previous, next),
  );

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    for (const [name, field] of Object.entries(fields)) filters[name] = field.control.value.trim();
    page = 1;
    remember();
    loads.run();
  });

  function reset() {
    for (const name of FILTERS) filters[name] = "";
    for (const field of Object.values(fields)) field.control.value = "";
    page = 1;
    remember();
    loads.run();
  }

  function turn(step) {
    page += step;
    remember();
    loads.run();
  }

  /** Keep the filters in the address (a reload or a shared link shows the same page). */
  function remember() {
    const query = new URLSearchParams(
      Object.entries({ ...filters, page: page > 1 ? page : "" }).filter(([, value]) => value !== ""),
    ).toString();
    history.replaceState(null, "", `#/logs${query ? `?${query}` : ""}`);
  }

  async function exportCsv() {
    exportButton.disabled = true;
    showMessage(noticeLine, "Exporting…");
    try {
      const { blob, filename } = await download(`${ADMIN}/execution-logs/export.csv`, filters, "execution-logs.csv");
      const link = el("a", { href: URL.createObjectURL(blob), download: filename, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
      showMessage(noticeLine, `Downloaded ${filename} (${formatCount(blob.size)} bytes).`);
    } catch (error) {
      showMessage(noticeLine, "");
      showMessage(errorLine, error.message);
    } finally {
      exportButton.disabled = false;
    }
  }

  function renderConfigChip() {
    if (!filters.config_id) {
      configChip.replaceChildren();
      return;
    }
    replace(
      configChip,
      `Showing the runs of config #${filters.config_id}. `,
      el("button", {
        type: "button",
        class: "link",
        text: "Show every config",
        onclick: () => {
          filters.config_id = "";
          page = 1;
          remember();
          loads.run();
        },
      }),
    );
  }

  async function load() {
    const { rows, total, exact } = await getPage(`${ADMIN}/execution-logs`, {
      ...filters,
      skip: (page - 1) * PAGE_SIZE,
      limit: PAGE_SIZE,
    });
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    if (page > pages && total > 0) {
      page = pages;
      remember();
      return load();
    }
    showMessage(errorLine, "");
    renderConfigChip();
    summary.textContent = `${exact ? "" : "about "}${formatCount(total)} runs · page ${page} of ${pages}`;
    previous.disabled = page <= 1;
    next.disabled = page >= pages;
    keepingFocus(tableBox, () =>
      replace(
        tableBox,
        dataTable({
          caption: "Execution logs",
          empty: "No runs match these filters.",
          rows,
          columns: [
            {
              label: "Run",
              cell: (log) => el("a", { href: `#/logs/${log.id}`, text: `#${log.id}`, "data-key": `run-${log.id}` }),
            },
            { label: "Started", cell: (log) => timeStamp(log.started_at) },
            { label: "Job", cell: (log) => [log.job_name, el("p", { class: "description", text: log.job_type })] },
            { label: "Symbol", cell: (log) => log.symbol ?? "–" },
            { label: "Exchange", cell: (log) => log.exchange ?? "–" },
            { label: "Status", cell: (log) => statusBadge(log.status) },
            { label: "Trigger", cell: (log) => log.trigger ?? "–" },
            { label: "Duration", numeric: true, cell: (log) => formatDuration(log.duration_seconds) },
            { label: "Records", numeric: true, cell: (log) => formatCount(log.records_collected) },
            { label: "Error", cell: errorCause },
          ],
        }),
      ),
    );
    return undefined;
  }

  const loads = refresher(load, (error) => showMessage(errorLine, error.message));
  loads.run();
  return { refresh: loads.run, onEvent: (event) => event.log_id && loads.soon(), dispose: loads.cancel };
}

/** Why a run failed, in one line (its cause; a run recorded without one shows its message, cut short). */
function errorCause(log) {
  if (!log.error_message && !log.error_type) return "–";
  if (log.error_cause) return el("span", { class: "error-text", text: log.error_cause });
  return el("span", { class: "error-text clamped", text: `${log.error_type ?? "Error"}: ${log.error_message ?? ""}` });
}

/** The run's timeframes as [timeframe, what it did], in the config's order (stored JSON keeps no order). */
function byTimeframe(log) {
  const entries = Object.entries(log.metadata?.by_timeframe ?? {});
  const order = log.metadata?.timeframes ?? [];
  const rank = (timeframe) => (order.includes(timeframe) ? order.indexOf(timeframe) : order.length);
  return entries.sort(([a], [b]) => rank(a) - rank(b));
}

/** Each failed timeframe's whole message on a line of its own; a run without them, its message. */
function fullError(log) {
  const failed = byTimeframe(log).filter(([, item]) => item.error);
  if (!failed.length)
    return el(
      "p",
      { class: "error-text error-full" },
      el("strong", { text: log.error_type ?? "Error" }),
      ": ",
      log.error_message ?? "",
    );
  return el(
    "ul",
    { class: "error-text error-full" },
    failed.map(([timeframe, item]) =>
      el("li", {}, el("strong", { text: `${timeframe}: ${item.error_type ?? "Error"}` }), `: ${item.error}`),
    ),
  );
}

function mountDetail(root, logId) {
  const errorLine = messageLine("error");
  const body = el("div");
  const heading = el("h1", { text: `Run #${logId}` });
  root.append(
    el(
      "p",
      {},
      el("a", {
        href: "#/logs",
        text: "← Execution logs",
        onclick: (event) => {
          if (history.length > 1) {
            event.preventDefault();
            history.back();
          }
        },
      }),
    ),
    heading,
    errorLine,
    body,
  );

  function timeframeRows(log) {
    return byTimeframe(log).map(([timeframe, item]) => ({ timeframe, ...item }));
  }

  async function load() {
    const log = await getJson(`${ADMIN}/execution-logs/${logId}`);
    showMessage(errorLine, "");
    heading.textContent = `Run #${log.id}: ${log.symbol ?? log.job_type}${log.exchange ? ` on ${log.exchange}` : ""}`;
    replace(
      body,
      section(
        "Summary",
        facts([
          ["Status", statusBadge(log.status)],
          ["Job", `${log.job_name} (${log.job_type})`],
          [
            "Config",
            log.config_id
              ? el("a", { href: `#/logs?config_id=${log.config_id}`, text: `#${log.config_id}: all its runs` })
              : "deleted or none",
          ],
          ["Trigger", log.trigger ?? "–"],
          ["Scheduled for", formatTime(log.scheduled_for, { seconds: true })],
          ["Started", formatTime(log.started_at, { seconds: true })],
          ["Finished", formatTime(log.finished_at, { seconds: true })],
          ["Duration", formatDuration(log.duration_seconds)],
          ["Records collected", formatCount(log.records_collected)],
          ["Missed slots", formatCount(log.missed_slots)],
          ["Timeframes", log.metadata?.timeframes?.join(", ") ?? (log.timeframe || "–")],
        ]),
      ),
      log.error_message || log.error_type
        ? section(
            "Error",
            log.error_cause ? el("p", { class: "error-cause", text: log.error_cause }) : null,
            log.error_cause ? el("h3", { text: "Full error" }) : null,
            fullError(log),
          )
        : null,
      log.metadata?.by_timeframe
        ? section(
            "Per timeframe",
            dataTable({
              caption: "Per timeframe",
              rows: timeframeRows(log),
              columns: [
                { label: "Timeframe", cell: (row) => row.timeframe },
                { label: "Records", numeric: true, cell: (row) => formatCount(row.records) },
                { label: "First candle", cell: (row) => timeStamp(row.first_candle) },
                { label: "Last candle", cell: (row) => timeStamp(row.last_candle) },
                { label: "Pages", numeric: true, cell: (row) => formatCount(row.pages) },
                { label: "Retries", numeric: true, cell: (row) => formatCount(row.retries) },
                { label: "Holes repaired", numeric: true, cell: (row) => formatCount(row.holes_repaired) },
                { label: "Duration", numeric: true, cell: (row) => formatDuration(row.duration_seconds) },
                {
                  label: "Error",
                  cell: (row) =>
                    row.error
                      ? el("span", {
                          class: row.cause ? "error-text" : "error-text clamped",
                          text: row.cause ?? `${row.error_type ?? "Error"}: ${row.error}`,
                        })
                      : "–",
                },
              ],
            }),
          )
        : null,
      log.config_id
        ? el(
            "p",
            { class: "links" },
            el("a", { href: `#/data?config=${log.config_id}`, text: "See the stored candles" }),
          )
        : null,
    );
  }

  const loads = refresher(load, (error) =>
    showMessage(errorLine, error.status === 404 ? `Run #${logId} does not exist.` : error.message),
  );
  loads.run();
  return {
    refresh: loads.run,
    onEvent: (event) => event.log_id === logId && loads.soon(),
    dispose: loads.cancel,
  };
}
