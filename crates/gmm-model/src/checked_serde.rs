//! Matrices read back from a snapshot, shape checked without overflow.
//!
//! nalgebra's own `Deserialize` multiplies the stated rows by the stated columns
//! unchecked: a crafted snapshot stating 2³² × 2³² overflows (a panic in debug
//! builds, a wrapped product that can pass the length check in release ones). These
//! read the same layout (`[data, nrows, ncols]`, the columns `null` for a vector)
//! and refuse any shape that does not hold the data exactly; written, the layout is
//! nalgebra's own, so snapshots stay as they were.

use nalgebra::{DMatrix, DVector};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

fn matrix_from<E: serde::de::Error>(
    data: Vec<f64>,
    rows: usize,
    cols: usize,
) -> Result<DMatrix<f64>, E> {
    if rows.checked_mul(cols) != Some(data.len()) {
        return Err(E::custom(format!(
            "a {rows}×{cols} matrix cannot hold {} values",
            data.len()
        )));
    }
    Ok(DMatrix::from_vec(rows, cols, data))
}

pub(crate) mod matrix {
    use super::*;

    pub fn serialize<S: Serializer>(m: &DMatrix<f64>, s: S) -> Result<S::Ok, S::Error> {
        m.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DMatrix<f64>, D::Error> {
        let (data, rows, cols): (Vec<f64>, usize, usize) = Deserialize::deserialize(d)?;
        matrix_from(data, rows, cols)
    }
}

pub(crate) mod vector {
    use super::*;

    pub fn serialize<S: Serializer>(v: &DVector<f64>, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DVector<f64>, D::Error> {
        let (data, rows, ()): (Vec<f64>, usize, ()) = Deserialize::deserialize(d)?;
        if rows != data.len() {
            return Err(D::Error::custom(format!(
                "a vector of {rows} cannot hold {} values",
                data.len()
            )));
        }
        Ok(DVector::from_vec(data))
    }
}

pub(crate) mod matrices {
    use super::*;

    pub fn serialize<S: Serializer>(m: &[DMatrix<f64>], s: S) -> Result<S::Ok, S::Error> {
        m.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<DMatrix<f64>>, D::Error> {
        let raw: Vec<(Vec<f64>, usize, usize)> = Deserialize::deserialize(d)?;
        raw.into_iter()
            .map(|(data, rows, cols)| matrix_from(data, rows, cols))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Both {
        #[serde(with = "matrix")]
        m: DMatrix<f64>,
        #[serde(with = "vector")]
        v: DVector<f64>,
        #[serde(with = "matrices")]
        ms: Vec<DMatrix<f64>>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Plain {
        m: DMatrix<f64>,
        v: DVector<f64>,
        ms: Vec<DMatrix<f64>>,
    }

    #[test]
    fn the_layout_is_nalgebras_and_bad_shapes_are_refused() {
        let m = DMatrix::from_row_slice(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let v = DVector::from_vec(vec![7.0, 8.0]);
        let both = Both {
            m: m.clone(),
            v: v.clone(),
            ms: vec![m.clone()],
        };
        let plain = Plain {
            m,
            v,
            ms: both.ms.clone(),
        };
        let json = serde_json::to_string(&both).expect("json");
        assert_eq!(json, serde_json::to_string(&plain).expect("json"));
        assert_eq!(serde_json::from_str::<Both>(&json).expect("back"), both);
        let huge = format!("[[], {}, {}]", 1u64 << 32, 1u64 << 32);
        let err = serde_json::from_str::<Wrapped>(&format!("{{\"m\": {huge}}}"));
        assert!(err.is_err());
        assert!(serde_json::from_str::<WrappedVector>(r#"{"v": [[1.0], 2, null]}"#).is_err());
    }

    #[derive(Debug, Deserialize)]
    struct Wrapped {
        #[serde(with = "matrix")]
        #[allow(dead_code)]
        m: DMatrix<f64>,
    }

    #[derive(Debug, Deserialize)]
    struct WrappedVector {
        #[serde(with = "vector")]
        #[allow(dead_code)]
        v: DVector<f64>,
    }
}
