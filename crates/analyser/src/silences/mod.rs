//! Silences: a dataset's series (all, one label's, or one entity's) kept quiet for a span
//! of time, optionally only in a weekly window of local time in a named time zone.
//!
//! An anomaly found inside a silence is recorded with the silence's id (`silenced_by`), in
//! the same transaction as the anomaly, so the webhook task (which skips silenced anomalies)
//! can never see it unmarked. Ending a silence early keeps it, as history.

mod window;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{MySqlConnection, MySqlPool};

use window::clock_text;
pub use window::{Weekly, Window};

/// `POST /api/v1/silences`: what to silence, and when.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    pub dataset: String,
    /// Only this label's series; absent = every label of the dataset.
    #[serde(default)]
    pub label: Option<String>,
    /// Only this entity's series; absent = every entity.
    #[serde(default)]
    pub entity_id: Option<i64>,
    /// RFC 3339; absent = now.
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    /// RFC 3339; required without `weekly` (or give `duration`); absent with `weekly` =
    /// every week until ended.
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    /// Instead of `ends_at`: how long from `starts_at`, e.g. `2h`.
    #[serde(default)]
    #[schema(example = "2h")]
    pub duration: Option<String>,
    #[serde(default)]
    pub weekly: Option<Weekly>,
    /// Why: required.
    pub comment: String,
}

/// A silence as `/api/v1/silences` serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Silence {
    pub id: u64,
    pub dataset: String,
    pub label: Option<String>,
    pub entity_id: Option<i64>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub weekly: Option<Weekly>,
    pub comment: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// When it was ended early (`DELETE`), and by whom.
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_by: Option<String>,
    /// `pending` (starts later), `active`, or `expired` (over or ended; kept as history).
    /// An active weekly silence only silences inside its window.
    pub status: String,
}

impl Silence {
    /// When it stops silencing, if ever: its end or when it was ended, whichever is first.
    fn until(&self) -> Option<DateTime<Utc>> {
        match (self.ends_at, self.ended_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn status_at(&self, now: DateTime<Utc>) -> &'static str {
        if self.until().is_some_and(|until| until <= now) {
            "expired"
        } else if self.starts_at > now {
            "pending"
        } else {
            "active"
        }
    }

    /// Whether an anomaly of this series starting at `at` is inside this silence.
    pub fn covers(&self, label: &str, entity_id: i64, at: DateTime<Utc>) -> bool {
        self.label.as_deref().is_none_or(|l| l == label)
            && self.entity_id.is_none_or(|e| e == entity_id)
            && self.starts_at <= at
            && self.until().is_none_or(|until| at < until)
            && self.weekly.as_ref().is_none_or(|weekly| {
                Window::parse(weekly).is_ok_and(|window| window.contains(at.timestamp()))
            })
    }
}

#[derive(Debug)]
struct SilenceRecord {
    id: u64,
    dataset: Vec<u8>,
    event_label: Option<Vec<u8>>,
    entity_id: Option<i64>,
    starts_at: NaiveDateTime,
    ends_at: Option<NaiveDateTime>,
    weekly_days: Option<String>,
    weekly_from: Option<u16>,
    weekly_to: Option<u16>,
    time_zone: Option<String>,
    comment: String,
    created_by: String,
    created_at: NaiveDateTime,
    ended_at: Option<NaiveDateTime>,
    ended_by: Option<String>,
}

fn silence(r: SilenceRecord, now: DateTime<Utc>) -> Silence {
    let weekly = match (r.weekly_days, r.weekly_from, r.weekly_to, r.time_zone) {
        (Some(days), Some(from), Some(to), Some(time_zone)) => Some(Weekly {
            days: days.split(',').map(str::to_owned).collect(),
            from: clock_text(from),
            to: clock_text(to),
            time_zone,
        }),
        _ => None,
    };
    let mut silence = Silence {
        id: r.id,
        dataset: String::from_utf8_lossy(&r.dataset).into_owned(),
        label: r
            .event_label
            .map(|l| String::from_utf8_lossy(&l).into_owned()),
        entity_id: r.entity_id,
        starts_at: r.starts_at.and_utc(),
        ends_at: r.ends_at.map(|d| d.and_utc()),
        weekly,
        comment: r.comment,
        created_by: r.created_by,
        created_at: r.created_at.and_utc(),
        ended_at: r.ended_at.map(|d| d.and_utc()),
        ended_by: r.ended_by,
        status: String::new(),
    };
    silence.status = silence.status_at(now).to_owned();
    silence
}

/// A checked new silence, ready to store.
#[derive(Debug, Clone)]
pub struct Checked {
    pub dataset: String,
    pub label: Option<String>,
    pub entity_id: Option<i64>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub weekly: Option<(Weekly, Window)>,
    pub comment: String,
}

impl NewSilence {
    /// Checks the request at `now`; the error names the field at fault. The dataset's
    /// existence is the caller's to check.
    pub fn check(self, now: DateTime<Utc>) -> Result<Checked, (&'static str, String)> {
        if let Some(label) = &self.label {
            if label.is_empty() || label.chars().count() > 50 {
                return Err(("label", "must be 1 to 50 characters".into()));
            }
        }
        let comment = self.comment.trim().to_owned();
        if comment.is_empty() {
            return Err(("comment", "say why the series is silenced".into()));
        }
        if comment.len() > 10_000 {
            return Err(("comment", "longer than 10 000 bytes".into()));
        }
        let starts_at = self.starts_at.unwrap_or(now);
        let ends_at = match (self.ends_at, &self.duration) {
            (Some(_), Some(_)) => {
                return Err(("duration", "give ends_at or duration, not both".into()))
            }
            (Some(ends_at), None) => Some(ends_at),
            (None, Some(duration)) => {
                let duration = humantime::parse_duration(duration)
                    .map_err(|e| ("duration", format!("{duration:?}: {e}")))?;
                let duration = chrono::Duration::from_std(duration)
                    .map_err(|_| ("duration", "too long".to_owned()))?;
                Some(starts_at + duration)
            }
            (None, None) => None,
        };
        if let Some(ends_at) = ends_at {
            if ends_at <= starts_at {
                return Err(("ends_at", "must be after starts_at".into()));
            }
            if ends_at <= now {
                return Err(("ends_at", "is already past".into()));
            }
        }
        let weekly = match self.weekly {
            Some(weekly) => {
                let window = Window::parse(&weekly)?;
                Some((weekly, window))
            }
            None if ends_at.is_none() => {
                return Err((
                    "ends_at",
                    "required (or duration) unless the silence is weekly".into(),
                ))
            }
            None => None,
        };
        Ok(Checked {
            dataset: self.dataset,
            label: self.label,
            entity_id: self.entity_id,
            starts_at,
            ends_at,
            weekly,
            comment,
        })
    }
}

/// Stores a checked silence; returns it as stored.
pub async fn create(
    pool: &MySqlPool,
    new: &Checked,
    created_by: &str,
) -> Result<Silence, sqlx::Error> {
    let days = new.weekly.as_ref().map(|(w, _)| w.days.join(","));
    let result = sqlx::query!(
        "INSERT INTO silences (dataset, event_label, entity_id, starts_at, ends_at, weekly_days, \
         weekly_from, weekly_to, time_zone, comment, created_by, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NOW(3))",
        &new.dataset,
        &new.label,
        new.entity_id,
        new.starts_at.naive_utc(),
        new.ends_at.map(|t| t.naive_utc()),
        days,
        new.weekly.as_ref().map(|(_, w)| w.from),
        new.weekly.as_ref().map(|(_, w)| w.to),
        new.weekly.as_ref().map(|(w, _)| w.time_zone.clone()),
        &new.comment,
        created_by
    )
    .execute(pool)
    .await?;
    by_id(pool, result.last_insert_id())
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

pub async fn by_id(pool: &MySqlPool, id: u64) -> Result<Option<Silence>, sqlx::Error> {
    let record = sqlx::query_as!(
        SilenceRecord,
        "SELECT id, dataset, event_label, entity_id, starts_at, ends_at, weekly_days, weekly_from, \
         weekly_to, time_zone, comment, created_by, created_at, ended_at, ended_by FROM silences \
         WHERE id = ?",
        id
    )
    .fetch_optional(pool)
    .await?;
    Ok(record.map(|r| silence(r, Utc::now())))
}

/// Silences, newest first, expired ones included.
pub async fn list(
    pool: &MySqlPool,
    dataset: Option<&str>,
    limit: u32,
) -> Result<Vec<Silence>, sqlx::Error> {
    let records = sqlx::query_as!(
        SilenceRecord,
        "SELECT id, dataset, event_label, entity_id, starts_at, ends_at, weekly_days, weekly_from, \
         weekly_to, time_zone, comment, created_by, created_at, ended_at, ended_by FROM silences \
         WHERE (? IS NULL OR dataset = ?) ORDER BY id DESC LIMIT ?",
        dataset,
        dataset,
        limit
    )
    .fetch_all(pool)
    .await?;
    let now = Utc::now();
    Ok(records.into_iter().map(|r| silence(r, now)).collect())
}

/// Ends a silence now (kept as history); `None` when there is no such silence. Ending
/// one already over changes nothing.
pub async fn end(pool: &MySqlPool, id: u64, user: &str) -> Result<Option<Silence>, sqlx::Error> {
    sqlx::query!(
        "UPDATE silences SET ended_at = NOW(3), ended_by = ? \
         WHERE id = ? AND ended_at IS NULL AND (ends_at IS NULL OR ends_at > NOW(3))",
        user,
        id
    )
    .execute(pool)
    .await?;
    by_id(pool, id).await
}

/// The silences of a dataset that may cover an anomaly starting between `from` and `to`
/// (unix seconds), lowest id first: read once for the incidents a judged step opens.
pub async fn in_force_between(
    conn: &mut MySqlConnection,
    dataset: &str,
    from: i64,
    to: i64,
) -> Result<Vec<Silence>, sqlx::Error> {
    let (Some(from), Some(to)) = (
        DateTime::from_timestamp(from, 0),
        DateTime::from_timestamp(to, 0),
    ) else {
        return Ok(Vec::new());
    };
    let records = sqlx::query_as!(
        SilenceRecord,
        "SELECT id, dataset, event_label, entity_id, starts_at, ends_at, weekly_days, weekly_from, \
         weekly_to, time_zone, comment, created_by, created_at, ended_at, ended_by FROM silences \
         WHERE dataset = ? AND starts_at <= ? AND (ends_at IS NULL OR ends_at > ?) ORDER BY id",
        dataset,
        to.naive_utc(),
        from.naive_utc()
    )
    .fetch_all(conn)
    .await?;
    let now = Utc::now();
    Ok(records.into_iter().map(|r| silence(r, now)).collect())
}

/// The first silence (lowest id) of `silences` that an anomaly of the series starting at
/// `at` (unix seconds) is inside: what it is recorded with, in the transaction that
/// records it.
pub fn first_covering(silences: &[Silence], label: &str, entity_id: i64, at: i64) -> Option<u64> {
    let at = DateTime::from_timestamp(at, 0)?;
    silences
        .iter()
        .find(|s| s.covers(label, entity_id, at))
        .map(|s| s.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weekly(days: &[&str], from: &str, to: &str, time_zone: &str) -> Weekly {
        Weekly {
            days: days.iter().map(|d| d.to_string()).collect(),
            from: from.into(),
            to: to.into(),
            time_zone: time_zone.into(),
        }
    }

    fn at(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text).unwrap().timestamp()
    }

    #[test]
    fn a_weekly_window_follows_local_time_across_daylight_saving() {
        let window = Window::parse(&weekly(&["mon"], "01:30", "02:30", "Europe/Paris")).unwrap();
        // Winter: Paris is UTC+1. Monday 2026-12-07 01:45 local = 00:45 UTC.
        assert!(window.contains(at("2026-12-07T00:45:00Z")));
        assert!(!window.contains(at("2026-12-07T01:45:00Z")));
        assert!(!window.contains(at("2026-12-06T00:45:00Z")), "a Sunday");
        // Summer: UTC+2. Monday 2026-06-01 01:45 local = 2026-05-31 23:45 UTC.
        assert!(window.contains(at("2026-05-31T23:45:00Z")));
        assert!(!window.contains(at("2026-06-01T00:45:00Z")));
        // The end is excluded, the start included.
        assert!(window.contains(at("2026-12-07T00:30:00Z")));
        assert!(!window.contains(at("2026-12-07T01:30:00Z")));
    }

    #[test]
    fn a_window_ending_at_or_before_its_start_runs_past_midnight() {
        let window = Window::parse(&weekly(&["sun"], "23:00", "01:00", "UTC")).unwrap();
        assert!(window.contains(at("2026-12-06T23:30:00Z")), "Sunday night");
        assert!(window.contains(at("2026-12-07T00:30:00Z")), "into Monday");
        assert!(!window.contains(at("2026-12-07T01:00:00Z")));
        assert!(!window.contains(at("2026-12-07T23:30:00Z")), "Monday night");
    }

    #[test]
    fn bad_windows_and_silences_name_the_field_at_fault() {
        for (weekly, field) in [
            (weekly(&[], "01:00", "02:00", "UTC"), "weekly.days"),
            (weekly(&["monday"], "01:00", "02:00", "UTC"), "weekly.days"),
            (weekly(&["mon"], "1:00", "02:00", "UTC"), "weekly.from"),
            (weekly(&["mon"], "01:00", "24:00", "UTC"), "weekly.to"),
            (weekly(&["mon"], "01:00", "01:00", "UTC"), "weekly.to"),
            (
                weekly(&["mon"], "01:00", "02:00", "Mars/Olympus"),
                "weekly.time_zone",
            ),
        ] {
            assert_eq!(Window::parse(&weekly).unwrap_err().0, field, "{weekly:?}");
        }
        let now = Utc::now();
        let new =
            |ends_at: Option<DateTime<Utc>>, duration: Option<&str>, comment: &str| NewSilence {
                dataset: "shop".into(),
                label: None,
                entity_id: None,
                starts_at: None,
                ends_at,
                duration: duration.map(str::to_owned),
                weekly: None,
                comment: comment.into(),
            };
        for (silence, field) in [
            (new(None, None, "x"), "ends_at"),
            (
                new(Some(now - chrono::Duration::hours(1)), None, "x"),
                "ends_at",
            ),
            (new(None, Some("soon"), "x"), "duration"),
            (new(None, Some("2h"), "  "), "comment"),
        ] {
            assert_eq!(silence.check(now).unwrap_err().0, field);
        }
        let checked = new(None, Some("2h"), "deploy").check(now).unwrap();
        assert_eq!(checked.ends_at, Some(now + chrono::Duration::hours(2)));
    }
}
