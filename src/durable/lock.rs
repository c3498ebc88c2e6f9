//! Exclusive ownership of a file-system resource (a run folder, a feature-cache entry) by one
//! process, safe on one host and across the hosts of a cluster sharing the folder over NFS.
//!
//! A lock is a file (`<run>/lock`) that says who holds it, as one JSON line:
//! `{"host":…,"pid":…,"task":…,"started":…,"heartbeat":…,"heartbeat_unix":…}`.
//!
//! * **Complete the moment it exists.** The file is written and `flock`ed under a private name
//!   first, then hard-linked into place (`link` fails if the name exists, atomically, on local
//!   file systems and on NFS). Nobody ever sees an empty or half-written lock, and the holder's
//!   `flock` covers the file from its first instant.
//! * **One host: `flock`.** The holder keeps the file open and `flock`ed for the run's lifetime;
//!   the kernel drops the lock when the process dies, however it dies. A process on the same
//!   host that obtains the `flock` therefore knows the recorded holder is gone: the lock is stale
//!   and it takes it over while holding the `flock`, so two contenders cannot both take it.
//! * **Across hosts: create-new + heartbeat.** `flock` may not reach other hosts (NFS mounted
//!   with `local_lock`, some parallel file systems), so a lock recorded by another host is
//!   respected while its heartbeat is fresh: the holder rewrites `heartbeat` (in place, same
//!   length) and the file's mtime every [`HEARTBEAT`]; the lock is stale only when both are
//!   older than [`STALE_AFTER`]. Taking over moves the stale file aside under a private name,
//!   checks that what it moved is the file it judged (same inode), and only then creates its
//!   own lock with create-new; it puts back a fresh lock that it moved by mistake.
//!
//! What is left: two hosts whose clocks differ by more than [`STALE_AFTER`] can misjudge each
//! other's heartbeat, and a holder that stops heartbeating for longer (a node frozen for minutes)
//! loses its lock to another host.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::host::hostname;

/// How often a holder refreshes its heartbeat.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(10);
/// A lock from another host whose heartbeat (and mtime) is older than this is stale: twelve
/// missed heartbeats, well above NFS attribute caching (60 s at most by default).
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(120);

/// Who holds a lock, as recorded in its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Holder {
    pub host: String,
    pub pid: u32,
    /// The scheduler's name for the task (`slurm 123_4`, `k8s index 3`), if any.
    pub task: Option<String>,
    pub started: String,
    pub heartbeat: String,
    pub heartbeat_unix: u64,
}

impl Holder {
    fn me(now: u64) -> Self {
        let t = super::timestamp::rfc3339(now);
        Holder {
            host: hostname(),
            pid: std::process::id(),
            task: task_name(),
            started: t.clone(),
            heartbeat: t,
            heartbeat_unix: now,
        }
    }

    fn line(&self) -> String {
        serde_json::to_string(self).expect("holder serialises") + "\n"
    }

    /// `pid 123 on node7 (slurm 55_2)`.
    pub(crate) fn describe(&self) -> String {
        let task = self
            .task
            .as_ref()
            .map(|t| format!(" ({t})"))
            .unwrap_or_default();
        format!("pid {} on {}{task}", self.pid, self.host)
    }
}

/// This process as a lock names it: `pid 123 on node7 (slurm 55_2)`.
pub(crate) fn this_process() -> String {
    Holder::me(0).describe()
}

/// The scheduler task this process runs as, for logs and lock files.
pub(crate) fn task_name() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(job), Some(task)) = (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
        return Some(format!("slurm {job}_{task}"));
    }
    if let Some(job) = var("SLURM_JOB_ID") {
        return Some(format!("slurm {job}"));
    }
    var("JOB_COMPLETION_INDEX").map(|i| format!("k8s index {i}"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What the lock file at a path says, as read by someone who does not hold it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// `None`: the content is not a lock record (a lock from an older runner holding a bare
    /// pid is read as this host's).
    pub holder: Option<Holder>,
    /// Unix time of the latest heartbeat: the later of the recorded one and the file's mtime.
    pub heartbeat_unix: u64,
}

impl Seen {
    /// Why a lock that nobody on this host holds in `flock` is stale, or `None` if it must be
    /// respected. Only meaningful after obtaining the `flock`.
    fn stale_without_flock(&self, now: u64) -> Option<String> {
        match &self.holder {
            Some(h) if h.host == hostname() => Some(format!("{} is gone", h.describe())),
            _ => self.stale_by_heartbeat(now),
        }
    }

    fn stale_by_heartbeat(&self, now: u64) -> Option<String> {
        let age = now.saturating_sub(self.heartbeat_unix);
        (age > STALE_AFTER.as_secs()).then(|| {
            let who = self
                .holder
                .as_ref()
                .map(Holder::describe)
                .unwrap_or_else(|| "an unreadable holder".into());
            format!(
                "{who} sent no heartbeat for {age}s (stale after {}s)",
                STALE_AFTER.as_secs()
            )
        })
    }

    /// Why the lock is stale as seen from outside (by `runner status`, without taking the
    /// `flock`): a holder on this host whose process is gone, or a heartbeat that is too old.
    pub(crate) fn stale(&self) -> Option<String> {
        match &self.holder {
            Some(h) if h.host == hostname() && !process_alive(h.pid) => {
                Some(format!("{} is gone", h.describe()))
            }
            Some(h) if h.host == hostname() => None,
            _ => self.stale_by_heartbeat(unix_now()),
        }
    }
}

/// Reads a lock file without touching it. `None` when there is none.
pub(crate) fn inspect(path: &Path) -> Option<Seen> {
    let mut f = File::open(path).ok()?;
    Some(read_seen(&mut f))
}

fn read_seen(f: &mut File) -> Seen {
    let mut holder = None;
    // a heartbeat being rewritten in place can be read torn: read again
    for attempt in 0..3 {
        let mut text = String::new();
        let ok = f.seek(SeekFrom::Start(0)).is_ok() && f.read_to_string(&mut text).is_ok();
        if ok {
            holder = parse(&text);
            if holder.is_some() {
                break;
            }
        }
        if attempt < 2 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let mtime = f
        .metadata()
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let recorded = holder.as_ref().map(|h| h.heartbeat_unix).unwrap_or(0);
    Seen {
        holder,
        heartbeat_unix: recorded.max(mtime),
    }
}

fn parse(text: &str) -> Option<Holder> {
    if let Ok(h) = serde_json::from_str::<Holder>(text.trim()) {
        return Some(h);
    }
    // a lock written by a runner before this format: just the pid, always from this host
    let pid = text.trim().parse::<u32>().ok()?;
    Some(Holder {
        host: hostname(),
        pid,
        task: None,
        started: String::new(),
        heartbeat: String::new(),
        heartbeat_unix: 0,
    })
}

/// Why a lock could not be taken: someone else holds it (as far as we can tell: `None` when a
/// process on this host holds the `flock`, which is also the case while it inspects the file).
#[derive(Debug, Clone)]
pub(crate) struct Busy {
    pub seen: Option<Seen>,
}

impl Busy {
    pub(crate) fn describe(&self) -> String {
        match self.seen.as_ref().and_then(|s| s.holder.as_ref()) {
            Some(h) => h.describe(),
            None => "another process".into(),
        }
    }
}

/// A held lock. Dropping it removes the file and releases the `flock`.
#[derive(Debug)]
pub(crate) struct FileLock {
    path: PathBuf,
    file: File,
    heartbeat: Option<Heartbeat>,
}

#[derive(Debug)]
struct Heartbeat {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: std::thread::JoinHandle<()>,
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

fn private_name(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        "{name}-{what}.{}.{}.{}",
        hostname(),
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    ))
}

fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

enum Attempt {
    Got(FileLock),
    Busy(Busy),
    Retry,
}

impl FileLock {
    /// Takes the lock at `path` if nobody holds it (a stale lock is taken over), without
    /// waiting. The lock's folder must exist.
    pub(crate) fn try_acquire(path: &Path) -> std::io::Result<Result<FileLock, Busy>> {
        // every retry means the file changed under us (released, taken over): a few suffice
        for _ in 0..50 {
            match Self::attempt(path)? {
                Attempt::Got(l) => return Ok(Ok(l)),
                Attempt::Busy(b) => return Ok(Err(b)),
                Attempt::Retry => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        Ok(Err(Busy {
            seen: inspect(path),
        }))
    }

    /// Takes the lock at `path`, waiting for its holder to release it; `waiting` is called
    /// once, when the lock is first found busy.
    pub(crate) fn acquire_waiting(
        path: &Path,
        mut waiting: impl FnMut(&Busy),
    ) -> std::io::Result<FileLock> {
        let mut told = false;
        loop {
            match Self::try_acquire(path)? {
                Ok(l) => return Ok(l),
                Err(busy) => {
                    if !told {
                        waiting(&busy);
                        told = true;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn attempt(path: &Path) -> std::io::Result<Attempt> {
        let mut file = match File::options().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Self::create_new(path),
            Err(e) => return Err(e),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Ok(Attempt::Busy(Busy {
                    seen: Some(read_seen(&mut file)),
                }))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        // we hold the flock of the file we opened: is it still the one at `path`?
        let ours = file.metadata()?;
        match std::fs::metadata(path) {
            Ok(now) if same_file(&ours, &now) => {}
            Ok(_) => return Ok(Attempt::Retry),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Attempt::Retry),
            Err(e) => return Err(e),
        }
        let seen = read_seen(&mut file);
        let Some(why) = seen.stale_without_flock(unix_now()) else {
            return Ok(Attempt::Busy(Busy { seen: Some(seen) }));
        };
        tracing::warn!("{}: taking over a stale lock: {why}", path.display());
        // move the stale file aside and check that it is the one we judged: another host (not
        // covered by our flock) may have replaced it meanwhile
        let aside = private_name(path, "stale");
        match std::fs::rename(path, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Attempt::Retry),
            Err(e) => return Err(e),
        }
        let moved = std::fs::metadata(&aside)?;
        if !same_file(&ours, &moved) {
            // someone's fresh lock: put it back (create-new, so never over a third one)
            let _ = std::fs::hard_link(&aside, path);
            let _ = std::fs::remove_file(&aside);
            return Ok(Attempt::Retry);
        }
        let _ = std::fs::remove_file(&aside);
        drop(file);
        Self::create_new(path)
    }

    /// Creates the lock with create-new semantics: written and flocked under a private name,
    /// then hard-linked into place.
    fn create_new(path: &Path) -> std::io::Result<Attempt> {
        let tmp = private_name(path, "new");
        let file = File::create_new(&tmp)?;
        let made = (|| {
            file.try_lock().map_err(std::io::Error::from)?;
            file.write_all_at(Holder::me(unix_now()).line().as_bytes(), 0)?;
            file.sync_all()?;
            std::fs::hard_link(&tmp, path)
        })();
        let _ = std::fs::remove_file(&tmp);
        match made {
            Ok(()) => Ok(Attempt::Got(FileLock {
                path: path.to_path_buf(),
                heartbeat: Some(Heartbeat::start(&file)?),
                file,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Attempt::Retry),
            Err(e) => Err(e),
        }
    }
}

impl Heartbeat {
    fn start(file: &File) -> std::io::Result<Self> {
        let file = file.try_clone()?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("lock-heartbeat".into())
            .spawn(move || {
                let (lock, cvar) = &*flag;
                let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                // stopped may be set before this thread first runs: check before each wait
                while !*stopped {
                    let (s, _) = cvar
                        .wait_timeout(stopped, HEARTBEAT)
                        .unwrap_or_else(|e| e.into_inner());
                    stopped = s;
                    if *stopped {
                        return;
                    }
                    beat(&file);
                }
            })?;
        Ok(Self { stop, thread })
    }
}

/// Rewrites the heartbeat in place (same length: the timestamps have fixed widths) and the
/// file's mtime.
fn beat(file: &File) {
    let mut f = match file.try_clone() {
        Ok(f) => f,
        Err(_) => return,
    };
    let Some(mut h) = read_seen(&mut f).holder else {
        return;
    };
    let now = unix_now();
    h.heartbeat = super::timestamp::rfc3339(now);
    h.heartbeat_unix = now;
    let line = h.line();
    let _ = file.write_all_at(line.as_bytes(), 0);
    let _ = file.set_len(line.len() as u64);
    let _ = file.set_modified(SystemTime::now());
}

impl Drop for FileLock {
    fn drop(&mut self) {
        if let Some(hb) = self.heartbeat.take() {
            *hb.stop.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
            hb.stop.1.notify_all();
            let _ = hb.thread.join();
        }
        // remove the file only if it is still ours, while still holding the flock
        if let (Ok(ours), Ok(now)) = (self.file.metadata(), std::fs::metadata(&self.path)) {
            if same_file(&ours, &now) {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Removes the private files (`<lock>-new.<host>.<pid>.<n>`, `<lock>-stale.…`) that a process
/// killed while taking or taking over a lock in `dir` left behind. They live for microseconds:
/// one is an orphan when its process is gone (this host) or when it is a minute old (another
/// host, whose processes cannot be seen from here; a younger one may be in use).
pub(crate) fn remove_orphaned_private_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let here = hostname();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(owner) = ["lock-new.", "lock-stale."]
            .iter()
            .find_map(|kind| name.split_once(kind).map(|(_, rest)| rest))
        else {
            continue;
        };
        // <host>.<pid>.<n>; the host may hold dots of its own
        let mut parts = owner.rsplitn(3, '.');
        let (_n, pid, host) = (parts.next(), parts.next(), parts.next());
        let dead_here = host == Some(here.as_str())
            && pid
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|pid| !process_alive(pid));
        let old = || {
            e.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 60)
        };
        if dead_here || old() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Whether a process with this pid exists on this host (a zombie counts as gone).
pub(crate) fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    if proc.is_dir() {
        return std::fs::read_to_string(proc.join(pid.to_string()).join("stat"))
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false);
    }
    // without /proc, assume the holder lives: never train a run twice at once
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    // the run lock is the lock every run takes: tested here with the machinery it rests on
    use crate::results::layout::RunDir;
    use crate::results::store::RunLock;
    use std::sync::atomic::AtomicUsize;

    fn run_dir() -> (tempfile::TempDir, RunDir) {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::at(dir.path());
        (dir, run)
    }

    fn record(host: &str, pid: u32, age_secs: u64) -> String {
        let t = unix_now() - age_secs;
        Holder {
            host: host.into(),
            pid,
            task: None,
            started: crate::durable::timestamp::rfc3339(t),
            heartbeat: crate::durable::timestamp::rfc3339(t),
            heartbeat_unix: t,
        }
        .line()
    }

    fn set_mtime(path: &Path, age_secs: u64) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(age_secs))
            .unwrap();
    }

    #[test]
    fn private_files_of_dead_processes_go_and_those_of_live_or_unknown_ones_stay() {
        let (_tmp, dir) = run_dir();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let here = hostname();
        let names = [
            format!("lock-new.{here}.{dead}.0"),
            format!("lock-stale.{here}.{dead}.1"),
            format!("features-ab.safetensors.lock-new.{here}.{dead}.2"),
            format!("lock-new.{here}.{}.3", std::process::id()),
            "lock-new.another-host.1.4".to_string(),
        ];
        for n in &names {
            std::fs::write(dir.path().join(n), "").unwrap();
        }
        remove_orphaned_private_files(dir.path());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut kept = vec![names[3].clone(), names[4].clone()];
        kept.sort();
        assert_eq!(left, kept);
    }

    #[test]
    fn a_lock_is_complete_from_its_first_instant_and_removed_on_release() {
        let (_t, run) = run_dir();
        let lock = RunLock::acquire(&run).unwrap().unwrap();
        let seen = inspect(&run.lock()).unwrap();
        let h = seen.holder.unwrap();
        assert_eq!((h.host, h.pid), (hostname(), std::process::id()));
        // held: a second acquirer in the same process (another open file) is refused
        assert!(RunLock::acquire(&run).unwrap().is_none());
        drop(lock);
        assert!(!run.lock().exists());
        assert!(RunLock::acquire(&run).unwrap().is_some());
        // no private files left behind
        let names: Vec<_> = std::fs::read_dir(run.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 0);
    }

    /// Issue #12.1: 40 contenders start at once on a run whose lock a killed runner left
    /// behind; at no moment do two of them hold it. (The lock before this one let every
    /// contender in: a lock holding our own pid, or none yet, counted as stale.)
    #[test]
    fn forty_simultaneous_contenders_never_hold_a_run_together() {
        for stale in [
            None,
            Some(record(&hostname(), 4_294_967, 0)),
            Some("".into()),
        ] {
            let (_t, run) = run_dir();
            if let Some(content) = &stale {
                std::fs::write(run.lock(), content).unwrap();
            }
            let holding = Arc::new(AtomicUsize::new(0));
            let most = Arc::new(AtomicUsize::new(0));
            let won = Arc::new(AtomicUsize::new(0));
            let gate = Arc::new(std::sync::Barrier::new(40));
            let threads: Vec<_> = (0..40)
                .map(|_| {
                    let (run, holding, most, won, gate) = (
                        run.clone(),
                        holding.clone(),
                        most.clone(),
                        won.clone(),
                        gate.clone(),
                    );
                    std::thread::spawn(move || {
                        gate.wait();
                        if let Some(lock) = RunLock::acquire(&run).unwrap() {
                            let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            won.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(30));
                            holding.fetch_sub(1, Ordering::SeqCst);
                            drop(lock);
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            if stale.as_deref() == Some("") {
                // an empty (fresh) lock names nobody: respected, never taken for stale
                assert_eq!(won.load(Ordering::SeqCst), 0);
            } else {
                assert_eq!(most.load(Ordering::SeqCst), 1, "lock content {stale:?}");
            }
        }
    }

    #[test]
    fn another_hosts_lock_is_respected_while_its_heartbeat_is_fresh() {
        let (_t, run) = run_dir();
        let path = run.lock();
        std::fs::write(&path, record("node-elsewhere", 1234, 5)).unwrap();
        assert!(RunLock::acquire(&run).unwrap().is_none());
        assert!(inspect(&path).unwrap().stale().is_none());

        // an old heartbeat alone is not enough while the file was touched recently
        std::fs::write(&path, record("node-elsewhere", 1234, 3600)).unwrap();
        assert!(RunLock::acquire(&run).unwrap().is_none());
        set_mtime(&path, 3600);
        let why = inspect(&path).unwrap().stale().unwrap();
        assert!(
            why.contains("pid 1234 on node-elsewhere sent no heartbeat"),
            "{why}"
        );
        let lock = RunLock::acquire(&run).unwrap().unwrap();
        assert_eq!(inspect(&path).unwrap().holder.unwrap().host, hostname());
        drop(lock);
    }

    #[test]
    fn this_hosts_lock_is_stale_once_nobody_holds_its_flock() {
        let (_t, run) = run_dir();
        let path = run.lock();
        // a legacy lock (bare pid) of a process that is gone, and a record with a live pid but
        // no flock (pid 1 is always alive, but holds no lock here)
        for content in ["4294967".to_string(), record(&hostname(), 1, 0)] {
            std::fs::write(&path, &content).unwrap();
            let lock = RunLock::acquire(&run).unwrap();
            assert!(lock.is_some(), "{content}");
        }
        std::fs::write(&path, record(&hostname(), 4_294_967, 0)).unwrap();
        let why = inspect(&path).unwrap().stale().unwrap();
        assert!(why.contains("is gone"), "{why}");
    }

    #[test]
    fn the_heartbeat_rewrites_the_record_in_place() {
        let (_t, run) = run_dir();
        let path = run.lock();
        let lock = FileLock::try_acquire(&path).unwrap().unwrap();
        let before = std::fs::read_to_string(&path).unwrap();
        beat(&lock.file);
        let after = std::fs::read_to_string(&path).unwrap();
        assert_eq!(before.len(), after.len());
        assert!(parse(&after).is_some());
    }
}
