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
//! bad record cannot swamp the disk.
//!
//! To a Kafka topic, a dead letter is the rejected record itself (its original
//! bytes, whole), with the reason, the detail and the source position in headers.

use std::borrow::Cow;
use std::io::{self, Write};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

use gmm_io::{Reject, RejectReason};

use super::{KafkaMessage, SinkRecord};

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

    /// The detail as the decoder words it, with the point's place in its record.
    fn full_detail(&self) -> Cow<'a, str> {
        match self.index {
            Some(index) => Cow::Owned(format!("point {}: {}", index + 1, self.detail)),
            None => Cow::Borrowed(self.detail),
        }
    }
}

impl SinkRecord for DeadLetter<'_> {
    fn write_json<W: Write>(&self, out: W) -> io::Result<()> {
        serde_json::to_writer(out, self).map_err(io::Error::from)
    }

    fn kafka_message<'m>(&'m self, _scratch: &'m mut Vec<u8>) -> KafkaMessage<'m> {
        let mut headers = vec![
            ("reason", Cow::Borrowed(self.reason.as_str())),
            ("detail", self.full_detail()),
        ];
        if let Some(DeadLetterPosition::Kafka {
            topic,
            partition,
            offset,
        }) = self.position
        {
            headers.push(("source_topic", Cow::Borrowed(topic)));
            headers.push(("source_partition", Cow::Owned(partition.to_string())));
            headers.push(("source_offset", Cow::Owned(offset.to_string())));
        }
        KafkaMessage {
            key: None,
            payload: self.payload,
            headers,
        }
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
        letter.write_json(&mut out).expect("serializes");
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
    fn to_kafka_a_dead_letter_is_its_record_with_headers() {
        let reject = Reject {
            reason: RejectReason::Dimension,
            detail: "point has 3 coordinates, expected 2".into(),
            index: Some(1),
        };
        let position = DeadLetterPosition::Kafka {
            topic: "points",
            partition: 2,
            offset: 99,
        };
        let letter = DeadLetter::from_reject(&reject, "kafka", Some(position), b"[[1,2],[1,2,3]]");
        let mut scratch = Vec::new();
        let message = letter.kafka_message(&mut scratch);
        assert_eq!(message.payload, b"[[1,2],[1,2,3]]");
        assert_eq!(message.key, None);
        let headers: Vec<(&str, &str)> = message.headers.iter().map(|(k, v)| (*k, &**v)).collect();
        assert_eq!(
            headers,
            [
                ("reason", "dimension"),
                ("detail", reject.to_string().as_str()),
                ("source_topic", "points"),
                ("source_partition", "2"),
                ("source_offset", "99"),
            ]
        );
        let from_a_file = letter_at(None);
        let message = from_a_file.kafka_message(&mut scratch);
        assert_eq!(message.headers.len(), 2, "no source position headers");
    }

    fn letter_at(position: Option<DeadLetterPosition<'static>>) -> DeadLetter<'static> {
        DeadLetter {
            position,
            ..letter(b"x")
        }
    }
}
