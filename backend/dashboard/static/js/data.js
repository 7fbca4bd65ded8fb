// Data: what is stored per config and timeframe, and how fresh (/market-data/coverage), and the candles
// themselves (/market-data/ohlcv) as a candlestick chart. Missing candles are drawn as shaded
// empty slots. The chart loads 1,000 candles at a time as it is scrolled or zoomed, so the
// whole stored range can be visited; the largest gaps have a "Show" button each.

import { getJson, listConfigs } from "./api.js";
import { el, replace } from "./dom.js";
import { formatCount, formatTime, plural } from "./format.js";
import {
  dataTable,
  freshnessBadge,
  lagText,
  messageLine,
  refresher,
  section,
  selectField,
  showMessage,
  timeStamp,
} from "./widgets.js";

const CHARTS = "/dashboard/vendor/lightweight-charts-5.2.1/lightweight-charts.standalone.production.mjs";
const MARKET = "/api/v1/market-data";
const CHUNK = 1000; // candles per request
const EDGE = 20; // load more when fewer bars than this are left beyond the visible range
const MAX_GAP_SLOTS = 5000; // empty slots drawn for one gap at most
const STEP_SECONDS = { m: 60, h: 3600, d: 86400, w: 604800 };
const GAP_COLOR = "rgba(197, 48, 48, 0.16)";

/** The open time `steps` candles after `seconds` (before, when negative) for a timeframe such as "5m", "1h", "1M". */
function nextOpen(seconds, timeframe, steps = 1) {
  const count = Number.parseInt(timeframe, 10) * steps;
  const unit = timeframe.at(-1);
  if (unit === "M") {
    const date = new Date(seconds * 1000);
    return Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + count, 1) / 1000;
  }
  return seconds + count * STEP_SECONDS[unit];
}

function isoAt(seconds) {
  return new Date(seconds * 1000).toISOString();
}

function toSeconds(iso) {
  return Math.floor(new Date(iso).getTime() / 1000);
}

/** "2025-01-15 10:00 UTC" or "2025-01-15 10:00 UTC to 12:00 UTC": the first and last missing open time. */
function gapSpan(gap, timeframe) {
  if (gap.missing_candles <= 1) return formatTime(gap.start);
  const last = formatTime(isoAt(nextOpen(toSeconds(gap.end), timeframe, -1)));
  const first = formatTime(gap.start);
  return `${first} to ${last.slice(0, 10) === first.slice(0, 10) ? last.slice(11) : last}`;
}

let chartsModule = null;
function loadCharts() {
  chartsModule ??= import(CHARTS);
  return chartsModule;
}

/** The chart of one series, with its loaded window of candles and the shading of the gaps. */
async function candleChart(box, { exchange, symbol, timeframe, coverage, onChange, onView }) {
  const { createChart, CandlestickSeries, HistogramSeries } = await loadCharts();
  const chart = createChart(box, {
    autoSize: true,
    // the logo would need an inline <style>, which the page's policy refuses: the page credits the library instead
    layout: {
      attributionLogo: false,
      background: { color: "#ffffff" },
      textColor: "#1a202c",
      fontFamily: getComputedStyle(document.body).fontFamily,
    },
    grid: { vertLines: { color: "#edf2f7" }, horzLines: { color: "#edf2f7" } },
    timeScale: {
      timeVisible: !["1d", "3d", "1w", "1M"].includes(timeframe),
      secondsVisible: false,
      borderColor: "#cbd5e0",
    },
    rightPriceScale: { borderColor: "#cbd5e0" },
  });
  const gapSeries = chart.addSeries(HistogramSeries, {
    priceScaleId: "gaps",
    color: GAP_COLOR,
    priceLineVisible: false,
    lastValueVisible: false,
  });
  chart.priceScale("gaps").applyOptions({ scaleMargins: { top: 0, bottom: 0 }, visible: false });
  const candleSeries = chart.addSeries(CandlestickSeries, { priceLineVisible: false });

  const first = toSeconds(coverage.first_candle);
  const last = toSeconds(coverage.last_candle);
  let rows = []; // [seconds, open, high, low, close, volume], oldest first
  let loading = false;

  async function fetchRows(query) {
    const answer = await getJson(`${MARKET}/ohlcv`, { exchange, symbol, timeframe, limit: CHUNK, ...query });
    return answer.map(([ms, ...values]) => [ms / 1000, ...values]);
  }

  function draw() {
    const range = rows.length ? chart.timeScale().getVisibleRange() : null;
    const candles = [];
    const shading = [];
    let missing = 0;
    rows.forEach((row, index) => {
      const [time, open, high, low, close] = row;
      candles.push({ time, open, high, low, close });
      shading.push({ time });
      const following = rows[index + 1];
      if (!following) return;
      let slot = nextOpen(time, timeframe);
      for (let drawn = 0; slot < following[0] && drawn < MAX_GAP_SLOTS; drawn += 1) {
        candles.push({ time: slot });
        shading.push({ time: slot, value: 1 });
        missing += 1;
        slot = nextOpen(slot, timeframe);
      }
    });
    candleSeries.setData(candles);
    gapSeries.setData(shading);
    if (range) chart.timeScale().setVisibleRange(range);
    onChange({ loaded: rows.length, missing, from: rows[0]?.[0], to: rows.at(-1)?.[0] });
  }

  async function extend(direction) {
    if (loading || !rows.length) return;
    const older = direction < 0;
    if (older ? rows[0][0] <= first : rows.at(-1)[0] >= last) return;
    loading = true;
    try {
      const more = older
        ? await fetchRows({ end: isoAt(rows[0][0]) })
        : await fetchRows({ start: isoAt(nextOpen(rows.at(-1)[0], timeframe)) });
      if (more.length) {
        rows = older ? [...more, ...rows] : [...rows, ...more];
        draw();
      }
    } finally {
      loading = false;
    }
  }

  chart.timeScale().subscribeVisibleLogicalRangeChange((range) => {
    if (!range) return;
    const times = chart.timeScale().getVisibleRange();
    if (times) onView({ from: times.from, to: times.to, slots: Math.max(1, Math.round(range.to - range.from)) });
    if (range.from < EDGE) extend(-1);
    else if (range.to > candleSeries.data().length - EDGE) extend(1);
  });

  function zoom(factor) {
    const range = chart.timeScale().getVisibleLogicalRange();
    if (!range) return;
    const middle = (range.from + range.to) / 2;
    const half = Math.max(((range.to - range.from) / 2) * factor, 5);
    chart.timeScale().setVisibleLogicalRange({ from: middle - half, to: middle + half });
  }

  function pan(share) {
    const range = chart.timeScale().getVisibleLogicalRange();
    if (!range) return;
    const shift = (range.to - range.from) * share;
    chart.timeScale().setVisibleLogicalRange({ from: range.from + shift, to: range.to + shift });
  }

  return {
    async showLatest() {
      rows = await fetchRows({});
      draw();
      chart.timeScale().fitContent();
    },
    /** Load the candles around a gap and zoom onto it. */
    async showGap(gap) {
      const start = toSeconds(gap.start);
      const end = toSeconds(gap.end);
      rows = await fetchRows({ start: isoAt(Math.max(nextOpen(start, timeframe, -60), first)) });
      draw();
      const margin = (end - start) / 2 + (nextOpen(start, timeframe) - start) * 10;
      chart.timeScale().setVisibleRange({ from: start - margin, to: end + margin });
    },
    zoomIn: () => zoom(0.5),
    zoomOut: () => zoom(2),
    earlier: () => pan(-0.5),
    later: () => pan(0.5),
    dispose: () => chart.remove(),
  };
}

export function mountData(root, { params }) {
  const errorLine = messageLine("error");
  const configSelect = selectField({ label: "Config", name: "config", options: [["", "Loading…"]] });
  const timeframeSelect = selectField({ label: "Timeframe", name: "timeframe", options: [["", "–"]] });
  const coverageBox = el("div");
  const gapsBox = el("div");
  const chartBox = el("div", { class: "candles", role: "img", "aria-label": "Candlestick chart" });
  const chartSummary = el("p", { class: "chart-summary", role: "status" });
  const inView = el("p", { class: "chart-summary" });
  const buttons = {
    zoomIn: el("button", { type: "button", class: "secondary", text: "Zoom in" }),
    zoomOut: el("button", { type: "button", class: "secondary", text: "Zoom out" }),
    earlier: el("button", { type: "button", class: "secondary", text: "Earlier" }),
    later: el("button", { type: "button", class: "secondary", text: "Later" }),
    latest: el("button", { type: "button", class: "secondary", text: "Latest" }),
  };
  let configs = [];
  let coverage = [];
  let chart = null;
  let chartKey = null;

  root.append(
    el("h1", { text: "Data" }),
    errorLine,
    el("div", { class: "pickers" }, configSelect.root, timeframeSelect.root),
    section(
      "Candles",
      chartSummary,
      el("div", { class: "chart-tools", role: "group", "aria-label": "Chart" }, Object.values(buttons)),
      inView,
      chartBox,
      el(
        "p",
        { class: "hint" },
        el("span", { class: "gap-swatch", "aria-hidden": "true" }),
        " Shaded slots: no candle stored (missing, or no trades as the exchange confirmed). Drag or use the mouse wheel to move and zoom; the chart loads more as you go.",
      ),
      el(
        "p",
        { class: "hint" },
        "Candlestick chart by ",
        el("a", { href: "https://www.tradingview.com/", rel: "noopener", text: "TradingView Lightweight Charts™" }),
        ".",
      ),
      gapsBox,
    ),
    section("Coverage", coverageBox),
  );
  buttons.zoomIn.addEventListener("click", () => chart?.zoomIn());
  buttons.zoomOut.addEventListener("click", () => chart?.zoomOut());
  buttons.earlier.addEventListener("click", () => chart?.earlier());
  buttons.later.addEventListener("click", () => chart?.later());
  buttons.latest.addEventListener("click", () => chart?.showLatest().catch(showError));

  function showError(error) {
    showMessage(errorLine, error.message);
  }

  function selectedConfig() {
    return configs.find((config) => String(config.id) === configSelect.control.value) ?? null;
  }

  function remember() {
    const query = new URLSearchParams({ config: configSelect.control.value, timeframe: timeframeSelect.control.value });
    history.replaceState(null, "", `#/data?${query}`);
  }

  function fillTimeframes(config, wanted) {
    const stored = new Set(coverage.map((series) => series.timeframe));
    const options = config.timeframes.map((timeframe) => [
      timeframe,
      stored.has(timeframe) ? timeframe : `${timeframe} (nothing stored)`,
    ]);
    const value = config.timeframes.includes(wanted)
      ? wanted
      : (config.timeframes.find((timeframe) => stored.has(timeframe)) ?? config.timeframes[0]);
    timeframeSelect.control.replaceChildren(
      ...options.map(([optionValue, text]) =>
        el("option", { value: optionValue, selected: optionValue === value }, text),
      ),
    );
  }

  function renderCoverage(config) {
    replace(
      coverageBox,
      dataTable({
        caption: `Coverage of ${config.symbol} on ${config.exchange}`,
        empty: "Nothing stored yet: the first run fills it.",
        rows: coverage,
        columns: [
          { label: "Timeframe", cell: (series) => series.timeframe },
          { label: "First candle", cell: (series) => timeStamp(series.first_candle) },
          { label: "Last candle", cell: (series) => timeStamp(series.last_candle) },
          { label: "Candles", numeric: true, cell: (series) => formatCount(series.candles) },
          { label: "Expected", numeric: true, cell: (series) => formatCount(series.expected_candles) },
          { label: "Missing", numeric: true, cell: (series) => formatCount(series.missing_candles) },
          // the exchange confirmed it has none there (no trades): not missing, but no candle either
          { label: "No trades", numeric: true, cell: (series) => formatCount(series.confirmed_empty_candles ?? 0) },
          // older than the exchange serves: nothing can fetch them, so not missing either
          { label: "Beyond reach", numeric: true, cell: (series) => formatCount(series.beyond_reach_candles ?? 0) },
          // stored, then changed by the exchange (a late trade, a correction): rewritten with its values
          { label: "Corrected", numeric: true, cell: (series) => formatCount(series.revised_candles ?? 0) },
          { label: "Gaps", numeric: true, cell: (series) => formatCount(series.gap_count) },
          {
            label: "Lag",
            cell: (series) => [
              lagText(series),
              series.stale === null ? " (not collected)" : null,
              series.stale ? " " : null,
              freshnessBadge(series),
            ],
          },
        ],
      }),
      coverageNotes(config),
    );
  }

  /** What the exchange does not serve, what it corrected, and whether its answers are proven, said in words. */
  function coverageNotes(config) {
    const notes = coverage
      .filter((series) => series.reach)
      .map((series) =>
        el(
          "li",
          {},
          `${series.timeframe}: ${formatCount(series.beyond_reach_candles ?? 0)} candles beyond what ${config.exchange} serves: ${series.reach}.`,
        ),
      );
    for (const series of coverage.filter((item) => item.revised_candles > 0)) {
      const [they, were] = series.revised_candles === 1 ? ["it", "was"] : ["they", "were"];
      notes.push(
        el(
          "li",
          {},
          `${series.timeframe}: ${config.exchange} corrected ${plural(series.revised_candles, "candle")} after ${they} ${were} stored (a late trade, or a fix on its side); ${they} ${were} rewritten with its new prices and volume.`,
        ),
      );
    }
    if (coverage.some((series) => series.exchange_verified === false))
      notes.push(
        el(
          "li",
          {},
          `${config.exchange} is not verified: where it answered no candle, that was not taken as “no trades” (counted missing).`,
        ),
      );
    return notes.length ? el("ul", { class: "hint coverage-notes" }, notes) : null;
  }

  function renderGaps(series) {
    if (!series?.largest_gaps.length) {
      replace(gapsBox, el("p", { class: "hint", text: series ? "No gaps in this series." : "" }));
      return;
    }
    replace(
      gapsBox,
      el("h3", { text: "Largest gaps" }),
      el(
        "ul",
        { class: "gaps" },
        series.largest_gaps.map((gap) =>
          el(
            "li",
            {},
            `${plural(gap.missing_candles, "slot")} without a candle: ${gapSpan(gap, series.timeframe)} `,
            el("button", {
              type: "button",
              class: "secondary",
              text: "Show",
              "aria-label": `Show the gap from ${formatTime(gap.start)}`,
              onclick: () => chart?.showGap(gap).catch(showError),
            }),
          ),
        ),
      ),
    );
  }

  async function drawChart(config, series, force) {
    const key = `${config.id}:${series?.timeframe}:${series?.last_candle}`;
    if (!force && key === chartKey) return;
    chartKey = key;
    chart?.dispose();
    chart = null;
    for (const button of Object.values(buttons)) button.disabled = !series;
    inView.textContent = "";
    if (!series) {
      chartBox.classList.add("chart-empty");
      chartSummary.textContent = `No ${timeframeSelect.control.value} candles stored for ${config.symbol} yet.`;
      return;
    }
    chartBox.classList.remove("chart-empty");
    chartBox.setAttribute(
      "aria-label",
      `Candlestick chart of ${config.symbol} on ${config.exchange}, ${series.timeframe}`,
    );
    chart = await candleChart(chartBox, {
      exchange: config.exchange,
      symbol: config.symbol,
      timeframe: series.timeframe,
      coverage: series,
      onChange: ({ loaded, missing, from, to }) => {
        chartSummary.textContent =
          `${formatCount(loaded)} of ${formatCount(series.candles)} stored candles loaded, ` +
          `${formatTime(isoAt(from))} to ${formatTime(isoAt(to))}; ` +
          `${plural(missing, "slot")} without a candle (missing or no trades) shaded.`;
      },
      onView: ({ from, to, slots }) => {
        inView.textContent = `In view: ${formatTime(isoAt(from))} to ${formatTime(isoAt(to))}, ${plural(slots, "slot")}.`;
      },
    });
    await chart.showLatest();
  }

  async function showSelected(force = false) {
    const config = selectedConfig();
    if (!config) {
      replace(coverageBox, el("p", { class: "hint", text: "No configs yet: create one on the Configs page." }));
      return;
    }
    const stored = await getJson(`${MARKET}/coverage`, { exchange: config.exchange, symbol: config.symbol });
    const order = (series) =>
      config.timeframes.includes(series.timeframe)
        ? config.timeframes.indexOf(series.timeframe)
        : config.timeframes.length;
    coverage = stored.sort((a, b) => order(a) - order(b));
    fillTimeframes(config, timeframeSelect.control.value || params.get("timeframe"));
    remember();
    renderCoverage(config);
    const series = coverage.find((item) => item.timeframe === timeframeSelect.control.value);
    renderGaps(series);
    await drawChart(config, series, force);
  }

  async function load() {
    configs = await listConfigs();
    const wanted = configSelect.control.value || params.get("config");
    configSelect.control.replaceChildren(
      ...configs.map((config) =>
        el(
          "option",
          { value: config.id, selected: String(config.id) === wanted },
          `${config.symbol} on ${config.exchange} (#${config.id})`,
        ),
      ),
    );
    if (!configs.length) configSelect.control.append(el("option", { value: "" }, "No configs yet"));
    showMessage(errorLine, "");
    await showSelected();
  }

  const loads = refresher(load, showError);
  configSelect.control.addEventListener("change", () => {
    timeframeSelect.control.value = "";
    showSelected(true).catch(showError);
  });
  timeframeSelect.control.addEventListener("change", () => showSelected(true).catch(showError));
  loads.run();

  return {
    refresh: loads.run,
    // a finished run may have stored candles: refetch the coverage, redraw if the series grew
    onEvent: (event) => (event.type === "run_finished" || event.type === "config_changed") && loads.soon(),
    dispose() {
      loads.cancel();
      chart?.dispose();
    },
  };
}
