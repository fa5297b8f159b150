// Pulse dashboard: charts the chosen series (the metric that fired, with what was expected
// and its normal band under it, and the incidents shaded), posts Approve / Dismiss /
// Expected verdicts, and keeps the header current (silences and datasets: manage.js). The page itself is rendered by the analyser
// (crates/analyser/src/routes/dashboard/); data is only ever put into the page as text,
// never as markup (labels come from bots).
"use strict";

(() => {
  const SHADE = { alarm: "rgba(220, 38, 38, 0.22)", warning: "rgba(245, 158, 11, 0.28)" };
  const BAND = "rgba(107, 114, 128, 0.16)";
  const META_EVERY_MS = 5000;
  // Narrower than this, an incident's band would vanish: the newest step must show.
  const MIN_SHADE_PX = 6;
  const METRICS = { counter: ["count", "events"], level: ["avg", "min", "max", "events"] };

  const $ = (selector) => document.querySelector(selector);
  let plot = null;
  let marks = [];
  let hours = null; // the chosen time range; null = the analyser's default (four windows)
  let focus = null; // an incident to keep in view: {start, end}

  /** Fetches JSON from the analyser; throws with the API's error message. */
  async function api(path, options = {}) {
    const response = await fetch(path, { credentials: "same-origin", ...options });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error(body.error || `${response.status} ${response.statusText}`);
    }
    return body;
  }
  // manage.js (loaded after this file, both deferred) calls the analyser the same way.
  window.pulseApi = api;

  function seriesOf(element) {
    const d = element.dataset;
    return { dataset: d.dataset, label: d.label, entity_id: d.entity, kind: d.kind };
  }

  function chosenSeries() {
    const option = $("#series").selectedOptions[0];
    return option ? seriesOf(option) : null;
  }

  const seconds = (rfc3339) => Date.parse(rfc3339) / 1000;
  const utcMinute = (s) => new Date(s * 1000).toISOString().slice(11, 16);

  /** A number as a person reads it: rounded, with k / M for thousands and millions. */
  function human(x) {
    if (x === null || x === undefined || !Number.isFinite(x)) return "";
    const a = Math.abs(x);
    if (a >= 1e6) return `${+(x / 1e6).toFixed(a >= 1e7 ? 0 : 1)}M`;
    if (a >= 1e4) return `${+(x / 1e3).toFixed(a >= 1e5 ? 0 : 1)}k`;
    if (a >= 100) return String(Math.round(x));
    if (a >= 10) return String(+x.toFixed(1));
    return String(+x.toFixed(2));
  }

  /** How an observed value differs from the expected one, in words. */
  function change(observed, expected) {
    if (!expected) return observed ? `${human(observed)} from 0` : "as expected";
    const ratio = observed / expected;
    if (ratio >= 2) return `${ratio.toFixed(ratio >= 100 ? 0 : 1)}× expected`;
    const percent = Math.round((ratio - 1) * 100);
    if (percent === 0) return "as expected";
    return percent > 0 ? `+${percent} %` : `−${-percent} %`;
  }

  /** Axis ticks in UTC, 24-hour; with the date when the chart spans more than a day. */
  function utcTicks(u, splits) {
    const span = u.scales.x.max - u.scales.x.min;
    return splits.map((s) => {
      const iso = new Date(s * 1000).toISOString();
      return span > 86400 ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(11, 16);
    });
  }

  /** Shades each incident's period behind the series, in its severity's colour; the
   *  rectangles drawn are kept on #chart (data-shaded) for anyone checking. */
  function shadeIncidents(u) {
    const { ctx, bbox } = u;
    const ratio = window.devicePixelRatio || 1;
    const drawn = [];
    ctx.save();
    for (const mark of marks) {
      let x0 = Math.max(u.valToPos(mark.start, "x", true), bbox.left);
      let x1 = Math.min(u.valToPos(mark.end, "x", true), bbox.left + bbox.width);
      if (x1 < bbox.left || x0 > bbox.left + bbox.width) continue;
      if (x1 - x0 < MIN_SHADE_PX * ratio) {
        x0 = Math.max(Math.min(x0, bbox.left + bbox.width - MIN_SHADE_PX * ratio), bbox.left);
        x1 = x0 + MIN_SHADE_PX * ratio;
      }
      ctx.fillStyle = SHADE[mark.severity] || SHADE.warning;
      ctx.fillRect(x0, bbox.top, x1 - x0, bbox.height);
      drawn.push({ id: mark.id, severity: mark.severity, x0: x0 / ratio, x1: x1 / ratio, top: bbox.top / ratio, height: bbox.height / ratio });
    }
    ctx.restore();
    $("#chart").dataset.shaded = JSON.stringify(drawn);
  }

  function drawChart(reply) {
    const step = reply.time_step_seconds;
    const xs = reply.points.map((p) => seconds(p.step_start));
    const value = reply.points.map((p) => p.value);
    const expected = reply.points.map((p) => p.expected);
    const low = reply.points.map((p) => p.low);
    const high = reply.points.map((p) => p.high);
    const container = $("#chart");
    const banded = high.filter((h) => h !== null).length;
    container.dataset.metric = reply.metric;
    container.dataset.banded = String(banded);
    if (plot) plot.destroy();
    plot = new uPlot(
      {
        width: Math.max(container.clientWidth, 280),
        height: 300,
        // Times in UTC, as in the table.
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
        // Each point is a step's start: the range ends with the last step's end, so an
        // incident on the newest step has room to show.
        scales: {
          x: { time: true, range: (u, min, max) => [min, max + step] },
        },
        axes: [
          { values: utcTicks },
          { values: (u, splits) => splits.map(human), size: 56, label: reply.unit },
        ],
        series: [
          { label: "step (UTC)" },
          {
            label: `${reply.label} ${reply.metric}`,
            stroke: "#1d4ed8",
            width: 1.75,
            points: { show: false },
            value: (u, v) => human(v),
          },
          {
            label: "expected",
            stroke: "#6b7280",
            dash: [5, 4],
            width: 1,
            points: { show: false },
            value: (u, v) => human(v),
          },
          { label: "normal from", stroke: "rgba(0,0,0,0)", points: { show: false }, value: (u, v) => human(v) },
          { label: "normal to", stroke: "rgba(0,0,0,0)", points: { show: false }, value: (u, v) => human(v) },
        ],
        bands: [{ series: [4, 3], fill: BAND }],
        hooks: { drawClear: [shadeIncidents] },
      },
      [xs, value, expected, low, high],
      container,
    );
    window.pulseChart = plot;
  }

  function listMarks() {
    const list = $("#marks");
    list.replaceChildren();
    for (const mark of marks) {
      const item = document.createElement("li");
      item.className = mark.severity;
      const end = mark.state === "firing" ? "now" : `${utcMinute(mark.end)} UTC`;
      const signals = mark.signals
        .map((s) => `${s.metric} ${human(s.observed)} (${change(s.observed, s.expected)})`)
        .join(", ");
      item.textContent = `${mark.severity}, ${mark.state}: ${signals}; ${utcMinute(mark.start)} – ${end} (${mark.status})`;
      item.title = mark.signals
        .map((s) => `${s.metric}: observed ${s.observed}, expected ${s.expected}, deviation ${s.deviation}`)
        .join("\n");
      list.append(item);
    }
  }

  /** Fills the metric selector for the chosen series' kind. */
  function fillMetrics(series, wanted) {
    const select = $("#metric");
    const choices = METRICS[series.kind] || METRICS.counter;
    const current = wanted || select.value || select.dataset.chosen;
    select.replaceChildren(
      ...choices.map((m) => {
        const option = document.createElement("option");
        option.value = m;
        option.textContent = m;
        return option;
      }),
    );
    select.value = choices.includes(current) ? current : choices[0];
  }

  async function showSeries(series, metric) {
    if (!series) return;
    fillMetrics(series, metric);
    const query = new URLSearchParams({
      dataset: series.dataset,
      label: series.label,
      entity_id: series.entity_id,
    });
    const wanted = new URLSearchParams(query);
    wanted.set("metric", $("#metric").value);
    const page = new URLSearchParams(location.search);
    for (const [k, v] of wanted) page.set(k, v);
    history.replaceState(null, "", `?${page}`);
    const chart = new URLSearchParams(wanted);
    if (hours) {
      const to = Math.floor(Date.now() / 1000);
      chart.set("from", String(to - hours * 3600));
      chart.set("to", String(to));
    } else if (focus) {
      // Keep the incident in view with an hour of context before it.
      chart.set("from", String(Math.floor(focus.start - 3600)));
    }
    $("#chart-status").textContent = "loading…";
    try {
      const [points, incidents] = await Promise.all([
        api(`/api/v1/series?${chart}`),
        api(`/api/v1/state?${query}&limit=1000`),
      ]);
      marks = incidents.data.map((a) => ({
        id: a.id,
        severity: a.severity,
        state: a.state,
        status: a.status,
        start: seconds(a.period_start),
        end: seconds(a.period_end),
        signals: a.signals.length ? a.signals : [a],
      }));
      drawChart(points);
      listMarks();
      const shown = marks.length === 1 ? "1 incident" : `${marks.length} incidents`;
      $("#chart-status").textContent =
        `${points.points.length} steps of ${points.metric}, the expected value (dashed) and its normal band (grey), ` +
        `${shown} shaded (alarms red, warnings amber); drag to zoom, double-click to zoom out`;
    } catch (error) {
      $("#chart-status").textContent = `cannot chart this series: ${error.message}`;
    }
  }

  /** Approve or Dismiss one incident (`body`: the verdict's details), then show its new
   * status in its row. */
  async function decide(row, verdict, body = {}) {
    const buttons = row.querySelectorAll(".actions > button");
    buttons.forEach((b) => (b.disabled = true));
    const status = row.querySelector(".status");
    status.textContent = "saving…";
    try {
      const reply = await api(`/api/v1/anomalies/${row.dataset.anomalyId}/${verdict}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      status.textContent = `${reply.data.status} by ${reply.data.decided_by}`;
      row.classList.add("decided", reply.data.status);
      row.querySelectorAll(".actions > button").forEach((b) => b.remove());
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
    else if (button.classList.contains("expected")) decide(row, "dismiss", { reason: "expected" });
    else if (button.classList.contains("show")) {
      const wanted = seriesOf(row);
      for (const option of $("#series").options) {
        const s = seriesOf(option);
        if (s.dataset === wanted.dataset && s.label === wanted.label && s.entity_id === wanted.entity_id) {
          option.selected = true;
        }
      }
      hours = null;
      focus = { start: Number(row.dataset.start), end: Number(row.dataset.end) };
      const metric = row.dataset.metric === "population" ? null : row.dataset.metric;
      showSeries(wanted, metric);
      $("#chart-section").scrollIntoView({ behavior: "smooth" });
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
    $("#series").addEventListener("change", () => {
      focus = null;
      showSeries(chosenSeries());
    });
    $("#metric").addEventListener("change", () => showSeries(chosenSeries(), $("#metric").value));
    for (const button of document.querySelectorAll(".range button")) {
      button.addEventListener("click", () => {
        hours = Number(button.dataset.hours);
        document.querySelectorAll(".range button").forEach((b) => b.classList.toggle("on", b === button));
        showSeries(chosenSeries(), $("#metric").value);
      });
    }
    const table = $("#anomalies");
    if (table) table.addEventListener("click", onTableClick);
    window.addEventListener("resize", () => {
      if (plot) plot.setSize({ width: Math.max($("#chart").clientWidth, 280), height: 300 });
    });
    const first = document.querySelector("#anomalies tbody tr");
    if (first && !new URLSearchParams(location.search).has("label")) {
      focus = { start: Number(first.dataset.start), end: Number(first.dataset.end) };
    }
    showSeries(chosenSeries(), $("#metric").dataset.chosen || null);
    setTimeout(refreshMeta, META_EVERY_MS);
  }

  start();
})();
