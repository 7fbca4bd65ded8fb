// Configs: the table with each config's schedule, the lag of each timeframe (/freshness) and its
// last 24 hours (/stats/by-config),
// create and edit forms, delete, "Trigger now" (its run is followed until it ends), bulk actions.
// Viewers get the table only: no write control is drawn for them.

import {
  ADMIN,
  ApiError,
  canWrite,
  deleteResource,
  getJson,
  getPolled,
  listConfigs,
  postJson,
  putJson,
} from "./api.js";
import { el, replace } from "./dom.js";
import { formatCount, formatDuration, formatPercent } from "./format.js";
import {
  checkboxField,
  checkboxGroup,
  clearProblems,
  confirmDialog,
  dataTable,
  freshnessBadge,
  keepingFocus,
  lagText,
  messageLine,
  outcomeLine,
  refresher,
  section,
  showMessage,
  showProblems,
  statusBadge,
  textField,
  timeStamp,
} from "./widgets.js";

const TIMEFRAMES = ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"];
const BULK_ACTIONS = [
  ["enable", "Enable selected"],
  ["disable", "Disable selected"],
  ["trigger", "Trigger selected"],
  ["delete", "Delete selected"],
];

// runs started from this page, by config id, kept while the page is open: {id, status, ...}
const triggeredRuns = new Map();

function label(config) {
  return `${config.symbol} on ${config.exchange}`;
}

const UNVERIFIED =
  "Not proven by tests: its candles are used, but its answers alone never confirm that a stretch had no trades or where its history begins";

/** The exchange, marked when it is not verified. */
function exchangeCell(config) {
  return [
    config.exchange,
    config.exchange_verified === false
      ? [" ", el("span", { class: "badge status-partial", title: UNVERIFIED, text: "unverified" })]
      : null,
  ];
}

/** What the config asks for that it will not fully get, one line per warning. */
function warningLines(config) {
  return (config.warnings ?? []).map((warning) =>
    el("p", { class: "config-warning", text: `${warning.field}: ${warning.message}` }),
  );
}

/** "Run #12 [running]", then "Run #12 [success] 168 records in 1.02 s". */
function runLine(run) {
  const finished = run.status !== "running";
  return el(
    "p",
    { class: "run-line" },
    el("a", { href: `#/logs/${run.id}`, text: `Run #${run.id}` }),
    " ",
    statusBadge(run.status),
    finished ? ` ${formatCount(run.records_collected ?? 0)} records in ${formatDuration(run.duration_seconds)}` : null,
  );
}

/** The create / edit form; `config` is null for a new one. Resolves when saved or cancelled. */
function configForm(config, { onSaved, onCancel }) {
  const fields = {
    symbol: textField({
      label: "Symbol",
      name: "symbol",
      value: config?.symbol ?? "",
      hint: "BASE/QUOTE, e.g. BTC/USDT",
      attributes: { autocomplete: "off" },
    }),
    exchange: textField({
      label: "Exchange",
      name: "exchange",
      value: config?.exchange ?? "binance",
      hint: "A ccxt exchange id",
      attributes: { autocomplete: "off" },
    }),
    timeframes: checkboxGroup({
      label: "Timeframes",
      name: "timeframes",
      options: TIMEFRAMES,
      values: config?.timeframes ?? ["1h"],
    }),
    interval_minutes: textField({
      label: "Interval (minutes)",
      name: "interval_minutes",
      type: "number",
      value: config?.interval_minutes ?? 10,
      attributes: { inputmode: "numeric" },
    }),
    backfill_days: textField({
      label: "Backfill days",
      name: "backfill_days",
      type: "number",
      value: config?.backfill_days ?? 7,
      hint: "History the first run fetches",
      attributes: { inputmode: "numeric" },
    }),
    description: textField({ label: "Description", name: "description", value: config?.description ?? "" }),
    enabled: checkboxField({ label: "Enabled", name: "enabled", checked: config ? config.enabled : true }),
  };
  const formLine = messageLine("error");
  const submit = el("button", { type: "submit", class: "primary", text: config ? "Save" : "Create" });
  const cancel = el("button", { type: "button", class: "secondary", text: "Cancel", onclick: onCancel });
  const form = el(
    "form",
    { class: "config-form", novalidate: true },
    Object.values(fields).map((field) => field.root),
    formLine,
    el("div", { class: "actions" }, submit, cancel),
  );
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") onCancel();
  });

  function number(field) {
    const raw = field.control.value.trim();
    return raw === "" ? undefined : Number(raw);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblems(fields, formLine);
    const body = {
      symbol: fields.symbol.control.value.trim(),
      exchange: fields.exchange.control.value.trim().toLowerCase(), // ccxt ids are lower case
      timeframes: fields.timeframes.values(),
      interval_minutes: number(fields.interval_minutes),
      backfill_days: number(fields.backfill_days),
      enabled: fields.enabled.control.checked,
      description: fields.description.control.value.trim() || null,
    };
    for (const name of ["symbol", "interval_minutes", "backfill_days"])
      if (body[name] === "" || body[name] === undefined) delete body[name];
    submit.disabled = true;
    try {
      const saved = config
        ? await putJson(`${ADMIN}/configs/${config.id}`, body)
        : await postJson(`${ADMIN}/configs`, body);
      onSaved(saved);
    } catch (error) {
      showProblems(fields, formLine, error);
      submit.disabled = false;
    }
  });
  return { form, focus: () => fields.symbol.focus() };
}

export function mountConfigs(root) {
  const admin = canWrite();
  const errorLine = messageLine("error"); // the view could not load
  const outcome = outcomeLine(); // what the latest action did, until dismissed or replaced
  const formBox = el("div");
  const bulkResults = el("div", { class: "bulk-results", "aria-live": "polite" });
  const tableBox = el("div");
  const selected = new Set();
  let configs = [];
  let statsById = new Map();
  let freshnessByKey = new Map(); // "config id:timeframe" -> /freshness item
  let formOpen = null;

  const newButton = admin
    ? el("button", { type: "button", class: "primary", text: "New config", onclick: () => openForm(null) })
    : null;
  const selectAll = admin ? checkboxField({ label: "Select all", name: "select-all" }) : null;
  const bulkButtons = admin
    ? BULK_ACTIONS.map(([action, text]) =>
        el("button", {
          type: "button",
          class: action === "delete" ? "danger" : "secondary",
          text,
          onclick: () => runBulk(action),
        }),
      )
    : [];
  const selectedCount = el("span", { class: "selected-count" });

  root.append(
    el("div", { class: "view-head" }, el("h1", { text: "Configs" }), newButton),
    errorLine,
    outcome.root,
    formBox,
    admin
      ? el(
          "div",
          { class: "bulk-bar", role: "group", "aria-label": "Bulk actions" },
          selectAll.root,
          selectedCount,
          bulkButtons,
        )
      : null,
    bulkResults,
    tableBox,
  );
  selectAll?.control.addEventListener("change", () => {
    selected.clear();
    if (selectAll.control.checked) for (const config of configs) selected.add(config.id);
    render();
  });

  function openForm(config) {
    formOpen = config ? config.id : "new";
    const { form, focus } = configForm(config, {
      onSaved: (saved) => {
        closeForm();
        const done = config ? `Saved ${label(saved)}.` : `Created ${label(saved)} (#${saved.id}).`;
        const warnings = (saved.warnings ?? []).map((warning) => ` Warning: ${warning.message}.`).join("");
        outcome.show("info", done + warnings);
        loads.run();
      },
      onCancel: closeForm,
    });
    replace(formBox, section(config ? `Edit ${label(config)}` : "New config", form));
    focus();
  }

  function closeForm() {
    formOpen = null;
    formBox.replaceChildren();
    newButton?.focus();
  }

  /** Do one action; its outcome (the API's message when refused) stays until dismissed or replaced. */
  async function act(work, success, failure) {
    try {
      const result = await work();
      outcome.show("info", success(result));
    } catch (error) {
      outcome.show("error", `${failure}: ${error.message}`);
    }
    loads.soon();
  }

  function setEnabled(config, enabled) {
    act(
      () => postJson(`${ADMIN}/configs/${config.id}/${enabled ? "enable" : "disable"}`),
      () => `${label(config)} ${enabled ? "enabled" : "disabled"}.`,
      `Could not ${enabled ? "enable" : "disable"} ${label(config)}`,
    );
  }

  function trigger(config) {
    act(
      async () => {
        const accepted = await postJson(`${ADMIN}/configs/${config.id}/trigger`);
        triggeredRuns.set(config.id, { id: accepted.run_id, status: "running" });
        render();
        return accepted;
      },
      (accepted) => `${accepted.message}: run #${accepted.run_id}.`,
      `Could not trigger ${label(config)}`,
    );
  }

  /** A run of the config goes on: one started from this page, or the latest the API knows of. */
  function isRunning(config) {
    return (
      triggeredRuns.get(config.id)?.status === "running" || statsById.get(config.id)?.last_run_status === "running"
    );
  }

  async function remove(config) {
    const sure = await confirmDialog(`Delete ${label(config)}? Its schedule stops; its execution logs stay.`, "Delete");
    if (!sure) return;
    act(
      () => deleteResource(`${ADMIN}/configs/${config.id}`),
      () => `Deleted ${label(config)}.`,
      `Could not delete ${label(config)}`,
    );
  }

  async function runBulk(action) {
    const ids = configs.filter((config) => selected.has(config.id)).map((config) => config.id);
    if (!ids.length) {
      outcome.show("error", "Select configs first.");
      return;
    }
    if (
      action === "delete" &&
      !(await confirmDialog(`Delete ${ids.length} configs? Their schedules stop; their execution logs stay.`, "Delete"))
    )
      return;
    outcome.show();
    let result;
    try {
      result = await postJson(`${ADMIN}/configs/bulk`, { action, ids });
    } catch (error) {
      if (!(error instanceof ApiError) || !error.body?.results) {
        outcome.show("error", `Bulk ${action}: ${error.message}`);
        return;
      }
      result = error.body; // 404: some ids are unknown and nothing changed, per id
    }
    const byId = new Map(configs.map((config) => [config.id, config]));
    for (const item of result.results)
      if (item.run_id) triggeredRuns.set(item.id, { id: item.run_id, status: "running" });
    const summary = result.applied
      ? `Bulk ${action}: done for all ${result.results.length}.`
      : `Bulk ${action}: not done for every config.`;
    replace(
      bulkResults,
      section(
        "Bulk results",
        el("p", { text: summary }),
        el(
          "ul",
          { class: "results" },
          result.results.map((item) =>
            el(
              "li",
              {},
              `${byId.get(item.id) ? label(byId.get(item.id)) : "Config"} (#${item.id}): `,
              el("strong", { text: item.outcome.replace("_", " ") }),
              item.run_id ? [", ", el("a", { href: `#/logs/${item.run_id}`, text: `run #${item.run_id}` })] : null,
              item.detail ? ` (${item.detail})` : null,
            ),
          ),
        ),
        el("button", {
          type: "button",
          class: "secondary",
          text: "Dismiss",
          onclick: () => bulkResults.replaceChildren(),
        }),
      ),
    );
    selected.clear();
    loads.run();
  }

  function enabledCell(config) {
    if (!admin) return config.enabled ? "Yes" : "No";
    const input = el("input", {
      type: "checkbox",
      role: "switch",
      checked: config.enabled,
      "aria-label": `Enabled: ${label(config)}`,
      "data-key": `enabled-${config.id}`,
    });
    input.addEventListener("change", () => setEnabled(config, input.checked));
    return el(
      "label",
      { class: "switch" },
      input,
      el("span", { "aria-hidden": "true", text: config.enabled ? "On" : "Off" }),
    );
  }

  /** Each timeframe with the time since its newest candle closed (enabled configs are collected). */
  function timeframesCell(config) {
    if (!config.enabled) return config.timeframes.join(", ");
    return el(
      "ul",
      { class: "lags", "aria-label": `Freshness of ${label(config)}` },
      config.timeframes.map((timeframe) => {
        const series = freshnessByKey.get(`${config.id}:${timeframe}`);
        return el(
          "li",
          {},
          `${timeframe} `,
          series ? el("span", { class: "lag", text: lagText(series) }) : null,
          series?.stale ? " " : null,
          series ? freshnessBadge(series) : null,
        );
      }),
    );
  }

  function lastRunCell(config) {
    const stats = statsById.get(config.id);
    const at = stats?.last_run_at ?? config.last_run_at;
    if (!at) return "never";
    return [timeStamp(at), " ", stats?.last_run_status ? statusBadge(stats.last_run_status) : null];
  }

  function actionsCell(config) {
    const run = triggeredRuns.get(config.id);
    return el(
      "div",
      { class: "row-actions" },
      admin
        ? [
            el("button", {
              type: "button",
              class: "secondary",
              text: "Edit",
              "data-key": `edit-${config.id}`,
              onclick: () => openForm(config),
            }),
            el("button", {
              type: "button",
              class: "primary",
              text: "Trigger now",
              title: isRunning(config) ? "A run of this config is in progress" : null,
              disabled: isRunning(config),
              "data-key": `trigger-${config.id}`,
              onclick: () => trigger(config),
            }),
            el("button", {
              type: "button",
              class: "danger",
              text: "Delete",
              "data-key": `delete-${config.id}`,
              onclick: () => remove(config),
            }),
          ]
        : null,
      el("a", { href: `#/logs?config_id=${config.id}`, text: "Logs", "data-key": `logs-${config.id}` }),
      el("a", { href: `#/data?config=${config.id}`, text: "Data", "data-key": `data-${config.id}` }),
      run ? runLine(run) : null,
    );
  }

  function render() {
    selectedCount.textContent = `${selected.size} selected`;
    for (const button of bulkButtons) button.disabled = selected.size === 0;
    if (selectAll) selectAll.control.checked = configs.length > 0 && selected.size === configs.length;
    const columns = [
      admin && {
        label: "Select",
        cell: (config) => {
          const box = el("input", {
            type: "checkbox",
            checked: selected.has(config.id),
            "aria-label": `Select ${label(config)}`,
            "data-key": `select-${config.id}`,
          });
          box.addEventListener("change", () => {
            if (box.checked) selected.add(config.id);
            else selected.delete(config.id);
            render();
          });
          return box;
        },
      },
      {
        label: "Symbol",
        cell: (config) => [
          el("strong", { text: config.symbol }),
          config.description ? el("p", { class: "description", text: config.description }) : null,
          warningLines(config),
        ],
      },
      { label: "Exchange", cell: exchangeCell },
      { label: "Timeframes", cell: timeframesCell },
      { label: "Interval", cell: (config) => `every ${formatCount(config.interval_minutes)} min` },
      { label: "Enabled", cell: enabledCell },
      { label: "Next run", cell: (config) => (config.enabled ? timeStamp(config.next_run_at) : "off") },
      { label: "Last run", cell: lastRunCell },
      {
        label: "Success rate (24 h)",
        numeric: true,
        cell: (config) => {
          const stats = statsById.get(config.id);
          return stats?.runs ? `${formatPercent(stats.success_rate)} of ${formatCount(stats.runs)}` : "no runs";
        },
      },
      {
        label: "Failures (24 h)",
        numeric: true,
        cell: (config) => {
          const stats = statsById.get(config.id);
          return [
            formatCount(stats?.failures ?? 0),
            stats?.last_error
              ? el("p", {
                  // its cause is a few words; a message recorded without one is cut short (whole in its run)
                  class: stats.last_error_cause ? "description last-error" : "description last-error clamped",
                  text: `Last error: ${stats.last_error_cause ?? stats.last_error}`,
                })
              : null,
          ];
        },
      },
      { label: "Actions", cell: actionsCell },
    ].filter(Boolean);
    keepingFocus(tableBox, () =>
      replace(
        tableBox,
        dataTable({
          caption: "Configs",
          columns,
          rows: configs,
          empty: admin ? "No configs yet: press “New config”." : "No configs yet.",
        }),
      ),
    );
  }

  async function refreshTriggeredRuns() {
    const running = [...triggeredRuns].filter(([, run]) => run.status === "running");
    await Promise.all(
      running.map(async ([configId, run]) => {
        const log = await getJson(`${ADMIN}/execution-logs/${run.id}`);
        triggeredRuns.set(configId, log);
      }),
    );
  }

  async function load() {
    const [list, stats, freshness] = await Promise.all([
      listConfigs(),
      getPolled(`${ADMIN}/stats/by-config`),
      getPolled(`${ADMIN}/freshness`),
      refreshTriggeredRuns(),
    ]);
    configs = list;
    statsById = new Map(stats.data.map((row) => [row.config_id, row]));
    freshnessByKey = new Map(freshness.data.map((series) => [`${series.config_id}:${series.timeframe}`, series]));
    for (const id of [...selected]) if (!configs.some((config) => config.id === id)) selected.delete(id);
    showMessage(errorLine, "");
    render();
  }

  const loads = refresher(load, (error) => showMessage(errorLine, error.message));
  loads.run();

  return {
    refresh: loads.run,
    onEvent(event) {
      if (event.log_id) {
        for (const [configId, run] of triggeredRuns) {
          if (run.id === event.log_id) triggeredRuns.set(configId, { ...run, ...event, id: event.log_id });
        }
        render();
      }
      if (event.type === "config_changed" && event.action === "deleted" && formOpen === event.config_id) closeForm();
      loads.soon();
    },
    dispose: loads.cancel,
  };
}
