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

use std::ffi::OsStr;
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

/// The chain for the children of `dir`, which must be `root` or under it
/// (both canonical), built from the root down; `None` if a folder on the
/// way is itself hidden or ignored (nothing inside it is visible).
pub(crate) fn chain_down_to(root: &Path, dir: &Path) -> Option<Chain> {
    let below = dir.strip_prefix(root).ok()?;
    let mut chain = chain_for_dir(&base_chain(root), root);
    let mut cur = root.to_path_buf();
    for comp in below.components() {
        if always_hidden(comp.as_os_str()) {
            return None;
        }
        cur.push(comp);
        if is_ignored(&chain, &cur, true) {
            return None;
        }
        chain = chain_for_dir(&chain, &cur);
    }
    Some(chain)
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
    /// File name, lossily decoded for display.
    pub name: String,
    /// Whether `name` is exact (the file name is valid UTF-8).
    pub name_is_utf8: bool,
    pub path: PathBuf,
    /// A directory, or a symlink to one.
    pub is_dir: bool,
    pub is_symlink: bool,
}

/// Lists `dir` (whose children `chain` applies to), without the hidden
/// and ignored entries. Unsorted. Entries that vanish while listing are
/// skipped. Kept to few allocations per entry: this loop is most of the
/// cost of opening a folder with 100,000 files.
pub(crate) fn list_dir(dir: &Path, chain: &Chain) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for ent in fs::read_dir(dir)? {
        let Ok(ent) = ent else { continue };
        let path = ent.path();
        let Some(os_name) = path.file_name() else {
            continue;
        };
        if always_hidden(os_name) {
            continue;
        }
        // d_type from readdir: no extra syscall on common file systems.
        let Ok(ft) = ent.file_type() else { continue };
        let is_symlink = ft.is_symlink();
        let is_dir = if is_symlink {
            fs::metadata(&path).is_ok_and(|m| m.is_dir())
        } else {
            ft.is_dir()
        };
        if is_ignored(chain, &path, is_dir) {
            continue;
        }
        let (name, name_is_utf8) = match os_name.to_str() {
            Some(s) => (s.to_owned(), true),
            None => (os_name.to_string_lossy().into_owned(), false),
        };
        out.push(Entry {
            name,
            name_is_utf8,
            path,
            is_dir,
            is_symlink,
        });
    }
    Ok(out)
}

/// Sorts a listing: folders first, then natural order (see
/// [`natural_key`]), ties broken by the raw path bytes so the order is
/// total even for names that decode to the same lossy string.
pub(crate) fn sort_entries(entries: &mut [Entry]) {
    // For a 100,000-entry folder the sort dominates the listing, and it is
    // bound by memory access: all keys go into one buffer (no allocation
    // per key, neighbours in cache), and a compact array of
    // (folder-first flag, key span, index) is sorted instead of the
    // entries, which are moved once at the end.
    let mut buf = Vec::with_capacity(entries.iter().map(|e| e.name.len() + 4).sum());
    let mut order: Vec<(bool, u32, u32, u32)> = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let start = buf.len();
        push_natural_key(&e.name, &mut buf);
        order.push((
            !e.is_dir,
            start as u32,
            (buf.len() - start) as u32,
            i as u32,
        ));
    }
    let key = |start: u32, len: u32| &buf[start as usize..(start + len) as usize];
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| key(a.1, a.2).cmp(key(b.1, b.2)))
            .then_with(|| {
                let (ea, eb) = (&entries[a.3 as usize], &entries[b.3 as usize]);
                ea.name.cmp(&eb.name).then_with(|| {
                    ea.path
                        .as_os_str()
                        .as_bytes()
                        .cmp(eb.path.as_os_str().as_bytes())
                })
            })
    });
    // Apply the permutation in place, cycle by cycle: one swap per entry.
    let mut perm: Vec<usize> = order.into_iter().map(|o| o.3 as usize).collect();
    for i in 0..perm.len() {
        let mut j = i;
        loop {
            let src = perm[j];
            perm[j] = j;
            if src == i || src == j {
                break;
            }
            entries.swap(j, src);
            j = src;
        }
    }
}

/// Natural, case-insensitive order: "file2" < "File10" < "file20";
/// runs of ASCII digits compare by value. Ties (e.g. "a" vs "A", "01"
/// vs "1") are broken bytewise so the order is total and stable.
#[cfg(test)]
pub(crate) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    natural_key(a).cmp(&natural_key(b)).then_with(|| a.cmp(b))
}

/// A byte string whose plain byte order is the natural order of names,
/// so sorting a large folder compares precomputed keys with `memcmp`
/// instead of re-scanning names at every comparison.
///
/// Encoding: each char lowercased, as UTF-8 (byte order = code point
/// order); each run of ASCII digits as `'0'`, the count of significant
/// digits (a byte: names are at most 255 bytes), then those digits. The
/// `'0'` marker keeps a number ordered against neighbouring punctuation
/// and letters exactly as its first digit would be.
#[cfg(test)]
pub(crate) fn natural_key(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 4);
    push_natural_key(name, &mut key);
    key
}

/// Appends [`natural_key`]`(name)` to `key`.
pub(crate) fn push_natural_key(name: &str, key: &mut Vec<u8>) {
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let digits = name[start..i].trim_start_matches('0');
            key.push(b'0');
            key.push(digits.len().min(255) as u8);
            key.extend_from_slice(digits.as_bytes());
        } else if b.is_ascii() {
            key.push(b.to_ascii_lowercase());
            i += 1;
        } else {
            let Some(c) = name[i..].chars().next() else {
                break;
            };
            let mut buf = [0u8; 4];
            for lower in c.to_lowercase() {
                key.extend_from_slice(lower.encode_utf8(&mut buf).as_bytes());
            }
            i += c.len_utf8();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_entries_matches_natural_cmp() {
        // A deterministic shuffle of many names, folders mixed in.
        let mut names: Vec<String> = (0..500)
            .map(|i| match i % 5 {
                0 => format!("file{}", (i * 7919) % 1000),
                1 => format!("File_{}.rs", (i * 104729) % 333),
                2 => format!("ä{}", i % 17),
                3 => format!("x{:03}", i % 50),
                _ => format!("dir{}", i),
            })
            .collect();
        names.sort();
        names.dedup();
        let mut shuffled = names.clone();
        let n = shuffled.len();
        for i in 0..n {
            shuffled.swap(i, (i * 7 + 3) % n);
        }
        let mut entries: Vec<Entry> = shuffled
            .iter()
            .map(|name| Entry {
                name: name.clone(),
                name_is_utf8: true,
                path: PathBuf::from("/r").join(name),
                is_dir: name.starts_with("dir"),
                is_symlink: false,
            })
            .collect();
        sort_entries(&mut entries);
        let mut expected = names;
        expected.sort_by(|a, b| {
            b.starts_with("dir")
                .cmp(&a.starts_with("dir"))
                .then_with(|| natural_cmp(a, b))
        });
        let got: Vec<String> = entries.into_iter().map(|e| e.name).collect();
        assert_eq!(got, expected);
    }

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
        assert_eq!(natural_cmp("a.1", "a1"), std::cmp::Ordering::Less);
        assert_eq!(natural_cmp("a1", "a_"), std::cmp::Ordering::Less);
        assert_eq!(natural_cmp("x9", "x10"), std::cmp::Ordering::Less);
        assert_eq!(natural_cmp("x9y", "x9"), std::cmp::Ordering::Greater);
    }
}
