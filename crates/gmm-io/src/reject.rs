//! Why an input point (or a whole record) was refused.

use std::fmt;

/// The kind of a rejection; [`RejectReason::as_str`] is the stable label used in
/// metrics and dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The bytes are not a number, not valid JSON, not a whole number of binary
    /// points, or a truncated binary record.
    Parse,
    /// The point has the wrong number of coordinates (or a csv row the wrong number
    /// of columns).
    Dimension,
    /// A coordinate is NaN or infinite.
    NonFinite,
    /// A configured field is absent: from a JSON object, from the csv header, or
    /// there is no csv header at all.
    MissingField,
    /// A JSON object arrived but no `fields` are configured to pick its coordinates.
    FieldsNeeded,
    /// The record is longer than the configured maximum record size.
    TooLarge,
    /// A coordinate's magnitude is beyond the configured bound (finite, but too
    /// large to compute with: see `DecodeConfig::max_abs`).
    OutOfRange,
    /// The model cannot score the point finitely (its log-density is -inf or NaN),
    /// so it cannot be absorbed or flagged either.
    Unscorable,
}

impl RejectReason {
    pub const ALL: [RejectReason; 8] = [
        RejectReason::Parse,
        RejectReason::Dimension,
        RejectReason::NonFinite,
        RejectReason::MissingField,
        RejectReason::FieldsNeeded,
        RejectReason::TooLarge,
        RejectReason::OutOfRange,
        RejectReason::Unscorable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Parse => "parse",
            RejectReason::Dimension => "dimension",
            RejectReason::NonFinite => "non_finite",
            RejectReason::MissingField => "missing_field",
            RejectReason::FieldsNeeded => "fields_needed",
            RejectReason::TooLarge => "too_large",
            RejectReason::OutOfRange => "out_of_range",
            RejectReason::Unscorable => "unscorable",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rejected point, or one record that yields no usable point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub reason: RejectReason,
    /// A short human explanation, e.g. "point has 3 coordinates, expected 2".
    pub detail: String,
    /// 0-based index of the point within a record holding several: the element
    /// of a JSON block, the point of a multi-point binary record, the line of a
    /// multi-line csv message. `None` when the record holds (or was meant to hold)
    /// a single point, or when the rejection concerns the whole record.
    pub index: Option<usize>,
}

impl Reject {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Reject {
            reason,
            detail: detail.into(),
            index: None,
        }
    }

    pub(crate) fn at(mut self, index: Option<usize>) -> Self {
        self.index = index;
        self
    }

    pub(crate) fn parse(detail: impl Into<String>) -> Self {
        Reject::new(RejectReason::Parse, detail)
    }
}

/// "point has 3 coordinates, expected 2", or "point 4: ..." (1-based) inside a block.
impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(index) => write!(f, "point {}: {}", index + 1, self.detail),
            None => f.write_str(&self.detail),
        }
    }
}

/// Quotes a piece of input for a message, cut short so a huge field cannot flood logs.
pub(crate) fn snippet(bytes: &[u8]) -> String {
    const MAX_CHARS: usize = 40;
    let text = String::from_utf8_lossy(bytes);
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(MAX_CHARS).collect();
    let ellipsis = if chars.next().is_some() { "…" } else { "" };
    format!("\"{head}{ellipsis}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_snake_case() {
        let labels: Vec<_> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        for label in &labels {
            assert!(label.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
        let mut unique = labels.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), labels.len());
    }

    #[test]
    fn display_numbers_block_points_from_one() {
        let reject = Reject::parse("bad").at(Some(2));
        assert_eq!(reject.to_string(), "point 3: bad");
        assert_eq!(Reject::parse("bad").to_string(), "bad");
    }

    #[test]
    fn snippet_cuts_long_input() {
        assert_eq!(snippet(b"abc"), "\"abc\"");
        let long = snippet(&[b'x'; 100]);
        assert_eq!(long.chars().count(), 40 + 3);
        assert!(long.ends_with("…\""));
    }
}
