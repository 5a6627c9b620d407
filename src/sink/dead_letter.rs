//! The dead-letter file: one NDJSON line per rejected point or record, so that bad
//! input is kept (with the reason) rather than lost, and never stops the daemon.
//!
//! ```text
//! {"reason":"dimension","detail":"point has 3 coordinates, expected 2",
//!  "source":"file:points.csv","position":{"offset":120,"line":7},"index":2,
//!  "payload":"1,2,3"}
//! ```
//!
//! The payload is the original bytes as text when they are UTF-8, else base64 under
//! `payload_base64`. Payloads longer than [`MAX_PAYLOAD_BYTES`] are cut, with
//! `"payload_truncated": true` and their full size in `payload_bytes`, so one huge
//! bad record cannot swamp the disk. (Dead letters to Kafka are produced elsewhere,
//! from [`DeadLetter::write_json`].)

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

use gmm_io::{Reject, RejectReason};

use super::SinkError;

/// Longest payload kept whole in a dead letter.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// Where a rejected record was in its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum DeadLetterPosition<'a> {
    /// A file or stdin: the record's byte offset, and its 1-based line when known.
    Stream {
        offset: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        line: Option<u64>,
    },
    Kafka {
        topic: &'a str,
        partition: i32,
        offset: i64,
    },
}

/// One rejected point or record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeadLetter<'a> {
    pub reason: RejectReason,
    pub detail: &'a str,
    /// Which input: e.g. `file:points.csv`, `stdin`, `kafka`.
    pub source: &'a str,
    pub position: Option<DeadLetterPosition<'a>>,
    /// The point's index within a record holding several ([`Reject::index`]).
    pub index: Option<usize>,
    /// The record's original bytes.
    pub payload: &'a [u8],
}

impl<'a> DeadLetter<'a> {
    /// The dead letter of a decoder's rejection.
    pub fn from_reject(
        reject: &'a Reject,
        source: &'a str,
        position: Option<DeadLetterPosition<'a>>,
        payload: &'a [u8],
    ) -> Self {
        Self {
            reason: reject.reason,
            detail: &reject.detail,
            source,
            position,
            index: reject.index,
            payload,
        }
    }

    /// Appends the dead letter's JSON (no newline) to `out`, e.g. for a Kafka message.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Strings, integers and bools into a Vec: serialization cannot fail.
        let _ = serde_json::to_writer(out, self);
    }
}

impl Serialize for DeadLetter<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("DeadLetter", 8)?;
        s.serialize_field("reason", self.reason.as_str())?;
        s.serialize_field("detail", self.detail)?;
        s.serialize_field("source", self.source)?;
        if let Some(position) = &self.position {
            s.serialize_field("position", position)?;
        }
        if let Some(index) = self.index {
            s.serialize_field("index", &index)?;
        }
        let (kept, truncated) = payload_prefix(self.payload);
        match std::str::from_utf8(kept) {
            Ok(text) => s.serialize_field("payload", text)?,
            Err(_) => s.serialize_field("payload_base64", &BASE64.encode(kept))?,
        }
        if truncated {
            s.serialize_field("payload_truncated", &true)?;
            s.serialize_field("payload_bytes", &self.payload.len())?;
        }
        s.end()
    }
}

/// The part of a payload kept, and whether it was cut. A cut inside a UTF-8
/// character moves back to the character's start, so valid text stays text.
fn payload_prefix(payload: &[u8]) -> (&[u8], bool) {
    if payload.len() <= MAX_PAYLOAD_BYTES {
        return (payload, false);
    }
    let cut = &payload[..MAX_PAYLOAD_BYTES];
    match std::str::from_utf8(cut) {
        // An incomplete last character: the text is valid up to it.
        Err(e) if e.error_len().is_none() => (&cut[..e.valid_up_to()], true),
        _ => (cut, true),
    }
}

/// Appends dead letters to a file, buffered.
pub struct DeadLetterWriter {
    out: BufWriter<std::fs::File>,
    path: PathBuf,
    written: u64,
}

impl DeadLetterWriter {
    /// Appends to `path`, creating it (not its directory) when missing; a torn
    /// last line left by a killed run is cut first.
    pub fn append(path: &Path) -> Result<Self, SinkError> {
        let file = super::open_append_whole_lines(path, "dead-letter file")?;
        Ok(Self {
            out: BufWriter::new(file),
            path: path.to_path_buf(),
            written: 0,
        })
    }

    pub fn write(&mut self, letter: &DeadLetter<'_>) -> Result<(), SinkError> {
        let written = serde_json::to_writer(&mut self.out, letter)
            .map_err(io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
        written.map_err(|e| self.error(e))?;
        self.written += 1;
        Ok(())
    }

    /// Hands everything written so far to the OS.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|e| self.error(e))
    }

    /// Dead letters written since the writer was made.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn error(&self, source: io::Error) -> SinkError {
        SinkError::Io {
            action: format!("cannot write the dead-letter file {}", self.path.display()),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn letter(payload: &[u8]) -> DeadLetter<'_> {
        DeadLetter {
            reason: RejectReason::NonFinite,
            detail: "coordinate 2 is not finite",
            source: "file:points.csv",
            position: Some(DeadLetterPosition::Stream {
                offset: 120,
                line: Some(7),
            }),
            index: None,
            payload,
        }
    }

    fn parse(letter: &DeadLetter<'_>) -> Value {
        let mut out = Vec::new();
        letter.write_json(&mut out);
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn text_payloads_stay_text_with_reason_and_position() {
        let v = parse(&letter(b"1.0,nan,\"quoted\"\t\x01"));
        assert_eq!(v["reason"], "non_finite");
        assert_eq!(v["detail"], "coordinate 2 is not finite");
        assert_eq!(v["source"], "file:points.csv");
        assert_eq!(v["position"]["offset"], 120);
        assert_eq!(v["position"]["line"], 7);
        assert_eq!(v["payload"], "1.0,nan,\"quoted\"\t\u{1}");
        assert!(v.get("payload_base64").is_none() && v.get("index").is_none());
    }

    #[test]
    fn other_bytes_go_to_base64_and_kafka_positions_are_objects() {
        let bytes = [0xff, 0x00, 0xfe, b'a', 0xc3];
        let reject = Reject {
            reason: RejectReason::Parse,
            detail: "not a number".into(),
            index: Some(4),
        };
        let position = DeadLetterPosition::Kafka {
            topic: "points",
            partition: 2,
            offset: 99,
        };
        let v = parse(&DeadLetter::from_reject(
            &reject,
            "kafka",
            Some(position),
            &bytes,
        ));
        assert_eq!(v["payload_base64"], BASE64.encode(bytes));
        assert!(v.get("payload").is_none());
        assert_eq!(v["index"], 4);
        assert_eq!(v["position"]["topic"], "points");
        assert_eq!(v["position"]["partition"], 2);
        let decoded = BASE64
            .decode(v["payload_base64"].as_str().expect("string"))
            .expect("base64");
        assert_eq!(decoded, bytes);
    }

    #[test]
    fn huge_payloads_are_cut_at_a_character_boundary() {
        // 'é' is two bytes; an odd limit would split one.
        let text = "é".repeat(MAX_PAYLOAD_BYTES);
        let v = parse(&letter(text.as_bytes()));
        let kept = v["payload"].as_str().expect("still text");
        assert!(kept.len() <= MAX_PAYLOAD_BYTES && kept.len() > MAX_PAYLOAD_BYTES - 4);
        assert_eq!(v["payload_truncated"], true);
        assert_eq!(v["payload_bytes"], text.len());
        let binary = vec![0xffu8; MAX_PAYLOAD_BYTES + 1];
        let v = parse(&letter(&binary));
        assert!(v["payload_base64"].is_string());
        assert_eq!(v["payload_truncated"], true);
    }

    #[test]
    fn the_writer_appends_lines_and_names_its_file_on_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("dead.ndjson");
        for _ in 0..2 {
            let mut w = DeadLetterWriter::append(&path).expect("open");
            w.write(&letter(b"x")).expect("write");
            w.write(&letter(&[0x80])).expect("write");
            w.flush().expect("flush");
            assert_eq!(w.written(), 2);
        }
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 4);
        for line in text.lines() {
            serde_json::from_str::<Value>(line).expect("each line is JSON");
        }
        let err = DeadLetterWriter::append(&dir.path().join("no/such/dir"))
            .err()
            .expect("missing directory");
        assert!(err.to_string().contains("no/such/dir"), "{err}");
    }
}
