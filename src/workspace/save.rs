//! Atomic saving: the old file is either fully replaced or untouched.
//!
//! Steps: resolve the symlink chain (we write the link's target and keep
//! the link), check the folder and the file, create a uniquely named temp
//! file `.NAME.<pid>-<n>.lshed-tmp` in the same folder (same file system,
//! so the rename is atomic; the suffix matches the project's
//! `*.lshed-tmp` ignore pattern and the tree hides it), write the rope's
//! chunks, copy owner (best effort) and permission bits of the old file,
//! fsync, rename over the target, fsync the folder. On any failure the
//! temp file is removed and the old file is left as it was.
//!
//! Known limits: a file with several hard links loses the link (the
//! rename gives the path a new inode), as with every rename-based save;
//! extended attributes and ACLs are not copied.
//!
//! Depends on std, ropey, rustix (via `load::is_writable`).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use ropey::Rope;

use super::load::is_writable;
use super::WorkspaceError;

/// Suffix of our temp files (the tree and index hide them).
pub const TEMP_SUFFIX: &str = ".lshed-tmp";

/// How a successful save went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    /// An existing file was replaced.
    Saved {
        /// Bytes written.
        size: u64,
        /// The new modification time (remember it for
        /// [`modified_on_disk`]).
        mtime: Option<SystemTime>,
    },
    /// The file did not exist (deleted on disk since it was loaded, or a
    /// new file) and was created; the editor may want to say so.
    Recreated {
        /// Bytes written.
        size: u64,
        /// The new modification time.
        mtime: Option<SystemTime>,
    },
}

impl SaveOutcome {
    /// The file's modification time after the save.
    pub fn mtime(&self) -> Option<SystemTime> {
        match *self {
            SaveOutcome::Saved { mtime, .. } | SaveOutcome::Recreated { mtime, .. } => mtime,
        }
    }

    /// Bytes written.
    pub fn size(&self) -> u64 {
        match *self {
            SaveOutcome::Saved { size, .. } | SaveOutcome::Recreated { size, .. } => size,
        }
    }
}

/// Whether `path` changed on disk since we saw it with `known_mtime`
/// (`None`: it did not exist then). A file that vanished counts as
/// modified. Limit: two writes within one tick of the file system's
/// timestamp clock (a few ms on Linux) look identical.
pub fn modified_on_disk(path: &Path, known_mtime: Option<SystemTime>) -> bool {
    match fs::metadata(path).and_then(|m| m.modified()) {
        Ok(now) => Some(now) != known_mtime,
        Err(_) => known_mtime.is_some(),
    }
}

/// Saves `rope` to `path` atomically (see the module docs).
pub fn save_atomic(path: &Path, rope: &Rope) -> Result<SaveOutcome, WorkspaceError> {
    let target = resolve_symlinks(path)?;
    let Some(file_name) = target.file_name() else {
        return Err(WorkspaceError::IsDirectory {
            path: path.to_path_buf(),
        });
    };
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(WorkspaceError::NotADirectory { path: dir }),
        Err(e) if is_missing(&e) => {
            return Err(WorkspaceError::FolderGone {
                path: path.to_path_buf(),
                dir,
            })
        }
        Err(e) => return Err(WorkspaceError::from_io("save", &dir, e)),
    }
    let existing = match fs::metadata(&target) {
        Ok(m) => Some(m),
        Err(e) if is_missing(&e) => None,
        Err(e) => return Err(WorkspaceError::from_io("save", path, e)),
    };
    if let Some(m) = &existing {
        if m.is_dir() {
            return Err(WorkspaceError::IsDirectory {
                path: path.to_path_buf(),
            });
        }
        if !m.is_file() {
            // Renaming over a device or FIFO would replace the node itself.
            return Err(WorkspaceError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        if !is_writable(&target, m) {
            return Err(WorkspaceError::ReadOnly {
                path: path.to_path_buf(),
            });
        }
    }

    let mode = existing
        .as_ref()
        .map_or(0o666, |m| m.permissions().mode() & 0o7777);
    let (tmp, file) = create_temp(&dir, file_name, mode).map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => WorkspaceError::DirNotWritable {
            path: path.to_path_buf(),
            dir: dir.clone(),
        },
        io::ErrorKind::NotFound => WorkspaceError::FolderGone {
            path: path.to_path_buf(),
            dir: dir.clone(),
        },
        _ => WorkspaceError::from_io("save", path, e),
    })?;

    let written =
        write_contents(&file, rope, existing.as_ref()).and_then(|()| fs::rename(&tmp, &target));
    drop(file);
    if let Err(e) = written {
        // Best effort: the error to report is the original one.
        let _ = fs::remove_file(&tmp);
        return Err(WorkspaceError::from_io("write", path, e));
    }
    // Make the rename itself durable. Some file systems refuse fsync on a
    // directory; the data is already safely in place, so this is ignored.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }

    let size = rope.len_bytes() as u64;
    let mtime = fs::metadata(&target).and_then(|m| m.modified()).ok();
    Ok(if existing.is_some() {
        SaveOutcome::Saved { size, mtime }
    } else {
        SaveOutcome::Recreated { size, mtime }
    })
}

/// Follows a chain of symlinks (relative targets are relative to the
/// link's folder) to the path that should actually be written, so that
/// the link itself survives the rename. A dangling chain ends at the
/// missing path, which is then created.
fn resolve_symlinks(path: &Path) -> Result<PathBuf, WorkspaceError> {
    // Linux's own limit (MAXSYMLINKS).
    const MAX_HOPS: usize = 40;
    let mut cur = path.to_path_buf();
    for _ in 0..MAX_HOPS {
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                let link =
                    fs::read_link(&cur).map_err(|e| WorkspaceError::from_io("save", path, e))?;
                cur = if link.is_absolute() {
                    link
                } else {
                    cur.parent().unwrap_or(Path::new("")).join(link)
                };
            }
            _ => return Ok(cur),
        }
    }
    Err(WorkspaceError::Io {
        action: "save",
        path: path.to_path_buf(),
        source: io::Error::other("too many levels of symbolic links"),
    })
}

/// Creates `.NAME.<pid>-<n>.lshed-tmp` next to the target. `create_new`
/// guarantees we never clobber anything; a name left by a crashed process
/// with a recycled pid is skipped.
fn create_temp(dir: &Path, name: &std::ffi::OsStr, mode: u32) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // Keep the temp name under NAME_MAX (255) for long file names.
    let name = name.as_bytes();
    let short = &name[..name.len().min(150)];
    let mut last_err = None;
    for _ in 0..16 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = b".".to_vec();
        tmp_name.extend_from_slice(short);
        tmp_name.extend_from_slice(format!(".{}-{n}{TEMP_SUFFIX}", std::process::id()).as_bytes());
        let tmp = dir.join(OsString::from_vec(tmp_name));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("cannot create a temporary file")))
}

fn write_contents(file: &File, rope: &Rope, existing: Option<&fs::Metadata>) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(64 * 1024, file);
    for chunk in rope.chunks() {
        w.write_all(chunk.as_bytes())?;
    }
    w.flush()?;
    drop(w);
    #[cfg(test)]
    if tests::INJECT_WRITE_FAILURE.with(|f| f.get()) {
        return Err(io::Error::from_raw_os_error(28));
    }
    if let Some(m) = existing {
        // Owner first: chown clears setuid/setgid bits, chmod restores them.
        // Only root (or the owner, for the group) may chown; failing that
        // the file simply becomes ours, as with any editor's save.
        let _ = std::os::unix::fs::fchown(file, Some(m.uid()), Some(m.gid()));
        // Explicit chmod because the mode given at creation is masked by
        // the umask.
        file.set_permissions(fs::Permissions::from_mode(m.permissions().mode() & 0o7777))?;
    }
    file.sync_all()
}

fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(20)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::load::load_file;
    use std::cell::Cell;
    use std::os::unix::fs::symlink;
    use std::time::Duration;

    thread_local! {
        /// Makes `write_contents` fail as if the disk were full.
        pub(super) static INJECT_WRITE_FAILURE: Cell<bool> = const { Cell::new(false) };
    }

    /// Root ignores permission bits; tests that rely on them skip.
    fn running_as_root(dir: &Path) -> bool {
        let probe = dir.join(".root-probe");
        fs::write(&probe, "x").unwrap();
        fs::set_permissions(&probe, fs::Permissions::from_mode(0o000)).unwrap();
        let root = File::open(&probe).is_ok();
        fs::remove_file(&probe).unwrap();
        root
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn untouched_files_round_trip_byte_for_byte() {
        let d = tempfile::tempdir().unwrap();
        let samples: [&[u8]; 5] = [
            b"one\r\ntwo\r\n",
            b"lf\nonly\n",
            b"mixed\r\nends\nno-final",
            "\u{feff}bom ünï\r\n".as_bytes(),
            b"",
        ];
        for (i, bytes) in samples.iter().enumerate() {
            let p = d.path().join(format!("f{i}"));
            fs::write(&p, bytes).unwrap();
            let loaded = load_file(&p).unwrap();
            let out = save_atomic(&p, &loaded.rope).unwrap();
            assert!(matches!(out, SaveOutcome::Saved { .. }));
            assert_eq!(out.size(), bytes.len() as u64);
            assert_eq!(&fs::read(&p).unwrap(), bytes);
        }
        let mut big = String::new();
        for i in 0..50_000 {
            big.push_str(&format!("line {i} with some text\r\n"));
        }
        let p = d.path().join("big");
        fs::write(&p, &big).unwrap();
        save_atomic(&p, &load_file(&p).unwrap().rope).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), big);
        assert!(!entries(d.path()).iter().any(|n| n.ends_with(TEMP_SUFFIX)));
    }

    #[test]
    fn permissions_are_preserved() {
        let d = tempfile::tempdir().unwrap();
        for mode in [0o640, 0o755, 0o600] {
            let p = d.path().join(format!("m{mode:o}"));
            fs::write(&p, "old").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            save_atomic(&p, &Rope::from_str("new")).unwrap();
            assert_eq!(fs::read_to_string(&p).unwrap(), "new");
            let got = fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
            assert_eq!(got, mode, "mode {mode:o} became {got:o}");
        }
    }

    #[test]
    fn symlink_is_kept_and_target_written() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("real")).unwrap();
        let real = d.path().join("real/file.txt");
        fs::write(&real, "old").unwrap();
        let link = d.path().join("link.txt");
        symlink("real/file.txt", &link).unwrap();
        let link2 = d.path().join("link2.txt");
        symlink(&link, &link2).unwrap();

        save_atomic(&link2, &Rope::from_str("through two links")).unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(fs::symlink_metadata(&link2)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_to_string(&real).unwrap(), "through two links");
        assert!(entries(d.path()).iter().all(|n| !n.ends_with(TEMP_SUFFIX)));
        assert!(entries(&d.path().join("real"))
            .iter()
            .all(|n| !n.ends_with(TEMP_SUFFIX)));
    }

    #[test]
    fn deleted_file_is_recreated() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("gone.txt");
        fs::write(&p, "old").unwrap();
        let loaded = load_file(&p).unwrap();
        fs::remove_file(&p).unwrap();
        let out = save_atomic(&p, &loaded.rope).unwrap();
        assert!(matches!(out, SaveOutcome::Recreated { .. }));
        assert_eq!(fs::read_to_string(&p).unwrap(), "old");
        assert_eq!(out.mtime(), fs::metadata(&p).unwrap().modified().ok());
    }

    #[test]
    fn vanished_folder_is_reported() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/file.txt");
        let e = save_atomic(&p, &Rope::from_str("x")).unwrap_err();
        assert!(matches!(e, WorkspaceError::FolderGone { .. }), "{e}");
        assert!(e.to_string().contains("no longer exists"), "{e}");
    }

    #[test]
    fn read_only_file_is_refused_and_untouched() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ro.txt");
        fs::write(&p, "old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o444)).unwrap();
        let e = save_atomic(&p, &Rope::from_str("new")).unwrap_err();
        assert!(matches!(e, WorkspaceError::ReadOnly { .. }), "{e}");
        assert!(e.to_string().contains("read-only"));
        assert_eq!(fs::read_to_string(&p).unwrap(), "old");
        assert_eq!(entries(d.path()), vec!["ro.txt"]);
    }

    #[test]
    fn unwritable_folder_fails_cleanly() {
        let d = tempfile::tempdir().unwrap();
        if running_as_root(d.path()) {
            eprintln!("skipped: running as root, folder permissions do not apply");
            return;
        }
        let sub = d.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let p = sub.join("f.txt");
        fs::write(&p, "old").unwrap();
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o555)).unwrap();
        let e = save_atomic(&p, &Rope::from_str("new")).unwrap_err();
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(e, WorkspaceError::DirNotWritable { .. }), "{e}");
        assert!(e.to_string().contains("not writable"));
        assert_eq!(fs::read_to_string(&p).unwrap(), "old");
        assert_eq!(entries(&sub), vec!["f.txt"]);
    }

    #[test]
    fn directory_target_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("dir_target");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("inside"), "keep").unwrap();
        let e = save_atomic(&p, &Rope::from_str("x")).unwrap_err();
        assert!(matches!(e, WorkspaceError::IsDirectory { .. }), "{e}");
        assert_eq!(fs::read_to_string(p.join("inside")).unwrap(), "keep");
        assert_eq!(entries(d.path()), vec!["dir_target"]);
    }

    #[test]
    fn failed_write_removes_temp_and_keeps_old_file() {
        // Works as root too: the failure (ENOSPC) is injected after the
        // temp file has been written, just before fsync and rename.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.txt");
        fs::write(&p, "old contents").unwrap();
        INJECT_WRITE_FAILURE.with(|f| f.set(true));
        let result = save_atomic(&p, &Rope::from_str("new contents"));
        INJECT_WRITE_FAILURE.with(|f| f.set(false));
        let e = result.unwrap_err();
        assert!(matches!(e, WorkspaceError::DiskFull { .. }), "{e}");
        assert!(e.to_string().contains("disk is full"), "{e}");
        assert_eq!(fs::read_to_string(&p).unwrap(), "old contents");
        assert_eq!(entries(d.path()), vec!["f.txt"]);
    }

    #[test]
    fn special_files_are_not_replaced() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let e = save_atomic(&sock, &Rope::from_str("x")).unwrap_err();
        assert!(matches!(e, WorkspaceError::NotAFile { .. }), "{e}");
    }

    #[test]
    fn long_names_get_valid_temp_names() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("n".repeat(250));
        save_atomic(&p, &Rope::from_str("x")).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "x");
    }

    #[test]
    fn disk_full_is_classified() {
        let e = WorkspaceError::from_io(
            "write",
            Path::new("a.txt"),
            io::Error::from_raw_os_error(28),
        );
        assert!(matches!(e, WorkspaceError::DiskFull { .. }));
        assert_eq!(e.to_string(), "cannot write a.txt: the disk is full");
    }

    #[test]
    fn modified_on_disk_detects_external_changes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.txt");
        let out = save_atomic(&p, &Rope::from_str("mine")).unwrap();
        assert!(!modified_on_disk(&p, out.mtime()));
        // Someone else writes; make the mtime differ deterministically.
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        drop(f);
        assert!(modified_on_disk(&p, out.mtime()));
        fs::remove_file(&p).unwrap();
        assert!(modified_on_disk(&p, out.mtime()));
        assert!(!modified_on_disk(&p, None));
    }
}
