//! Partition leases: which aggregator owns which partition, decided by the aggregators themselves
//! through the checkpoint directory they share (the same place as the state they hand over).
//!
//! - **Ownership** of a partition is an exclusive `flock` on `<dir>/<source>/p<partition>/.lease`.
//!   The kernel grants it to one process at a time and releases it when the owner exits or is
//!   killed, so two aggregators never write the same partition, whatever the broker's group
//!   coordinator believes — exactly once does not depend on it.
//! - **Membership**: each aggregator rewrites `<dir>/_members/<group>/<member>` every second; a
//!   member whose file is older than the session timeout is gone. Each member aims for its fair
//!   share `ceil(partitions / live members)`: it releases partitions above it (checkpoint, commit,
//!   unlock) and takes free ones below it.
//!
//! Requires a file system with working `flock` shared by the group (one machine, or NFSv4/CephFS
//! with locking), as the Parquet lake is.

use std::fs::{self, File, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// An exclusive lease on one partition; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lease {
    _file: File,
}

impl Lease {
    /// Take the lease of `source`/`partition` if nobody holds it.
    pub fn try_acquire(dir: &Path, source: &str, partition: i32) -> std::io::Result<Option<Lease>> {
        let pdir = dir.join(source).join(format!("p{partition:04}"));
        fs::create_dir_all(&pdir)?;
        let path = pdir.join(".lease");
        let file = File::options().create(true).truncate(false).write(true).open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lease { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

/// This aggregator's entry in the group's member list.
#[derive(Debug)]
pub struct Membership {
    dir: PathBuf,
    file: PathBuf,
    session: Duration,
}

impl Membership {
    pub fn join(dir: &Path, group: &str, member: &str, session: Duration) -> std::io::Result<Self> {
        let dir = dir.join("_members").join(group);
        fs::create_dir_all(&dir)?;
        let m = Membership { file: dir.join(member), dir, session };
        m.heartbeat()?;
        Ok(m)
    }

    /// Tell the others this member is alive.
    pub fn heartbeat(&self) -> std::io::Result<()> {
        let mut f = File::create(&self.file)?;
        writeln!(f, "{}", std::process::id())
    }

    /// Members alive now (this one included). Entries silent for ten session timeouts are
    /// removed.
    pub fn live_members(&self) -> std::io::Result<usize> {
        let now = SystemTime::now();
        let mut n = 0;
        for e in fs::read_dir(&self.dir)?.flatten() {
            let age = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| now.duration_since(t).ok());
            match age {
                Some(age) if age > self.session * 10 => {
                    let _ = fs::remove_file(e.path());
                }
                Some(age) if age > self.session => {}
                _ => n += 1,
            }
        }
        Ok(n.max(1))
    }

    /// Leave the group (a graceful stop); the others take over without waiting for the session
    /// timeout.
    pub fn leave(self) {
        let _ = fs::remove_file(&self.file);
    }
}

/// The fair share of `partitions` among `members`.
pub fn fair_share(partitions: usize, members: usize) -> usize {
    partitions.div_ceil(members.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_owner_at_a_time_and_release_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let a = Lease::try_acquire(dir.path(), "src", 3).unwrap().expect("free");
        assert!(Lease::try_acquire(dir.path(), "src", 3).unwrap().is_none(), "held");
        assert!(Lease::try_acquire(dir.path(), "src", 4).unwrap().is_some(), "other partition");
        drop(a);
        assert!(Lease::try_acquire(dir.path(), "src", 3).unwrap().is_some(), "released");
    }

    #[test]
    fn members_expire_after_the_session_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let a = Membership::join(dir.path(), "g", "a", Duration::from_millis(300)).unwrap();
        let b = Membership::join(dir.path(), "g", "b", Duration::from_millis(300)).unwrap();
        assert_eq!(a.live_members().unwrap(), 2);
        std::thread::sleep(Duration::from_millis(500));
        a.heartbeat().unwrap();
        assert_eq!(a.live_members().unwrap(), 1, "b stopped heartbeating");
        b.heartbeat().unwrap();
        assert_eq!(a.live_members().unwrap(), 2);
        b.leave();
        assert_eq!(a.live_members().unwrap(), 1);
        assert_eq!((fair_share(9, 2), fair_share(9, 3), fair_share(8, 3), fair_share(3, 5)), (5, 3, 3, 1));
    }
}
