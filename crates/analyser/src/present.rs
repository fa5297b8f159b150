//! Pure: how the analyser says things to people (the webhook, the report, the dashboard):
//! numbers rounded to what matters, a change in words ("10.2× expected", "−99 %"), and
//! labels (which any bot chooses) made harmless for the format they land in.

/// A number rounded for people: at most three significant digits after the point, no
/// trailing zeros, thousands not abbreviated.
pub fn number(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let magnitude = x.abs();
    let decimals = if magnitude >= 100.0 || magnitude == 0.0 {
        0
    } else if magnitude >= 10.0 {
        1
    } else if magnitude >= 1.0 {
        2
    } else {
        3
    };
    let text = format!("{x:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    };
    if text == "-0" {
        "0".to_owned()
    } else {
        text
    }
}

/// How `observed` differs from `expected`, in words a person reads: "10.2× expected" for
/// at least double, else a signed percentage ("−99 %", "+45 %"); "from 0" when nothing was
/// expected.
pub fn change(observed: f64, expected: f64) -> String {
    if expected == 0.0 {
        return if observed == 0.0 {
            "as expected".to_owned()
        } else {
            format!("{} from 0", number(observed))
        };
    }
    let ratio = observed / expected;
    if ratio >= 2.0 {
        let digits = if ratio >= 100.0 { 0 } else { 1 };
        format!("{ratio:.digits$}× expected")
    } else {
        let percent = (ratio - 1.0) * 100.0;
        let rounded = percent.round();
        if rounded == 0.0 {
            "as expected".to_owned()
        } else if rounded > 0.0 {
            format!("+{rounded:.0} %")
        } else {
            format!("−{:.0} %", -rounded)
        }
    }
}

/// Text made safe for Slack's message formatting: `&`, `<` and `>` escaped, as Slack's
/// rules require, so `<!channel>` or `<https://…|link>` in a label is shown, not obeyed.
pub fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A label (or any bot-chosen text) for a Slack message: escaped, and in a code span so
/// that `*`, `_` or `~` in it do not format the message. A backquote cannot be escaped in
/// a code span, so such a text stays plain (still escaped).
pub fn slack_code(text: &str) -> String {
    let escaped = slack_escape(text);
    if text.contains('`') {
        escaped
    } else {
        format!("`{escaped}`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_rounded_for_people() {
        assert_eq!(number(546.7647058823529), "547");
        assert_eq!(number(55.5), "55.5");
        assert_eq!(number(2.345678), "2.35");
        assert_eq!(number(0.012345), "0.012");
        assert_eq!(number(-1_000_000.0), "-1000000");
        assert_eq!(number(-0.0001), "0");
        assert_eq!(number(20.0), "20");
    }

    #[test]
    fn changes_read_as_words() {
        assert_eq!(change(612.0, 60.0), "10.2× expected");
        assert_eq!(change(6_000.0, 20.0), "300× expected");
        assert_eq!(change(0.0, 80.0), "−100 %");
        assert_eq!(change(39.9, 3_990.0), "−99 %");
        assert_eq!(change(145.0, 100.0), "+45 %");
        assert_eq!(change(100.2, 100.0), "as expected");
        assert_eq!(change(5.0, 0.0), "5 from 0");
    }

    #[test]
    fn labels_cannot_format_or_ping_in_slack() {
        assert_eq!(slack_escape("<!channel> & co"), "&lt;!channel&gt; &amp; co");
        assert_eq!(
            slack_code("<https://example.org|reset your password>"),
            "`&lt;https://example.org|reset your password&gt;`"
        );
        assert_eq!(slack_code("a`b<x>"), "a`b&lt;x&gt;");
        assert_eq!(slack_code("*bold*"), "`*bold*`");
    }
}
