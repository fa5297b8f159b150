//! The dashboard's HTML, pure: what [`Page`] holds, escaped, in the table's order.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};
use protocol::{Anomaly, Check, IncidentState, Metric, Severity, Status};

use super::{Filters, Page};
use crate::present::{change, number};
use crate::routes::assets::{DASHBOARD_CSS, DASHBOARD_JS, MANAGE_JS, UPLOT_CSS, UPLOT_JS};
use crate::store::SeriesKey;

/// The silences and the datasets: `manage.js` fills them from the API, offering changes
/// only to the roles allowed to make them.
const MANAGED_SECTIONS: &str = r#"<section id="silences-section" aria-labelledby="silences-title">
  <h2 id="silences-title">Silences</h2>
  <table id="silences">
    <thead><tr><th>status</th><th>series</th><th>from (UTC)</th><th>until (UTC)</th><th>comment</th><th>by</th><th></th></tr></thead>
    <tbody></tbody>
  </table>
  <p id="silences-status" class="status-line">loading…</p>
</section>
<section id="datasets-section" aria-labelledby="datasets-title">
  <h2 id="datasets-title">Datasets</h2>
  <table id="datasets">
    <thead><tr><th>name</th><th>labels</th><th>step / window</th><th>method</th><th>warning ×</th><th>alarm ×</th><th>min events</th><th></th></tr></thead>
    <tbody></tbody>
  </table>
  <form id="dataset-form" hidden>
    <h3>Dataset <span id="dataset-name"></span></h3>
    <label>method <select name="method"><option value="auto">auto</option><option value="three_sigma">three_sigma</option><option value="last_point">last_point</option></select></label>
    <label>warning × <input name="warning_multiplier" type="number" step="any" min="0" required></label>
    <label>alarm × <input name="alarm_multiplier" type="number" step="any" min="0" required></label>
    <label>min events a step <input name="min_count_per_step" type="number" step="any" min="0" required></label>
    <button type="submit">Save</button> <button type="button" class="cancel">Cancel</button>
  </form>
  <p id="datasets-status" class="status-line">loading…</p>
</section>
"#;

/// Escapes text for HTML content and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn minute(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

/// Seconds of lag as the header shows them ("—" before the first pull).
fn lag_text(lag: Option<f64>) -> String {
    match lag {
        None => "—".to_owned(),
        Some(s) if s < 120.0 => format!("{s:.1} s"),
        Some(s) if s < 7_200.0 => format!("{:.0} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3_600.0),
    }
}

fn series_of(a: &Anomaly) -> SeriesKey {
    SeriesKey {
        dataset: a.dataset.clone(),
        label: a.label.clone(),
        entity_id: a.entity_id,
    }
}

/// The incidents in the table's order: alarms first, then warnings, newest first in each.
fn table_order(incidents: &[Anomaly]) -> Vec<&Anomaly> {
    let mut rows: Vec<&Anomaly> = incidents.iter().collect();
    rows.sort_by(|a, b| {
        (b.severity, b.period_start, b.id).cmp(&(a.severity, a.period_start, a.id))
    });
    rows
}

/// The series charted first: the one asked for, else that of the first incident in the
/// table (the newest alarm), else the first known.
fn chosen_series(page: &Page) -> Option<SeriesKey> {
    page.chosen
        .clone()
        .or_else(|| table_order(&page.incidents).first().map(|a| series_of(a)))
        .or_else(|| page.known.first().cloned())
}

fn series_attributes(page: &Page, s: &SeriesKey) -> String {
    let level = page
        .levels
        .iter()
        .any(|level| level.dataset == s.dataset && level.label == s.label);
    format!(
        r#"data-dataset="{}" data-label="{}" data-entity="{}" data-kind="{}""#,
        escape(&s.dataset),
        escape(&s.label),
        s.entity_id,
        if level { "level" } else { "counter" }
    )
}

fn series_name(s: &SeriesKey) -> String {
    format!(
        "{} / {} / {}",
        escape(&s.dataset),
        escape(&s.label),
        s.entity_id
    )
}

/// One signal in words: "count 600, 10.2× expected", the raw figures in its tooltip.
/// The vocabularies' words are plain lowercase ASCII: they need no escaping.
fn signal_text(
    metric: Metric,
    observed: f64,
    expected: f64,
    deviation: f64,
    method: Check,
) -> String {
    format!(
        r#"<span class="signal" title="{metric} by {method}: observed {observed}, expected {expected}, deviation {deviation:.2} noise units">{metric} {shown} <em>{change}</em></span>"#,
        shown = number(observed),
        change = escape(&change(observed, expected)),
    )
}

/// An `<option>` of a filter's vocabulary, selected when it is the filter's value.
fn choice<T: Copy + PartialEq + std::fmt::Display>(value: T, chosen: Option<T>) -> String {
    let word = value.to_string();
    option(
        &word,
        &word,
        (chosen == Some(value)).then_some(word.as_str()),
    )
}

fn option(value: &str, shown: &str, chosen: Option<&str>) -> String {
    let selected = if chosen == Some(value) {
        " selected"
    } else {
        ""
    };
    format!(r#"<option value="{value}"{selected}>{shown}</option>"#)
}

/// The whole page. Pure, so that its escaping and choices are unit-tested.
pub fn render(page: &Page) -> String {
    let mut html = String::with_capacity(16 * 1024);
    let meta = &page.meta;
    let gatherer_class = if meta.gatherer == "up" { "up" } else { "down" };
    let last_pull = meta.last_pull_at.map_or_else(
        || "never".to_owned(),
        |t| t.format("%H:%M:%S UTC").to_string(),
    );
    let chosen = chosen_series(page);
    // The metric to chart: asked for, else the chosen incident's strongest signal's.
    let metric = page.metric.clone().or_else(|| {
        let chosen = chosen.as_ref()?;
        table_order(&page.incidents)
            .into_iter()
            .find(|a| series_of(a) == *chosen)
            .map(|a| a.metric.to_string())
            .filter(|m| m != "population")
    });
    // `write!` into a String cannot fail.
    let _ = write!(
        html,
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pulse analyser</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{uplot_css}">
<link rel="stylesheet" href="{dashboard_css}">
<script src="{uplot_js}" defer></script>
<script src="{dashboard_js}" defer></script>
<script src="{manage_js}" defer></script>
</head>
<body>
<header>
  <h1>Pulse analyser</h1>
  <dl id="meta">
    <div><dt>pull lag</dt><dd id="lag">{lag}</dd></div>
    <div><dt>gatherer</dt><dd id="gatherer" class="{gatherer_class}">{gatherer}</dd></div>
    <div><dt>series</dt><dd id="series-count">{series}</dd></div>
    <div><dt>last pull</dt><dd id="last-pull">{last_pull}</dd></div>
  </dl>
  <p class="user">signed in as {user}</p>
</header>
<main>
<section id="chart-section" aria-labelledby="chart-title">
  <h2 id="chart-title">Series</h2>
  <div class="controls">
  <label>series <select id="series">
"#,
        uplot_css = UPLOT_CSS.url(),
        dashboard_css = DASHBOARD_CSS.url(),
        uplot_js = UPLOT_JS.url(),
        dashboard_js = DASHBOARD_JS.url(),
        manage_js = MANAGE_JS.url(),
        lag = lag_text(meta.lag_seconds),
        gatherer = escape(&meta.gatherer),
        series = meta.series,
        user = escape(&page.user),
    );
    // Every known series, plus those of listed incidents (their totals may be pruned), with
    // how many listed incidents each has.
    let mut options: BTreeMap<SeriesKey, usize> =
        page.known.iter().map(|s| (s.clone(), 0)).collect();
    for incident in &page.incidents {
        *options.entry(series_of(incident)).or_default() += 1;
    }
    if let Some(chosen) = &chosen {
        options.entry(chosen.clone()).or_default();
    }
    for (series, listed) in &options {
        let selected = if Some(series) == chosen.as_ref() {
            " selected"
        } else {
            ""
        };
        let listed = match listed {
            0 => String::new(),
            1 => " (1 incident)".to_owned(),
            n => format!(" ({n} incidents)"),
        };
        let _ = writeln!(
            html,
            "    <option {}{selected}>{}{listed}</option>",
            series_attributes(page, series),
            series_name(series)
        );
    }
    let empty = if options.is_empty() {
        "No series yet: the analyser has not read any rows from the gatherer."
    } else {
        ""
    };
    let _ = write!(
        html,
        r#"  </select></label>
  <label>metric <select id="metric" data-chosen="{metric}"></select></label>
  <span class="range" role="group" aria-label="time range">
    <button type="button" data-hours="1">1 h</button><button type="button" data-hours="6">6 h</button><button type="button" data-hours="24">24 h</button><button type="button" data-hours="168">7 d</button>
  </span>
  </div>
  <div id="chart" role="img" aria-label="the chosen metric of the chosen series, with what was expected and its normal range"></div>
  <p id="chart-status" class="status-line">{empty}</p>
  <ul id="marks" class="legend"></ul>
</section>
<section id="anomalies-section" aria-labelledby="anomalies-title">
  <h2 id="anomalies-title">Incidents <span id="open-count">{listed}</span></h2>
  <form id="filters" method="get" action="/">
    <label>severity <select name="severity">{sev_any}{sev_alarm}{sev_warning}</select></label>
    <label>state <select name="state">{state_any}{state_firing}{state_resolved}</select></label>
    <label>verdict <select name="status">{status_open}{status_approved}{status_dismissed}{status_any}</select></label>
    <button type="submit">Filter</button>
  </form>
"#,
        metric = escape(metric.as_deref().unwrap_or("")),
        listed = page.incidents.len(),
        sev_any = option("", "any", page.filters.severity.is_none().then_some("")),
        sev_alarm = choice(Severity::Alarm, page.filters.severity),
        sev_warning = choice(Severity::Warning, page.filters.severity),
        state_any = option("", "any", page.filters.state.is_none().then_some("")),
        state_firing = choice(IncidentState::Firing, page.filters.state),
        state_resolved = choice(IncidentState::Resolved, page.filters.state),
        status_open = choice(Status::Open, page.filters.status),
        status_approved = choice(Status::Approved, page.filters.status),
        status_dismissed = choice(Status::Dismissed, page.filters.status),
        status_any = option("any", "any", page.filters.status.is_none().then_some("any")),
    );
    if page.incidents.is_empty() {
        let none =
            if page.filters == Filters::default() || page.filters.status == Some(Status::Open) {
                "Nothing waits for a verdict."
            } else {
                "No incident matches these filters."
            };
        let _ = writeln!(html, "  <p class=\"status-line\">{none}</p>");
    } else {
        html.push_str(
            r#"  <table id="anomalies">
    <thead><tr><th>severity</th><th>series</th><th>what fired</th><th>period (UTC)</th><th>verdict</th><th></th></tr></thead>
    <tbody>
"#,
        );
        for a in table_order(&page.incidents) {
            let series = series_of(a);
            let severity = a.severity.as_str();
            let firing = a.state == IncidentState::Firing;
            let signals: Vec<String> = if a.signals.is_empty() {
                vec![signal_text(
                    a.metric,
                    a.observed,
                    a.expected,
                    a.deviation,
                    a.method,
                )]
            } else {
                a.signals
                    .iter()
                    .map(|s| signal_text(s.metric, s.observed, s.expected, s.deviation, s.method))
                    .collect()
            };
            let end = if firing {
                "now".to_owned()
            } else {
                a.period_end.format("%H:%M").to_string()
            };
            let mut actions = String::new();
            if a.status == Status::Open && page.can_decide {
                actions.push_str(
                    r#"<button type="button" class="approve">Approve</button> <button type="button" class="dismiss">Dismiss</button> <button type="button" class="expected" title="dismiss as expected: this series may do this again">Expected</button>"#,
                );
            }
            if page.can_silence {
                actions.push_str(
                    r#" <span class="silence-series"><select class="silence-for" aria-label="silence this series for"><option value="1h">1 h</option><option value="1d">1 day</option><option value="1w">1 week</option></select> <button type="button" class="silence" title="silence this series">Silence</button></span>"#,
                );
            }
            let verdict = match &a.decided_by {
                Some(by) if a.status != Status::Open => format!("{} by {}", a.status, escape(by)),
                _ => a.status.to_string(),
            };
            let _ = write!(
                html,
                r#"    <tr data-anomaly-id="{id}" {attributes} data-metric="{metric}" data-start="{start_ts}" data-end="{end_ts}" class="{severity}{state_class}">
      <td data-label="severity"><span class="badge {severity}">{severity}</span> <span class="state {state}">{state}</span>{silenced}</td>
      <td data-label="series"><button type="button" class="show" title="chart this series">{name}</button></td>
      <td data-label="what fired" class="signals">{signals}</td>
      <td data-label="period">{start} – {end}</td>
      <td data-label="verdict" class="status">{verdict}</td>
      <td class="actions">{actions}</td>
    </tr>
"#,
                id = a.id,
                silenced = a.silenced_by.map_or_else(String::new, |silence| format!(
                    r#" <span class="silenced" title="found inside silence #{silence}: not notified">silenced #{silence}</span>"#
                )),
                attributes = series_attributes(page, &series),
                metric = a.metric,
                start_ts = a.period_start.timestamp(),
                end_ts = a.period_end.timestamp(),
                state_class = if firing { " firing" } else { "" },
                state = a.state,
                name = series_name(&series),
                signals = signals.join(" · "),
                start = minute(a.period_start),
            );
        }
        html.push_str("    </tbody>\n  </table>\n");
    }
    html.push_str("</section>\n");
    html.push_str(MANAGED_SECTIONS);
    html.push_str("</main>\n</body>\n</html>\n");
    html
}
