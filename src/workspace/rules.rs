//! Ignore rules and directory listing shared by the tree and the index,
//! so both always agree on what is hidden.
//!
//! A [`Chain`] is the list of gitignore matchers that apply inside one
//! directory, lowest precedence first: the global gitignore, the repo's
//! `.git/info/exclude`, then `.gitignore` + `.lshedignore` of each folder
//! from the repository root (or the opened root when there is no
//! repository) down to the directory itself. The deepest matcher with an
//! opinion wins, as in git; within one folder `.lshedignore` is added
//! after `.gitignore`, so its lines win. `.gitignore` applies even outside
//! a git repository (a shared folder is often a copy without `.git`).
//! `.git` and our own save temp files are always hidden.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

use super::save::TEMP_SUFFIX;

/// Matchers that apply inside one directory, lowest precedence first.
pub(crate) type Chain = Arc<Vec<Arc<Gitignore>>>;

/// The name of our own ignore file.
pub const LSHEDIGNORE: &str = ".lshedignore";

/// The chain that applies to the children of `root` before `root`'s own
/// ignore files: global and repository-level rules plus the ignore files
/// of the folders between the repository root and `root`.
pub(crate) fn base_chain(root: &Path) -> Chain {
    let repo = root.ancestors().find(|a| a.join(".git").exists());
    let anchor = repo.unwrap_or(root);
    let mut chain = Vec::new();
    // Partial errors (an unparsable line) are ignored on purpose: one bad
    // pattern must not hide or break the whole tree.
    let (global, _) = GitignoreBuilder::new(anchor).build_global();
    if !global.is_empty() {
        chain.push(Arc::new(global));
    }
    let mut chain: Chain = Arc::new(chain);
    if let Some(repo) = repo {
        let exclude = repo.join(".git/info/exclude");
        if exclude.is_file() {
            let mut b = GitignoreBuilder::new(repo);
            let _ = b.add(exclude);
            if let Ok(gi) = b.build() {
                if !gi.is_empty() {
                    Arc::make_mut(&mut chain).push(Arc::new(gi));
                }
            }
        }
        // Folders from the repo root down to root's parent.
        if let Ok(below) = root.strip_prefix(repo) {
            let mut dir = repo.to_path_buf();
            for comp in below.components() {
                chain = chain_for_dir(&chain, &dir);
                dir.push(comp);
            }
        }
    }
    chain
}

/// `parent` extended with `dir`'s own `.gitignore` and `.lshedignore`.
pub(crate) fn chain_for_dir(parent: &Chain, dir: &Path) -> Chain {
    let mut b = GitignoreBuilder::new(dir);
    let mut any = false;
    for name in [".gitignore", LSHEDIGNORE] {
        // add() fails when the file does not exist: the common case.
        if b.add(dir.join(name)).is_none() {
            any = true;
        }
    }
    if !any {
        return parent.clone();
    }
    match b.build() {
        Ok(gi) if !gi.is_empty() => {
            let mut v = (**parent).clone();
            v.push(Arc::new(gi));
            Arc::new(v)
        }
        _ => parent.clone(),
    }
}

/// Whether `path` (an entry of the directory whose chain this is) is ignored.
pub(crate) fn is_ignored(chain: &[Arc<Gitignore>], path: &Path, is_dir: bool) -> bool {
    for gi in chain.iter().rev() {
        match gi.matched(path, is_dir) {
            Match::Ignore(_) => return true,
            Match::Whitelist(_) => return false,
            Match::None => {}
        }
    }
    false
}

/// Entries never shown, whatever the ignore files say.
pub(crate) fn always_hidden(name: &OsStr) -> bool {
    name == ".git" || name.as_bytes().ends_with(TEMP_SUFFIX.as_bytes())
}

/// One visible directory entry.
pub(crate) struct Entry {
    pub name: OsString,
    pub path: PathBuf,
    /// A directory, or a symlink to one.
    pub is_dir: bool,
    pub is_symlink: bool,
}

/// Lists `dir` (whose children `chain` applies to), without the hidden
/// and ignored entries. Unsorted. Entries that vanish while listing are
/// skipped.
pub(crate) fn list_dir(dir: &Path, chain: &Chain) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for ent in fs::read_dir(dir)? {
        let Ok(ent) = ent else { continue };
        let name = ent.file_name();
        if always_hidden(&name) {
            continue;
        }
        // d_type from readdir: no extra syscall on common file systems.
        let Ok(ft) = ent.file_type() else { continue };
        let path = ent.path();
        let is_symlink = ft.is_symlink();
        let is_dir = if is_symlink {
            fs::metadata(&path).is_ok_and(|m| m.is_dir())
        } else {
            ft.is_dir()
        };
        if is_ignored(chain, &path, is_dir) {
            continue;
        }
        out.push(Entry {
            name,
            path,
            is_dir,
            is_symlink,
        });
    }
    Ok(out)
}

/// Natural, case-insensitive order: "file2" < "File10" < "file20";
/// runs of ASCII digits compare by value. Ties (e.g. "a" vs "A", "01"
/// vs "1") are broken bytewise so the order is total and stable.
pub(crate) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let (si, sj) = (i, j);
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            // Digits are ASCII, so these are char boundaries.
            let na = a[si..i].trim_start_matches('0');
            let nb = b[sj..j].trim_start_matches('0');
            let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if ord != Ordering::Equal {
                return ord;
            }
        } else if ab[i].is_ascii() && bb[j].is_ascii() {
            let ord = ab[i].to_ascii_lowercase().cmp(&bb[j].to_ascii_lowercase());
            if ord != Ordering::Equal {
                return ord;
            }
            i += 1;
            j += 1;
        } else {
            let (Some(ca), Some(cb)) = (a[i..].chars().next(), b[j..].chars().next()) else {
                break;
            };
            let ord = ca.to_lowercase().cmp(cb.to_lowercase());
            if ord != Ordering::Equal {
                return ord;
            }
            i += ca.len_utf8();
            j += cb.len_utf8();
        }
    }
    let rest = (ab.len() - i).cmp(&(bb.len() - j));
    if rest != Ordering::Equal {
        return rest;
    }
    a.cmp(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec![
            "file10", "File2", "file1", "a", "B", "file02", "_x", "Zeta", "alpha", "ä", "file2b",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            vec![
                "_x", "a", "alpha", "B", "file1", "File2", "file02", "file2b", "file10", "Zeta",
                "ä"
            ]
        );
        assert_eq!(natural_cmp("a", "A"), std::cmp::Ordering::Greater);
        assert_eq!(natural_cmp("x", "x"), std::cmp::Ordering::Equal);
    }
}
