//! `csv`: one point per line. A first line with no numeric field is a header; with
//! `fields` configured it picks the coordinates by column name.

use memchr::memchr;

use super::csv_fields::{Fields, Tokenizer};
use super::shape::Shape;
use crate::reject::{snippet, Reject, RejectReason};

pub(super) struct CsvDecoder {
    wanted: Option<Vec<String>>,
    header: Header,
    tokenizer: Tokenizer,
}

enum Header {
    /// No non-blank line seen yet: the next one may be a header.
    Pending,
    /// The first line was data: every column is a coordinate.
    Absent,
    /// The header picked these columns.
    Columns(ColumnMap),
    /// The header (or its absence) cannot serve the configured fields, so every row
    /// is refused for this reason.
    Unusable(Reject),
}

impl CsvDecoder {
    pub(super) fn new(wanted: Option<Vec<String>>) -> Self {
        CsvDecoder {
            wanted,
            header: Header::Pending,
            tokenizer: Tokenizer::new(),
        }
    }

    pub(super) fn reset_header(&mut self) {
        self.header = Header::Pending;
    }

    /// Takes `first_line` as the first line of the input without decoding it as a
    /// point: the header if it is one, otherwise proof that there is none.
    pub(super) fn prime_header(&mut self, first_line: &[u8]) -> Result<(), Reject> {
        self.header = Header::Pending;
        let line = clean(first_line);
        if line.is_empty() {
            return Ok(());
        }
        let fields = self.tokenizer.split(line);
        settle_header(&mut self.header, fields, self.wanted.as_deref());
        match &self.header {
            Header::Unusable(reject) => Err(reject.clone()),
            _ => Ok(()),
        }
    }

    /// Decodes a record of one line, or of several lines (a Kafka message); blank
    /// lines are skipped.
    pub(super) fn decode(
        &mut self,
        record: &[u8],
        shape: &mut Shape,
        out: &mut Vec<f64>,
        rejects: &mut Vec<Reject>,
    ) -> usize {
        let several_lines = memchr(b'\n', record.trim_ascii()).is_some();
        let mut accepted = 0;
        for (i, line) in record.split(|&b| b == b'\n').enumerate() {
            let line = clean(line);
            if line.is_empty() {
                continue;
            }
            match self.decode_line(line, shape, out) {
                Ok(Line::Point) => accepted += 1,
                Ok(Line::Header) => {}
                Err(reject) => rejects.push(reject.at(several_lines.then_some(i))),
            }
        }
        accepted
    }

    fn decode_line(
        &mut self,
        line: &[u8],
        shape: &mut Shape,
        out: &mut Vec<f64>,
    ) -> Result<Line, Reject> {
        let fields = self.tokenizer.split(line);
        if matches!(self.header, Header::Pending)
            && settle_header(&mut self.header, fields, self.wanted.as_deref())
        {
            return match &self.header {
                Header::Unusable(reject) => Err(reject.clone()),
                _ => Ok(Line::Header),
            };
        }
        match &self.header {
            Header::Pending | Header::Absent => parse_all_columns(fields, shape, out)?,
            Header::Columns(columns) => columns.parse_row(fields, shape, out)?,
            Header::Unusable(reject) => return Err(reject.clone()),
        }
        Ok(Line::Point)
    }
}

enum Line {
    Point,
    Header,
}

/// Without the line terminator, surrounding whitespace and a UTF-8 byte order mark
/// (spreadsheets write one, and it would otherwise stick to the first column name).
pub fn clean(line: &[u8]) -> &[u8] {
    let line = line.trim_ascii();
    line.strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(line)
        .trim_ascii()
}

/// Decides, on the first non-blank line, whether the input has a header and how
/// its columns map to coordinates. Returns true if that line is the header.
fn settle_header(header: &mut Header, fields: Fields<'_>, wanted: Option<&[String]>) -> bool {
    let is_header = !fields.iter().any(|field| parse_f64(field).is_some());
    *header = match (is_header, wanted) {
        (false, None) => Header::Absent,
        (false, Some(_)) => Header::Unusable(Reject::new(
            RejectReason::MissingField,
            "fields are configured but the csv input has no header line naming its columns",
        )),
        (true, wanted) => match ColumnMap::from_header(fields, wanted) {
            Ok(columns) => Header::Columns(columns),
            Err(reject) => Header::Unusable(reject),
        },
    };
    is_header
}

/// Which column feeds which coordinate, as named by the header.
struct ColumnMap {
    names: Vec<String>,
    /// For each column, the coordinate it fills, if any.
    coordinate_of: Vec<Option<usize>>,
    dim: usize,
}

impl ColumnMap {
    fn from_header(fields: Fields<'_>, wanted: Option<&[String]>) -> Result<Self, Reject> {
        let names: Vec<String> = fields
            .iter()
            .map(|name| String::from_utf8_lossy(name).into_owned())
            .collect();
        let Some(wanted) = wanted else {
            return Ok(ColumnMap {
                coordinate_of: (0..names.len()).map(Some).collect(),
                dim: names.len(),
                names,
            });
        };
        let mut coordinate_of = vec![None; names.len()];
        for (coordinate, name) in wanted.iter().enumerate() {
            let column = names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| missing_column(name, &names))?;
            coordinate_of[column] = Some(coordinate);
        }
        Ok(ColumnMap {
            names,
            coordinate_of,
            dim: wanted.len(),
        })
    }

    /// Parses only the picked columns: the others may hold text (ids, labels).
    fn parse_row(
        &self,
        fields: Fields<'_>,
        shape: &mut Shape,
        out: &mut Vec<f64>,
    ) -> Result<(), Reject> {
        if fields.len() != self.names.len() {
            return Err(Reject::new(
                RejectReason::Dimension,
                format!(
                    "row has {} columns, the header has {}",
                    fields.len(),
                    self.names.len()
                ),
            ));
        }
        let start = out.len();
        out.resize(start + self.dim, 0.0);
        let picked = fields.iter().zip(&self.names).zip(&self.coordinate_of);
        for ((field, name), coordinate) in picked {
            let Some(coordinate) = *coordinate else {
                continue;
            };
            match parse_number(field) {
                Ok(number) => {
                    if let Some(value) = out.get_mut(start + coordinate) {
                        *value = number;
                    }
                }
                Err(problem) => {
                    out.truncate(start);
                    return Err(Reject::parse(format!("column \"{name}\" {problem}")));
                }
            }
        }
        shape.settle(out, start)
    }
}

fn parse_all_columns(
    fields: Fields<'_>,
    shape: &mut Shape,
    out: &mut Vec<f64>,
) -> Result<(), Reject> {
    let coordinates = fields.iter().enumerate().map(|(column, field)| {
        parse_number(field)
            .map_err(|problem| Reject::parse(format!("column {} {problem}", column + 1)))
    });
    shape.push_point(out, coordinates)
}

/// The number in a field, or what is wrong with it (to follow the column's name).
/// Non-finite values ("nan", "inf") parse here and are refused by [`Shape`].
fn parse_number(field: &[u8]) -> Result<f64, String> {
    if field.is_empty() {
        return Err("is empty".to_owned());
    }
    parse_f64(field).ok_or_else(|| format!("is not a number: {}", snippet(field)))
}

fn parse_f64(field: &[u8]) -> Option<f64> {
    std::str::from_utf8(field).ok()?.parse().ok()
}

fn missing_column(name: &str, names: &[String]) -> Reject {
    const SHOWN: usize = 12;
    let mut listed = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        listed.push_str(", …");
    }
    Reject::new(
        RejectReason::MissingField,
        format!("field \"{name}\" is not a column of the csv header (columns: {listed})"),
    )
}
