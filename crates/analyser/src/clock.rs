//! Pure: a dataset's clock, and which steps it has completed.
//!
//! The clock is the latest `event_date` seen; when no rows have arrived for `idle_after`,
//! it follows wall time minus `idle_after` instead, so the zeros of a stopped series are
//! still judged. A step is complete once the clock passes its end plus
//! `allowed_lateness`. Live data is then judged a few seconds after each step, and a
//! backfill in time order is judged as it arrives.

/// A dataset's clock state; all times are unix seconds except `last_row_at_ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatasetClock {
    /// The latest `event_date` seen in the dataset's rows.
    pub latest_event: Option<i64>,
    /// Wall time at which rows last arrived, unix milliseconds.
    pub last_row_at_ms: Option<i64>,
    /// Every step that ends at or before this has been judged; `None` before any row.
    pub judged_until: Option<i64>,
    /// `judged_until` when the series' detector state was last snapshotted.
    pub snapshot_until: Option<i64>,
}

/// The parameters of a dataset that the clock needs, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockRules {
    pub step: i64,
    pub idle_after: i64,
    pub allowed_lateness: i64,
}

impl ClockRules {
    /// The start of the step that `t` falls in.
    pub fn step_of(&self, t: i64) -> i64 {
        t.div_euclid(self.step) * self.step
    }
}

impl DatasetClock {
    /// Records rows with event dates up to `latest`, seen at `now_ms`. The first row sets
    /// where judging starts: the step of the earliest row.
    pub fn saw_rows(&mut self, earliest: i64, latest: i64, now_ms: i64, rules: &ClockRules) {
        self.latest_event = Some(self.latest_event.map_or(latest, |l| l.max(latest)));
        self.last_row_at_ms = Some(now_ms);
        if self.judged_until.is_none() {
            self.judged_until = Some(rules.step_of(earliest));
        }
    }

    /// The clock's reading at wall time `now_ms`.
    pub fn reading(&self, now_ms: i64, rules: &ClockRules) -> Option<i64> {
        let latest = self.latest_event?;
        let idle_since = self.last_row_at_ms.unwrap_or(i64::MIN);
        if now_ms.saturating_sub(idle_since) >= rules.idle_after * 1000 {
            Some(latest.max(now_ms.div_euclid(1000) - rules.idle_after))
        } else {
            Some(latest)
        }
    }

    /// The next complete step that has not been judged (its start), if any.
    pub fn next_complete_step(&self, now_ms: i64, rules: &ClockRules) -> Option<i64> {
        let start = self.judged_until?;
        let reading = self.reading(now_ms, rules)?;
        (start + rules.step + rules.allowed_lateness <= reading).then_some(start)
    }

    /// Marks the step starting at `start` as judged.
    pub fn judged(&mut self, start: i64, rules: &ClockRules) {
        self.judged_until = Some(start + rules.step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: ClockRules = ClockRules {
        step: 60,
        idle_after: 30,
        allowed_lateness: 10,
    };

    #[test]
    fn a_step_is_complete_once_data_passes_its_end_plus_lateness() {
        let mut clock = DatasetClock::default();
        let now = 1_000_000_000;
        clock.saw_rows(600, 600, now, &RULES);
        assert_eq!(clock.judged_until, Some(600));
        clock.saw_rows(668, 668, now, &RULES);
        assert_eq!(clock.next_complete_step(now, &RULES), None);
        clock.saw_rows(670, 670, now, &RULES);
        assert_eq!(clock.next_complete_step(now, &RULES), Some(600));
        clock.judged(600, &RULES);
        assert_eq!(clock.next_complete_step(now, &RULES), None);
    }

    #[test]
    fn an_idle_dataset_follows_wall_time_minus_idle_after() {
        let mut clock = DatasetClock::default();
        clock.saw_rows(600, 610, 611_000, &RULES);
        // 29 s without rows: still the data's clock.
        assert_eq!(clock.reading(640_000, &RULES), Some(610));
        // 30 s: wall time minus idle_after.
        assert_eq!(clock.reading(641_000, &RULES), Some(611));
        assert_eq!(clock.next_complete_step(700_000, &RULES), Some(600));
    }

    #[test]
    fn backfill_in_time_order_is_judged_as_it_arrives() {
        let mut clock = DatasetClock::default();
        let now = 2_000_000_000_000;
        clock.saw_rows(0, 130, now, &RULES);
        assert_eq!(clock.next_complete_step(now, &RULES), Some(0));
        clock.judged(0, &RULES);
        assert_eq!(clock.next_complete_step(now, &RULES), Some(60));
        clock.judged(60, &RULES);
        assert_eq!(clock.next_complete_step(now, &RULES), None);
    }

    #[test]
    fn steps_floor_before_1970_too() {
        assert_eq!(RULES.step_of(-1), -60);
        assert_eq!(RULES.step_of(59), 0);
    }
}
