//! Axis extents that any input can be drawn on in bounded time.
//!
//! plotters places ticks by stepping from one end of an axis to the other; a span
//! that is not finite, or too small for its magnitude for the step to change the
//! value (ticks every 0.5 around 1e16), never reaches the end. So every axis is made
//! [`drawable`]: finite, within ±1e300, and at least a millionth of its magnitude
//! wide. And the data decide an axis by their bulk, not their extremes
//! ([`Bulk`]): a few points at ±1e99 are left out of the picture and counted,
//! rather than shrinking everything else to a dot.

use super::geometry::Range;

/// Axes stay within ±this (their span then stays finite).
const LARGEST: f64 = 1e300;
/// The smallest span relative to the axis's magnitude.
const RESOLUTION: f64 = 1e-6;
/// The bulk lies between these quantiles...
const BULK_QUANTILE: f64 = 0.005;
/// ...widened on each side by this many times its span; points beyond are far.
const BULK_MARGIN: f64 = 1.0;

/// A finite, resolvable version of an axis extent.
pub fn drawable(r: std::ops::Range<f64>) -> std::ops::Range<f64> {
    let clamp = |v: f64, fallback: f64| {
        if v.is_nan() {
            fallback
        } else {
            v.clamp(-LARGEST, LARGEST)
        }
    };
    let (mut lo, mut hi) = (clamp(r.start, 0.0), clamp(r.end, 1.0));
    if lo > hi {
        std::mem::swap(&mut lo, &mut hi);
    }
    let magnitude = lo.abs().max(hi.abs());
    let least = (magnitude * RESOLUTION).max(f64::MIN_POSITIVE * 1e10);
    if hi - lo < least {
        let centre = lo / 2.0 + hi / 2.0;
        lo = (centre - least).max(-LARGEST);
        hi = (centre + least).min(LARGEST);
    }
    lo..hi
}

/// Where the bulk of some values lies, with a margin: what an axis must show.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bulk(pub Option<Range>);

impl Bulk {
    /// The values between the 0.5 % and 99.5 % quantiles, widened by that span on
    /// each side (non-finite values are ignored). None without values.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Self(None);
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
        let (lo, hi) = (at(BULK_QUANTILE), at(1.0 - BULK_QUANTILE));
        let margin = (hi - lo) * BULK_MARGIN;
        Self(Some(Range {
            lo: lo - margin,
            hi: hi + margin,
        }))
    }

    /// Also covering `other` (e.g. what the model draws).
    pub fn union(self, other: Option<Range>) -> Self {
        match (self.0, other) {
            (Some(a), b) => Self(Some(a.union(b))),
            (None, b) => Self(b),
        }
    }

    /// Whether a value lies outside: far from the bulk, so not drawn.
    pub fn excludes(&self, v: f64) -> bool {
        self.0.is_some_and(|r| !(r.lo..=r.hi).contains(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_extent_becomes_finite_and_resolvable() {
        for (lo, hi) in [
            (-1e308, 1e308),
            (f64::NEG_INFINITY, f64::INFINITY),
            (f64::NAN, f64::NAN),
            (1e16, 1e16 + 4.0),
            (5.0, 5.0),
            (0.0, 0.0),
            (3.0, -2.0),
            (-1e300, -1e300),
        ] {
            let r = drawable(lo..hi);
            assert!(
                r.start.is_finite() && r.end.is_finite(),
                "{lo}..{hi}: {r:?}"
            );
            let span = r.end - r.start;
            assert!(span.is_finite() && span > 0.0, "{lo}..{hi}: {r:?}");
            let magnitude = r.start.abs().max(r.end.abs());
            assert!(span >= magnitude * 1e-7, "{lo}..{hi}: {r:?}");
        }
        assert_eq!(drawable(-2.0..3.0), -2.0..3.0);
    }

    #[test]
    fn the_bulk_leaves_far_values_out() {
        let mut values: Vec<f64> = (0..1000).map(|i| (i % 100) as f64 / 10.0).collect();
        values.extend([1e99, -1e99, 1e6]);
        let bulk = Bulk::of(values.iter().copied());
        let r = bulk.0.expect("a bulk");
        assert!(r.lo > -20.0 && r.hi < 30.0, "{r:?}");
        assert_eq!(values.iter().filter(|&&v| bulk.excludes(v)).count(), 3);
        // What the model draws stays in.
        let with_model = bulk.union(Some(Range { lo: 0.0, hi: 2e6 }));
        assert_eq!(
            values.iter().filter(|&&v| with_model.excludes(v)).count(),
            2
        );
        assert_eq!(Bulk::of([]).0, None);
        assert!(!Bulk::of([]).excludes(1e300));
    }
}
