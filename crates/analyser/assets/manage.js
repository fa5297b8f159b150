// Pulse dashboard, the analyst's tools: the silences (active ones and expired ones as
// history), "silence this series for …" from an incident's row, and the datasets with a
// form to change their method and thresholds. It asks the analyser who the user is
// (/api/v1/me) and offers only what the role allows (the server checks again). Data is
// only ever put into the page as text, never as markup.
"use strict";

(() => {
  const $ = (selector) => document.querySelector(selector);
  const RANK = { viewer: 0, analyst: 1, admin: 2 };
  let me = { name: "", role: "viewer" };
  let datasets = [];
  let editing = null;

  /** Fetches JSON from the analyser; throws with the API's error message (dashboard.js). */
  const api = window.pulseApi;

  function send(method, path, body) {
    return api(path, {
      method,
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  const may = (role) => RANK[me.role] >= RANK[role];

  function cell(label, text) {
    const td = document.createElement("td");
    td.dataset.label = label;
    td.textContent = text;
    return td;
  }

  function button(text, className) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = className;
    b.textContent = text;
    return b;
  }

  const utc = (t) => (t ? `${t.slice(0, 10)} ${t.slice(11, 16)}` : "");

  function silenceRow(s) {
    const tr = document.createElement("tr");
    tr.dataset.silenceId = String(s.id);
    tr.className = s.status;
    const series = [s.dataset, s.label ?? "every label", s.entity_id ?? "every entity"].join(" / ");
    const until = s.weekly
      ? `weekly ${s.weekly.days.join(",")} ${s.weekly.from}–${s.weekly.to} ${s.weekly.time_zone}`
      : utc(s.ended_at || s.ends_at);
    tr.append(
      cell("status", s.status),
      cell("series", series),
      cell("from", utc(s.starts_at)),
      cell("until", until),
      cell("comment", s.comment),
      cell("by", s.ended_by ? `${s.created_by}, ended by ${s.ended_by}` : s.created_by),
    );
    const actions = document.createElement("td");
    actions.className = "actions";
    if (s.status !== "expired" && may("analyst")) actions.append(button("End", "end-silence"));
    tr.append(actions);
    return tr;
  }

  async function loadSilences() {
    try {
      const { data } = await api("/api/v1/silences?limit=100");
      $("#silences tbody").replaceChildren(...data.map(silenceRow));
      $("#silences-status").textContent = data.length ? "" : "No silences yet.";
    } catch (error) {
      $("#silences-status").textContent = `cannot list the silences: ${error.message}`;
    }
  }

  /** "Silence this series for …" from an incident's row. */
  async function silenceSeries(row) {
    const d = row.dataset;
    const duration = row.querySelector(".silence-for").value;
    const status = row.querySelector(".status");
    try {
      const { data } = await send("POST", "/api/v1/silences", {
        dataset: d.dataset,
        label: d.label,
        entity_id: Number(d.entity),
        duration,
        comment: `from incident #${d.anomalyId}`,
      });
      status.textContent = `silenced for ${duration} (#${data.id})`;
      await loadSilences();
    } catch (error) {
      status.textContent = `not silenced: ${error.message}`;
    }
  }

  async function endSilence(row) {
    try {
      await send("DELETE", `/api/v1/silences/${row.dataset.silenceId}`, {});
      await loadSilences();
    } catch (error) {
      $("#silences-status").textContent = `not ended: ${error.message}`;
    }
  }

  function datasetRow(d) {
    const tr = document.createElement("tr");
    tr.dataset.dataset = d.name;
    tr.append(
      cell("name", d.name),
      cell("labels", d.labels.length ? d.labels.join(", ") : "all"),
      cell("step / window", `${d.time_step} / ${d.time_ago ?? "30 steps"}`),
      cell("method", d.method),
      cell("warning ×", String(d.warning_multiplier)),
      cell("alarm ×", String(d.alarm_multiplier)),
      cell("min events", String(d.min_count_per_step)),
    );
    const actions = document.createElement("td");
    actions.className = "actions";
    if (may("admin")) actions.append(button("Edit", "edit-dataset"));
    tr.append(actions);
    return tr;
  }

  /** Lists the datasets; `said`: what the status line says afterwards. */
  async function loadDatasets(said = "") {
    try {
      ({ data: datasets } = await api("/api/v1/datasets"));
      $("#datasets tbody").replaceChildren(...datasets.map(datasetRow));
      $("#datasets-status").textContent = datasets.length ? said : "No datasets.";
    } catch (error) {
      $("#datasets-status").textContent = `cannot list the datasets: ${error.message}`;
    }
  }

  function edit(name) {
    editing = datasets.find((d) => d.name === name);
    if (!editing) return;
    const form = $("#dataset-form");
    $("#dataset-name").textContent = editing.name;
    for (const field of ["method", "warning_multiplier", "alarm_multiplier", "min_count_per_step"]) {
      form.elements[field].value = String(editing[field]);
    }
    $("#datasets-status").textContent = "";
    form.hidden = false;
  }

  /** Saves the form: the whole dataset as it is, with the fields edited (PUT replaces). */
  async function save(event) {
    event.preventDefault();
    if (!editing) return;
    const form = $("#dataset-form");
    const changed = {
      ...editing,
      method: form.elements.method.value,
      warning_multiplier: Number(form.elements.warning_multiplier.value),
      alarm_multiplier: Number(form.elements.alarm_multiplier.value),
      min_count_per_step: Number(form.elements.min_count_per_step.value),
    };
    try {
      const reply = await send("PUT", `/api/v1/datasets/${encodeURIComponent(editing.name)}`, changed);
      const said = `${editing.name} saved: ${reply.model.message}`;
      form.hidden = true;
      editing = null;
      await loadDatasets(said);
    } catch (error) {
      $("#datasets-status").textContent = `not saved: ${error.message}`;
    }
  }

  async function start() {
    try {
      ({ data: me } = await api("/api/v1/me"));
    } catch (error) {
      // Offer nothing beyond reading; the server refuses anything else anyway.
    }
    document.body.dataset.role = me.role;
    const incidents = $("#anomalies");
    if (incidents) {
      incidents.addEventListener("click", (event) => {
        const b = event.target.closest("button.silence");
        const row = b && b.closest("tr[data-anomaly-id]");
        if (row) silenceSeries(row);
      });
    }
    $("#silences").addEventListener("click", (event) => {
      const b = event.target.closest("button.end-silence");
      if (b) endSilence(b.closest("tr"));
    });
    $("#datasets").addEventListener("click", (event) => {
      const b = event.target.closest("button.edit-dataset");
      if (b) edit(b.closest("tr").dataset.dataset);
    });
    $("#dataset-form").addEventListener("submit", save);
    $("#dataset-form .cancel").addEventListener("click", () => {
      $("#dataset-form").hidden = true;
      editing = null;
    });
    await Promise.all([loadSilences(), loadDatasets()]);
  }

  start();
})();
