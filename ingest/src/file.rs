//! Files replayed into the event log (`edgelens ingest file PATH...`): NDJSON / NDJSON.gz read
//! with bounded memory, validated like the receiver does, packed into messages per site's
//! partition key ([`Packer`]) and appended in batches; rejected lines go to the dead-letters topic
//! with `source = "file:<name>"` and their line number.
//!
//! A batch the log refuses with a retryable error is appended again after a backoff (up to
//! `max_attempts`), so a broker restart delays the replay instead of losing events; a resent batch's
//! messages carry the ids they had the first time and are marked as resent
//! ([`crate::log::RESEND_HEADER`]), so those that reached the log then are not counted again
//! downstream.

use std::path::PathBuf;
use std::time::Duration;

use edgelens_schemas::sites::HostSites;

use crate::dead_letter::now_nanos;
use crate::log::{EventLog, Packer, Record};
use crate::reader::{file_name, open_file, LineReader};
use crate::{IngestError, LogError};

/// How files are cut into batches and retried.
#[derive(Debug, Clone)]
pub struct FileIngestConfig {
    pub events_topic: String,
    pub dead_letters_topic: String,
    pub max_line_bytes: usize,
    /// Events per append (packed into fewer messages).
    pub batch_events: usize,
    /// Appends of one batch before giving up.
    pub max_attempts: u32,
    pub retry_backoff: Duration,
    /// How long to wait for the log to answer (and know the events topic) before reading
    /// anything; after that it fails with the reason.
    pub start_timeout: Duration,
    /// The registered sites: a line is keyed by the site its host maps to
    /// ([`Packer::with_sites`]).
    pub sites: HostSites,
}

impl Default for FileIngestConfig {
    fn default() -> Self {
        Self {
            events_topic: crate::log::EVENTS_TOPIC.into(),
            dead_letters_topic: crate::log::DEAD_LETTERS_TOPIC.into(),
            max_line_bytes: crate::reader::DEFAULT_MAX_LINE,
            batch_events: 20_000,
            max_attempts: 60,
            retry_backoff: Duration::from_secs(1),
            start_timeout: Duration::from_secs(30),
            sites: HostSites::default(),
        }
    }
}

/// What a file replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FileIngestStats {
    pub lines: u64,
    pub events: u64,
    pub dead_letters: u64,
    /// Appends that failed and were retried.
    pub retries: u64,
}

/// Progress callback argument: bytes read so far (compressed for gzip) of `bytes_total`.
#[derive(Debug, Clone, Copy)]
pub struct FileProgress {
    pub bytes_read: u64,
    pub bytes_total: u64,
}

/// Every input can be read, before any is appended: a missing or unreadable file (a typo in the
/// third of five) fails the command before the two before it are in the log, where running it
/// again, corrected, would append them a second time as new messages.
fn check_inputs(paths: &[PathBuf]) -> Result<(), IngestError> {
    for path in paths {
        let input_err = |source| IngestError::Input { path: path.clone(), source };
        let meta = std::fs::metadata(path).map_err(input_err)?;
        if meta.is_dir() {
            return Err(input_err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "is a directory")));
        }
        // A pipe or FIFO is read when its turn comes (opening a FIFO waits for its writer).
        if meta.is_file() {
            std::fs::File::open(path).map_err(input_err)?;
        }
    }
    Ok(())
}

/// The log answers for the events topic before anything is read: a wrong broker address, or a
/// broker that is not running, fails the command within `start_timeout` instead of every batch
/// being retried for minutes. A broker that goes away later is waited for by the appends.
async fn wait_for_log<L: EventLog>(log: &L, cfg: &FileIngestConfig) -> Result<(), IngestError> {
    let started = std::time::Instant::now();
    loop {
        match log.probe(&cfg.events_topic).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_retryable() && started.elapsed() < cfg.start_timeout => {
                tracing::warn!(error = %e, topic = %cfg.events_topic, "the event log does not answer yet; waiting");
                tokio::time::sleep(cfg.retry_backoff.min(cfg.start_timeout)).await;
            }
            Err(source) => return Err(IngestError::NotReady { topic: cfg.events_topic.clone(), waited_ms: started.elapsed().as_millis(), source }),
        }
    }
}

/// Append `records`, again (marked as resent: part may be in the log) after a retryable failure.
async fn append_with_retry<L: EventLog>(log: &L, topic: &str, mut records: Vec<Record>, cfg: &FileIngestConfig, stats: &mut FileIngestStats) -> Result<(), LogError> {
    let mut attempt = 1;
    loop {
        match log.append(topic, &records).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_retryable() && attempt < cfg.max_attempts => {
                tracing::warn!(error = %e, attempt, "append failed; retrying");
                stats.retries += 1;
                attempt += 1;
                for r in &mut records {
                    r.resend = true;
                }
                tokio::time::sleep(cfg.retry_backoff).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Replay `paths` into `log`, in order.
pub async fn ingest_files<L: EventLog>(
    paths: &[PathBuf],
    log: &L,
    cfg: &FileIngestConfig,
    mut progress: impl FnMut(FileProgress),
) -> Result<FileIngestStats, IngestError> {
    check_inputs(paths)?;
    wait_for_log(log, cfg).await?;
    let bytes_total = paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let mut stats = FileIngestStats::default();
    let mut bytes_before = 0;
    let now = now_nanos();
    for path in paths {
        let input_err = |source| IngestError::Input { path: path.clone(), source };
        let (reader, counter) = open_file(path).map_err(input_err)?;
        let source = format!("file:{}", file_name(path));
        let mut lines = LineReader::new(reader, cfg.max_line_bytes);
        let mut events = Packer::default().with_sites(cfg.sites.clone());
        let mut dead = Vec::new();
        let before = stats.clone();
        loop {
            // A read error (a truncated gzip file) ends the file: what was read of it is appended
            // first, so that every line read is in the log as an event or a dead letter.
            let (next, read_error) = match lines.next_numbered() {
                Ok(next) => (next, None),
                Err(e) => (None, Some(e)),
            };
            let done = next.is_none();
            if let Some((line_no, line)) = next {
                stats.lines += 1;
                if let Err(d) = events.push(&line, &source, line_no, now) {
                    dead.push(Record::dead_letter(&d));
                }
            }
            if events.events() >= cfg.batch_events as u64 || (done && events.events() > 0) {
                stats.events += events.events();
                append_with_retry(log, &cfg.events_topic, events.take(), cfg, &mut stats).await?;
                progress(FileProgress { bytes_read: bytes_before + counter.get(), bytes_total });
            }
            if dead.len() >= cfg.batch_events || (done && !dead.is_empty()) {
                stats.dead_letters += dead.len() as u64;
                append_with_retry(log, &cfg.dead_letters_topic, std::mem::take(&mut dead), cfg, &mut stats).await?;
            }
            if let Some(source) = read_error {
                return Err(IngestError::ReadStopped {
                    path: path.clone(),
                    // The file's lines, blank ones included, as `tail -n` counts them.
                    lines: lines.line_no(),
                    events: stats.events - before.events,
                    dead_letters: stats.dead_letters - before.dead_letters,
                    source,
                });
            }
            if done {
                break;
            }
        }
        bytes_before += counter.get();
    }
    progress(FileProgress { bytes_read: bytes_before, bytes_total });
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::MemoryLog;

    /// Regression: the files before a missing (or unreadable) one were appended, then the command
    /// failed; running it again, corrected, appended them a second time.
    #[tokio::test]
    async fn inputs_and_the_log_are_checked_before_anything_is_appended() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.ndjson");
        let line = r#"{"EdgeStartTimestamp":1767225600000000000,"ZoneName":"a.example","ClientIP":"192.0.2.1","EdgeResponseStatus":200,"RayID":"1a"}"#;
        std::fs::write(&good, format!("{line}\n")).unwrap();
        let log = MemoryLog::new();
        let cfg = FileIngestConfig::default();
        for bad in [dir.path().join("missing.ndjson"), dir.path().to_path_buf()] {
            let err = ingest_files(&[good.clone(), bad.clone()], &log, &cfg, |_| {}).await.unwrap_err();
            assert!(err.to_string().contains(&bad.display().to_string()), "{err}");
            assert!(log.records(&cfg.events_topic).is_empty() && log.records(&cfg.dead_letters_topic).is_empty(), "appended before failing");
        }
        // A log that does not answer fails the command once the wait for it ends.
        let waiting = FileIngestConfig { start_timeout: Duration::from_millis(300), retry_backoff: Duration::from_millis(50), ..cfg.clone() };
        log.fail_with(Some(LogError::Unavailable("no broker".into())));
        let err = ingest_files(&[good.clone()], &log, &waiting, |_| {}).await.unwrap_err();
        assert!(matches!(err, IngestError::NotReady { waited_ms: 300.., .. }), "{err}");
        assert!(err.to_string().contains("not ready for topic edge-requests") && err.to_string().contains("no broker"), "{err}");
        log.fail_with(None);
        let stats = ingest_files(&[good], &log, &cfg, |_| {}).await.unwrap();
        assert_eq!((stats.lines, stats.events, stats.dead_letters), (1, 1, 0));
        assert_eq!(log.records(&cfg.events_topic).len(), 1);
    }

    /// Regression: a truncated gzip file failed the command with the decoder's error alone,
    /// after its first batch of events was appended; the dead letters of that part, and the
    /// lines read after it, were neither appended nor reported.
    #[tokio::test]
    async fn a_file_read_in_part_appends_what_was_read_and_says_how_far() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let line = |i: u64| format!(r#"{{"EdgeStartTimestamp":{},"ZoneName":"a.example","ClientIP":"192.0.2.1","EdgeResponseStatus":200,"RayID":"{i:x}"}}"#, 1_767_225_600_000_000_000 + i * 1_000_000);
        let mut text = String::new();
        for i in 0..30_000u64 {
            text += &if i % 1000 == 7 { "{not json".to_owned() } else { line(i) };
            text.push('\n');
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let cut = dir.path().join("cut.ndjson.gz");
        std::fs::write(&cut, &gz[..gz.len() * 3 / 4]).unwrap();
        let log = MemoryLog::new();
        let cfg = FileIngestConfig { batch_events: 10_000, ..FileIngestConfig::default() };
        let err = ingest_files(std::slice::from_ref(&cut), &log, &cfg, |_| {}).await.unwrap_err();
        let IngestError::ReadStopped { lines, events, dead_letters, .. } = &err else { panic!("{err}") };
        let (lines, events, dead_letters) = (*lines, *events, *dead_letters);
        // Every whole line a decoder recovers from the cut file (as `zcat` does).
        let mut recovered = Vec::new();
        let _ = std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..gz.len() * 3 / 4]), &mut recovered);
        let whole = recovered.iter().filter(|&&b| b == b'\n').count() as u64;
        assert!(whole > 10_000 && whole < 30_000, "{whole}");
        assert_eq!(lines, whole, "{err}");
        // Every line read is in the log, as an event or a dead letter.
        let appended: usize = log.records(&cfg.events_topic).iter().map(|r| r.value.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count()).sum();
        assert_eq!((appended as u64, log.records(&cfg.dead_letters_topic).len() as u64), (events, dead_letters));
        assert_eq!(events + dead_letters, lines);
        // Lines 7, 1007, … are bad: those of the first `lines`.
        assert_eq!(dead_letters, (lines + 992) / 1000, "{err}");
        let text = err.to_string();
        assert!(text.contains(&format!("after its first {lines} lines")) && text.contains(&format!("tail -n +{}", lines + 1)), "{text}");
    }
}
