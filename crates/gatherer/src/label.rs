//! A metric's label, checked once where it enters: the type can only be made by
//! [`Label::parse`], so whatever holds one (the aggregator's input, the write-ahead log's
//! records) needs no second look.

use std::borrow::Cow;
use std::ops::Deref;

/// The longest label, in characters: the width of `events_count.event_label`.
pub const MAX_LABEL_CHARS: usize = 50;

/// A label that passed [`validate_label`]. It borrows from the request body when it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label<'a>(Cow<'a, str>);

impl<'a> Label<'a> {
    /// Checks `label` ([`validate_label`]) and wraps it; the error says what is wrong.
    pub fn parse(label: impl Into<Cow<'a, str>>) -> Result<Self, String> {
        let label = label.into();
        validate_label(&label)?;
        Ok(Label(label))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it still borrows from the body it was parsed from.
    pub fn is_borrowed(&self) -> bool {
        matches!(self.0, Cow::Borrowed(_))
    }

    /// The same label, owning its text: for work that outlives the request body.
    pub fn into_owned(self) -> Label<'static> {
        Label(Cow::Owned(self.0.into_owned()))
    }
}

impl Deref for Label<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<&str> for Label<'_> {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

/// Checks a label against the column and the contract: 1 to 50 characters, no control
/// characters, no leading or trailing whitespace.
pub fn validate_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("label is empty".to_owned());
    }
    // Labels are nearly always ASCII, where a byte is a character.
    let ascii = label.is_ascii();
    // Cheap bound first: 50 characters are at most 200 bytes of UTF-8.
    let too_long = label.len() > MAX_LABEL_CHARS * 4
        || if ascii {
            label.len() > MAX_LABEL_CHARS
        } else {
            label.chars().count() > MAX_LABEL_CHARS
        };
    if too_long {
        return Err(format!("label is longer than {MAX_LABEL_CHARS} characters"));
    }
    let control = if ascii {
        label.bytes().any(|b| b.is_ascii_control())
    } else {
        label.chars().any(char::is_control)
    };
    if control {
        return Err("label contains a control character".to_owned());
    }
    let first_or_last_space =
        label.starts_with(char::is_whitespace) || label.ends_with(char::is_whitespace);
    if first_or_last_space {
        return Err("label has leading or trailing whitespace".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_is_made_only_from_a_valid_one() {
        let label = Label::parse("checkout").unwrap();
        assert!(label.is_borrowed());
        assert_eq!(label, "checkout");
        assert!(!label.clone().into_owned().is_borrowed());
        assert_eq!(Label::parse("ü".repeat(50)).unwrap().chars().count(), 50);
        let long = "x".repeat(51);
        let refused = [
            ("", "empty"),
            (long.as_str(), "longer than 50"),
            ("a\u{7}b", "control"),
            (" a", "whitespace"),
        ];
        for (label, why) in refused {
            let error = Label::parse(label).unwrap_err();
            assert!(error.contains(why), "{label:?}: {error}");
        }
    }
}
