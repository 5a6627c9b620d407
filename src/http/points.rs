//! The body of `POST /score`, `[[x1, ..., xd], ...]`, read straight into one flat
//! buffer: no allocation per point, at most `max_points` points (counted as they
//! are read, so a body of a million points is refused without holding them), each
//! of the model's dimension, every coordinate within the bound on coordinates.

use std::fmt;

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};

/// Why a body was refused.
#[derive(Debug, PartialEq)]
pub enum BodyError {
    /// 400, with the message.
    Malformed(String),
    /// 413: more points than allowed.
    TooManyPoints { max: usize },
}

/// The points of a body, row-major.
pub fn parse(
    body: &[u8],
    d: usize,
    max_abs: f64,
    max_points: usize,
) -> Result<Vec<f64>, BodyError> {
    let mut refusal = None;
    let mut flat = Vec::new();
    let seed = Points {
        d,
        max_abs,
        max_points,
        flat: &mut flat,
        refusal: &mut refusal,
    };
    let mut json = serde_json::Deserializer::from_slice(body);
    let parsed = seed.deserialize(&mut json).and_then(|()| json.end());
    match (parsed, refusal) {
        (_, Some(refusal)) => Err(refusal),
        (Ok(()), None) => Ok(flat),
        (Err(e), None) => Err(BodyError::Malformed(format!(
            "the body must be a JSON array of points, each an array of numbers: {e}"
        ))),
    }
}

/// The outer array.
struct Points<'a> {
    d: usize,
    max_abs: f64,
    max_points: usize,
    flat: &'a mut Vec<f64>,
    refusal: &'a mut Option<BodyError>,
}

impl<'de> DeserializeSeed<'de> for Points<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Points<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of points")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            if index == self.max_points {
                // One more point is one too many; an empty rest is fine.
                let more = seq.next_element::<de::IgnoredAny>()?.is_some();
                if more {
                    *self.refusal = Some(BodyError::TooManyPoints {
                        max: self.max_points,
                    });
                    return Err(de::Error::custom("too many points"));
                }
                return Ok(());
            }
            let start = self.flat.len();
            let mut got = 0;
            let point = Point {
                flat: self.flat,
                max: self.d,
                count: &mut got,
            };
            if seq.next_element_seed(point)?.is_none() {
                return Ok(());
            }
            let problem = if got != self.d {
                Some(format!(
                    "point {index} has {got} coordinates, the model has {}",
                    self.d
                ))
            } else {
                self.flat[start..]
                    .iter()
                    .position(|v| v.abs() > self.max_abs)
                    .map(|j| {
                        format!(
                            "point {index} has coordinate {j} = {:e}, beyond the bound of \
                             ±{:e} on coordinates",
                            self.flat[start + j],
                            self.max_abs
                        )
                    })
            };
            if let Some(message) = problem {
                *self.refusal = Some(BodyError::Malformed(message));
                return Err(de::Error::custom("a bad point"));
            }
            index += 1;
        }
    }
}

/// One point: its coordinates appended to `flat`, at most `max` of them (the
/// model's dimension), and counted in `count`.
struct Point<'a> {
    flat: &'a mut Vec<f64>,
    max: usize,
    count: &'a mut usize,
}

impl<'de> DeserializeSeed<'de> for Point<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Point<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a point: an array of numbers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element::<f64>()? {
            if *self.count < self.max {
                self.flat.push(v);
            }
            *self.count += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn malformed(body: &str) -> String {
        match parse(body.as_bytes(), 3, 1e100, 10) {
            Err(BodyError::Malformed(m)) => m,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn points_are_read_flat_and_checked() {
        assert_eq!(
            parse(b" [[1, 2, 3], [4.5, -6, 7e2]] ", 3, 1e100, 10),
            Ok(vec![1.0, 2.0, 3.0, 4.5, -6.0, 700.0])
        );
        assert_eq!(parse(b"[]", 3, 1e100, 10), Ok(vec![]));
        assert!(malformed("[[1, 2]]").contains("point 0 has 2 coordinates, the model has 3"));
        assert!(malformed("[[1, 2, 3], [1, 2, 3, 4]]").contains("point 1 has 4 coordinates"));
        assert!(
            malformed("[[1, 2, 3], [0, 1e308, 0]]").contains("point 1 has coordinate 1 = 1e308")
        );
        for body in [
            "not json",
            "{\"points\": []}",
            "[1, 2, 3]",
            "[[1e999, 0, 0]]",
            "[[1, \"two\", 3]]",
            "[[1,2,3]] x",
        ] {
            assert!(
                malformed(body).starts_with("the body must be a JSON array"),
                "{body}"
            );
        }
    }

    #[test]
    fn more_points_than_allowed_are_refused_as_such() {
        let ten = format!("[{}]", ["[0,0,0]"; 10].join(","));
        assert_eq!(parse(ten.as_bytes(), 3, 1e100, 10).map(|v| v.len()), Ok(30));
        let eleven = format!("[{}]", ["[0,0,0]"; 11].join(","));
        assert_eq!(
            parse(eleven.as_bytes(), 3, 1e100, 10),
            Err(BodyError::TooManyPoints { max: 10 })
        );
    }
}
