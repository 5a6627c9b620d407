//! What the Kafka source and sinks share: checking that the topics exist.

use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use thiserror::Error;

/// How long to wait for the cluster's metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Error)]
pub enum TopicsError {
    #[error("cannot reach the Kafka brokers {brokers}")]
    Unreachable {
        brokers: String,
        #[source]
        error: KafkaError,
    },
    #[error("these Kafka topics do not exist: {}; create them first (gmm-stream never relies on auto-creation)", .0.join(", "))]
    Missing(Vec<String>),
}

/// Fails, naming them all, if any of `wanted` does not exist. Nothing relies on
/// auto-creation, so the caller refuses to start.
pub fn check_topics<C: ClientContext>(
    client: &Client<C>,
    brokers: &str,
    wanted: &[String],
) -> Result<(), TopicsError> {
    let metadata = client
        .fetch_metadata(None, METADATA_TIMEOUT)
        .map_err(|error| TopicsError::Unreachable {
            brokers: brokers.to_string(),
            error,
        })?;
    let missing = missing_topics(&metadata, wanted);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(TopicsError::Missing(missing))
    }
}

/// The topics of `wanted` that the cluster's `metadata` does not hold, without repeats,
/// in the order asked.
fn missing_topics(metadata: &Metadata, wanted: &[String]) -> Vec<String> {
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
