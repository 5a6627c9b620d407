//! The checksum of a JSON model file or snapshot.
//!
//! The binary form ends with a CRC-32 of its bytes. A JSON snapshot carries one too,
//! as a last member `"checksum": "crc32:xxxxxxxx"`: the CRC-32 of the file's
//! content written compactly (`serde_json::to_vec` of the parsed model). Computed
//! from the content rather than the bytes, it survives re-indentation but not a
//! changed value: an edited offset or a flipped digit makes the snapshot corrupt,
//! and the daemon skips it like a corrupt binary one. Files without the member
//! (model files, older snapshots, other tools) load as before.

use serde::Deserialize;

use crate::model_file::{FormatError, ModelFile};

const PREFIX: &str = "crc32:";

/// Pretty JSON with the checksum as the last member, and a trailing newline.
pub(crate) fn to_json_with_checksum(file: &ModelFile) -> Result<Vec<u8>, FormatError> {
    let sum = content_checksum(file)?;
    let mut out = serde_json::to_vec_pretty(file)?;
    // Pretty JSON of a struct ends with "\n}".
    if out.pop() != Some(b'}') {
        return Err(FormatError::Encode(
            "the model did not encode as a JSON object".into(),
        ));
    }
    while out.last().is_some_and(u8::is_ascii_whitespace) {
        out.pop();
    }
    out.extend_from_slice(format!(",\n  \"checksum\": \"{PREFIX}{sum:08x}\"\n}}\n").as_bytes());
    Ok(out)
}

/// Checks the checksum of a JSON model that has one (`file` is `bytes` parsed).
pub(crate) fn verify(bytes: &[u8], file: &ModelFile) -> Result<(), FormatError> {
    #[derive(Deserialize)]
    struct Member {
        checksum: Option<String>,
    }
    let Member { checksum } = serde_json::from_slice(bytes)?;
    let Some(stated) = checksum else {
        return Ok(());
    };
    let stated = stated
        .strip_prefix(PREFIX)
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .ok_or(FormatError::JsonChecksum)?;
    if stated == content_checksum(file)? {
        Ok(())
    } else {
        Err(FormatError::JsonChecksum)
    }
}

fn content_checksum(file: &ModelFile) -> Result<u32, FormatError> {
    Ok(crc32fast::hash(&serde_json::to_vec(file)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_file::{EstimatorInfo, ModelFile};
    use crate::positions::Positions;
    use gmm_model::{Covariances, GaussianMixture, OnlineSettings};
    use nalgebra::{DMatrix, DVector};

    fn snapshot() -> ModelFile {
        let model = GaussianMixture::new(
            DVector::from_vec(vec![0.25, 0.75]),
            DMatrix::from_column_slice(2, 2, &[0.1, -3.0, 1e6, 0.3333333333333333]),
            Covariances::Diag(DMatrix::from_element(2, 2, 0.5)),
        )
        .expect("valid");
        let mut file = ModelFile::new(
            &model,
            EstimatorInfo::Online(OnlineSettings::new(2)),
            "2026-01-01T00:00:00Z".into(),
        );
        file.positions = Some(Positions::file(std::path::Path::new("points.csv"), 386_679));
        file
    }

    #[test]
    fn a_checked_json_snapshot_loads_and_reindented_still_does() {
        let file = snapshot();
        let json = to_json_with_checksum(&file).expect("encodes");
        let text = String::from_utf8(json.clone()).expect("utf8");
        assert!(text.trim_end().ends_with('}'), "{text}");
        assert!(text.contains("\"checksum\": \"crc32:"), "{text}");
        assert_eq!(ModelFile::from_bytes(&json).expect("loads"), file);
        let value: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
        let compact = serde_json::to_vec(&value).expect("compact");
        assert_eq!(ModelFile::from_bytes(&compact).expect("loads"), file);
    }

    #[test]
    fn an_edited_value_makes_the_snapshot_corrupt() {
        let json = to_json_with_checksum(&snapshot()).expect("encodes");
        let text = String::from_utf8(json).expect("utf8");
        // The case: a resume offset edited by hand.
        let edited = text.replace("386679", "381679");
        assert_ne!(edited, text);
        let err = ModelFile::from_bytes(edited.as_bytes()).expect_err("edited");
        assert!(matches!(err, FormatError::JsonChecksum), "{err}");
        let digit = text.replace("0.3333333333333333", "0.3333333333333334");
        assert!(matches!(
            ModelFile::from_bytes(digit.as_bytes()),
            Err(FormatError::JsonChecksum)
        ));
        let garbled = text.replace("crc32:", "crc32:zz");
        assert!(ModelFile::from_bytes(garbled.as_bytes()).is_err());
    }

    #[test]
    fn json_without_a_checksum_loads_as_before() {
        let file = snapshot();
        let plain = file.to_json().expect("encodes");
        assert!(!String::from_utf8_lossy(&plain).contains("checksum"));
        assert_eq!(ModelFile::from_bytes(&plain).expect("loads"), file);
    }
}
