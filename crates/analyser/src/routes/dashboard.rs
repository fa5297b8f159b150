//! `GET /`: the analysts' dashboard, behind the same basic auth as the API.
//!
//! The server renders the page: where the analyser stands, a selector of the series it
//! holds step totals for, and the incidents (filtered by severity, state and verdict;
//! alarms first) with their signals in words a person reads and Approve / Dismiss buttons.
//! `assets/dashboard.js` then charts the chosen series from `/api/v1/series`: the metric
//! that fired, the expected value and its normal band under it, the incidents shaded, a
//! time range and drag to zoom; it posts verdicts (same origin, so the CSRF check passes)
//! and keeps the header current. Every value from the data (labels come from bots) is
//! escaped.

use std::collections::BTreeMap;
use std::fmt::Write;

use actix_web::http::header;
use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use protocol::{Anomaly, StateMeta};
use serde::Deserialize;

use super::assets::{DASHBOARD_CSS, DASHBOARD_JS, UPLOT_CSS, UPLOT_JS};
use super::{Analyst, ApiError};
use crate::present::{change, number};
use crate::state::AppState;
use crate::store::{self, AnomalyFilter, SeriesKey};

/// Incidents listed on the page.
const LISTED: u32 = 500;
/// Series offered in the selector.
const SERIES_IN_SELECTOR: u32 = 5_000;

/// The page's query string: the series to chart and the table's filters.
#[derive(Debug, Deserialize)]
pub struct PageParams {
    dataset: Option<String>,
    label: Option<String>,
    entity_id: Option<String>,
    metric: Option<String>,
    /// `alarm` or `warning`; absent = both.
    severity: Option<String>,
    /// `firing` or `resolved`; absent = both.
    state: Option<String>,
    /// The verdict: `open` (default), `approved`, `dismissed` or `any`.
    status: Option<String>,
}

/// The table's filters, as chosen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub severity: Option<String>,
    pub state: Option<String>,
    /// `None` = every verdict.
    pub status: Option<String>,
}

/// A filter's value, if one of `allowed`; empty is no filter.
fn pick(
    name: &'static str,
    value: &Option<String>,
    allowed: &[&str],
) -> Result<Option<String>, ApiError> {
    match value.as_deref() {
        None | Some("") => Ok(None),
        Some(v) if allowed.contains(&v) => Ok(Some(v.to_owned())),
        Some(v) => Err(ApiError::bad(
            name,
            format!("{v:?}: expected one of {}", allowed.join(", ")),
        )),
    }
}

impl Filters {
    fn from_params(params: &PageParams) -> Result<Self, ApiError> {
        let status = match params.status.as_deref() {
            None | Some("") => Some("open".to_owned()),
            Some("any") => None,
            _ => pick("status", &params.status, &["open", "approved", "dismissed"])?,
        };
        Ok(Filters {
            severity: pick("severity", &params.severity, &["alarm", "warning"])?,
            state: pick("state", &params.state, &["firing", "resolved"])?,
            status,
        })
    }
}

/// What the page shows, gathered by the handler; [`render`] turns it into HTML.
#[derive(Debug)]
pub struct Page {
    pub user: String,
    /// Whether the user's role allows verdicts: without it the page shows no buttons.
    pub can_decide: bool,
    pub meta: StateMeta,
    /// The incidents the filters select, newest first.
    pub incidents: Vec<Anomaly>,
    pub filters: Filters,
    pub known: Vec<SeriesKey>,
    /// Which labels are levels (prices), per dataset: their charts default to the level.
    pub levels: Vec<(String, String)>,
    pub chosen: Option<SeriesKey>,
    pub metric: Option<String>,
}

#[utoipa::path(
    get, path = "/", tag = "analysts", security(("basic" = [])),
    params(
        ("dataset" = Option<String>, Query), ("label" = Option<String>, Query), ("entity_id" = Option<i64>, Query),
        ("metric" = Option<String>, Query, description = "the metric to chart: count, events, avg, min or max"),
        ("severity" = Option<String>, Query, description = "list only alarm or warning incidents"),
        ("state" = Option<String>, Query, description = "list only firing or resolved incidents"),
        ("status" = Option<String>, Query, description = "the verdict to list: open (default), approved, dismissed or any"),
    ),
    responses((status = 200, description = "The dashboard (HTML)", content_type = "text/html"), (status = 400, body = protocol::ErrorReply), (status = 401, body = protocol::ErrorReply))
)]
#[get("/")]
pub async fn dashboard(
    req: HttpRequest,
    params: web::Query<PageParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let filters = Filters::from_params(&params)?;
    let incidents = store::anomalies(
        &state.pool,
        &AnomalyFilter {
            severity: filters.severity.clone(),
            state: filters.state.clone(),
            status: filters.status.clone(),
            limit: LISTED,
            ..AnomalyFilter::default()
        },
    )
    .await?;
    let known = store::known_series(&state.pool, SERIES_IN_SELECTOR).await?;
    let chosen = match (&params.dataset, &params.label, &params.entity_id) {
        (Some(dataset), Some(label), Some(entity)) => {
            entity.parse().ok().map(|entity_id| SeriesKey {
                dataset: dataset.clone(),
                label: label.clone(),
                entity_id,
            })
        }
        _ => None,
    };
    let levels = state
        .datasets
        .list()
        .iter()
        .flat_map(|d| d.levels.iter().map(|l| (d.name.clone(), l.clone())))
        .collect();
    let user = Analyst::of(&req);
    // The same table the middleware enforces decides what the page offers.
    let can_decide = user.role
        >= crate::auth::required_role(
            &actix_web::http::Method::POST,
            "/api/v1/anomalies/0/approve",
        );
    let page = Page {
        user: user.name,
        can_decide,
        meta: super::state::meta(&state),
        incidents,
        filters,
        known,
        levels,
        chosen,
        metric: params.metric.clone(),
    };
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // Scripts and styles only from here; no framing, so no clickjacked Approve.
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ))
        .body(render(&page)))
}

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
        (b.severity == "alarm", b.period_start, b.id).cmp(&(
            a.severity == "alarm",
            a.period_start,
            a.id,
        ))
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
        .any(|(dataset, label)| *dataset == s.dataset && *label == s.label);
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
fn signal_text(metric: &str, observed: f64, expected: f64, deviation: f64, method: &str) -> String {
    format!(
        r#"<span class="signal" title="{metric} by {method}: observed {observed}, expected {expected}, deviation {deviation:.2} noise units">{metric} {shown} <em>{change}</em></span>"#,
        metric = escape(metric),
        method = escape(method),
        shown = number(observed),
        change = escape(&change(observed, expected)),
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
            .map(|a| a.metric.clone())
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
        sev_any = option("", "any", page.filters.severity.as_deref().or(Some(""))),
        sev_alarm = option("alarm", "alarm", page.filters.severity.as_deref()),
        sev_warning = option("warning", "warning", page.filters.severity.as_deref()),
        state_any = option("", "any", page.filters.state.as_deref().or(Some(""))),
        state_firing = option("firing", "firing", page.filters.state.as_deref()),
        state_resolved = option("resolved", "resolved", page.filters.state.as_deref()),
        status_open = option("open", "open", page.filters.status.as_deref()),
        status_approved = option("approved", "approved", page.filters.status.as_deref()),
        status_dismissed = option("dismissed", "dismissed", page.filters.status.as_deref()),
        status_any = option("any", "any", page.filters.status.as_deref().or(Some("any"))),
    );
    if page.incidents.is_empty() {
        let none = if page.filters == Filters::default()
            || page.filters.status.as_deref() == Some("open")
        {
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
            let severity = if a.severity == "alarm" {
                "alarm"
            } else {
                "warning"
            };
            let firing = a.state == "firing";
            let signals: Vec<String> = if a.signals.is_empty() {
                vec![signal_text(
                    &a.metric,
                    a.observed,
                    a.expected,
                    a.deviation,
                    &a.method,
                )]
            } else {
                a.signals
                    .iter()
                    .map(|s| signal_text(&s.metric, s.observed, s.expected, s.deviation, &s.method))
                    .collect()
            };
            let end = if firing {
                "now".to_owned()
            } else {
                a.period_end.format("%H:%M").to_string()
            };
            let actions = if a.status == "open" && page.can_decide {
                r#"<button type="button" class="approve">Approve</button> <button type="button" class="dismiss">Dismiss</button>"#
            } else {
                ""
            };
            let verdict = match &a.decided_by {
                Some(by) if a.status != "open" => {
                    format!("{} by {}", escape(&a.status), escape(by))
                }
                _ => escape(&a.status),
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
                metric = escape(&a.metric),
                start_ts = a.period_start.timestamp(),
                end_ts = a.period_end.timestamp(),
                state_class = if firing { " firing" } else { "" },
                state = escape(&a.state),
                name = series_name(&series),
                signals = signals.join(" · "),
                start = minute(a.period_start),
            );
        }
        html.push_str("    </tbody>\n  </table>\n");
    }
    html.push_str("</section>\n</main>\n</body>\n</html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anomaly(id: u64, label: &str, entity_id: i64, severity: &str) -> Anomaly {
        let t = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        Anomaly {
            id,
            dataset: "shop".into(),
            label: label.into(),
            entity_id,
            metric: "count".into(),
            severity: severity.into(),
            method: "auto".into(),
            period_start: t,
            period_end: t + chrono::Duration::minutes(3),
            observed: 600.0,
            expected: 60.5,
            deviation: 69.14,
            signals: Vec::new(),
            state: "firing".into(),
            resolved_at: None,
            status: "open".into(),
            detected_at: t,
            decided_by: None,
            decided_at: None,
            comment: None,
            silenced_by: None,
        }
    }

    fn page(incidents: Vec<Anomaly>) -> Page {
        Page {
            user: "analyst".into(),
            can_decide: true,
            meta: StateMeta {
                iterator: 7,
                lag_seconds: Some(4.24),
                series: 2,
                last_pull_at: None,
                gatherer: "up".into(),
            },
            incidents,
            filters: Filters {
                status: Some("open".into()),
                ..Filters::default()
            },
            known: vec![SeriesKey {
                dataset: "shop".into(),
                label: "visit".into(),
                entity_id: 1,
            }],
            levels: vec![("shop".into(), "price".into())],
            chosen: None,
            metric: None,
        }
    }

    #[test]
    fn labels_from_bots_cannot_inject_markup() {
        let html = render(&page(vec![anomaly(
            1,
            r#"<script>alert("x")</script>"#,
            2,
            "alarm",
        )]));
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
    }

    #[test]
    fn alarms_come_first_and_the_newest_alarm_is_charted_first() {
        let html = render(&page(vec![
            anomaly(9, "checkout", 4, "warning"),
            anomaly(8, "checkout", 3, "alarm"),
        ]));
        let selected = html
            .lines()
            .find(|l| l.contains(" selected>") && l.contains("data-dataset"))
            .expect("a selected option");
        assert!(
            selected.contains(r#"data-label="checkout" data-entity="3""#),
            "{selected}"
        );
        assert!(selected.contains("(1 incident)"), "{selected}");
        let alarm = html.find(r#"<tr data-anomaly-id="8""#).unwrap();
        let warning = html.find(r#"<tr data-anomaly-id="9""#).unwrap();
        assert!(alarm < warning, "the older alarm above the newer warning");
        assert!(html.contains("<dd id=\"lag\">4.2 s</dd>"), "{html}");
    }

    #[test]
    fn signals_read_as_words_with_the_raw_figures_in_a_tooltip() {
        let mut flood = anomaly(8, "checkout", 3, "alarm");
        flood.signals = vec![protocol::Signal {
            metric: "count".into(),
            method: "auto".into(),
            severity: "alarm".into(),
            observed: 612.0,
            expected: 60.0,
            deviation: 71.25,
        }];
        let html = render(&page(vec![flood]));
        assert!(html.contains("count 612 <em>10.2× expected</em>"), "{html}");
        assert!(html.contains("deviation 71.25 noise units"), "{html}");
        assert!(!html.contains("1000000"), "{html}");
    }

    #[test]
    fn filters_are_checked_and_kept_in_the_form() {
        let params = |severity: &str, state: &str, status: &str| PageParams {
            dataset: None,
            label: None,
            entity_id: None,
            metric: None,
            severity: Some(severity.into()),
            state: Some(state.into()),
            status: Some(status.into()),
        };
        let filters = Filters::from_params(&params("alarm", "firing", "any")).unwrap();
        assert_eq!(
            filters,
            Filters {
                severity: Some("alarm".into()),
                state: Some("firing".into()),
                status: None,
            }
        );
        assert!(Filters::from_params(&params("loud", "", "")).is_err());
        let mut shown = page(Vec::new());
        shown.filters = filters;
        let html = render(&shown);
        assert!(
            html.contains(r#"<option value="alarm" selected>"#),
            "{html}"
        );
        assert!(html.contains(r#"<option value="any" selected>"#), "{html}");
        assert!(
            html.contains("No incident matches these filters."),
            "{html}"
        );
    }

    #[test]
    fn an_empty_analyser_says_so() {
        let mut empty = page(Vec::new());
        empty.known.clear();
        let html = render(&empty);
        assert!(html.contains("No series yet"));
        assert!(html.contains("Nothing waits for a verdict."));
    }

    #[test]
    fn a_viewer_sees_no_verdict_buttons_and_a_silenced_incident_says_so() {
        let mut silenced = anomaly(3, "checkout", 3, "alarm");
        silenced.silenced_by = Some(12);
        let mut viewer = page(vec![anomaly(4, "checkout", 5, "alarm"), silenced]);
        let html = render(&viewer);
        assert!(html.contains(r#"class="approve""#), "an analyst decides");
        assert!(html.contains(">silenced #12</span>"), "{html}");
        assert_eq!(html.matches("silenced #").count(), 1);
        viewer.can_decide = false;
        let html = render(&viewer);
        assert!(!html.contains(r#"class="approve""#) && !html.contains(r#"class="dismiss""#));
    }
}
