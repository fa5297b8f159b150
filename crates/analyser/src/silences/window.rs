//! Weekly windows of local time in a named time zone, as minutes of the UTC week.

use serde::{Deserialize, Serialize};

pub(super) const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MINUTES_PER_WEEK: i64 = 7 * 1440;

/// A weekly window: from `from` to `to` (local `HH:MM`, past midnight when `to` is not
/// after `from`) on each of `days`, in `time_zone`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Weekly {
    /// Days the window starts on: `mon`, `tue`, `wed`, `thu`, `fri`, `sat`, `sun`.
    #[schema(example = json!(["mon", "tue", "wed", "thu", "fri"]))]
    pub days: Vec<String>,
    /// Local start, `HH:MM`.
    #[schema(example = "01:30")]
    pub from: String,
    /// Local end, `HH:MM`; at or before `from` = the next day.
    #[schema(example = "02:30")]
    pub to: String,
    /// An IANA time zone name.
    #[schema(example = "Europe/Paris")]
    pub time_zone: String,
}

/// A weekly window, checked: day bits (Monday = bit 0), minutes after local midnight.
#[derive(Debug, Clone)]
pub struct Window {
    pub(super) days: u8,
    pub(super) from: u16,
    pub(super) to: u16,
    time_zone: jiff::tz::TimeZone,
}

impl Window {
    /// Checks a weekly window; the error names the field at fault.
    pub fn parse(weekly: &Weekly) -> Result<Window, (&'static str, String)> {
        if weekly.days.is_empty() {
            return Err(("weekly.days", "name at least one day".into()));
        }
        let mut days = 0u8;
        for day in &weekly.days {
            let index = DAYS.iter().position(|d| d == day).ok_or_else(|| {
                (
                    "weekly.days",
                    format!("{day:?} is not one of {}", DAYS.join(", ")),
                )
            })?;
            days |= 1 << index;
        }
        let from = clock_minutes(&weekly.from).ok_or(("weekly.from", "expected HH:MM".into()))?;
        let to = clock_minutes(&weekly.to).ok_or(("weekly.to", "expected HH:MM".into()))?;
        if from == to {
            return Err(("weekly.to", "must differ from weekly.from".into()));
        }
        let time_zone = jiff::tz::TimeZone::get(&weekly.time_zone).map_err(|_| {
            (
                "weekly.time_zone",
                format!("{:?} is not a known IANA time zone", weekly.time_zone),
            )
        })?;
        Ok(Window {
            days,
            from,
            to,
            time_zone,
        })
    }

    /// Whether the instant (unix seconds) is inside the window, in local time.
    pub fn contains(&self, seconds: i64) -> bool {
        let Ok(instant) = jiff::Timestamp::from_second(seconds) else {
            return false;
        };
        let local = self.time_zone.to_datetime(instant);
        let minute_of_week = i64::from(local.weekday().to_monday_zero_offset()) * 1440
            + i64::from(local.hour()) * 60
            + i64::from(local.minute());
        let length = (i64::from(self.to) - i64::from(self.from)).rem_euclid(1440);
        (0..7).filter(|d| self.days & (1 << d) != 0).any(|day| {
            let start = day * 1440 + i64::from(self.from);
            (minute_of_week - start).rem_euclid(MINUTES_PER_WEEK) < length
        })
    }
}

pub(super) fn clock_minutes(text: &str) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let (hours, minutes): (u16, u16) = (hours.parse().ok()?, minutes.parse().ok()?);
    (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
}

pub(super) fn clock_text(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}
