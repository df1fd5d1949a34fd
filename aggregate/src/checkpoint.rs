//! Checkpoints of a partition's open state (open windows, RayIDs within the dedup horizon), so a
//! partition can move to another aggregator or survive a crash without losing or double-counting
//! anything.
//!
//! A checkpoint is taken at a *position* of one source partition (for Kafka: the next offset to
//! read, the value committed to the group). It holds only what is not in the sinks yet: the
//! aggregator first flushes every closed row written before that position, then saves the state,
//! then commits the offset. To resume at a committed position `c`, load the checkpoint at `c`,
//! discard every sink span starting at or after `c` (written after the checkpoint by a process that
//! then died) and read on from `c`.
//!
//! Stored as `DIR/<source>/p<partition>/<position>.ckpt`: a small versioned binary format
//! ([`Enc`]/[`Dec`]) ending in a checksum (xxHash64 from format 3 on; formats 1 and 2, still read,
//! ended in FNV-1a, a byte at a time and a measurable share of the aggregator's CPU), written to a
//! temporary file, synced and renamed, so a crash never leaves a torn checkpoint under its final
//! name.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Checkpoint format version; bump on any change of the layout. Format 3 is format 2's body with
/// an xxHash64 checksum instead of FNV-1a. Format 4 remembers RayIDs by their XXH64 instead of
/// ahash (whose output may change with its version or the build's target features): the window
/// state ends in a second section of RayIDs, those of a format-3 checkpoint still in the horizon,
/// kept with their old hashes (see `windows::RayDedup`). Format 5 adds, at the end of the window
/// state, the events seen far ahead of event time (`windows::SiteWindows`). Format 6 remembers
/// RayIDs with their site, in a section at the end (the first section keeps those of format 4 or
/// 5 still in the horizon). Formats 1 to 5 are still read.
pub const FORMAT_VERSION: u32 = 6;
const MAGIC: &[u8; 4] = b"ELCK";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint I/O on {}: {source}{}", path.display(), crate::error::io_hint(source))]
    Io { path: PathBuf, source: std::io::Error },
    #[error("checkpoint {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("no checkpoint of {source_name} partition {partition} at position {position} in {dir} (the group committed that position; was the state directory lost or changed?)")]
    Missing { dir: PathBuf, source_name: String, partition: i32, position: u64 },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io { path: path.to_path_buf(), source }
}

/// Append-only little-endian encoder.
#[derive(Debug, Default)]
pub struct Enc(Vec<u8>);

impl Enc {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn opt_i64(&mut self, v: Option<i64>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.i64(v);
            }
            None => self.u8(0),
        }
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.u32(u32::try_from(b.len()).expect("checkpoint fields are under 4 GiB"));
        self.0.extend_from_slice(b);
    }
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    pub fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).expect("checkpoint collections have under 4G entries"));
    }
    pub fn append(&mut self, other: Enc) {
        self.0.extend_from_slice(&other.0);
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Decoder over an [`Enc`] buffer; every read checks bounds.
#[derive(Debug)]
pub struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    pub fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    pub fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    pub fn opt_i64(&mut self) -> Result<Option<i64>, String> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.i64().map(Some),
            t => Err(format!("bad option tag {t}")),
        }
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn str(&mut self) -> Result<&'a str, String> {
        std::str::from_utf8(self.bytes()?).map_err(|e| e.to_string())
    }
    pub fn len(&mut self) -> Result<usize, String> {
        Ok(self.u32()? as usize)
    }
    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }
}

/// FNV-1a, 64 bit: a hash that is the same in every run, platform and toolchain (unlike `std`'s
/// hashers), for checksums and input fingerprints.
pub(crate) struct Fnv1a(u64);

impl Fnv1a {
    pub(crate) fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a::new();
    h.update(bytes);
    h.finish()
}

/// The checksum of a framed checkpoint of `version` (its bytes before the checksum).
fn checksum(version: u32, framed: &[u8]) -> u64 {
    if version >= 3 { twox_hash::XxHash64::oneshot(0, framed) } else { fnv1a(framed) }
}

/// Frame a state body: magic, version, body, checksum.
pub fn seal(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(body);
    let sum = checksum(FORMAT_VERSION, &out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Check a framed state and return its body in the current format: a version-1 body (the windows'
/// state alone, before the attack detector) is wrapped as a version-2 body without detector state.
pub fn unseal(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let (version, body) = unseal_versioned(bytes)?;
    Ok(match version {
        1 => {
            let mut e = Enc::new();
            e.bytes(body);
            e.u8(0);
            e.into_bytes()
        }
        _ => body.to_vec(),
    })
}

/// Check a framed state and return its format version and body.
fn unseal_versioned(bytes: &[u8]) -> Result<(u32, &[u8]), String> {
    if bytes.len() < 16 || &bytes[..4] != MAGIC {
        return Err("not an edgelens checkpoint".into());
    }
    let (framed, sum) = bytes.split_at(bytes.len() - 8);
    let version = u32::from_le_bytes(framed[4..8].try_into().expect("4 bytes"));
    // The checksum first: a torn or altered version field reads as a mismatch, not as a version.
    if checksum(version, framed) != u64::from_le_bytes(sum.try_into().expect("8 bytes")) {
        return Err("checksum mismatch (torn or altered file)".into());
    }
    if !(1..=FORMAT_VERSION).contains(&version) {
        return Err(format!("format version {version}, this edgelens reads 1 to {FORMAT_VERSION}"));
    }
    Ok((version, &framed[8..]))
}

/// Checkpoints in a directory (shared by every aggregator of a group, like the lake).
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

impl CheckpointStore {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, CheckpointError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn partition_dir(&self, source: &str, partition: i32) -> PathBuf {
        self.dir.join(source).join(format!("p{partition:04}"))
    }

    fn path(&self, source: &str, partition: i32, position: u64) -> PathBuf {
        self.partition_dir(source, partition).join(format!("{position:020}.ckpt"))
    }

    /// Durably store the state (body, unframed) at `position`.
    pub fn save(&self, source: &str, partition: i32, position: u64, body: &[u8]) -> Result<(), CheckpointError> {
        let dir = self.partition_dir(source, partition);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = self.path(source, partition, position);
        let tmp = dir.join(format!(".{position:020}.{}.tmp", std::process::id()));
        let written = fs::File::create(&tmp).map_err(io(&tmp)).and_then(|mut f| {
            f.write_all(&seal(body)).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))
        });
        if let Err(e) = written.and_then(|()| fs::rename(&tmp, &path).map_err(io(&path))) {
            // A failed write (a full disk) leaves no partial file behind to hold the space.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// The state body at `position`, `None` if there is no checkpoint there.
    pub fn load(&self, source: &str, partition: i32, position: u64) -> Result<Option<Vec<u8>>, CheckpointError> {
        let path = self.path(source, partition, position);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CheckpointError::Io { path, source: e }),
        };
        let body = unseal(&bytes).map_err(|reason| CheckpointError::Corrupt { path: path.clone(), reason })?;
        Ok(Some(body))
    }

    /// Positions with a checkpoint, ascending.
    pub fn positions(&self, source: &str, partition: i32) -> Result<Vec<u64>, CheckpointError> {
        let dir = self.partition_dir(source, partition);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(CheckpointError::Io { path: dir, source: e }),
        };
        let mut out: Vec<u64> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".ckpt")?.parse().ok())
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Remove checkpoints other than `keep` that are older than `keep` (superseded once `keep` is
    /// committed) or newer (taken after the committed position by a process that then died).
    pub fn retain_only(&self, source: &str, partition: i32, keep: u64) -> Result<(), CheckpointError> {
        for p in self.positions(source, partition)? {
            if p != keep {
                let path = self.path(source, partition, p);
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(CheckpointError::Io { path, source: e }),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_round_trip() {
        let mut e = Enc::new();
        e.u8(7);
        e.u32(1 << 20);
        e.u64(u64::MAX);
        e.i64(-5);
        e.opt_i64(None);
        e.opt_i64(Some(42));
        e.str("shop.example");
        let bytes = e.into_bytes();
        let mut d = Dec::new(&bytes);
        assert_eq!(d.u8().unwrap(), 7);
        assert_eq!(d.u32().unwrap(), 1 << 20);
        assert_eq!(d.u64().unwrap(), u64::MAX);
        assert_eq!(d.i64().unwrap(), -5);
        assert_eq!(d.opt_i64().unwrap(), None);
        assert_eq!(d.opt_i64().unwrap(), Some(42));
        assert_eq!(d.str().unwrap(), "shop.example");
        assert!(d.is_empty());
        assert!(d.u8().is_err(), "reading past the end is an error, not a panic");
    }

    /// `body` framed as format `version` wrote it.
    fn sealed_as(version: u32, body: &[u8]) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&version.to_le_bytes());
        v.extend_from_slice(body);
        let sum = if version >= 3 { twox_hash::XxHash64::oneshot(0, &v) } else { fnv1a(&v) };
        v.extend_from_slice(&sum.to_le_bytes());
        v
    }

    #[test]
    fn formats_two_to_six_read_and_six_is_written() {
        let sealed = seal(b"state");
        assert_eq!(sealed, sealed_as(6, b"state"));
        assert_eq!(unseal(&sealed).unwrap(), b"state");
        // Format-2 (FNV-1a) and format-3 checkpoints left by older aggregators still load, the
        // same body (the window state tells its own RayID hashes apart).
        assert_eq!(unseal(&sealed_as(2, b"state")).unwrap(), b"state");
        assert_eq!(unseal(&sealed_as(3, b"state")).unwrap(), b"state");
        assert_eq!(unseal(&sealed_as(4, b"state")).unwrap(), b"state");
        assert_eq!(unseal(&sealed_as(5, b"state")).unwrap(), b"state");
        // Each checksum is checked as its own format's: swapping them is a mismatch.
        let mut wrong = sealed_as(2, b"state");
        wrong[4..8].copy_from_slice(&3u32.to_le_bytes());
        assert!(unseal(&wrong).unwrap_err().contains("checksum"));
        // A format from the future is named as such.
        assert!(unseal(&sealed_as(7, b"state")).unwrap_err().contains("format version 7"));
    }

    #[test]
    fn torn_or_altered_checkpoints_are_rejected() {
        let sealed = seal(b"state");
        assert_eq!(unseal(&sealed).unwrap(), b"state");
        // A version-1 body comes back wrapped as windows state without detector state.
        let mut v1 = sealed[..sealed.len() - 8].to_vec();
        v1[4..8].copy_from_slice(&1u32.to_le_bytes());
        let sum = fnv1a(&v1);
        v1.extend_from_slice(&sum.to_le_bytes());
        let body = unseal(&v1).unwrap();
        let mut d = Dec::new(&body);
        assert_eq!(d.bytes().unwrap(), b"state");
        assert_eq!(d.u8().unwrap(), 0);
        assert!(d.is_empty());
        assert!(unseal(&sealed[..sealed.len() - 1]).is_err());
        let mut altered = sealed.clone();
        altered[9] ^= 1;
        assert!(unseal(&altered).unwrap_err().contains("checksum"));
        assert!(unseal(b"garbage garbage garbage").is_err());
    }

    #[test]
    fn store_saves_loads_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(store.load("src", 3, 10).unwrap(), None);
        store.save("src", 3, 10, b"ten").unwrap();
        store.save("src", 3, 20, b"twenty").unwrap();
        store.save("src", 3, 30, b"thirty").unwrap();
        store.save("src", 4, 10, b"other partition").unwrap();
        assert_eq!(store.positions("src", 3).unwrap(), vec![10, 20, 30]);
        assert_eq!(store.load("src", 3, 20).unwrap().unwrap(), b"twenty");
        store.retain_only("src", 3, 20).unwrap();
        assert_eq!(store.positions("src", 3).unwrap(), vec![20]);
        assert_eq!(store.positions("src", 4).unwrap(), vec![10]);
        // A corrupt file is an error naming it, never an empty state.
        let path = dir.path().join("src/p0003/00000000000000000020.ckpt");
        fs::write(&path, b"ELCK\x01\x00\x00\x00junkjunk").unwrap();
        let err = store.load("src", 3, 20).unwrap_err().to_string();
        assert!(err.contains("corrupt") && err.contains("00000000000000000020.ckpt"), "{err}");
    }

    #[test]
    fn a_failed_save_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        // A directory where the checkpoint goes makes the final rename fail (as a full disk makes
        // the write fail): the error names the path and the temporary file is gone.
        let pdir = dir.path().join("src/p0003");
        fs::create_dir_all(pdir.join("00000000000000000010.ckpt/x")).unwrap();
        let err = store.save("src", 3, 10, b"state").unwrap_err().to_string();
        assert!(err.contains("00000000000000000010.ckpt"), "{err}");
        let left: Vec<_> = fs::read_dir(&pdir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("00000000000000000010.ckpt")], "temporary file left behind");
    }
}
