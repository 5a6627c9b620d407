//! Where a source stands: the position of the next unread point, saved in every
//! snapshot so that a restarted daemon reads each point once.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Kafka positions: topic → partition → next offset (the offset of the next
/// record to read, as Kafka commits it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KafkaOffsets(BTreeMap<String, BTreeMap<i32, i64>>);

impl KafkaOffsets {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next offset of one partition, if known.
    pub fn get(&self, topic: &str, partition: i32) -> Option<i64> {
        self.0.get(topic)?.get(&partition).copied()
    }

    /// Records `next` as the partition's next offset.
    pub fn set(&mut self, topic: &str, partition: i32, next: i64) {
        match self.0.get_mut(topic) {
            Some(partitions) => {
                partitions.insert(partition, next);
            }
            None => {
                self.0
                    .insert(topic.to_owned(), BTreeMap::from([(partition, next)]));
            }
        }
    }

    /// Takes every partition of `newer`, replacing what was known of it.
    pub fn extend(&mut self, newer: &KafkaOffsets) {
        for (topic, partition, next) in newer.iter() {
            self.set(topic, partition, next);
        }
    }

    /// Forgets one partition.
    pub fn remove(&mut self, topic: &str, partition: i32) -> Option<i64> {
        let partitions = self.0.get_mut(topic)?;
        let removed = partitions.remove(&partition);
        if partitions.is_empty() {
            self.0.remove(topic);
        }
        removed
    }

    /// `(topic, partition, next offset)` in topic then partition order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i32, i64)> + '_ {
        self.0.iter().flat_map(|(topic, partitions)| {
            partitions
                .iter()
                .map(move |(partition, next)| (topic.as_str(), *partition, *next))
        })
    }

    /// The partitions of one topic: partition → next offset.
    pub fn topic(&self, topic: &str) -> BTreeMap<i32, i64> {
        self.0.get(topic).cloned().unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of partitions known, over every topic.
    pub fn len(&self) -> usize {
        self.0.values().map(BTreeMap::len).sum()
    }
}

impl FromIterator<(String, i32, i64)> for KafkaOffsets {
    fn from_iter<I: IntoIterator<Item = (String, i32, i64)>>(iter: I) -> Self {
        let mut offsets = Self::new();
        for (topic, partition, next) in iter {
            offsets.set(&topic, partition, next);
        }
        offsets
    }
}

/// The source position of the next unread point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Positions {
    Kafka(KafkaOffsets),
    /// Byte offset of the next unread point of a file.
    File {
        path: String,
        offset: u64,
    },
    /// Index of the next point of the seeded generator.
    Generator {
        index: u64,
    },
    /// Points read from stdin so far (stdin cannot be resumed; informative).
    Stdin {
        points: u64,
    },
}

impl Positions {
    pub fn file(path: &Path, offset: u64) -> Self {
        Self::File {
            path: path.display().to_string(),
            offset,
        }
    }

    /// Moves a file, stdin or generator position to `next` (a byte offset, a point
    /// count, a point index). Kafka positions move by [`Positions::advance_kafka`].
    pub fn advance_to(&mut self, next: u64) {
        match self {
            Self::File { offset, .. } => *offset = next,
            Self::Stdin { points } => *points = next,
            Self::Generator { index } => *index = next,
            Self::Kafka(_) => {}
        }
    }

    /// Moves past the Kafka record at `offset`.
    pub fn advance_kafka(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Self::Kafka(offsets) = self {
            offsets.set(topic, partition, offset + 1);
        }
    }

    /// A sentence for people: where reading would resume.
    pub fn describe(&self) -> String {
        match self {
            Self::Kafka(offsets) => {
                let parts: Vec<String> = offsets
                    .iter()
                    .map(|(topic, partition, next)| format!("{topic}[{partition}]={next}"))
                    .collect();
                format!("kafka next offsets {}", parts.join(", "))
            }
            Self::File { path, offset } => format!("file {path} at byte {offset}"),
            Self::Generator { index } => format!("generator at point {index}"),
            Self::Stdin { points } => format!("stdin after {points} points"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_offsets_serialise_as_the_nested_map_of_earlier_files() {
        let mut offsets = KafkaOffsets::new();
        offsets.set("points", 3, 7);
        offsets.set("points", 0, 41);
        let json = serde_json::to_string(&Positions::Kafka(offsets.clone())).unwrap_or_default();
        assert_eq!(json, r#"{"kafka":{"points":{"0":41,"3":7}}}"#);
        let back: Positions = serde_json::from_str(&json).unwrap_or(Positions::Stdin { points: 0 });
        assert_eq!(back, Positions::Kafka(offsets));
    }

    #[test]
    fn set_extend_and_remove_keep_one_entry_per_partition() {
        let mut a: KafkaOffsets = [("t".to_string(), 0, 5), ("t".to_string(), 1, 9)]
            .into_iter()
            .collect();
        let b: KafkaOffsets = [("t".to_string(), 1, 12), ("u".to_string(), 0, 1)]
            .into_iter()
            .collect();
        a.extend(&b);
        assert_eq!(a.len(), 3);
        assert_eq!(a.get("t", 1), Some(12));
        assert_eq!(a.remove("u", 0), Some(1));
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            vec![("t", 0, 5), ("t", 1, 12)]
        );
    }
}
