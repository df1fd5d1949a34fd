//! edgelens ingest: where edge events enter the system.
//!
//! - [`reader`]: streaming NDJSON / NDJSON.gz reader with a bounded line length (memory is bounded
//!   by the buffer, never by the file).
//! - [`dead_letter`]: the record kept for every input that was not counted, with its reason.
//! - [`generate`]: deterministic synthetic Logpush traffic with ground truth.
//! - [`log`]: the event log ingest appends to and its message format; [`kafka`] is it on a broker.
//! - [`receiver`]: the Logpush HTTP receiver (`POST /v1/logpush`).
//! - [`file`]: files replayed into the event log (`edgelens ingest file`).
//!
//! [`run`] is the ingest role: the receiver in front of the Kafka producer.

pub mod dead_letter;
pub mod error;
pub mod file;
pub mod generate;
pub mod kafka;
pub mod log;
pub mod reader;
pub mod receiver;

use std::sync::Arc;
use std::time::Duration;

use edgelens_schemas::sites::HostSites;

pub use error::LogError;
pub use receiver::IngestConfig;

/// Why the ingest role stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("binding {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("serving: {0}")]
    Serve(std::io::Error),
    #[error("{path}: {source}")]
    Input { path: std::path::PathBuf, source: std::io::Error },
    /// `ingest file`: a file could be read only in part (a truncated or damaged gzip file); what
    /// was read of it is in the log.
    #[error(
        "{path}: {source}, after its first {lines} lines: those are in the log ({events} events, {dead_letters} dead letters), the rest could not be read; once the file is mended, append only what follows line {lines} (`tail -n +{next}`)",
        next = lines + 1
    )]
    ReadStopped { path: std::path::PathBuf, lines: u64, events: u64, dead_letters: u64, source: std::io::Error },
    #[error("invalid configuration: {0}")]
    Config(String),
    /// `ingest file`: the log did not take the topic before the wait for it ended.
    #[error("the event log is not ready for topic {topic} (waited {waited_ms} ms): {source}")]
    NotReady { topic: String, waited_ms: u128, source: LogError },
}

/// The producer settings of an ingest config.
pub fn kafka_config(cfg: &IngestConfig) -> kafka::KafkaLogConfig {
    kafka::KafkaLogConfig {
        brokers: cfg.brokers.clone(),
        ack_timeout: Duration::from_millis(cfg.ack_timeout_ms),
        queue_max_messages: cfg.producer_queue_messages,
        max_message_bytes: cfg.max_line_bytes.max(log::PACK_MAX_BYTES),
    }
}

/// Say so when the brokers answer that a topic the receiver writes does not exist (a typo in
/// the configuration, or topics not created yet): every batch would get 503 until it does.
/// Brokers that do not answer are named too (a wrong `brokers`, or brokers not up yet).
async fn warn_missing_topics(log: Arc<kafka::KafkaLog>, brokers: String, topics: Vec<String>) {
    let answer = tokio::task::spawn_blocking(move || log.missing_topics(&topics.iter().map(String::as_str).collect::<Vec<_>>(), Duration::from_secs(5))).await;
    let missing = match answer {
        Ok(Ok(missing)) => missing,
        Ok(Err(e)) => {
            tracing::error!(brokers = %brokers, error = %e, "the brokers at {brokers} did not answer: batches get 503 until they do (check [ingest] brokers)");
            return;
        }
        Err(_) => return,
    };
    for topic in missing {
        tracing::error!(topic = %topic, "the brokers have no topic {topic}: batches get 503 until it exists (create it, or fix [ingest] events_topic / dead_letters_topic)");
    }
}

/// Run the ingest role until `shutdown` resolves: receiver → Kafka, each line keyed by the site
/// `sites` maps its host to (the registry the caller keeps reading from the lake). Batches
/// in flight finish, then the producer is flushed.
pub async fn run(cfg: IngestConfig, sites: HostSites, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), IngestError> {
    cfg.validate().map_err(IngestError::Config)?;
    let log = Arc::new(kafka::KafkaLog::new(&kafka_config(&cfg))?);
    // In the background: an unreachable broker must not delay the listener.
    tokio::spawn(warn_missing_topics(Arc::clone(&log), cfg.brokers.clone(), vec![cfg.events_topic.clone(), cfg.dead_letters_topic.clone()]));
    let listener = tokio::net::TcpListener::bind(cfg.listen).await.map_err(|source| IngestError::Bind { addr: cfg.listen, source })?;
    let flush_timeout = Duration::from_millis(cfg.ack_timeout_ms);
    receiver::serve_on(listener, cfg, Arc::clone(&log), sites, shutdown).await.map_err(IngestError::Serve)?;
    log.flush(flush_timeout)?;
    Ok(())
}
