//! Reading and decoding model files with memory bounded by their size.
//!
//! A crafted file can declare any length. Two defences:
//! - [`read_model`] reads at most [`MAX_MODEL_BYTES`], and stops at once on a stream
//!   that does not start like a model (`gmm-stream inspect /dev/zero` reads a few
//!   bytes, not gigabytes); a binary file's declared payload length is checked
//!   against the maximum before the payload is read.
//! - [`decode_bincode`] gives bincode a limit on what containers may claim before
//!   they are read: [`CLAIM_PER_BYTE`] times the payload, rounded up to a power of
//!   two. A length field of 2⁴⁰ then fails as "limit exceeded" instead of asking
//!   the allocator for a terabyte.

use std::io::{self, Read};

use bincode::config::{self, Config};
use bincode::error::DecodeError;
use bincode::Decode;

/// The largest model file or snapshot read (2 GiB, either form); larger ones are
/// refused before they are read.
pub const MAX_MODEL_BYTES: u64 = 2 << 30;

/// How many bytes of memory containers may claim per byte of payload. Decoded
/// values never need more: the largest ratio is a list of empty lists, 24 bytes
/// (a `Vec`) per byte (its length).
const CLAIM_PER_BYTE: usize = 32;

/// Why a model could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the file is over {max} bytes, the largest model read", max = MAX_MODEL_BYTES)]
    TooLarge,
    #[error("not a gmm-stream model file (neither JSON nor the binary magic)")]
    NotAModel,
}

/// Reads a model file or snapshot from `input`, whole, refusing early what cannot
/// be one: a first non-blank byte that is neither `{` nor the binary magic's, a
/// binary header declaring a payload over the maximum, or more than
/// [`MAX_MODEL_BYTES`] in all.
pub fn read_model(input: impl Read) -> Result<Vec<u8>, ReadModelError> {
    read_at_most(input, MAX_MODEL_BYTES)
}

fn read_at_most(mut input: impl Read, max: u64) -> Result<Vec<u8>, ReadModelError> {
    let mut bytes = Vec::with_capacity(8192);
    // Blank space and the first significant byte: what form is this?
    let first = loop {
        let start = bytes.len();
        let n = (&mut input)
            .take(8192)
            .read_to_end(&mut bytes)
            .map_err(ReadModelError::Io)?;
        if let Some(b) = bytes[start..].iter().find(|b| !b.is_ascii_whitespace()) {
            break *b;
        }
        if n == 0 {
            return Ok(bytes);
        }
        if bytes.len() as u64 > max {
            return Err(ReadModelError::TooLarge);
        }
    };
    let limit = match first {
        b'{' => max,
        b if b == crate::model_file::MAGIC[0] => binary_length(&mut input, &mut bytes, max)?,
        _ => return Err(ReadModelError::NotAModel),
    };
    let have = bytes.len() as u64;
    if have > limit {
        return Err(ReadModelError::TooLarge);
    }
    // One byte more than allowed tells a file that is too long.
    (&mut input)
        .take(limit - have + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadModelError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadModelError::TooLarge);
    }
    Ok(bytes)
}

/// The whole length a binary model's header declares (the header is read into
/// `bytes` first). A header that is not a model's leaves the length to the
/// decoder's own checks, within the maximum.
fn binary_length(
    input: &mut impl Read,
    bytes: &mut Vec<u8>,
    max: u64,
) -> Result<u64, ReadModelError> {
    let header = crate::model_file::HEADER_LEN;
    if bytes.len() < header {
        let missing = (header - bytes.len()) as u64;
        input.take(missing).read_to_end(bytes)?;
    }
    match crate::model_file::declared_length(bytes) {
        Some(total) if total > max => Err(ReadModelError::TooLarge),
        // Not a multiple of anything: a longer file is refused as such by the
        // decoder, which names both lengths.
        Some(total) => Ok(total.max(bytes.len() as u64)),
        None => Ok(max),
    }
}

/// `bincode::decode_from_slice` with the standard configuration and a limit on
/// container claims proportional to `payload.len()` (see the module documentation).
pub(crate) fn decode_bincode<T: Decode<()>>(payload: &[u8]) -> Result<(T, usize), DecodeError> {
    let claims = payload.len().saturating_mul(CLAIM_PER_BYTE);
    macro_rules! first_limit_above {
        ($($bits:literal)*) => {$(
            if claims <= 1usize << $bits {
                let config = config::standard().with_limit::<{ 1usize << $bits }>();
                return decode_with(payload, config);
            }
        )*};
    }
    // From 1 MiB, so small files share one instantiation, to 32 × the maximum.
    first_limit_above!(20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36);
    Err(DecodeError::LimitExceeded)
}

fn decode_with<T: Decode<()>, C: Config>(
    payload: &[u8],
    config: C,
) -> Result<(T, usize), DecodeError> {
    bincode::decode_from_slice(payload, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_that_is_not_a_model_is_refused_after_one_read() {
        let zeros = io::repeat(0).take(u64::MAX);
        assert!(matches!(read_model(zeros), Err(ReadModelError::NotAModel)));
        let spaces_then_junk = io::repeat(b' ').take(100_000).chain(&b"x"[..]);
        assert!(matches!(
            read_model(spaces_then_junk),
            Err(ReadModelError::NotAModel)
        ));
        assert_eq!(read_model(&b"  \n"[..]).expect("blank"), b"  \n");
    }

    #[test]
    fn a_binary_header_declaring_too_much_is_refused_before_the_payload() {
        let mut header = crate::model_file::MAGIC.to_vec();
        header.extend_from_slice(&1u32.to_le_bytes());
        header.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
        let endless = header.as_slice().chain(io::repeat(7));
        assert!(matches!(read_model(endless), Err(ReadModelError::TooLarge)));
    }

    #[test]
    fn a_json_stream_longer_than_the_maximum_is_refused() {
        // `{` then an endless run of spaces: read up to the maximum, not forever.
        let endless = (&b"{"[..]).chain(io::repeat(b' '));
        assert!(matches!(
            read_at_most(endless, 1 << 20),
            Err(ReadModelError::TooLarge)
        ));
        let exact = (&b"{"[..]).chain(io::repeat(b' ').take((1 << 20) - 1));
        assert_eq!(read_at_most(exact, 1 << 20).expect("fits").len(), 1 << 20);
    }

    #[test]
    fn a_huge_declared_length_inside_the_payload_fails_without_allocating_it() {
        // A Vec<f64> claiming 2^40 elements in a 10-byte payload.
        let mut payload = vec![0xFD];
        payload.extend_from_slice(&(1u64 << 40).to_le_bytes());
        payload.push(0);
        let result: Result<(Vec<f64>, usize), _> = decode_bincode(&payload);
        assert!(
            matches!(result, Err(DecodeError::LimitExceeded)),
            "{result:?}"
        );
        let text: Result<(String, usize), _> = decode_bincode(&payload);
        assert!(text.is_err());
    }
}

#[cfg(test)]
mod crafted {
    use crate::model_file::{FormatError, ModelFile, HEADER_LEN, MAGIC};

    /// A binary model file around `payload`, with a valid length and CRC.
    fn wrap(payload: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(payload);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    #[test]
    fn a_valid_crc_over_a_terabyte_length_field_is_a_decode_error() {
        // The payload starts with `format`, a string: claim 2^40 bytes for it.
        let mut payload = vec![0xFD];
        payload.extend_from_slice(&(1u64 << 40).to_le_bytes());
        payload.extend_from_slice(b"gmm-stream.model");
        let file = wrap(&payload);
        assert_eq!(file.len(), HEADER_LEN + payload.len() + 4);
        let err = ModelFile::from_bytes(&file).expect_err("refused");
        assert!(matches!(err, FormatError::Decode(_)), "{err}");
    }
}
