//! Path confinement: turning a guest-supplied relative path into a real
//! path that is guaranteed (at the time of the check) to lie inside the
//! shared folder, and the inverse.
//!
//! Guests name files with '/'-separated relative paths. [`confine`] refuses
//! empty paths, NUL bytes, absolute paths and `..` components outright
//! (instead of normalising them: a request with `..` is never legitimate from
//! our own client, so it is treated as hostile), then walks the path one
//! component at a time from the canonical root: every symlink met on the way
//! is resolved and must land inside the canonical root. Components that do
//! not exist yet are appended as they are, so paths for files about to be
//! created can be confined too. A dangling symlink is refused, because
//! creating a file through it could land anywhere.
//!
//! Limits: this is a check, not a capability system. Between the check and
//! the use, a process on the host could swap a directory for a symlink;
//! guests cannot create symlinks through our API, so only the host's own
//! processes could race us, and they already own the disk.
//!
//! Depends on std only.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::PathError;

const ENOTDIR: i32 = 20;

/// Resolves `requested` (relative, '/'-separated) inside `root`, following
/// symlinks all the way, including the last component. Use this for
/// reading and writing file contents. The result is under the canonical
/// root (symlinks inside the root resolved); `"."` gives the root itself.
pub fn confine(root: &Path, requested: &str) -> Result<PathBuf, PathError> {
    resolve(root, requested, true)
}

/// Like [`confine`], but the last component is not followed: use this for
/// operations on the directory entry itself (delete, rename), so that a
/// symlink can be removed or renamed even if it points outside the root
/// (doing so never touches what it points at).
pub fn confine_entry(root: &Path, requested: &str) -> Result<PathBuf, PathError> {
    resolve(root, requested, false)
}

/// The inverse of [`confine`]: `abs` as a '/'-separated path relative to
/// `root`, `"."` for the root itself, or `None` if `abs` is not under
/// `root` (also compared in canonical form) or is not valid UTF-8 (such a
/// name could not round-trip through a guest's string path).
pub fn relative(root: &Path, abs: &Path) -> Option<String> {
    if let Ok(rel) = abs.strip_prefix(root) {
        return join_components(rel);
    }
    // Either side may be spelled through a symlink (e.g. /tmp vs
    // /private/tmp, or a symlinked home): compare canonical forms.
    let canon_root = fs::canonicalize(root).ok()?;
    if let Ok(rel) = abs.strip_prefix(&canon_root) {
        return join_components(rel);
    }
    let canon_abs = fs::canonicalize(abs).ok()?;
    join_components(canon_abs.strip_prefix(&canon_root).ok()?)
}

fn join_components(rel: &Path) -> Option<String> {
    let mut out = String::new();
    for comp in rel.components() {
        match comp {
            Component::Normal(name) => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(name.to_str()?);
            }
            Component::CurDir => {}
            // Not reachable from strip_prefix of a clean path, but a `..`
            // here would mean "outside", so never produce it.
            _ => return None,
        }
    }
    if out.is_empty() {
        out.push('.');
    }
    Some(out)
}

/// Splits and validates the request; returns its normal components.
fn parse(requested: &str) -> Result<Vec<&str>, PathError> {
    if requested.is_empty() {
        return Err(PathError::Empty);
    }
    if requested.contains('\0') {
        return Err(PathError::NulByte);
    }
    if requested.starts_with('/') {
        return Err(PathError::Absolute {
            requested: requested.to_string(),
        });
    }
    let comps: Vec<&str> = requested
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if comps.contains(&"..") {
        return Err(PathError::ParentComponent {
            requested: requested.to_string(),
        });
    }
    Ok(comps)
}

fn resolve(root: &Path, requested: &str, follow_last: bool) -> Result<PathBuf, PathError> {
    let comps = parse(requested)?;
    let canon_root = fs::canonicalize(root).map_err(|source| PathError::Root {
        root: root.to_path_buf(),
        source,
    })?;
    let io_err = |source: io::Error| PathError::Io {
        requested: requested.to_string(),
        source,
    };
    let mut cur = canon_root.clone();
    for (i, comp) in comps.iter().enumerate() {
        let next = cur.join(OsStr::new(comp));
        if i + 1 == comps.len() && !follow_last {
            return Ok(next);
        }
        match fs::symlink_metadata(&next) {
            Ok(meta) if meta.file_type().is_symlink() => match fs::canonicalize(&next) {
                Ok(target) => {
                    if !target.starts_with(&canon_root) {
                        return Err(PathError::Escape {
                            requested: requested.to_string(),
                        });
                    }
                    cur = target;
                }
                Err(e) if is_missing(&e) => {
                    return Err(PathError::DanglingSymlink {
                        requested: requested.to_string(),
                    })
                }
                Err(e) => return Err(io_err(e)),
            },
            Ok(_) => cur = next,
            Err(e) if is_missing(&e) => {
                // Nothing exists from here on, so no symlink can follow:
                // the rest is appended literally (a path to be created).
                let mut out = next;
                out.extend(comps[i + 1..].iter().map(OsStr::new));
                return Ok(out);
            }
            Err(e) => return Err(io_err(e)),
        }
    }
    Ok(cur)
}

fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(ENOTDIR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("sub/deeper")).unwrap();
        fs::write(root.join("sub/file.txt"), "x").unwrap();
        fs::write(dir.path().join("secret.txt"), "secret").unwrap();
        fs::create_dir(dir.path().join("outside")).unwrap();
        (dir, fs::canonicalize(&root).unwrap())
    }

    #[test]
    fn plain_paths_resolve_inside_root() {
        let (_d, root) = setup();
        assert_eq!(
            confine(&root, "sub/file.txt").unwrap(),
            root.join("sub/file.txt")
        );
        assert_eq!(
            confine(&root, "./sub//file.txt").unwrap(),
            root.join("sub/file.txt")
        );
        assert_eq!(confine(&root, ".").unwrap(), root);
        assert_eq!(confine(&root, "sub/").unwrap(), root.join("sub"));
        // Names that merely look like dots are ordinary names.
        assert_eq!(confine(&root, "...").unwrap(), root.join("..."));
        assert_eq!(confine(&root, "..x/y").unwrap(), root.join("..x/y"));
        // Backslashes are ordinary filename bytes on Unix.
        assert_eq!(confine(&root, "..\\x").unwrap(), root.join("..\\x"));
    }

    #[test]
    fn nonexistent_paths_are_allowed_for_creation() {
        let (_d, root) = setup();
        assert_eq!(
            confine(&root, "new/dir/file.rs").unwrap(),
            root.join("new/dir/file.rs")
        );
        assert_eq!(
            confine(&root, "sub/deeper/new.txt").unwrap(),
            root.join("sub/deeper/new.txt")
        );
        // Below a file: cannot exist, but is not an escape either.
        assert_eq!(
            confine(&root, "sub/file.txt/x").unwrap(),
            root.join("sub/file.txt/x")
        );
    }

    #[test]
    fn lexical_attacks_are_refused() {
        let (_d, root) = setup();
        assert!(matches!(confine(&root, ""), Err(PathError::Empty)));
        assert!(matches!(
            confine(&root, "/etc/passwd"),
            Err(PathError::Absolute { .. })
        ));
        assert!(matches!(
            confine(&root, "//etc/passwd"),
            Err(PathError::Absolute { .. })
        ));
        for bad in [
            "..",
            "../secret.txt",
            "sub/../../secret.txt",
            "sub/..",
            "a/../b",
        ] {
            assert!(
                matches!(confine(&root, bad), Err(PathError::ParentComponent { .. })),
                "{bad} accepted"
            );
        }
        assert!(matches!(
            confine(&root, "sub/\0file"),
            Err(PathError::NulByte)
        ));
        assert!(matches!(
            confine_entry(&root, "../x"),
            Err(PathError::ParentComponent { .. })
        ));
    }

    #[test]
    fn symlink_escapes_are_refused() {
        let (d, root) = setup();
        let outside = d.path().join("outside");
        symlink(&outside, root.join("out_dir")).unwrap();
        symlink(d.path().join("secret.txt"), root.join("secret_link")).unwrap();
        symlink("../secret.txt", root.join("rel_link")).unwrap();
        symlink("/", root.join("slash")).unwrap();
        symlink("../../../outside", root.join("sub/deeper/up")).unwrap();

        for bad in [
            "out_dir",
            "out_dir/new_file",
            "out_dir/a/b/c",
            "secret_link",
            "rel_link",
            "slash/etc/passwd",
            "sub/deeper/up/x",
        ] {
            assert!(
                matches!(confine(&root, bad), Err(PathError::Escape { .. })),
                "{bad} accepted: {:?}",
                confine(&root, bad)
            );
        }
        // The link entry itself may be deleted/renamed: not followed.
        assert_eq!(
            confine_entry(&root, "secret_link").unwrap(),
            root.join("secret_link")
        );
        // ...but not used as a folder to reach through.
        assert!(matches!(
            confine_entry(&root, "out_dir/x"),
            Err(PathError::Escape { .. })
        ));
    }

    #[test]
    fn symlinks_inside_root_are_followed() {
        let (_d, root) = setup();
        symlink("sub", root.join("alias")).unwrap();
        symlink(root.join("sub/file.txt"), root.join("abs_alias")).unwrap();
        assert_eq!(
            confine(&root, "alias/file.txt").unwrap(),
            root.join("sub/file.txt")
        );
        assert_eq!(
            confine(&root, "abs_alias").unwrap(),
            root.join("sub/file.txt")
        );
        assert_eq!(
            confine(&root, "alias/new.txt").unwrap(),
            root.join("sub/new.txt")
        );
    }

    #[test]
    fn dangling_and_looping_symlinks_are_refused() {
        let (d, root) = setup();
        symlink(d.path().join("nowhere"), root.join("dangling")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        assert!(matches!(
            confine(&root, "dangling"),
            Err(PathError::DanglingSymlink { .. })
        ));
        assert!(matches!(
            confine(&root, "dangling/x"),
            Err(PathError::DanglingSymlink { .. })
        ));
        assert!(confine(&root, "loop1").is_err());
        assert!(confine(&root, "loop1/x").is_err());
    }

    #[test]
    fn root_given_through_a_symlink() {
        let (d, root) = setup();
        let link_root = d.path().join("root_link");
        symlink(&root, &link_root).unwrap();
        assert_eq!(
            confine(&link_root, "sub/file.txt").unwrap(),
            root.join("sub/file.txt")
        );
        assert_eq!(
            relative(&link_root, &root.join("sub/file.txt")).as_deref(),
            Some("sub/file.txt")
        );
    }

    #[test]
    fn missing_root_is_an_error() {
        let (d, _root) = setup();
        assert!(matches!(
            confine(&d.path().join("gone"), "a"),
            Err(PathError::Root { .. })
        ));
    }

    #[test]
    fn relative_is_the_inverse() {
        let (d, root) = setup();
        assert_eq!(
            relative(&root, &root.join("sub/file.txt")).as_deref(),
            Some("sub/file.txt")
        );
        assert_eq!(relative(&root, &root).as_deref(), Some("."));
        assert_eq!(relative(&root, &d.path().join("secret.txt")), None);
        for rel in ["sub/file.txt", "sub/deeper", "new/file", "."] {
            let abs = confine(&root, rel).unwrap();
            assert_eq!(relative(&root, &abs).as_deref(), Some(rel));
        }
    }

    #[test]
    fn relative_refuses_non_utf8() {
        use std::os::unix::ffi::OsStrExt;
        let (_d, root) = setup();
        let bad = root.join(OsStr::from_bytes(b"caf\xe9"));
        assert_eq!(relative(&root, &bad), None);
    }
}
