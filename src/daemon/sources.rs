//! Starting the configured source where the restored snapshot left off.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::output::PositionCommitter;
use super::restore::Restored;
use super::DaemonError;
use crate::plan::{Input, KafkaClient, SourcePlan};
use crate::source::chunk::{Chunk, Origin, RecordMark, SourceMsg, CHUNK_POINTS};
use crate::source::file::{FileSource, SourceError};
use crate::source::generator::{Generator, GeneratorConfig};
use crate::source::kafka::{consumer_config, KafkaCommitter, KafkaSource, SourceLinks};
use crate::state_topic::Assignment;
use crate::telemetry::Counters;
use gmm_io::Positions;
use gmm_io::{DecodeConfig, FileIdentity};

pub struct StartedSource {
    /// The position the source starts at.
    pub positions: Positions,
    pub handle: JoinHandle<Result<(), DaemonError>>,
    pub committer: Option<Box<dyn PositionCommitter>>,
    /// For logs and dead letters: `file:points.csv`, `stdin`, `generator`.
    pub name: String,
}

/// Starts the source `plan` describes; `required` are the topics that must
/// exist (a Kafka source checks them all, the outputs' included).
pub async fn start(
    plan: &SourcePlan,
    required: &[String],
    restored: &Restored,
    tx: mpsc::Sender<SourceMsg>,
    cancel: CancellationToken,
    counters: &Arc<Counters>,
    group: Option<Arc<Assignment>>,
) -> Result<StartedSource, DaemonError> {
    let decode = decode_config(plan, restored);
    let started = match &plan.input {
        Input::File(path) => start_file(
            Some(path),
            decode,
            plan.max_record_bytes,
            restored,
            tx,
            cancel,
        )?,
        Input::Stdin => start_file(None, decode, plan.max_record_bytes, restored, tx, cancel)?,
        Input::Generator { settings, dim } => {
            start_generator(settings, *dim, restored, tx, cancel)?
        }
        Input::Kafka {
            client,
            group_id,
            topics,
        } => {
            let kafka = KafkaInput {
                client: client.clone(),
                group_id: group_id.clone(),
                topics: topics.clone(),
                required: required.to_vec(),
                decode,
                brokers_down: counters.source_down.clone(),
                group,
            };
            start_kafka(kafka, restored, tx, cancel).await?
        }
    };
    counters.source_ready.store(1, Relaxed);
    Ok(started)
}

fn decode_config(plan: &SourcePlan, restored: &Restored) -> DecodeConfig {
    let mut decode = plan.decode.clone();
    // A restored model fixes the dimension even when the config leaves it open.
    decode.dim = decode.dim.or(restored.n_features);
    decode
}

/// `path` None reads stdin.
fn start_file(
    path: Option<&Path>,
    decode: DecodeConfig,
    max_record_bytes: usize,
    restored: &Restored,
    tx: mpsc::Sender<SourceMsg>,
    cancel: CancellationToken,
) -> Result<StartedSource, DaemonError> {
    let (tracker, start, name) = match path {
        None => {
            if restored.positions.is_some() {
                tracing::info!("stdin cannot be resumed: reading it from where it is now");
            }
            (Positions::Stdin { points: 0 }, 0, "stdin".to_string())
        }
        Some(path) => {
            let here = path.display().to_string();
            let offset = match &restored.positions {
                Some(Positions::File { path: p, offset }) if same_file(p, path) => *offset,
                Some(other) => {
                    tracing::info!(?other, "the snapshot's positions are for another source: reading {here} from its start");
                    0
                }
                None => 0,
            };
            if offset > 0 {
                check_identity(path, offset, restored.source_file)?;
                tracing::info!(path = %here, offset, "resuming the file");
            }
            // Refuse a missing file now, with exit status 2, rather than from a thread.
            if !path.is_file() {
                return Err(SourceError::Open {
                    path: path.to_path_buf(),
                    error: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                }
                .into());
            }
            (
                Positions::file(path, offset),
                offset,
                format!("file:{here}"),
            )
        }
    };
    let source = FileSource {
        path: path.map(Path::to_path_buf),
        decode,
        start,
        max_record_bytes,
    };
    // A thread of its own rather than the blocking pool: a read of an idle stdin
    // cannot be interrupted, and the runtime waits for its blocking pool when it
    // shuts down, which would keep a stopped daemon from exiting.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("gmm-stream-source".into())
        .spawn(move || {
            let _ = done_tx.send(source.run(tx, cancel).map_err(DaemonError::from));
        })
        .map_err(DaemonError::Spawn)?;
    let handle =
        tokio::spawn(async move { done_rx.await.unwrap_or(Err(DaemonError::SourceThreadLost)) });
    Ok(StartedSource {
        positions: tracker,
        handle,
        committer: None,
        name,
    })
}

/// Refuses (exit 2) to resume a file whose bytes before `offset` are not those the
/// snapshot recorded: it was replaced (docs/reference.md, "Resuming a file").
/// Snapshots from before identities were recorded resume on the offset alone.
fn check_identity(
    path: &Path,
    offset: u64,
    recorded: Option<FileIdentity>,
) -> Result<(), DaemonError> {
    let Some(recorded) = recorded.filter(|r| r.offset == offset) else {
        return Ok(());
    };
    let replaced = || SourceError::Replaced {
        path: path.to_path_buf(),
        offset,
    };
    match FileIdentity::of_path(path, offset) {
        Ok(now) if now == recorded => Ok(()),
        Ok(_) => Err(replaced().into()),
        // Shorter than the offset: the file source's own check names the lengths.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(()),
        Err(error) => Err(SourceError::Open {
            path: path.to_path_buf(),
            error,
        }
        .into()),
    }
}

fn start_generator(
    settings: &GeneratorConfig,
    dim: usize,
    restored: &Restored,
    tx: mpsc::Sender<SourceMsg>,
    cancel: CancellationToken,
) -> Result<StartedSource, DaemonError> {
    let dim = restored.n_features.unwrap_or(dim);
    let mut generator = Generator::new(settings, dim)?;
    let index = match &restored.positions {
        Some(Positions::Generator { index }) => *index,
        _ => 0,
    };
    generator.seek(index);
    let rate = settings.rate;
    let handle = tokio::task::spawn_blocking(move || {
        pump_generator(generator, rate, &tx, &cancel);
        Ok(())
    });
    Ok(StartedSource {
        positions: Positions::Generator { index },
        handle,
        committer: None,
        name: "generator".into(),
    })
}

/// Sends generated points, paced at `rate` points per second (0: as fast as the
/// pipeline takes them), until the generator's limit or shutdown.
fn pump_generator(
    mut generator: Generator,
    rate: f64,
    tx: &mpsc::Sender<SourceMsg>,
    cancel: &CancellationToken,
) {
    let per_chunk = if rate > 0.0 {
        // About twenty chunks a second keeps a paced stream smooth.
        ((rate / 20.0) as usize).clamp(1, CHUNK_POINTS)
    } else {
        CHUNK_POINTS
    };
    let (started, first) = (Instant::now(), generator.index());
    while !cancel.is_cancelled() {
        let mut chunk = Chunk::default();
        let n = generator.next_points(per_chunk, &mut chunk.values);
        if n == 0 {
            let _ = tx.blocking_send(SourceMsg::End);
            return;
        }
        let end = generator.index();
        // One record per point: batches may end after any of them.
        chunk.marks = (1..=n)
            .map(|i| RecordMark {
                points_end: i,
                origin: Origin::Next(end - (n - i) as u64),
            })
            .collect();
        if tx.blocking_send(SourceMsg::Chunk(chunk)).is_err() {
            return;
        }
        if rate > 0.0 {
            // The configuration bounds the rate; a due time beyond what a
            // Duration or an Instant holds would mean "never": stop pacing there.
            let due = Duration::try_from_secs_f64((end - first) as f64 / rate)
                .ok()
                .and_then(|due| started.checked_add(due));
            match due {
                Some(due) => pace(due, cancel),
                None => {
                    while !cancel.is_cancelled() {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    return;
                }
            }
        }
    }
}

/// Sleeps until `until`, waking early on shutdown.
fn pace(until: Instant, cancel: &CancellationToken) {
    while !cancel.is_cancelled() {
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

/// What the Kafka source needs, moved onto the thread that connects it.
struct KafkaInput {
    client: KafkaClient,
    group_id: String,
    topics: Vec<String>,
    required: Vec<String>,
    decode: DecodeConfig,
    brokers_down: Arc<AtomicBool>,
    group: Option<Arc<Assignment>>,
}

async fn start_kafka(
    kafka: KafkaInput,
    restored: &Restored,
    tx: mpsc::Sender<SourceMsg>,
    cancel: CancellationToken,
) -> Result<StartedSource, DaemonError> {
    let resume = match &restored.positions {
        Some(Positions::Kafka(map)) => map.clone(),
        Some(other) => {
            tracing::info!(
                ?other,
                "the snapshot's positions are for another source: using the group's offsets"
            );
            Default::default()
        }
        None => Default::default(),
    };
    let start = resume.clone();
    crate::source::kafka::lag::watch(
        &kafka.client.brokers,
        &kafka.group_id,
        &kafka.client.properties,
        &kafka.topics,
        cancel.clone(),
    );
    // Creating the consumer and fetching metadata block (up to seconds).
    let source = tokio::task::spawn_blocking(move || {
        let KafkaInput {
            client,
            group_id,
            topics,
            required,
            decode,
            brokers_down,
            group,
        } = kafka;
        let consumer = consumer_config(&client.brokers, &group_id, &client.properties);
        KafkaSource::connect(
            consumer,
            &client.brokers,
            &topics,
            &required,
            start,
            decode,
            SourceLinks {
                brokers_down,
                group,
            },
        )
    })
    .await
    .map_err(|error| DaemonError::Crashed {
        stage: "Kafka consumer set-up",
        error,
    })??;
    let committer = KafkaCommitter {
        consumer: source.consumer.clone(),
        durable: source.durable.clone(),
    };
    let handle =
        tokio::task::spawn_blocking(move || source.run(tx, cancel).map_err(DaemonError::from));
    Ok(StartedSource {
        positions: Positions::Kafka(resume),
        handle,
        committer: Some(Box::new(CommitToKafka(committer))),
        name: "kafka".into(),
    })
}

/// Commits Kafka offsets after each durable snapshot.
struct CommitToKafka(KafkaCommitter);

impl PositionCommitter for CommitToKafka {
    fn commit(&mut self, positions: &Positions) {
        if let Positions::Kafka(map) = positions {
            self.0.commit(map);
        }
    }
}

/// Whether a snapshot's file position is for the configured file, however either
/// path is spelt (`data.f64`, `./data.f64`, an absolute path, a symlink).
fn same_file(recorded: &str, configured: &Path) -> bool {
    if Path::new(recorded) == configured {
        return true;
    }
    match (
        std::fs::canonicalize(recorded),
        std::fs::canonicalize(configured),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::same_file;

    #[test]
    fn a_file_is_recognised_however_its_path_is_spelt() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("points.f64");
        std::fs::write(&file, b"").expect("write");
        let other = dir.path().join("other.f64");
        std::fs::write(&other, b"").expect("write");
        let dotted = dir
            .path()
            .join(".")
            .join("sub")
            .join("..")
            .join("points.f64");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let recorded = file.display().to_string();
        assert!(same_file(&recorded, &file));
        assert!(same_file(&recorded, &dotted));
        assert!(!same_file(&recorded, &other));
        // A recorded file that is gone matches only its own spelling.
        assert!(same_file("gone.f64", std::path::Path::new("gone.f64")));
        assert!(!same_file("gone.f64", &file));
    }
}
