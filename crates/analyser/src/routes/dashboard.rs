//! `GET /`: the analysts' dashboard, behind the same basic auth as the API.
//!
//! The server renders the page: where the analyser stands, a selector of the series it
//! holds step totals for, and the open anomalies with Approve / Dismiss buttons.
//! `assets/dashboard.js` then charts the chosen series from `/api/v1/series` with its
//! anomalies shaded, posts verdicts (same origin, so the CSRF check passes), and keeps
//! the header current. Every value from the data (labels come from bots) is escaped.

use std::collections::BTreeMap;
use std::fmt::Write;

use actix_web::http::header;
use actix_web::{get, web, HttpMessage, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use protocol::{Anomaly, StateMeta};
use serde::Deserialize;

use super::assets::{DASHBOARD_CSS, DASHBOARD_JS, UPLOT_CSS, UPLOT_JS};
use super::{Analyst, ApiError};
use crate::state::AppState;
use crate::store::{self, AnomalyFilter, SeriesKey};

/// Open anomalies listed on the page, newest first.
const OPEN_ANOMALIES: u32 = 500;
/// Series offered in the selector.
const SERIES_IN_SELECTOR: u32 = 5_000;

/// The series to chart, from the query string (`/?dataset=…&label=…&entity_id=…`).
#[derive(Debug, Deserialize)]
pub struct PageParams {
    dataset: Option<String>,
    label: Option<String>,
    entity_id: Option<String>,
}

/// What the page shows, gathered by the handler; [`render`] turns it into HTML.
#[derive(Debug)]
pub struct Page {
    pub user: String,
    pub meta: StateMeta,
    /// Open anomalies, newest first.
    pub open: Vec<Anomaly>,
    pub known: Vec<SeriesKey>,
    pub chosen: Option<SeriesKey>,
}

#[utoipa::path(
    get, path = "/", tag = "analysts", security(("basic" = [])),
    params(
        ("dataset" = Option<String>, Query), ("label" = Option<String>, Query), ("entity_id" = Option<i64>, Query),
    ),
    responses((status = 200, description = "The dashboard (HTML)", content_type = "text/html"), (status = 401, body = protocol::ErrorReply))
)]
#[get("/")]
pub async fn dashboard(
    req: HttpRequest,
    params: web::Query<PageParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let open = store::anomalies(
        &state.pool,
        &AnomalyFilter {
            status: Some("open".to_owned()),
            limit: OPEN_ANOMALIES,
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
    let user = req
        .extensions()
        .get::<Analyst>()
        .map_or_else(|| "anonymous".to_owned(), |a| a.0.clone());
    let page = Page {
        user,
        meta: super::state::meta(&state),
        open,
        known,
        chosen,
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

/// A number as a person reads it: integers without decimals, others with one.
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn series_of(a: &Anomaly) -> SeriesKey {
    SeriesKey {
        dataset: a.dataset.clone(),
        label: a.label.clone(),
        entity_id: a.entity_id,
    }
}

/// The series charted first: the one asked for, else that of the newest open alarm, else
/// of the newest open anomaly, else the first known.
fn chosen_series(page: &Page) -> Option<SeriesKey> {
    page.chosen
        .clone()
        .or_else(|| {
            page.open
                .iter()
                .find(|a| a.severity == "alarm")
                .or(page.open.first())
                .map(series_of)
        })
        .or_else(|| page.known.first().cloned())
}

fn series_attributes(s: &SeriesKey) -> String {
    format!(
        r#"data-dataset="{}" data-label="{}" data-entity="{}""#,
        escape(&s.dataset),
        escape(&s.label),
        s.entity_id
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

/// The whole page. Pure, so that its escaping and choices are unit-tested.
pub fn render(page: &Page) -> String {
    let mut html = String::with_capacity(16 * 1024);
    let meta = &page.meta;
    let gatherer_class = if meta.gatherer == "up" { "up" } else { "down" };
    let last_pull = meta.last_pull_at.map_or_else(
        || "never".to_owned(),
        |t| t.format("%H:%M:%S UTC").to_string(),
    );
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
  <label for="series">dataset / label / entity</label>
  <select id="series">
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
    // Every known series, plus those of open anomalies (their totals may be pruned), with
    // how many open anomalies each has.
    let mut options: BTreeMap<SeriesKey, usize> =
        page.known.iter().map(|s| (s.clone(), 0)).collect();
    for anomaly in &page.open {
        *options.entry(series_of(anomaly)).or_default() += 1;
    }
    let chosen = chosen_series(page);
    if let Some(chosen) = &chosen {
        options.entry(chosen.clone()).or_default();
    }
    for (series, open) in &options {
        let selected = if Some(series) == chosen.as_ref() {
            " selected"
        } else {
            ""
        };
        let open = match open {
            0 => String::new(),
            1 => " (1 open)".to_owned(),
            n => format!(" ({n} open)"),
        };
        let _ = writeln!(
            html,
            "    <option {}{selected}>{}{open}</option>",
            series_attributes(series),
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
        r#"  </select>
  <div id="chart" role="img" aria-label="step counts of the chosen series"></div>
  <p id="chart-status" class="status-line">{empty}</p>
  <ul id="marks" class="legend"></ul>
</section>
<section id="anomalies-section" aria-labelledby="anomalies-title">
  <h2 id="anomalies-title">Open anomalies <span id="open-count">{open_count}</span></h2>
"#,
        open_count = page.open.len(),
    );
    if page.open.is_empty() {
        html.push_str("  <p class=\"status-line\">Nothing waits for a verdict.</p>\n");
    } else {
        html.push_str(
            r#"  <table id="anomalies">
    <thead><tr><th>severity</th><th>series</th><th>metric</th><th>period (UTC)</th><th class="num">observed</th><th class="num">expected</th><th class="num">deviation</th><th>status</th><th></th></tr></thead>
    <tbody>
"#,
        );
        for a in &page.open {
            let series = series_of(a);
            let severity = if a.severity == "alarm" {
                "alarm"
            } else {
                "warning"
            };
            let _ = write!(
                html,
                r#"    <tr data-anomaly-id="{id}" {attributes} class="{severity}">
      <td><span class="badge {severity}">{severity}</span></td>
      <td><button type="button" class="show" title="chart this series">{name}</button></td>
      <td>{metric}</td>
      <td>{start} – {end}</td>
      <td class="num">{observed}</td>
      <td class="num">{expected}</td>
      <td class="num">{deviation:.1}</td>
      <td class="status">{status}</td>
      <td class="actions"><button type="button" class="approve">Approve</button> <button type="button" class="dismiss">Dismiss</button></td>
    </tr>
"#,
                id = a.id,
                attributes = series_attributes(&series),
                name = series_name(&series),
                metric = escape(&a.metric),
                start = minute(a.period_start),
                end = a.period_end.format("%H:%M"),
                observed = number(a.observed),
                expected = number(a.expected),
                deviation = a.deviation,
                status = escape(&a.status),
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
        }
    }

    fn page(open: Vec<Anomaly>) -> Page {
        Page {
            user: "analyst".into(),
            meta: StateMeta {
                iterator: 7,
                lag_seconds: Some(4.24),
                series: 2,
                last_pull_at: None,
                gatherer: "up".into(),
            },
            open,
            known: vec![SeriesKey {
                dataset: "shop".into(),
                label: "visit".into(),
                entity_id: 1,
            }],
            chosen: None,
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
    fn the_newest_open_alarm_is_charted_first() {
        let html = render(&page(vec![
            anomaly(9, "checkout", 4, "warning"),
            anomaly(8, "checkout", 3, "alarm"),
        ]));
        let selected = html
            .lines()
            .find(|l| l.contains(" selected>"))
            .expect("a selected option");
        assert!(
            selected.contains(r#"data-label="checkout" data-entity="3""#),
            "{selected}"
        );
        assert!(selected.contains("(1 open)"), "{selected}");
        assert!(html.contains(r#"<tr data-anomaly-id="8""#));
        assert!(html.contains("<dd id=\"lag\">4.2 s</dd>"), "{html}");
    }

    #[test]
    fn an_empty_analyser_says_so() {
        let mut empty = page(Vec::new());
        empty.known.clear();
        let html = render(&empty);
        assert!(html.contains("No series yet"));
        assert!(html.contains("Nothing waits for a verdict."));
    }
}
