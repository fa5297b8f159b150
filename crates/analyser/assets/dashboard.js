// Pulse dashboard: charts the chosen series with its anomalies shaded, posts Approve /
// Dismiss verdicts, and keeps the header current. The page itself is rendered by the
// analyser (crates/analyser/src/routes/dashboard.rs); data is only ever put into the page
// as text, never as markup (labels come from bots).
"use strict";

(() => {
  const SHADE = { alarm: "rgba(220, 38, 38, 0.22)", warning: "rgba(245, 158, 11, 0.28)" };
  const META_EVERY_MS = 5000;

  const $ = (selector) => document.querySelector(selector);
  let plot = null;
  let marks = [];

  /** Fetches JSON from the analyser; throws with the API's error message. */
  async function api(path, options = {}) {
    const response = await fetch(path, { credentials: "same-origin", ...options });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error(body.error || `${response.status} ${response.statusText}`);
    }
    return body;
  }

  function seriesOf(element) {
    const d = element.dataset;
    return { dataset: d.dataset, label: d.label, entity_id: d.entity };
  }

  function chosenSeries() {
    const option = $("#series").selectedOptions[0];
    return option ? seriesOf(option) : null;
  }

  const seconds = (rfc3339) => Date.parse(rfc3339) / 1000;

  const utcMinute = (s) => new Date(s * 1000).toISOString().slice(11, 16);

  /** Axis ticks in UTC, 24-hour; with the date when the chart spans more than a day. */
  function utcTicks(u, splits) {
    const span = u.scales.x.max - u.scales.x.min;
    return splits.map((s) => {
      const iso = new Date(s * 1000).toISOString();
      return span > 86400 ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(11, 16);
    });
  }

  /** Shades each anomaly's period behind the series, in its severity's colour. */
  function shadeAnomalies(u) {
    const { ctx, bbox } = u;
    ctx.save();
    for (const mark of marks) {
      const x0 = Math.max(u.valToPos(mark.start, "x", true), bbox.left);
      const x1 = Math.min(u.valToPos(mark.end, "x", true), bbox.left + bbox.width);
      if (x1 <= x0) continue;
      ctx.fillStyle = SHADE[mark.severity] || SHADE.warning;
      ctx.fillRect(x0, bbox.top, Math.max(x1 - x0, 2), bbox.height);
    }
    ctx.restore();
  }

  function drawChart(reply) {
    const xs = reply.points.map((p) => seconds(p.step_start));
    const counts = reply.points.map((p) => p.count);
    const container = $("#chart");
    if (plot) plot.destroy();
    plot = new uPlot(
      {
        width: Math.max(container.clientWidth, 300),
        height: 300,
        // Times in UTC, as in the table.
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
        scales: { x: { time: true } },
        axes: [{ values: utcTicks }, {}],
        series: [
          { label: "step (UTC)" },
          {
            label: `count per ${reply.time_step_seconds} s`,
            stroke: "#1d4ed8",
            fill: "rgba(29, 78, 216, 0.08)",
            width: 1.5,
            points: { show: false },
          },
        ],
        hooks: { drawClear: [shadeAnomalies] },
      },
      [xs, counts],
      container,
    );
  }

  function listMarks() {
    const list = $("#marks");
    list.replaceChildren();
    for (const mark of marks) {
      const item = document.createElement("li");
      item.className = mark.severity;
      item.textContent =
        `${mark.severity} ${mark.metric} ${utcMinute(mark.start)}–${utcMinute(mark.end)} UTC ` +
        `(${mark.status}), observed ${mark.observed}, expected ${mark.expected.toFixed(1)}`;
      list.append(item);
    }
  }

  async function showSeries(series) {
    if (!series) return;
    const query = new URLSearchParams(series).toString();
    history.replaceState(null, "", `?${query}`);
    $("#chart-status").textContent = "loading…";
    try {
      const [points, anomalies] = await Promise.all([
        api(`/api/v1/series?${query}`),
        api(`/api/v1/state?${query}&limit=1000`),
      ]);
      marks = anomalies.data.map((a) => ({
        severity: a.severity,
        metric: a.metric,
        status: a.status,
        start: seconds(a.period_start),
        end: seconds(a.period_end),
        observed: a.observed,
        expected: a.expected,
      }));
      drawChart(points);
      listMarks();
      const shown = marks.length === 1 ? "1 anomaly" : `${marks.length} anomalies`;
      $("#chart-status").textContent =
        `${points.points.length} steps, ${shown} shaded (alarms red, warnings amber)`;
    } catch (error) {
      $("#chart-status").textContent = `cannot chart this series: ${error.message}`;
    }
  }

  /** Approve or Dismiss one anomaly, then show its new status in its row. */
  async function decide(row, verdict) {
    const buttons = row.querySelectorAll(".actions button");
    buttons.forEach((b) => (b.disabled = true));
    const status = row.querySelector(".status");
    status.textContent = "saving…";
    try {
      const reply = await api(`/api/v1/anomalies/${row.dataset.anomalyId}/${verdict}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      status.textContent = `${reply.data.status} by ${reply.data.decided_by}`;
      row.classList.add("decided", reply.data.status);
      row.querySelector(".actions").replaceChildren();
      const open = document.querySelectorAll("#anomalies tbody tr:not(.decided)").length;
      $("#open-count").textContent = String(open);
    } catch (error) {
      status.textContent = `not saved: ${error.message}`;
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  function onTableClick(event) {
    const button = event.target.closest("button");
    const row = button && button.closest("tr[data-anomaly-id]");
    if (!row) return;
    if (button.classList.contains("approve")) decide(row, "approve");
    else if (button.classList.contains("dismiss")) decide(row, "dismiss");
    else if (button.classList.contains("show")) {
      const wanted = seriesOf(row);
      for (const option of $("#series").options) {
        const s = seriesOf(option);
        if (s.dataset === wanted.dataset && s.label === wanted.label && s.entity_id === wanted.entity_id) {
          option.selected = true;
        }
      }
      showSeries(wanted);
    }
  }

  function lagText(lag) {
    if (lag === null || lag === undefined) return "—";
    if (lag < 120) return `${lag.toFixed(1)} s`;
    if (lag < 7200) return `${(lag / 60).toFixed(0)} min`;
    return `${(lag / 3600).toFixed(1)} h`;
  }

  async function refreshMeta() {
    try {
      const { meta } = await api("/api/v1/state?limit=1");
      $("#lag").textContent = lagText(meta.lag_seconds);
      $("#gatherer").textContent = meta.gatherer;
      $("#gatherer").className = meta.gatherer === "up" ? "up" : "down";
      $("#series-count").textContent = String(meta.series);
      $("#last-pull").textContent = meta.last_pull_at
        ? `${new Date(meta.last_pull_at).toISOString().slice(11, 19)} UTC`
        : "never";
    } catch (error) {
      $("#gatherer").textContent = `analyser unreachable: ${error.message}`;
      $("#gatherer").className = "down";
    }
    setTimeout(refreshMeta, META_EVERY_MS);
  }

  function start() {
    $("#series").addEventListener("change", () => showSeries(chosenSeries()));
    const table = $("#anomalies");
    if (table) table.addEventListener("click", onTableClick);
    window.addEventListener("resize", () => {
      if (plot) plot.setSize({ width: Math.max($("#chart").clientWidth, 300), height: 300 });
    });
    showSeries(chosenSeries());
    setTimeout(refreshMeta, META_EVERY_MS);
  }

  start();
})();
