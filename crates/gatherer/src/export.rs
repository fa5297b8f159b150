//! The export query, pure: parsing its parameters and deciding what a page says.
//!
//! A consumer follows `next_iterator` from 0 until `has_more` is false and sees every
//! committed row exactly once. That rests on *commit order = id order* (see
//! `store::insert_batch`): every id at or below the highest committed id is committed,
//! so an iterator never jumps over a row that becomes visible later.

use chrono::{DateTime, NaiveDateTime, Utc};

/// Rows per page when the request names no limit.
pub const DEFAULT_LIMIT: u32 = 500;
/// The largest page `GET /api/v1/export` serves.
pub const MAX_LIMIT: u32 = 10_000;
/// `POST /stat` pages, as the original service served them.
pub const STAT_LIMIT: u32 = 500;

/// A validated export request: `from <= event_date < to`, `ec_id > iterator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub iterator: u64,
    pub limit: u32,
}

impl ExportQuery {
    /// How many ids past the iterator one page may examine when a time filter skips
    /// rows: bounds the cost of a page whatever the filter matches.
    pub fn scan_span(&self) -> u64 {
        u64::from(self.limit).max(1_000) * 10
    }

    pub fn has_time_filter(&self) -> bool {
        self.from.is_some() || self.to.is_some()
    }
}

/// A parameter that could not be used, named for the 400 reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {message}")]
pub struct ParamError {
    pub parameter: &'static str,
    pub message: String,
}

impl ParamError {
    fn new(parameter: &'static str, message: impl Into<String>) -> Self {
        ParamError {
            parameter,
            message: message.into(),
        }
    }
}

/// Raw parameters, as text, from a query string or a `/stat` body.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawParams<'a> {
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub iterator: Option<&'a str>,
    pub limit: Option<&'a str>,
}

impl ExportQuery {
    /// Validates raw parameters. Times are RFC 3339, unix seconds, or (for the seed's
    /// `/stat`) MySQL's `YYYY-MM-DD HH:MM:SS` in UTC; an empty time means open.
    pub fn parse(
        raw: RawParams<'_>,
        default_limit: u32,
        max_limit: u32,
    ) -> Result<Self, ParamError> {
        let from = parse_time("from", raw.from)?;
        let to = parse_time("to", raw.to)?;
        if let (Some(from), Some(to)) = (from, to) {
            if from > to {
                return Err(ParamError::new("from", "from is after to"));
            }
        }
        let iterator = match raw.iterator.map(str::trim).filter(|s| !s.is_empty()) {
            None => 0,
            Some(text) => text.parse::<u64>().map_err(|_| {
                ParamError::new(
                    "iterator",
                    format!("{text:?} is not a non-negative integer"),
                )
            })?,
        };
        let limit = match raw.limit.map(str::trim).filter(|s| !s.is_empty()) {
            None => default_limit,
            Some(text) => match text.parse::<u32>() {
                Ok(n) if (1..=max_limit).contains(&n) => n,
                _ => {
                    return Err(ParamError::new(
                        "limit",
                        format!("{text:?} is not between 1 and {max_limit}"),
                    ))
                }
            },
        };
        Ok(ExportQuery {
            from,
            to,
            iterator,
            limit,
        })
    }
}

fn parse_time(
    parameter: &'static str,
    text: Option<&str>,
) -> Result<Option<DateTime<Utc>>, ParamError> {
    let Some(text) = text.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if let Ok(seconds) = text.parse::<i64>() {
        return DateTime::from_timestamp(seconds, 0)
            .map(Some)
            .ok_or_else(|| ParamError::new(parameter, format!("{text} is out of range")));
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(time.with_timezone(&Utc)));
    }
    if let Ok(time) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        return Ok(Some(time.and_utc()));
    }
    Err(ParamError::new(
        parameter,
        format!("{text:?} is not an RFC 3339 time, unix seconds, or YYYY-MM-DD HH:MM:SS"),
    ))
}

/// What one page's rows say about where the consumer goes next.
///
/// `last_row_id` is the id of the last row returned (if any), `full` whether the page
/// hit its limit, and `max_committed_id` the highest id visible in the same snapshot.
/// With a time filter the page examined ids up to `iterator + scan_span`, capped at the
/// highest committed id: every id up to there is committed, so it is safe to move past.
pub fn next_iterator(
    query: &ExportQuery,
    last_row_id: Option<u64>,
    full: bool,
    max_committed_id: u64,
) -> (u64, bool) {
    if full {
        let last = last_row_id.unwrap_or(query.iterator);
        return (last, true);
    }
    let examined_to = if query.has_time_filter() {
        query
            .iterator
            .saturating_add(query.scan_span())
            .min(max_committed_id)
    } else {
        max_committed_id
    };
    let next = examined_to
        .max(last_row_id.unwrap_or(0))
        .max(query.iterator);
    (next, max_committed_id > next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        from: Option<&str>,
        to: Option<&str>,
        iterator: Option<&str>,
        limit: Option<&str>,
    ) -> Result<ExportQuery, ParamError> {
        ExportQuery::parse(
            RawParams {
                from,
                to,
                iterator,
                limit,
            },
            DEFAULT_LIMIT,
            MAX_LIMIT,
        )
    }

    #[test]
    fn defaults_are_an_open_range_from_the_start() {
        let query = parse(None, None, None, None).unwrap();
        assert_eq!(
            query,
            ExportQuery {
                from: None,
                to: None,
                iterator: 0,
                limit: 500
            }
        );
    }

    #[test]
    fn times_accept_rfc3339_unix_seconds_and_mysql_style() {
        let expected = DateTime::from_timestamp(1_795_000_000, 0);
        for text in [
            "1795000000",
            "2026-11-18T11:06:40Z",
            "2026-11-18T12:06:40+01:00",
            "2026-11-18 11:06:40",
        ] {
            assert_eq!(
                parse(Some(text), None, None, None).unwrap().from,
                expected,
                "{text}"
            );
        }
        assert_eq!(parse(None, Some(""), None, None).unwrap().to, None);
    }

    #[test]
    fn bad_parameters_name_themselves() {
        let cases = [
            (parse(Some("yesterday"), None, None, None), "from"),
            (parse(None, Some("2026-13-01T00:00:00Z"), None, None), "to"),
            (parse(Some("20"), Some("10"), None, None), "from"),
            (parse(None, None, Some("-1"), None), "iterator"),
            (parse(None, None, Some("x"), None), "iterator"),
            (parse(None, None, None, Some("0")), "limit"),
            (parse(None, None, None, Some("10001")), "limit"),
        ];
        for (result, parameter) in cases {
            assert_eq!(result.unwrap_err().parameter, parameter);
        }
    }

    #[test]
    fn a_full_page_continues_after_its_last_row() {
        let query = parse(None, None, Some("10"), Some("2")).unwrap();
        assert_eq!(next_iterator(&query, Some(14), true, 99), (14, true));
    }

    #[test]
    fn an_open_range_page_that_is_not_full_is_caught_up() {
        let query = parse(None, None, Some("10"), None).unwrap();
        assert_eq!(next_iterator(&query, Some(14), false, 14), (14, false));
        // Nothing examined: the iterator stays.
        assert_eq!(next_iterator(&query, None, false, 10), (10, false));
        // Rows deleted by retention below the max: move to the max.
        assert_eq!(next_iterator(&query, None, false, 12), (12, false));
    }

    #[test]
    fn a_time_filter_moves_past_skipped_rows_but_never_past_the_committed_max() {
        let query = parse(Some("0"), None, Some("0"), Some("10")).unwrap();
        let span = query.scan_span();
        // Nothing matched in the examined window, more rows beyond it.
        assert_eq!(next_iterator(&query, None, false, span * 3), (span, true));
        // Nothing matched, the committed max is within the window.
        assert_eq!(next_iterator(&query, Some(5), false, 42), (42, false));
    }

    proptest::proptest! {
        /// Whatever the parameters, parsing returns (never panics), and what it accepts
        /// keeps its own rules: limit in range, from <= to.
        #[test]
        fn arbitrary_parameters_never_panic_the_parser(
            from in proptest::option::of(".{0,40}"),
            to in proptest::option::of("[0-9 :TZ+.-]{0,30}"),
            iterator in proptest::option::of("-?[0-9]{0,25}|.{0,10}"),
            limit in proptest::option::of("-?[0-9]{0,12}|.{0,5}"),
        ) {
            let raw = RawParams {
                from: from.as_deref(),
                to: to.as_deref(),
                iterator: iterator.as_deref(),
                limit: limit.as_deref(),
            };
            if let Ok(query) = ExportQuery::parse(raw, 500, 10_000) {
                proptest::prop_assert!((1..=10_000).contains(&query.limit));
                if let (Some(from), Some(to)) = (query.from, query.to) {
                    proptest::prop_assert!(from <= to);
                }
            }
        }
    }
}
