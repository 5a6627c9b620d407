//! clap parsers for the option values the commands share. Choices are listed as
//! possible values so that `--help` shows them and a typo gets a suggestion.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use gmm_io::Format;
use gmm_model::{CovarianceType, InitMethod};

pub fn data_format() -> impl TypedValueParser<Value = Format> {
    PossibleValuesParser::new(Format::ALL.map(Format::as_str)).try_map(|s| s.parse::<Format>())
}

pub fn covariance_type() -> impl TypedValueParser<Value = CovarianceType> {
    PossibleValuesParser::new(CovarianceType::ALL.map(CovarianceType::as_str))
        .try_map(|s| s.parse::<CovarianceType>())
}

pub fn init_method() -> impl TypedValueParser<Value = InitMethod> {
    let names = [
        InitMethod::KMeans,
        InitMethod::KMeansPlusPlus,
        InitMethod::Random,
        InitMethod::RandomFromData,
    ]
    .map(InitMethod::as_str);
    PossibleValuesParser::new(names).try_map(|s| s.parse::<InitMethod>())
}

/// A finite number >= 0 (NaN and infinities are refused: they would silently
/// disable a stopping rule or a regularisation).
pub fn non_negative(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        Ok(_) => Err("must be a finite number >= 0".to_owned()),
        Err(_) => Err("not a number".to_owned()),
    }
}

/// An inclusive range of counts `MIN..MAX` with 1 <= MIN <= MAX (`3` alone is 3..3).
pub fn count_range(s: &str) -> Result<std::ops::RangeInclusive<usize>, String> {
    let (low, high) = s.split_once("..").unwrap_or((s, s));
    let (low, high) = (positive(low)?, positive(high)?);
    if low > high {
        return Err(format!("{low} is above {high}: give MIN..MAX"));
    }
    Ok(low..=high)
}

/// A count of at least 1.
pub fn positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err("not a whole number".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_negative_refuses_negatives_and_non_finite() {
        assert_eq!(non_negative("0"), Ok(0.0));
        assert_eq!(non_negative("1e-3"), Ok(1e-3));
        for bad in ["-1", "nan", "inf", "x"] {
            assert!(non_negative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn count_range_needs_min_at_most_max() {
        assert_eq!(count_range("2..6"), Ok(2..=6));
        assert_eq!(count_range(" 3 "), Ok(3..=3));
        assert!(count_range("6..2").is_err());
        assert!(count_range("0..3").is_err());
        assert!(count_range("2..").is_err());
        assert!(count_range("a..b").is_err());
    }

    #[test]
    fn positive_refuses_zero() {
        assert_eq!(positive("3"), Ok(3));
        assert!(positive("0").is_err());
        assert!(positive("-2").is_err());
    }
}
