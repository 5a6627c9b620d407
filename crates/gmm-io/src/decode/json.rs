//! `json`: a record is `[x1, ..., xd]` (one point), `[[...], [...]]` (a block of
//! points, objects allowed as elements) or an object whose `fields` are the
//! coordinates, in the configured order.

use serde_json::{Map, Value};

use super::shape::Shape;
use crate::reject::{Reject, RejectReason};

pub(super) fn decode(
    record: &[u8],
    wanted: Option<&[String]>,
    shape: &mut Shape,
    out: &mut Vec<f64>,
    rejects: &mut Vec<Reject>,
) -> usize {
    let record = record.trim_ascii();
    // serde_json refuses a byte order mark, which some writers put first.
    let record = record.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(record);
    if record.is_empty() {
        return 0;
    }
    let value: Value = match serde_json::from_slice(record) {
        Ok(value) => value,
        Err(error) => {
            rejects.push(Reject::parse(describe(&error)));
            return 0;
        }
    };
    match &value {
        Value::Array(items) if is_block(items) => decode_block(items, wanted, shape, out, rejects),
        Value::Array(_) | Value::Object(_) => match decode_point(&value, wanted, shape, out) {
            Ok(()) => 1,
            Err(reject) => {
                rejects.push(reject);
                0
            }
        },
        other => {
            rejects.push(Reject::parse(format!(
                "expected a point or a block of points, found {}",
                kind(other)
            )));
            0
        }
    }
}

/// A block is an array of arrays or objects; `[]` is an empty block, not a point.
fn is_block(items: &[Value]) -> bool {
    items
        .first()
        .is_none_or(|first| first.is_array() || first.is_object())
}

/// A bad element refuses that element only.
fn decode_block(
    items: &[Value],
    wanted: Option<&[String]>,
    shape: &mut Shape,
    out: &mut Vec<f64>,
    rejects: &mut Vec<Reject>,
) -> usize {
    let mut accepted = 0;
    for (i, item) in items.iter().enumerate() {
        match decode_point(item, wanted, shape, out) {
            Ok(()) => accepted += 1,
            Err(reject) => rejects.push(reject.at(Some(i))),
        }
    }
    accepted
}

fn decode_point(
    value: &Value,
    wanted: Option<&[String]>,
    shape: &mut Shape,
    out: &mut Vec<f64>,
) -> Result<(), Reject> {
    match value {
        Value::Array(coordinates) => {
            shape.push_point(out, coordinates.iter().enumerate().map(number_at))
        }
        Value::Object(object) => pick_fields(object, wanted, shape, out),
        other => Err(Reject::parse(format!(
            "expected a point (an array of numbers or an object), found {}",
            kind(other)
        ))),
    }
}

fn number_at((index, value): (usize, &Value)) -> Result<f64, Reject> {
    value.as_f64().ok_or_else(|| {
        Reject::parse(format!(
            "coordinate {} is {}, not a number",
            index + 1,
            kind(value)
        ))
    })
}

fn pick_fields(
    object: &Map<String, Value>,
    wanted: Option<&[String]>,
    shape: &mut Shape,
    out: &mut Vec<f64>,
) -> Result<(), Reject> {
    let Some(wanted) = wanted else {
        return Err(Reject::new(
            RejectReason::FieldsNeeded,
            "a JSON object needs `fields` configured to pick its coordinates",
        ));
    };
    let coordinates = wanted.iter().map(|name| match object.get(name) {
        Some(value) => value.as_f64().ok_or_else(|| {
            Reject::parse(format!("field \"{name}\" is {}, not a number", kind(value)))
        }),
        None => Err(Reject::new(
            RejectReason::MissingField,
            format!("field \"{name}\" is missing"),
        )),
    });
    shape.push_point(out, coordinates)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// serde_json's message, with its position restated relative to the record (the
/// caller names the line of the file).
fn describe(error: &serde_json::Error) -> String {
    let full = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    let message = full.strip_suffix(&position).unwrap_or(&full);
    if error.line() > 1 {
        format!(
            "invalid JSON at line {} column {} of the record: {message}",
            error.line(),
            error.column()
        )
    } else {
        format!("invalid JSON at column {}: {message}", error.column())
    }
}
