//! The dashboard page's rendering: escaping, order, filters, roles.

use chrono::DateTime;
use protocol::{Anomaly, Check, IncidentState, Metric, Severity, Status};

use super::*;

fn anomaly(id: u64, label: &str, entity_id: i64, severity: Severity) -> Anomaly {
    let t = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
    Anomaly {
        id,
        dataset: "shop".into(),
        label: label.into(),
        entity_id,
        metric: Metric::Count,
        severity,
        method: Check::Auto,
        period_start: t,
        period_end: t + chrono::Duration::minutes(3),
        observed: 600.0,
        expected: 60.5,
        deviation: 69.14,
        signals: Vec::new(),
        state: IncidentState::Firing,
        resolved_at: None,
        status: Status::Open,
        detected_at: t,
        decided_by: None,
        decided_at: None,
        comment: None,
        silenced_by: None,
        reason: None,
        taught_by: None,
    }
}

fn page(incidents: Vec<Anomaly>) -> Page {
    Page {
        user: "analyst".into(),
        can_decide: true,
        can_silence: true,
        meta: StateMeta {
            iterator: 7,
            lag_seconds: Some(4.24),
            series: 2,
            last_pull_at: None,
            gatherer: "up".into(),
        },
        incidents,
        filters: Filters {
            status: Some(Status::Open),
            ..Filters::default()
        },
        known: vec![SeriesKey {
            dataset: "shop".into(),
            label: "visit".into(),
            entity_id: 1,
        }],
        levels: vec![LevelLabel {
            dataset: "shop".into(),
            label: "price".into(),
        }],
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
        Severity::Alarm,
    )]));
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
}

#[test]
fn alarms_come_first_and_the_newest_alarm_is_charted_first() {
    let html = render(&page(vec![
        anomaly(9, "checkout", 4, Severity::Warning),
        anomaly(8, "checkout", 3, Severity::Alarm),
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
    let mut flood = anomaly(8, "checkout", 3, Severity::Alarm);
    flood.signals = vec![protocol::Signal {
        metric: Metric::Count,
        method: Check::Auto,
        severity: Severity::Alarm,
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
            severity: Some(Severity::Alarm),
            state: Some(IncidentState::Firing),
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
    let mut silenced = anomaly(3, "checkout", 3, Severity::Alarm);
    silenced.silenced_by = Some(12);
    let mut viewer = page(vec![anomaly(4, "checkout", 5, Severity::Alarm), silenced]);
    let html = render(&viewer);
    assert!(html.contains(r#"class="approve""#), "an analyst decides");
    assert!(html.contains(">silenced #12</span>"), "{html}");
    assert_eq!(html.matches("silenced #").count(), 1);
    assert!(html.contains(r#"class="expected""#) && html.contains(r#"class="silence""#));
    viewer.can_decide = false;
    viewer.can_silence = false;
    let html = render(&viewer);
    for button in ["approve", "dismiss", "expected", "silence"] {
        assert!(!html.contains(&format!(r#"class="{button}""#)), "{button}");
    }
}
