//! The records of the state topic, through which the members of a consumer group
//! share one model (docs/reference.md, "State records").
//!
//! Every record is one value: the 16-byte magic `GMM-STREAM-STATE`, the format version
//! (u32 LE), the kind (u8), the payload length (u64 LE), the payload, and a CRC-32
//! (u32 LE) of every byte before it. The payload starts with who wrote it (consumer
//! group, member, time) and the shape of its model (covariance type, K, d, inference,
//! decay clock), which fixes how many numbers follow: a record of another shape is
//! refused by name rather than misread, and decoding never allocates more than the
//! record's own size. A record is read whole or not at all.
//!
//! Keys (what a compacted topic keeps the newest value of): `partition/<topic>/<n>`
//! for a partition's state, `structure` for the group's structure, `sample/<member>`
//! and `fence/<member>` for a member's sample and read fences.

mod values;
mod wire;

#[cfg(test)]
mod tests;

use thiserror::Error;

use gmm_model::group::{PartitionKey, PartitionState, Sample, Structure};
use gmm_model::{CovarianceType, HalfLifeUnit, Inference, ModelError, OnlineSettings, Schedule};

use wire::{malformed, Reader, Writer};

pub const STATE_MAGIC: &[u8; 16] = b"GMM-STREAM-STATE";
pub const STATE_VERSION: u32 = 1;
const HEADER_LEN: usize = 16 + 4 + 1 + 8;
const CHECKSUM_LEN: usize = 4;
/// No record is larger (a sanity bound: Kafka's own limits are far lower by default).
pub const MAX_STATE_RECORD_BYTES: usize = 256 << 20;

/// The key of the structure record.
pub const STRUCTURE_KEY: &str = "structure";

pub fn partition_key(key: &PartitionKey) -> String {
    format!("partition/{}/{}", key.topic, key.partition)
}

pub fn sample_key(member: &str) -> String {
    format!("sample/{member}")
}

pub fn fence_key(member: &str) -> String {
    format!("fence/{member}")
}

#[derive(Debug, Error)]
pub enum StateRecordError {
    #[error("not a gmm-stream state record")]
    NotAStateRecord,
    #[error("state record format version {0} is not supported (this build reads version {STATE_VERSION})")]
    UnsupportedVersion(u32),
    #[error("the state record is truncated ({got} bytes, expected {expected})")]
    Truncated { expected: u64, got: u64 },
    #[error("the state record is corrupted (checksum mismatch)")]
    Checksum,
    #[error("the state record is malformed: {0}")]
    Malformed(String),
    #[error("the state record holds invalid values: {0}")]
    Invalid(#[from] ModelError),
}

/// The shape of a model: what every member of a group must agree on.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    pub covariance_type: CovarianceType,
    pub n_components: usize,
    pub n_features: usize,
    pub inference: Inference,
    pub unit: HalfLifeUnit,
    /// None: nothing is forgotten.
    pub half_life: Option<f64>,
}

impl Shape {
    /// The shape of a member running `settings` on points of `n_features` (0 while
    /// not known).
    pub fn of(settings: &OnlineSettings, n_features: usize) -> Self {
        let (unit, half_life) = match settings.schedule {
            Schedule::Decay { half_life, unit } => (unit, half_life),
            Schedule::Stepwise { .. } => (HalfLifeUnit::Batches, None),
        };
        Self {
            covariance_type: settings.covariance_type,
            n_components: settings.n_components,
            n_features,
            inference: settings.inference,
            unit,
            half_life,
        }
    }

    /// Why a record of this shape cannot serve a member of shape `member` (whose
    /// `n_features` is 0 while unknown), if it cannot.
    pub fn mismatch(&self, member: &Shape) -> Option<String> {
        let mut why = Vec::new();
        if self.covariance_type != member.covariance_type {
            why.push(format!(
                "covariance type {} (this member: {})",
                self.covariance_type, member.covariance_type
            ));
        }
        if self.n_components != member.n_components {
            why.push(format!(
                "{} components (this member: {})",
                self.n_components, member.n_components
            ));
        }
        if member.n_features != 0 && self.n_features != member.n_features {
            why.push(format!(
                "{} features (this member: {})",
                self.n_features, member.n_features
            ));
        }
        if self.inference != member.inference {
            why.push(format!(
                "inference {} (this member: {})",
                self.inference, member.inference
            ));
        }
        if self.unit != member.unit || self.half_life != member.half_life {
            let show = |s: &Shape| match s.half_life {
                Some(h) => format!("{h} {}", s.unit),
                None => "none".into(),
            };
            why.push(format!(
                "half-life {} (this member: {})",
                show(self),
                show(member)
            ));
        }
        (!why.is_empty()).then(|| why.join(", "))
    }

    fn write(&self, w: &mut Writer) {
        w.u8(match self.covariance_type {
            CovarianceType::Full => 0,
            CovarianceType::Diag => 1,
            CovarianceType::Spherical => 2,
            CovarianceType::Tied => 3,
        });
        w.u32(self.n_components as u32);
        w.u32(self.n_features as u32);
        w.u8(match self.inference {
            Inference::Em => 0,
            Inference::Variational => 1,
        });
        w.u8(match self.unit {
            HalfLifeUnit::Points => 0,
            HalfLifeUnit::Batches => 1,
            HalfLifeUnit::Seconds => 2,
        });
        w.f64(self.half_life.unwrap_or(f64::NAN));
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, StateRecordError> {
        let covariance_type = match r.u8()? {
            0 => CovarianceType::Full,
            1 => CovarianceType::Diag,
            2 => CovarianceType::Spherical,
            3 => CovarianceType::Tied,
            t => return Err(malformed(format!("{t} is not a covariance type"))),
        };
        let n_components = r.u32()? as usize;
        let n_features = r.u32()? as usize;
        let inference = match r.u8()? {
            0 => Inference::Em,
            1 => Inference::Variational,
            t => return Err(malformed(format!("{t} is not an inference"))),
        };
        let unit = match r.u8()? {
            0 => HalfLifeUnit::Points,
            1 => HalfLifeUnit::Batches,
            2 => HalfLifeUnit::Seconds,
            t => return Err(malformed(format!("{t} is not a half-life unit"))),
        };
        let half_life = r.f64()?;
        let half_life = (!half_life.is_nan()).then_some(half_life);
        if n_components == 0 {
            return Err(malformed("a model of 0 components".into()));
        }
        Ok(Self {
            covariance_type,
            n_components,
            n_features,
            inference,
            unit,
            half_life,
        })
    }
}

/// Who wrote a record, when, and for what model.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordMeta {
    /// The consumer group (one state topic serves one group).
    pub group: String,
    /// The member that published it.
    pub publisher: String,
    /// Milliseconds since the Unix epoch, when published.
    pub published_ms: u64,
    pub shape: Shape,
}

/// What a record holds.
#[derive(Clone, Debug, PartialEq)]
pub enum StateValue {
    Partition(PartitionState),
    Structure(Box<Structure>),
    Sample(Sample),
    /// A marker a member writes and reads back to know it has read the log up to then.
    Fence {
        nonce: u64,
    },
}

impl StateValue {
    fn kind(&self) -> u8 {
        match self {
            Self::Partition(_) => 1,
            Self::Structure(_) => 2,
            Self::Sample(_) => 3,
            Self::Fence { .. } => 4,
        }
    }
}

/// One record of the state topic.
#[derive(Clone, Debug, PartialEq)]
pub struct StateRecord {
    pub meta: RecordMeta,
    pub value: StateValue,
}

impl StateRecord {
    /// A record of `value` by member `publisher` of consumer `group`, for the model of
    /// `settings` (the dimension is the value's own).
    pub fn new(
        group: &str,
        publisher: &str,
        published_ms: u64,
        settings: &OnlineSettings,
        value: StateValue,
    ) -> Self {
        let d = match &value {
            StateValue::Partition(s) => s.stats.n_features(),
            StateValue::Structure(s) => s.model.n_features(),
            StateValue::Sample(s) => s.n_features,
            StateValue::Fence { .. } => 0,
        };
        Self {
            meta: RecordMeta {
                group: group.to_string(),
                publisher: publisher.to_string(),
                published_ms,
                shape: Shape::of(settings, d),
            },
            value,
        }
    }

    /// The key the record is published under.
    pub fn key(&self) -> String {
        match &self.value {
            StateValue::Partition(s) => partition_key(&s.key),
            StateValue::Structure(_) => STRUCTURE_KEY.to_string(),
            StateValue::Sample(s) => sample_key(&s.member),
            StateValue::Fence { .. } => fence_key(&self.meta.publisher),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.str(&self.meta.group);
        w.str(&self.meta.publisher);
        w.u64(self.meta.published_ms);
        self.meta.shape.write(&mut w);
        match &self.value {
            StateValue::Partition(s) => values::write_partition(&mut w, s),
            StateValue::Structure(s) => values::write_structure(&mut w, s),
            StateValue::Sample(s) => values::write_sample(&mut w, s),
            StateValue::Fence { nonce } => w.u64(*nonce),
        }
        let payload = w.bytes;
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + CHECKSUM_LEN);
        out.extend_from_slice(STATE_MAGIC);
        out.extend_from_slice(&STATE_VERSION.to_le_bytes());
        out.push(self.value.kind());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&payload);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads a record, checking its framing, checksum, shape and every value.
    pub fn decode(bytes: &[u8]) -> Result<Self, StateRecordError> {
        if !bytes.starts_with(STATE_MAGIC) {
            return Err(StateRecordError::NotAStateRecord);
        }
        let got = bytes.len() as u64;
        let header = bytes.get(..HEADER_LEN).ok_or(StateRecordError::Truncated {
            expected: (HEADER_LEN + CHECKSUM_LEN) as u64,
            got,
        })?;
        let mut h = Reader::new(&header[16..]);
        let version = h.u32()?;
        if version != STATE_VERSION {
            return Err(StateRecordError::UnsupportedVersion(version));
        }
        let kind = h.u8()?;
        let payload_len = h.u64()?;
        let expected = ((HEADER_LEN + CHECKSUM_LEN) as u64).saturating_add(payload_len);
        if got != expected || got > MAX_STATE_RECORD_BYTES as u64 {
            return Err(StateRecordError::Truncated { expected, got });
        }
        let (body, crc) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().unwrap_or_default()) {
            return Err(StateRecordError::Checksum);
        }
        let mut r = Reader::new(&body[HEADER_LEN..]);
        let group = r.str()?;
        let publisher = r.str()?;
        let published_ms = r.u64()?;
        let shape = Shape::read(&mut r)?;
        let value = match kind {
            1 => StateValue::Partition(values::read_partition(&mut r, &shape)?),
            2 => StateValue::Structure(Box::new(values::read_structure(&mut r, &shape)?)),
            3 => StateValue::Sample(values::read_sample(&mut r, &shape)?),
            4 => StateValue::Fence { nonce: r.u64()? },
            k => return Err(malformed(format!("{k} is not a record kind"))),
        };
        r.finish()?;
        Ok(Self {
            meta: RecordMeta {
                group,
                publisher,
                published_ms,
                shape,
            },
            value,
        })
    }
}
