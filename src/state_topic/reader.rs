//! The state topic's reader: a consumer of its partition 0 from the beginning (no
//! consumer group: every member reads everything), on a thread of its own. Each record
//! is decoded and handed on in log order, and the index is kept up to date.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use gmm_io::state::{StateRecord, StateValue};

use super::index::{Indexed, StateIndex};

const POLL: Duration = Duration::from_millis(100);

/// A record of the state topic, in log order.
#[derive(Debug)]
pub enum StateEvent {
    Record {
        key: String,
        record: Box<StateRecord>,
    },
    /// A tombstone: the key's record was withdrawn.
    Deleted { key: String },
    /// A record that does not decode (or belongs to another group): skipped.
    Invalid { key: String, reason: String },
}

pub(super) struct Reader {
    pub consumer: BaseConsumer,
    pub group: String,
    pub index: Arc<StateIndex>,
    pub events: mpsc::Sender<StateEvent>,
    pub cancel: CancellationToken,
}

impl Reader {
    /// Polls until cancelled or until the receiver of the events goes away.
    pub fn run(self) {
        let mut errors = ErrorLog::default();
        while !self.cancel.is_cancelled() {
            let Some(result) = self.consumer.poll(POLL) else {
                continue;
            };
            let message = match result {
                Ok(m) => m,
                Err(error) => {
                    errors.note(&error);
                    continue;
                }
            };
            let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
            let offset = message.offset();
            let payload = message.payload();
            let event = self.event(key, payload);
            let size = payload.map_or(0, <[u8]>::len) as u64;
            self.index.update(|d| {
                d.records += 1;
                d.bytes += size;
                d.next_offset = offset + 1;
                if let StateEvent::Record { record, .. } = &event {
                    index(d, record);
                }
            });
            if self.events.blocking_send(event).is_err() {
                return;
            }
        }
    }

    fn event(&self, key: String, payload: Option<&[u8]>) -> StateEvent {
        let Some(bytes) = payload else {
            return StateEvent::Deleted { key };
        };
        match StateRecord::decode(bytes) {
            Ok(record) if record.meta.group != self.group => StateEvent::Invalid {
                key,
                reason: format!(
                    "a record of consumer group {:?} (this member's is {:?}): one state topic serves one group",
                    record.meta.group, self.group
                ),
            },
            Ok(record) => StateEvent::Record {
                key,
                record: Box::new(record),
            },
            Err(e) => StateEvent::Invalid {
                key,
                reason: e.to_string(),
            },
        }
    }
}

fn index(d: &mut super::index::IndexData, record: &StateRecord) {
    match &record.value {
        StateValue::Partition(state) => {
            d.partitions.insert(
                state.key.clone(),
                Indexed {
                    state: state.clone(),
                    publisher: record.meta.publisher.clone(),
                    published_ms: record.meta.published_ms,
                },
            );
        }
        StateValue::Fence { nonce } => {
            d.fences.insert(record.meta.publisher.clone(), *nonce);
        }
        StateValue::Structure(_) | StateValue::Sample(_) => {}
    }
}

/// Logs consumer errors at most every ten seconds: librdkafka retries by itself.
#[derive(Default)]
struct ErrorLog {
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl ErrorLog {
    fn note(&mut self, error: &rdkafka::error::KafkaError) {
        let now = std::time::Instant::now();
        if self
            .last
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
        {
            tracing::warn!(%error, suppressed = self.suppressed, "state topic reader error (retrying)");
            self.last = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
    }
}
