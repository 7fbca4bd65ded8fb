// Overview: the last 24 hours of collection runs in cards, the freshness of the collected series, the scheduler's
// health, four charts of collection runs from /stats/timeseries and the last 10 executions of any job, all from
// GET /status and /stats/timeseries. The daily cleanup is not counted with the collection runs.

import { ADMIN, getPolled } from "./api.js";
import { el, replace } from "./dom.js";
import { formatCount, formatDuration, formatPercent, formatRelative, formatTime, plural } from "./format.js";
import {
  card,
  dataTable,
  facts,
  lagText,
  messageLine,
  refresher,
  section,
  showMessage,
  statusBadge,
  timeChart,
  timeStamp,
} from "./widgets.js";

const STATUS_CHECK_SECONDS = 10; // scheduler health changes without data events: re-check (304 when unchanged)
const COLLECTION = "data_collection";
const DAY = { hours: 24, bucket: "1h", job_type: COLLECTION };
const WEEK = { hours: 168, bucket: "6h", job_type: COLLECTION };

function seconds(iso) {
  return new Date(iso).getTime() / 1000;
}

/** "Latest 98 %, lowest 75 %." in words, for the chart's caption (and screen readers). */
function summarize(values, format, empty, nothing, extreme = "highest") {
  if (empty) return nothing;
  const present = values.filter((value) => value !== null);
  const pick = extreme === "lowest" ? Math.min(...present) : Math.max(...present);
  return `Latest ${format(present.at(-1))}, ${extreme} ${format(pick)}.`;
}

export function mountOverview(root) {
  const errorLine = messageLine("error");
  const cards = el("div", { class: "cards" });
  const freshnessBox = el("div", { class: "freshness" });
  const scheduler = el("div", { class: "scheduler" });
  const recent = el("div");
  const counts = el("p", { class: "config-counts" });

  const successChart = timeChart({
    title: "Success rate, last 24 hours",
    series: [{ label: "Success rate", color: "#2f855a" }],
    format: (value) => `${Math.round(value)} %`,
    yRange: [0, 100],
    summary: (points, empty) =>
      summarize(points.y[0], formatPercent, empty, "No finished runs in the last 24 hours.", "lowest"),
  });
  const durationChart = timeChart({
    title: "Run duration, last 7 days",
    series: [
      { label: "Average", color: "#2b6cb0" },
      { label: "95th percentile", color: "#b7791f" },
    ],
    format: formatDuration,
    summary: (points, empty) => summarize(points.y[0], formatDuration, empty, "No finished runs in the last 7 days."),
  });
  const latenessChart = timeChart({
    title: "Lateness of scheduled runs, last 24 hours",
    series: [
      { label: "Average", color: "#6b46c1" },
      { label: "95th percentile", color: "#c53030" },
    ],
    format: formatDuration,
    summary: (points, empty) =>
      summarize(points.y[1], formatDuration, empty, "No scheduled runs in the last 24 hours."),
  });
  const recordsChart = timeChart({
    title: "Records collected per hour, last 24 hours",
    series: [{ label: "Records", color: "#2c7a7b", bars: true }],
    format: (value) => formatCount(Math.round(value)),
    summary: (points, empty) =>
      empty
        ? "No records collected in the last 24 hours."
        : `${formatCount(points.y[0].reduce((sum, value) => sum + (value ?? 0), 0))} records in all.`,
  });
  const charts = [successChart, durationChart, latenessChart, recordsChart];
  let heartbeatAt = null;
  let heartbeatCell = null;

  root.append(
    el("h1", { text: "Overview" }),
    errorLine,
    section(
      "Last 24 hours",
      cards,
      el("p", { class: "hint", text: "Collection runs only: the daily cleanup of old logs is not counted." }),
    ),
    section("Freshness", freshnessBox),
    section("Scheduler", scheduler),
    section(
      "Charts",
      el(
        "div",
        { class: "charts" },
        charts.map((chart) => chart.root),
      ),
    ),
    section(
      "Last 10 executions",
      recent,
      el(
        "p",
        { class: "links" },
        counts,
        el("a", { href: "#/configs", text: "All configs" }),
        el("a", { href: "#/logs", text: "All execution logs" }),
      ),
    ),
  );

  function renderStatus(status) {
    const stats = status.stats;
    replace(
      cards,
      card(
        "Collection runs",
        formatCount(stats.total_executions),
        `${formatCount(stats.failed_executions)} failed, ${formatCount(stats.partial_executions)} partial`,
      ),
      card("Success rate", formatPercent(stats.success_rate), "of finished collection runs"),
      card("Average duration", formatDuration(stats.average_duration_seconds)),
      card("Records collected", formatCount(stats.total_records_collected), "candles stored"),
      card("Runs in progress", formatCount(status.scheduler.runs_in_progress)),
    );
    renderFreshness(status.freshness);
    const health = status.scheduler;
    heartbeatAt =
      health.heartbeat_age_seconds === null ? null : Date.now() - Math.max(health.heartbeat_age_seconds, 0) * 1000;
    heartbeatCell = el("span");
    replace(
      scheduler,
      facts([
        [
          "Status",
          el("span", {
            class: `badge ${health.alive ? "status-success" : "status-failed"}`,
            text: health.alive ? "Alive" : "Not running",
          }),
        ],
        ["Last heartbeat", heartbeatCell],
        [
          "Next run",
          health.next_run_at
            ? `${formatRelative(health.next_run_at)} (${formatTime(health.next_run_at)})`
            : "none scheduled",
        ],
        ["Backend", health.backend ?? "none alive"],
        ["Schedulers alive", formatCount(health.schedulers_alive)],
        ["Scheduled configs", formatCount(health.scheduled_configs)],
      ]),
    );
    tickHeartbeat();
    counts.textContent = `${plural(status.total_configs, "config")}: ${formatCount(status.enabled_configs)} enabled, ${formatCount(status.disabled_configs)} disabled.`;
    replace(
      recent,
      dataTable({
        caption: "Last 10 executions",
        empty: "No runs yet. Create a config and trigger it.",
        rows: status.recent_executions,
        columns: [
          { label: "Run", cell: (log) => el("a", { href: `#/logs/${log.id}`, text: `#${log.id}` }) },
          { label: "Started", cell: (log) => timeStamp(log.started_at) },
          {
            label: "Job",
            cell: (log) => [log.symbol ?? log.job_type, log.exchange ? ` · ${log.exchange}` : ""].join(""),
          },
          { label: "Status", cell: (log) => statusBadge(log.status) },
          { label: "Duration", numeric: true, cell: (log) => formatDuration(log.duration_seconds) },
          { label: "Records", numeric: true, cell: (log) => formatCount(log.records_collected) },
        ],
      }),
    );
  }

  /** How many collected series are stale (a card), and the worst of them with their lag. */
  function renderFreshness(freshness) {
    const stale = freshness.worst.filter((series) => series.stale);
    replace(
      freshnessBox,
      el(
        "div",
        { class: "cards" },
        card("Stale series", formatCount(freshness.stale_series), `of ${formatCount(freshness.series)} collected`, {
          alert: freshness.stale_series > 0,
        }),
      ),
      stale.length
        ? el(
            "ul",
            { class: "stale-series", "aria-label": "Stale series" },
            stale.map((series) =>
              el(
                "li",
                {},
                el("a", {
                  href: `#/data?config=${series.config_id}&timeframe=${encodeURIComponent(series.timeframe)}`,
                  text: `${series.symbol} ${series.timeframe} on ${series.exchange}`,
                }),
                `: ${lagText(series)}`,
              ),
            ),
          )
        : el("p", { class: "hint", text: "Every collected series is up to date." }),
      freshness.stale_series > stale.length
        ? el(
            "p",
            { class: "hint" },
            `${formatCount(freshness.stale_series - stale.length)} more on the `,
            el("a", { href: "#/configs", text: "Configs" }),
            " page.",
          )
        : null,
    );
  }

  function tickHeartbeat() {
    if (heartbeatCell)
      heartbeatCell.textContent = heartbeatAt === null ? "never" : formatRelative(new Date(heartbeatAt).toISOString());
  }

  async function load() {
    const [status, day, week] = await Promise.all([
      getPolled(`${ADMIN}/status`),
      getPolled(`${ADMIN}/stats/timeseries`, DAY),
      getPolled(`${ADMIN}/stats/timeseries`, WEEK),
    ]);
    showMessage(errorLine, "");
    renderStatus(status.data);
    const dayX = day.data.points.map((point) => seconds(point.bucket_start));
    const pick = (points, name) => points.map((point) => point[name]);
    await Promise.all([
      successChart.update({ x: dayX, y: [pick(day.data.points, "success_rate")] }),
      durationChart.update({
        x: week.data.points.map((point) => seconds(point.bucket_start)),
        y: [pick(week.data.points, "average_duration_seconds"), pick(week.data.points, "p95_duration_seconds")],
      }),
      latenessChart.update({
        x: dayX,
        y: [pick(day.data.points, "average_lateness_seconds"), pick(day.data.points, "p95_lateness_seconds")],
      }),
      // empty hours draw no bar at all
      recordsChart.update({ x: dayX, y: [pick(day.data.points, "records_collected").map((value) => value || null)] }),
    ]);
  }

  const loads = refresher(load, (error) => showMessage(errorLine, error.message));
  loads.run();
  const statusTimer = setInterval(loads.run, STATUS_CHECK_SECONDS * 1000);
  const heartbeatTimer = setInterval(tickHeartbeat, 1000);

  return {
    refresh: loads.run,
    onEvent: () => loads.soon(),
    dispose() {
      loads.cancel();
      clearInterval(statusTimer);
      clearInterval(heartbeatTimer);
      for (const chart of charts) chart.dispose();
    },
  };
}
