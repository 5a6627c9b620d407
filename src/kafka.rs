//! What the Kafka source and sinks share.

use rdkafka::metadata::Metadata;

/// The topics of `wanted` that the cluster's `metadata` does not hold, without repeats,
/// in the order asked. Nothing relies on auto-creation, so the caller refuses to start.
pub fn missing_topics(metadata: &Metadata, wanted: &[String]) -> Vec<String> {
    let existing: Vec<&str> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| t.name())
        .collect();
    let mut missing: Vec<String> = Vec::new();
    for topic in wanted {
        if !existing.contains(&topic.as_str()) && !missing.contains(topic) {
            missing.push(topic.clone());
        }
    }
    missing
}
