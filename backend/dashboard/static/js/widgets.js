// Widgets every view shares: sections, tables, form fields with their error, badges, the
// confirmation dialog, charts (uPlot, loaded on first use) and a serialized refresh.

import { el, uid } from "./dom.js";
import { formatDuration, formatTime } from "./format.js";

const UPLOT = "/dashboard/vendor/uplot-1.6.32/uPlot.esm.js";
const REFRESH_DEBOUNCE_MS = 120;

/** A titled region of a view. */
export function section(title, ...children) {
  const headingId = uid("section");
  return el(
    "section",
    { class: "panel", "aria-labelledby": headingId },
    el("h2", { id: headingId, text: title }),
    children,
  );
}

/** A live message line: kind "error" is announced at once (role=alert), others politely. */
export function messageLine(kind = "info") {
  return el("p", { class: `message message-${kind}`, role: kind === "error" ? "alert" : "status", hidden: true });
}

export function showMessage(line, text) {
  line.textContent = text || "";
  line.hidden = !text;
}

/**
 * The outcome of the latest action (an error or a notice), kept until the user dismisses it or
 * the next action replaces it: refreshes of the view leave it alone. show(kind, text), kind
 * "error" or "info"; show() with no text clears it.
 */
export function outcomeLine() {
  const lines = { error: messageLine("error"), info: messageLine("info") };
  const dismiss = el("button", { type: "button", class: "link", text: "Dismiss", onclick: () => show() });
  const root = el("div", { class: "outcome", hidden: true }, lines.error, lines.info, dismiss);
  function show(kind, text) {
    for (const [lineKind, line] of Object.entries(lines)) showMessage(line, lineKind === kind ? text : "");
    root.hidden = !text;
  }
  return { root, show };
}

/**
 * A table in a scrollable region. columns: [{label, cell: row => Node|string, numeric}].
 * On narrow screens each row becomes a card whose cells show their column's label.
 */
export function dataTable({ caption, columns, rows, empty = "Nothing to show yet.", rowClass }) {
  const table = el(
    "table",
    {},
    el("caption", { class: "visually-hidden", text: caption }),
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        columns.map((column) => el("th", { scope: "col", class: column.numeric ? "numeric" : null }, column.label)),
      ),
    ),
    el(
      "tbody",
      {},
      rows.length
        ? rows.map((row) =>
            el(
              "tr",
              { class: rowClass ? rowClass(row) : null },
              columns.map((column) =>
                el(
                  "td",
                  { "data-label": column.label, class: column.numeric ? "numeric" : null },
                  el("div", { class: "cell" }, column.cell(row)),
                ),
              ),
            ),
          )
        : el("tr", {}, el("td", { colspan: columns.length, class: "empty" }, empty)),
    ),
  );
  return el("div", { class: "table-wrap", role: "region", "aria-label": caption, tabindex: "0" }, table);
}

/**
 * How fresh a series is: the time since its newest candle closed, and a "stale" badge when it is
 * past its limit. `series` is a /freshness (or /status worst) item, or a /coverage row.
 */
export function lagText(series) {
  if (series.lag_seconds === null || series.lag_seconds === undefined) return "nothing stored";
  return `${formatDuration(Math.max(series.lag_seconds, 0))} behind`;
}

export function freshnessBadge(series) {
  return series.stale ? el("span", { class: "badge status-failed", text: "stale" }) : null;
}

export function statusBadge(status) {
  return el("span", { class: `badge status-${status || "none"}` }, status || "none");
}

/** A figure with its label; `alert` marks one that needs attention (e.g. stale series). */
export function card(label, value, detail, { alert = false } = {}) {
  return el(
    "div",
    { class: alert ? "card card-alert" : "card" },
    el("p", { class: "card-label", text: label }),
    el("p", { class: "card-value", text: value }),
    detail ? el("p", { class: "card-detail", text: detail }) : null,
  );
}

/** A definition list from [term, value] pairs; values may be nodes. */
export function facts(pairs) {
  return el(
    "dl",
    { class: "facts" },
    pairs.map(([term, value]) => el("div", {}, el("dt", { text: term }), el("dd", {}, value))),
  );
}

// ----- form fields: a visible label, the control, and the API's message for it -----

class Field {
  constructor(root, control, errorLine, name) {
    this.root = root;
    this.control = control;
    this.errorLine = errorLine;
    this.name = name;
  }

  showError(text) {
    showMessage(this.errorLine, text);
    const invalid = text ? "true" : null;
    for (const control of this.controls()) {
      if (invalid) control.setAttribute("aria-invalid", invalid);
      else control.removeAttribute("aria-invalid");
    }
  }

  controls() {
    return this.control.matches("fieldset") ? [...this.control.querySelectorAll("input")] : [this.control];
  }

  focus() {
    this.controls()[0]?.focus();
  }
}

function errorLine(id) {
  return el("p", { id, class: "field-error", hidden: true });
}

export function textField({ label, name, type = "text", value = "", hint, attributes = {} }) {
  const id = uid(name);
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  const control = el("input", {
    id,
    name,
    type,
    value: value ?? "",
    "aria-describedby": [hintId, errorId].filter(Boolean).join(" "),
    ...attributes,
  });
  const error = errorLine(errorId);
  const root = el(
    "div",
    { class: "field" },
    el("label", { for: id, text: label }),
    control,
    hint ? el("p", { id: hintId, class: "hint", text: hint }) : null,
    error,
  );
  return new Field(root, control, error, name);
}

export function selectField({ label, name, options, value = "", attributes = {} }) {
  const id = uid(name);
  const errorId = `${id}-error`;
  const control = el(
    "select",
    { id, name, "aria-describedby": errorId, ...attributes },
    options.map(([optionValue, text]) => el("option", { value: optionValue, selected: optionValue === value }, text)),
  );
  const error = errorLine(errorId);
  const root = el("div", { class: "field" }, el("label", { for: id, text: label }), control, error);
  return new Field(root, control, error, name);
}

export function checkboxField({ label, name, checked = false }) {
  const id = uid(name);
  const errorId = `${id}-error`;
  const control = el("input", { id, name, type: "checkbox", checked, "aria-describedby": errorId });
  const error = errorLine(errorId);
  const root = el("div", { class: "field field-checkbox" }, control, el("label", { for: id, text: label }), error);
  return new Field(root, control, error, name);
}

/** Checkboxes under one visible legend, e.g. the timeframes of a config. */
export function checkboxGroup({ label, name, options, values = [] }) {
  const legendId = uid(name);
  const errorId = `${legendId}-error`;
  const control = el(
    "fieldset",
    { class: "choices", "aria-labelledby": legendId, "aria-describedby": errorId },
    el("legend", { id: legendId, text: label }),
    options.map((option) => {
      const id = uid(`${name}-${option}`);
      return el(
        "span",
        { class: "choice" },
        el("input", { id, type: "checkbox", name, value: option, checked: values.includes(option) }),
        el("label", { for: id, text: option }),
      );
    }),
  );
  const error = errorLine(errorId);
  const root = el("div", { class: "field" }, control, error);
  const field = new Field(root, control, error, name);
  field.values = () => [...control.querySelectorAll("input:checked")].map((input) => input.value);
  return field;
}

/** Put each of the API's problems next to the field it names; the rest goes to `formLine`. */
export function showProblems(fields, formLine, error) {
  clearProblems(fields, formLine);
  const unplaced = [];
  let first = null;
  for (const problem of error.problems?.length ? error.problems : [{ fields: [], message: error.message }]) {
    const field = problem.fields.map((name) => fields[name]).find(Boolean);
    if (field) {
      field.showError(problem.message);
      first ??= field;
    } else unplaced.push(problem.message);
  }
  showMessage(formLine, unplaced.join(" "));
  first?.focus();
}

export function clearProblems(fields, formLine) {
  for (const field of Object.values(fields)) field.showError("");
  showMessage(formLine, "");
}

// ----- confirmation -----

/** A modal question; resolves true when the user confirms. Escape or "Cancel" resolve false. */
export function confirmDialog(question, confirmLabel) {
  return new Promise((resolve) => {
    const titleId = uid("confirm");
    const cancel = el("button", { type: "button", class: "secondary", text: "Cancel" });
    const confirm = el("button", { type: "button", class: "danger", text: confirmLabel });
    const dialog = el(
      "dialog",
      { class: "confirm", "aria-labelledby": titleId },
      el("p", { id: titleId, text: question }),
      el("div", { class: "actions" }, cancel, confirm),
    );
    const close = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    cancel.addEventListener("click", () => close(false));
    confirm.addEventListener("click", () => close(true));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      close(false);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

// ----- refresh -----

/**
 * Serialize a view's loads: `run()` loads now (or once more after the load in progress), `soon()`
 * coalesces bursts of events into one load. Errors go to `onError`.
 */
export function refresher(load, onError) {
  let running = null;
  let again = false;
  let timer = null;
  async function run() {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await load();
        } while (again);
      } catch (error) {
        onError(error);
      } finally {
        running = null;
      }
    })();
    return running;
  }
  return {
    run,
    soon() {
      clearTimeout(timer);
      timer = setTimeout(run, REFRESH_DEBOUNCE_MS);
    },
    cancel() {
      clearTimeout(timer);
    },
  };
}

// ----- charts -----

/** Tick labels in UTC: "18:00", with the date ("11-25") where a day starts or ticks are days apart. */
function axisTimes(ticks) {
  const daily = ticks.length > 1 && ticks[1] - ticks[0] >= 86400;
  return ticks.map((tick) => {
    const iso = new Date(tick * 1000).toISOString();
    const clock = iso.slice(11, 16);
    return daily || clock === "00:00" ? iso.slice(5, 10) : clock;
  });
}

let uPlotModule = null;
function loadUPlot() {
  uPlotModule ??= import(UPLOT).then((module) => module.default);
  return uPlotModule;
}

/**
 * A time chart (x in UTC). series: [{label, color, bars}]; `format` renders y values.
 * Returns {root, update(points)} where points = {x: [unix seconds], y: [[...], ...]} and
 * `summary(points)` describes them in words (shown under the title, and when there is nothing).
 */
export function timeChart({ title, series, format, summary, yRange = null, height = 190 }) {
  const plotBox = el("div", { class: "chart-plot" });
  const description = el("p", { class: "chart-summary" });
  const root = el("figure", { class: "chart" }, el("figcaption", { text: title }), description, plotBox);
  let plot = null;
  let observer = null;

  async function update(points) {
    const empty = points.y.every((values) => values.every((value) => value === null || value === 0));
    description.textContent = summary(points, empty);
    plotBox.classList.toggle("chart-empty", empty);
    const uPlot = await loadUPlot();
    const data = [points.x, ...points.y];
    if (plot) {
      plot.setData(data);
      return;
    }
    const width = Math.max(plotBox.clientWidth, 240);
    plot = new uPlot(
      {
        width,
        height,
        tzDate: (seconds) => uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC"),
        legend: { live: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: yRange ? { range: yRange } : {} },
        axes: [
          { stroke: "#4a5568", values: (_, ticks) => axisTimes(ticks) },
          { stroke: "#4a5568", size: 60, values: (_, ticks) => ticks.map((tick) => format(tick)) },
        ],
        series: [
          { label: "UTC" },
          ...series.map((line) => ({
            label: line.label,
            stroke: line.color,
            width: 2,
            fill: line.bars ? `${line.color}99` : null,
            paths: line.bars ? uPlot.paths.bars({ size: [0.7, 40] }) : undefined,
            points: { show: !line.bars },
            spanGaps: false,
            value: (_, value) => (value === null ? "–" : format(value)),
          })),
        ],
      },
      data,
      plotBox,
    );
    observer = new ResizeObserver(() => plot.setSize({ width: Math.max(plotBox.clientWidth, 240), height }));
    observer.observe(plotBox);
  }

  return {
    root,
    update,
    dispose() {
      observer?.disconnect();
      plot?.destroy();
    },
  };
}

/**
 * Re-render `container` with `render()` and give focus back to the control that had it, found
 * again by its `data-key` (live updates redraw tables while someone is tabbing through them).
 */
export function keepingFocus(container, render) {
  const key = container.contains(document.activeElement) ? document.activeElement.dataset.key : undefined;
  render();
  if (key) container.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus();
}

/** A time ("2025-01-15 12:30 UTC") that wraps only between date and clock, with its machine-readable value. */
export function timeStamp(iso, options) {
  if (!iso) return "–";
  const [date, ...clock] = formatTime(iso, options).split(" ");
  return el("time", { datetime: iso }, el("span", { text: date }), " ", el("span", { text: clock.join(" ") }));
}
