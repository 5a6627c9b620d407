//! Decoder behaviour per format and per reason, through the public API.

use super::*;

fn decoder(format: Format, dim: Option<usize>, fields: Option<&[&str]>) -> Decoder {
    let fields = fields.map(|names| names.iter().map(|n| n.to_string()).collect());
    Decoder::new(DecodeConfig {
        format,
        dim,
        fields,
        max_abs: None,
    })
    .unwrap()
}

/// Decodes each string as one record; returns the points and the rejects.
fn decode_all(decoder: &mut Decoder, records: &[&str]) -> (Vec<f64>, Vec<Reject>) {
    let (mut out, mut rejects) = (Vec::new(), Vec::new());
    for record in records {
        let before = out.len();
        let n = decoder.decode(record.as_bytes(), &mut out, &mut rejects);
        assert_eq!(out.len() - before, n * decoder.dim().unwrap_or(0));
    }
    (out, rejects)
}

fn reasons(rejects: &[Reject]) -> Vec<(RejectReason, Option<usize>)> {
    rejects.iter().map(|r| (r.reason, r.index)).collect()
}

mod config {
    use super::*;

    fn error(format: Format, dim: Option<usize>, fields: Option<&[&str]>) -> DecodeConfigError {
        let fields = fields.map(|names| names.iter().map(|n| n.to_string()).collect());
        Decoder::new(DecodeConfig {
            format,
            dim,
            fields,
            max_abs: None,
        })
        .err()
        .unwrap()
    }

    #[test]
    fn binary_formats_need_dim_and_refuse_fields() {
        assert_eq!(
            error(Format::F64le, None, None),
            DecodeConfigError::MissingDim {
                format: Format::F64le
            }
        );
        assert_eq!(
            error(Format::F32le, Some(2), Some(&["a", "b"])),
            DecodeConfigError::FieldsWithBinary {
                format: Format::F32le
            }
        );
        assert_eq!(
            error(Format::F64le, None, None).to_string(),
            "format f64le needs `dim`, since raw floats do not say how many make a point"
        );
    }

    #[test]
    fn inconsistent_settings_are_refused() {
        assert_eq!(
            error(Format::Csv, Some(0), None),
            DecodeConfigError::ZeroDim
        );
        assert_eq!(
            error(Format::F64le, Some(MAX_DIM + 1), None),
            DecodeConfigError::DimTooLarge(MAX_DIM + 1)
        );
        let largest = DecodeConfig {
            dim: Some(MAX_DIM),
            ..DecodeConfig::new(Format::F64le)
        };
        assert!(Decoder::new(largest).is_ok());
        assert_eq!(
            error(Format::Json, None, Some(&[])),
            DecodeConfigError::EmptyFields
        );
        assert_eq!(
            error(Format::Csv, None, Some(&["a", "b", "a"])),
            DecodeConfigError::DuplicateField("a".into())
        );
        assert_eq!(
            error(Format::Json, Some(3), Some(&["a", "b"])),
            DecodeConfigError::DimFieldsMismatch {
                dim: 3,
                n_fields: 2
            }
        );
    }

    #[test]
    fn fields_fix_the_dimension_up_front() {
        assert_eq!(decoder(Format::Csv, None, Some(&["a", "b"])).dim(), Some(2));
        assert_eq!(
            decoder(Format::Json, Some(2), Some(&["a", "b"])).dim(),
            Some(2)
        );
        assert_eq!(decoder(Format::Csv, None, None).dim(), None);
    }

    #[test]
    fn framing_follows_the_format() {
        let one = NonZeroUsize::MIN;
        let four = NonZeroUsize::new(4).unwrap();
        let f64le = decoder(Format::F64le, Some(3), None);
        assert_eq!(
            f64le.framing(one),
            Framing::Fixed(NonZeroUsize::new(24).unwrap())
        );
        assert_eq!(
            f64le.framing(four),
            Framing::Fixed(NonZeroUsize::new(96).unwrap())
        );
        let f32le = decoder(Format::F32le, Some(3), None);
        assert_eq!(
            f32le.framing(one),
            Framing::Fixed(NonZeroUsize::new(12).unwrap())
        );
        assert_eq!(
            decoder(Format::Csv, None, None).framing(four),
            Framing::Lines
        );
        assert_eq!(
            decoder(Format::Json, None, None).framing(one),
            Framing::Lines
        );
    }

    #[test]
    fn config_deserializes_from_lowercase_toml_like_json() {
        let config: DecodeConfig =
            serde_json::from_str(r#"{"format": "csv", "fields": ["x", "y"]}"#).unwrap();
        assert_eq!(config.format, Format::Csv);
        assert_eq!(config.dim, None);
        assert_eq!(config.fields, Some(vec!["x".to_owned(), "y".to_owned()]));
    }
}

mod csv {
    use super::*;

    fn csv(dim: Option<usize>, fields: Option<&[&str]>) -> Decoder {
        decoder(Format::Csv, dim, fields)
    }

    #[test]
    fn numeric_lines_tolerate_spaces_and_cr() {
        let mut d = csv(None, None);
        let (out, rejects) = decode_all(&mut d, &["1,2", " 3 , 4 ", "5,\t6\r", "-1e-3,+7.5"]);
        assert!(rejects.is_empty(), "{rejects:?}");
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -1e-3, 7.5]);
        assert_eq!(d.dim(), Some(2));
    }

    #[test]
    fn blank_lines_are_skipped_not_rejected() {
        let mut d = csv(None, None);
        let (out, rejects) = decode_all(&mut d, &["", "1,2", "   ", "\r", "3,4"]);
        assert!(rejects.is_empty());
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn a_blank_line_does_not_use_up_the_header_position() {
        let mut d = csv(None, None);
        let (out, rejects) = decode_all(&mut d, &["", "x,y", "1,2"]);
        assert!(rejects.is_empty());
        assert_eq!(out, [1.0, 2.0]);
    }

    #[test]
    fn first_non_numeric_line_is_a_consumed_header() {
        let mut d = csv(None, None);
        let (out, rejects) = decode_all(&mut d, &["x, y", "1,2", "3,4"]);
        assert!(rejects.is_empty());
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn a_later_non_numeric_line_is_a_parse_reject() {
        let mut d = csv(None, None);
        let (out, rejects) = decode_all(&mut d, &["1,2", "x,y", "3,oops"]);
        assert_eq!(out, [1.0, 2.0]);
        assert_eq!(reasons(&rejects), [(RejectReason::Parse, None); 2]);
        assert_eq!(rejects[0].detail, "column 1 is not a number: \"x\"");
        assert_eq!(rejects[1].detail, "column 2 is not a number: \"oops\"");
    }

    #[test]
    fn a_partly_numeric_first_line_is_a_bad_point_not_a_header() {
        let mut d = csv(None, None);
        let (out, rejects) = decode_all(&mut d, &["1,2,abc", "3,4,5"]);
        assert_eq!(out, [3.0, 4.0, 5.0]);
        assert_eq!(reasons(&rejects), [(RejectReason::Parse, None)]);
    }

    #[test]
    fn fields_pick_columns_by_name_and_skip_text_columns() {
        let mut d = csv(None, Some(&["x", "y"]));
        let lines = ["id,label,y,x", "7,cat,2.5,1.5", "8,\"a, b\",-1,3e2"];
        let (out, rejects) = decode_all(&mut d, &lines);
        assert!(rejects.is_empty(), "{rejects:?}");
        assert_eq!(out, [1.5, 2.5, 300.0, -1.0]);
    }

    #[test]
    fn quoted_header_and_byte_order_mark_are_understood() {
        let mut d = csv(None, Some(&["b"]));
        let (out, rejects) = decode_all(&mut d, &["\u{feff}\"a\",\"b\"", "1,2"]);
        assert!(rejects.is_empty(), "{rejects:?}");
        assert_eq!(out, [2.0]);
    }

    #[test]
    fn a_field_missing_from_the_header_is_named() {
        let mut d = csv(None, Some(&["x", "z"]));
        let (out, rejects) = decode_all(&mut d, &["x,y", "1,2", "3,4"]);
        assert!(out.is_empty());
        assert_eq!(reasons(&rejects), [(RejectReason::MissingField, None); 3]);
        assert_eq!(
            rejects[0].detail,
            "field \"z\" is not a column of the csv header (columns: \"x\", \"y\")"
        );
    }

    #[test]
    fn fields_without_a_header_reject_every_row() {
        let mut d = csv(None, Some(&["x", "y"]));
        let (out, rejects) = decode_all(&mut d, &["1,2", "3,4"]);
        assert!(out.is_empty());
        assert_eq!(reasons(&rejects), [(RejectReason::MissingField, None); 2]);
        assert!(rejects[0].detail.contains("no header line"));
    }

    #[test]
    fn rows_must_have_the_header_column_count() {
        let mut d = csv(None, None);
        let (out, rejects) = decode_all(&mut d, &["a,b,c", "1,2", "1,2,3", "1,2,3,4"]);
        assert_eq!(out, [1.0, 2.0, 3.0]);
        assert_eq!(reasons(&rejects), [(RejectReason::Dimension, None); 2]);
        assert_eq!(rejects[0].detail, "row has 2 columns, the header has 3");
    }

    #[test]
    fn wrong_dimension_is_rejected_against_configured_or_learned_dim() {
        let mut configured = csv(Some(2), None);
        let (out, rejects) = decode_all(&mut configured, &["1,2,3", "4,5"]);
        assert_eq!(out, [4.0, 5.0]);
        assert_eq!(rejects[0].detail, "point has 3 coordinates, expected 2");

        let mut learned = csv(None, None);
        let (out, rejects) = decode_all(&mut learned, &["1,2,3", "4,5", "6"]);
        assert_eq!(out, [1.0, 2.0, 3.0]);
        assert_eq!(reasons(&rejects), [(RejectReason::Dimension, None); 2]);
        assert_eq!(rejects[1].detail, "point has 1 coordinate, expected 3");
    }

    #[test]
    fn non_finite_text_is_rejected_not_accepted() {
        let mut d = csv(None, None);
        let lines = ["nan,1", "1,inf", "-Infinity,2", "NaN,3", "1e999,4", "5,6"];
        let (out, rejects) = decode_all(&mut d, &lines);
        assert_eq!(out, [5.0, 6.0]);
        assert_eq!(reasons(&rejects), [(RejectReason::NonFinite, None); 5]);
        assert_eq!(rejects[0].detail, "coordinate 1 is NaN");
        assert_eq!(rejects[1].detail, "coordinate 2 is infinite");
    }

    #[test]
    fn a_rejected_first_point_does_not_fix_the_dimension() {
        let mut d = csv(None, None);
        let (out, _) = decode_all(&mut d, &["nan,1", "1,2,3"]);
        assert_eq!(out, [1.0, 2.0, 3.0]);
        assert_eq!(d.dim(), Some(3));
    }

    #[test]
    fn empty_fields_are_named() {
        let mut d = csv(None, None);
        let (_, rejects) = decode_all(&mut d, &["1,,3"]);
        assert_eq!(rejects[0].detail, "column 2 is empty");
        let mut picked = csv(None, Some(&["b"]));
        let (_, rejects) = decode_all(&mut picked, &["a,b", "1,"]);
        assert_eq!(rejects[0].detail, "column \"b\" is empty");
    }

    #[test]
    fn reset_header_expects_a_header_again() {
        let mut d = csv(None, Some(&["v"]));
        let (out, rejects) = decode_all(&mut d, &["v", "1"]);
        assert_eq!((out, rejects.len()), (vec![1.0], 0));
        d.reset_header();
        let (out, rejects) = decode_all(&mut d, &["w,v", "5,2"]);
        assert_eq!((out, rejects.len()), (vec![2.0], 0));
    }

    #[test]
    fn prime_header_takes_the_header_without_decoding_a_point() {
        let mut d = csv(None, Some(&["y"]));
        assert!(d.prime_header(b"x,y\r\n").is_ok());
        let (out, rejects) = decode_all(&mut d, &["1,2", "3,4"]);
        assert_eq!((out, rejects.len()), (vec![2.0, 4.0], 0));

        let mut no_header = csv(None, None);
        assert!(no_header.prime_header(b"1,2").is_ok());
        let (out, rejects) = decode_all(&mut no_header, &["x,y", "3,4"]);
        assert_eq!(out, [3.0, 4.0]);
        assert_eq!(reasons(&rejects), [(RejectReason::Parse, None)]);

        let mut unusable = csv(None, Some(&["z"]));
        let reject = unusable.prime_header(b"x,y").unwrap_err();
        assert_eq!(reject.reason, RejectReason::MissingField);
    }

    #[test]
    fn a_multi_line_record_yields_several_points() {
        let mut d = csv(None, None);
        let (out, rejects) = decode_all(&mut d, &["1,2\r\n3,4\n\nx,y\n"]);
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(reasons(&rejects), [(RejectReason::Parse, Some(3))]);
    }
}

mod json {
    use super::*;

    fn json(dim: Option<usize>, fields: Option<&[&str]>) -> Decoder {
        decoder(Format::Json, dim, fields)
    }

    #[test]
    fn a_point_and_a_block() {
        let mut d = json(None, None);
        let (out, rejects) = decode_all(&mut d, &["[1.5, -2]", " [[3, 4e1], [5, 6]] \r\n"]);
        assert!(rejects.is_empty(), "{rejects:?}");
        assert_eq!(out, [1.5, -2.0, 3.0, 40.0, 5.0, 6.0]);
    }

    #[test]
    fn bad_block_elements_are_rejected_one_by_one() {
        let mut d = json(None, None);
        let record = r#"[[1,2],[1,"x"],[1,2,3],null,[5,6],[[7],8]]"#;
        let (out, rejects) = decode_all(&mut d, &[record]);
        assert_eq!(out, [1.0, 2.0, 5.0, 6.0]);
        assert_eq!(
            reasons(&rejects),
            [
                (RejectReason::Parse, Some(1)),
                (RejectReason::Dimension, Some(2)),
                (RejectReason::Parse, Some(3)),
                (RejectReason::Parse, Some(5)),
            ]
        );
        assert_eq!(rejects[0].detail, "coordinate 2 is a string, not a number");
        assert_eq!(
            rejects[2].detail,
            "expected a point (an array of numbers or an object), found null"
        );
        assert_eq!(rejects[3].detail, "coordinate 1 is an array, not a number");
    }

    #[test]
    fn a_record_that_does_not_parse_is_one_reject() {
        let mut d = json(None, None);
        let records = [
            "[1, 2",
            "{\"a\": }",
            "[NaN, 1]",
            "[1e999, 2]",
            "[1,2] [3,4]",
        ];
        let (out, rejects) = decode_all(&mut d, &records);
        assert!(out.is_empty());
        assert_eq!(reasons(&rejects), [(RejectReason::Parse, None); 5]);
        assert!(
            rejects[0].detail.starts_with("invalid JSON at column 5: "),
            "{}",
            rejects[0].detail
        );
        assert!(!rejects[0].detail.contains("line"), "{}", rejects[0].detail);
    }

    #[test]
    fn scalars_and_nested_junk_are_rejected() {
        let mut d = json(None, None);
        let records = [
            "\"hello\"",
            "3",
            "null",
            "true",
            "[1, [2]]",
            "[1, {}]",
            "[true]",
        ];
        let (out, rejects) = decode_all(&mut d, &records);
        assert!(out.is_empty());
        assert_eq!(reasons(&rejects), [(RejectReason::Parse, None); 7]);
        assert_eq!(
            rejects[0].detail,
            "expected a point or a block of points, found a string"
        );
        assert_eq!(rejects[4].detail, "coordinate 2 is an array, not a number");
    }

    #[test]
    fn objects_need_fields_and_give_them_in_order() {
        let mut without = json(None, None);
        let (_, rejects) = decode_all(&mut without, &[r#"{"a": 1}"#]);
        assert_eq!(reasons(&rejects), [(RejectReason::FieldsNeeded, None)]);

        let mut d = json(None, Some(&["a", "b"]));
        let records = [
            r#"{"b": 2, "ts": "2024-01-01", "a": 1}"#,
            r#"{"a": 3}"#,
            r#"{"a": "3", "b": 4}"#,
            r#"{"a": null, "b": 4}"#,
        ];
        let (out, rejects) = decode_all(&mut d, &records);
        assert_eq!(out, [1.0, 2.0]);
        assert_eq!(
            reasons(&rejects),
            [
                (RejectReason::MissingField, None),
                (RejectReason::Parse, None),
                (RejectReason::Parse, None),
            ]
        );
        assert_eq!(rejects[0].detail, "field \"b\" is missing");
        assert_eq!(rejects[1].detail, "field \"a\" is a string, not a number");
    }

    #[test]
    fn a_block_may_hold_objects() {
        let mut d = json(None, Some(&["y", "x"]));
        let record = r#"[{"x": 1, "y": 2}, {"x": 3}, {"x": 5, "y": 6}]"#;
        let (out, rejects) = decode_all(&mut d, &[record]);
        assert_eq!(out, [2.0, 1.0, 6.0, 5.0]);
        assert_eq!(reasons(&rejects), [(RejectReason::MissingField, Some(1))]);
    }

    #[test]
    fn empty_array_is_an_empty_block_and_empty_point_is_rejected() {
        let mut d = json(None, None);
        let (out, rejects) = decode_all(&mut d, &["[]", "", "  "]);
        assert!(out.is_empty() && rejects.is_empty());
        let (_, rejects) = decode_all(&mut d, &["[[]]"]);
        assert_eq!(reasons(&rejects), [(RejectReason::Dimension, Some(0))]);
    }

    #[test]
    fn dimension_is_learned_from_the_first_accepted_point() {
        let mut d = json(None, None);
        let (out, rejects) = decode_all(&mut d, &["[[1, \"a\", 2], [1, 2], [1, 2, 3]]", "[4]"]);
        assert_eq!(out, [1.0, 2.0]);
        assert_eq!(d.dim(), Some(2));
        assert_eq!(
            reasons(&rejects),
            [
                (RejectReason::Parse, Some(0)),
                (RejectReason::Dimension, Some(2)),
                (RejectReason::Dimension, None),
            ]
        );
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        let mut d = json(None, None);
        let (out, rejects) = decode_all(&mut d, &["\u{feff}[1, 2]"]);
        assert!(rejects.is_empty());
        assert_eq!(out, [1.0, 2.0]);
    }
}
