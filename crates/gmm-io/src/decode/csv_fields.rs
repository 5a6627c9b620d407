//! Splits one csv line into fields (RFC 4180 quoting, via `csv-core`), reusing its
//! buffers from line to line so that no field is allocated.

use csv_core::{ReadRecordResult, Reader, ReaderBuilder, Terminator};

pub(super) struct Tokenizer {
    reader: Reader,
    /// Unquoted field bytes of the current line, back to back.
    text: Vec<u8>,
    /// End offset in `text` of each field.
    ends: Vec<usize>,
}

impl Tokenizer {
    pub(super) fn new() -> Self {
        // Lines arrive already split on '\n'; a stray '\r' inside must stay data
        // (then trimmed) instead of silently ending the row early.
        let reader = ReaderBuilder::new()
            .terminator(Terminator::Any(b'\n'))
            .build();
        Tokenizer {
            reader,
            text: Vec::new(),
            ends: Vec::new(),
        }
    }

    /// The fields of `line` (one csv row, without its line terminator).
    pub(super) fn split(&mut self, line: &[u8]) -> Fields<'_> {
        self.reader.reset();
        let (mut read, mut written, mut n_fields) = (0, 0, 0);
        loop {
            // Once `line` is consumed the input is empty, which csv-core takes as
            // the end of the data and answers with the final field.
            let input = line.get(read..).unwrap_or_default();
            let text = self.text.get_mut(written..).unwrap_or_default();
            let ends = self.ends.get_mut(n_fields..).unwrap_or_default();
            let (result, n_in, n_out, n_ends) = self.reader.read_record(input, text, ends);
            read += n_in;
            written += n_out;
            n_fields += n_ends;
            match result {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => grow(&mut self.text),
                ReadRecordResult::OutputEndsFull => grow(&mut self.ends),
                ReadRecordResult::Record | ReadRecordResult::End => break,
            }
        }
        Fields {
            text: self.text.get(..written).unwrap_or_default(),
            ends: self.ends.get(..n_fields).unwrap_or_default(),
        }
    }
}

fn grow<T: Clone + Default>(buffer: &mut Vec<T>) {
    let len = (buffer.len() * 2).max(64);
    buffer.resize(len, T::default());
}

/// The fields of one line, each trimmed of surrounding ASCII whitespace.
#[derive(Clone, Copy)]
pub(super) struct Fields<'a> {
    text: &'a [u8],
    ends: &'a [usize],
}

impl<'a> Fields<'a> {
    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let text = self.text;
        self.ends.iter().scan(0, move |start, &end| {
            let field = text.get(*start..end).unwrap_or_default();
            *start = end;
            Some(field.trim_ascii())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Vec<String> {
        let mut tokenizer = Tokenizer::new();
        let fields = tokenizer.split(line.as_bytes());
        fields
            .iter()
            .map(|f| String::from_utf8(f.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn splits_and_trims() {
        assert_eq!(split("1, 2 ,\t3 "), ["1", "2", "3"]);
        assert_eq!(split("1,2\r"), ["1", "2"]);
        assert_eq!(split("a,,b,"), ["a", "", "b", ""]);
        assert_eq!(split("x"), ["x"]);
    }

    #[test]
    fn quoted_fields_keep_commas_and_lose_quotes() {
        assert_eq!(
            split(r#""a","b, c","say ""hi""",4"#),
            ["a", "b, c", "say \"hi\"", "4"]
        );
    }

    #[test]
    fn buffers_grow_for_long_lines_and_are_reused() {
        let mut tokenizer = Tokenizer::new();
        let long: String = (0..500).map(|i| format!("{i}.5,")).collect();
        let long = long.trim_end_matches(',');
        assert_eq!(tokenizer.split(long.as_bytes()).len(), 500);
        let fields = tokenizer.split(b"7,8");
        let got: Vec<&[u8]> = fields.iter().collect();
        assert_eq!(got, [b"7", b"8"]);
    }
}
