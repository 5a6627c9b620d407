//! `f64le` / `f32le`: raw little-endian floats, `dim` per point, one or more whole
//! points per record.

use super::shape::Shape;
use crate::format::Format;
use crate::reject::Reject;

/// The float type of a binary format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Float {
    F64,
    F32,
}

impl Float {
    pub(super) fn width(self) -> usize {
        match self {
            Float::F64 => 8,
            Float::F32 => 4,
        }
    }

    fn format(self) -> Format {
        match self {
            Float::F64 => Format::F64le,
            Float::F32 => Format::F32le,
        }
    }
}

/// Decodes a binary record of `dim`-d points: a wrong length refuses the whole
/// record, a non-finite value only its point.
pub(super) fn decode(
    float: Float,
    dim: usize,
    record: &[u8],
    shape: &mut Shape,
    out: &mut Vec<f64>,
    rejects: &mut Vec<Reject>,
) -> usize {
    let point_bytes = dim * float.width();
    if record.is_empty() || record.len() % point_bytes != 0 {
        rejects.push(Reject::parse(format!(
            "record of {} bytes is not a whole number of {dim}-d {} points \
             ({point_bytes} bytes each)",
            record.len(),
            float.format(),
        )));
        return 0;
    }
    let n_points = record.len() / point_bytes;
    let in_block = n_points > 1;
    out.reserve(n_points * dim);
    let mut accepted = 0;
    for (i, point) in record.chunks_exact(point_bytes).enumerate() {
        let start = out.len();
        match float {
            Float::F64 => out.extend(floats::<8>(point).map(f64::from_le_bytes)),
            Float::F32 => out.extend(floats::<4>(point).map(f32::from_le_bytes).map(f64::from)),
        }
        match shape.settle(out, start) {
            Ok(()) => accepted += 1,
            Err(reject) => rejects.push(reject.at(in_block.then_some(i))),
        }
    }
    accepted
}

/// The `W`-byte groups of `bytes` (whose length is a multiple of `W`).
fn floats<const W: usize>(bytes: &[u8]) -> impl Iterator<Item = [u8; W]> + '_ {
    bytes.chunks_exact(W).map(|chunk| {
        let mut group = [0u8; W];
        group.copy_from_slice(chunk);
        group
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reject::RejectReason;

    fn f64_bytes(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn run(float: Float, dim: usize, record: &[u8]) -> (Vec<f64>, Vec<Reject>, usize) {
        let mut shape = Shape::new(Some(dim));
        let (mut out, mut rejects) = (Vec::new(), Vec::new());
        let n = decode(float, dim, record, &mut shape, &mut out, &mut rejects);
        (out, rejects, n)
    }

    #[test]
    fn f64le_record_holds_several_points() {
        let values = [1.5, -2.0, 3.25, 1e99, -0.0, 5e-324];
        let (out, rejects, n) = run(Float::F64, 2, &f64_bytes(&values));
        assert_eq!(n, 3);
        assert!(rejects.is_empty());
        assert_eq!(out, values);
    }

    #[test]
    fn f32le_widens_exactly() {
        let values = [1.1f32, -3.5, f32::MAX, f32::MIN_POSITIVE];
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let (out, _, n) = run(Float::F32, 4, &bytes);
        assert_eq!(n, 1);
        let expected: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn wrong_length_rejects_the_whole_record() {
        let (out, rejects, n) = run(Float::F64, 2, &f64_bytes(&[1.0, 2.0, 3.0]));
        assert_eq!((n, out.len()), (0, 0));
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].reason, RejectReason::Parse);
        assert_eq!(
            rejects[0].detail,
            "record of 24 bytes is not a whole number of 2-d f64le points (16 bytes each)"
        );
        let (_, rejects, _) = run(Float::F32, 1, &[0, 0, 0]);
        assert_eq!(rejects[0].reason, RejectReason::Parse);
        let (_, rejects, _) = run(Float::F32, 1, &[]);
        assert_eq!(rejects[0].reason, RejectReason::Parse);
    }

    #[test]
    fn non_finite_value_rejects_only_its_point() {
        let values = [1.0, 2.0, f64::NAN, 4.0, 5.0, f64::INFINITY, 7.0, 8.0];
        let (out, rejects, n) = run(Float::F64, 2, &f64_bytes(&values));
        assert_eq!(n, 2);
        assert_eq!(out, [1.0, 2.0, 7.0, 8.0]);
        let got: Vec<_> = rejects.iter().map(|r| (r.reason, r.index)).collect();
        assert_eq!(
            got,
            [
                (RejectReason::NonFinite, Some(1)),
                (RejectReason::NonFinite, Some(2))
            ]
        );
    }

    #[test]
    fn single_point_record_reject_has_no_index() {
        let bytes: Vec<u8> = f32::NAN.to_le_bytes().into_iter().chain([0; 4]).collect();
        let (_, rejects, n) = run(Float::F32, 2, &bytes);
        assert_eq!(n, 0);
        assert_eq!(rejects[0].index, None);
        assert_eq!(rejects[0].detail, "coordinate 1 is NaN");
    }
}
