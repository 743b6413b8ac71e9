//! Loading a file from disk into a rope, exactly as it is on disk.
//!
//! Text is kept byte for byte: CRLF stays CRLF inside the rope (the editor
//! inserts the detected [`LineEnding`] for new lines), a UTF-8 BOM stays
//! as U+FEFF, so saving an untouched file reproduces it exactly.
//!
//! Files that cannot be edited faithfully open read-only instead of as
//! garbage, with a [`ReadOnlyReason`] for the status line:
//! - binary (a NUL byte, or more than 30% control bytes, in the first
//!   8 KiB — the same sniff git and ripgrep use) shows an `xxd`-style hex
//!   dump of the first [`HEX_DUMP_LIMIT`] bytes;
//! - text that is not valid UTF-8 (Latin-1, Shift-JIS, ...) is decoded
//!   lossily (U+FFFD for each invalid sequence, as
//!   `String::from_utf8_lossy`), since saving it would corrupt it;
//! - text above [`MAX_EDITABLE_SIZE`] shows its first [`TOO_LARGE_PREVIEW`]
//!   bytes;
//! - a file we may not write (no write bit at all, or `faccessat(W_OK)`
//!   refuses, e.g. a read-only mount) is flagged `NoWritePermission`.
//!
//! Large files: the file is streamed in 1 MiB chunks, each validated with
//! `std::str::from_utf8` and appended to a `ropey::RopeBuilder`, so the
//! whole file never exists twice in memory. Measured with
//! `tests/integration/workspace_perf.rs` (release, 2 shared cores with a load average
//! of 4-8 from other builds, warm page cache), 100 MB of source-like
//! ASCII: `load_file` 135-290 ms, peak RSS growth 1.16x the file size
//! (the rope itself). The obvious alternative, `fs::read` +
//! `from_utf8` + `Rope::from_str`, took 295-490 ms on the same runs and
//! peaked at 2.15x.
//!
//! Depends on std, ropey, rustix (write-permission check).

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::SystemTime;

use ropey::{Rope, RopeBuilder};

use super::WorkspaceError;

/// How many leading bytes are sniffed for binary content.
pub const SNIFF_LEN: usize = 8 * 1024;
/// A binary file's hex dump covers at most this many leading bytes
/// (a 4 MiB dump is ~17 MB of text: plenty to look at, cheap to hold).
pub const HEX_DUMP_LIMIT: u64 = 4 * 1024 * 1024;
/// Text files above this size open read-only with only a preview:
/// the editor's CRDT mirror and undo history are not built for more.
pub const MAX_EDITABLE_SIZE: u64 = 1024 * 1024 * 1024;
/// How much of a too-large text file is shown.
pub const TOO_LARGE_PREVIEW: u64 = 16 * 1024 * 1024;
/// Read granularity while streaming into the rope.
const CHUNK: usize = 1024 * 1024;

/// The line ending a file uses, detected from its first line break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum LineEnding {
    /// `\n` (also the default for files without any line break).
    #[default]
    Lf,
    /// `\r\n`.
    Crlf,
}

impl LineEnding {
    /// The bytes to insert for a new line.
    pub fn as_str(self) -> &'static str {
        match self {
            LineEnding::Lf => "\n",
            LineEnding::Crlf => "\r\n",
        }
    }

    /// Short name for the status line: "LF" or "CRLF".
    pub fn name(self) -> &'static str {
        match self {
            LineEnding::Lf => "LF",
            LineEnding::Crlf => "CRLF",
        }
    }

    /// Detects the line ending from the first `\n` in `bytes`.
    pub fn detect(bytes: &[u8]) -> LineEnding {
        match bytes.iter().position(|&b| b == b'\n') {
            Some(i) if i > 0 && bytes[i - 1] == b'\r' => LineEnding::Crlf,
            _ => LineEnding::Lf,
        }
    }
}

/// Why a loaded file is shown read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadOnlyReason {
    /// Binary content, shown as a hex dump.
    Binary,
    /// Not valid UTF-8, shown with U+FFFD replacements.
    NotUtf8,
    /// We have no permission to write the file.
    NoWritePermission,
    /// Larger than [`MAX_EDITABLE_SIZE`]; only a preview is shown.
    TooLarge,
}

impl ReadOnlyReason {
    /// A sentence for the status line.
    pub fn message(self) -> &'static str {
        match self {
            ReadOnlyReason::Binary => "binary file: shown as hex, read-only",
            ReadOnlyReason::NotUtf8 => {
                "not valid UTF-8: shown read-only, invalid bytes replaced by \u{FFFD}"
            }
            ReadOnlyReason::NoWritePermission => "no write permission: read-only",
            ReadOnlyReason::TooLarge => "file too large to edit: showing the beginning, read-only",
        }
    }
}

/// A file loaded from disk.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    /// The text (or hex dump / preview when read-only for those reasons).
    pub rope: Rope,
    /// Detected from the first line break; `Lf` if there is none.
    pub line_ending: LineEnding,
    /// `Some` when the buffer must not be edited or saved.
    pub read_only: Option<ReadOnlyReason>,
    /// Size on disk in bytes at load time.
    pub size: u64,
    /// Modification time at load time, for [`super::modified_on_disk`].
    pub mtime: Option<SystemTime>,
}

/// Loads `path`. Errors name the path: not found, permission denied, is a
/// folder, not a regular file (pipes and devices are refused before being
/// opened, since opening a FIFO would block).
pub fn load_file(path: &Path) -> Result<LoadedFile, WorkspaceError> {
    let err = |e| WorkspaceError::from_io("read", path, e);
    let meta = fs::metadata(path).map_err(err)?;
    if meta.is_dir() {
        return Err(WorkspaceError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    if !meta.is_file() {
        return Err(WorkspaceError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mut file = File::open(path).map_err(err)?;
    // The metadata of what we actually opened (it may have been replaced
    // since the stat above).
    let meta = file.metadata().map_err(err)?;
    let size = meta.len();
    let mtime = meta.modified().ok();

    let mut buf = vec![0u8; CHUNK];
    let n = read_full(&mut file, &mut buf).map_err(err)?;
    if looks_binary(&buf[..n.min(SNIFF_LEN)]) {
        let mut bytes = buf;
        bytes.truncate(n);
        file.by_ref()
            .take(HEX_DUMP_LIMIT.saturating_sub(n as u64))
            .read_to_end(&mut bytes)
            .map_err(err)?;
        bytes.truncate(HEX_DUMP_LIMIT as usize);
        return Ok(LoadedFile {
            rope: Rope::from_str(&hex_dump(&bytes, size)),
            line_ending: LineEnding::Lf,
            read_only: Some(ReadOnlyReason::Binary),
            size,
            mtime,
        });
    }

    let too_large = size > MAX_EDITABLE_SIZE;
    let limit = if too_large {
        TOO_LARGE_PREVIEW
    } else {
        u64::MAX
    };
    let mut decoder = Decoder::default();
    let mut total = n as u64;
    decoder.feed(&buf[..n.min(limit as usize)]);
    while total < limit {
        let n = read_full(&mut file, &mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        let take = (n as u64).min(limit - total) as usize;
        decoder.feed(&buf[..take]);
        total += n as u64;
    }
    let (rope, line_ending, invalid) = if too_large {
        decoder.finish_preview(&format!(
            "\n[lshed: this file is {}; only the first {} are shown, read-only]\n",
            human_size(size),
            human_size(TOO_LARGE_PREVIEW)
        ))
    } else {
        decoder.finish()
    };
    let read_only = if too_large {
        Some(ReadOnlyReason::TooLarge)
    } else if invalid {
        Some(ReadOnlyReason::NotUtf8)
    } else if !is_writable(path, &meta) {
        Some(ReadOnlyReason::NoWritePermission)
    } else {
        None
    };
    Ok(LoadedFile {
        rope,
        line_ending,
        read_only,
        size,
        mtime,
    })
}

/// Whether we may write `path`. A file with no write bit at all counts as
/// read-only even for root (who could write it anyway), matching what a
/// user means by "read-only"; otherwise the kernel decides (`faccessat`
/// with the effective ids, which also catches read-only mounts).
pub(crate) fn is_writable(path: &Path, meta: &fs::Metadata) -> bool {
    if meta.permissions().mode() & 0o222 == 0 {
        return false;
    }
    rustix::fs::accessat(
        rustix::fs::CWD,
        path,
        rustix::fs::Access::WRITE_OK,
        rustix::fs::AtFlags::EACCESS,
    )
    .is_ok()
}

/// Reads until `buf` is full or EOF; returns the count.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The binary sniff: a NUL byte, or more than 30% control characters
/// other than the whitespace-ish ones text files contain (tab, LF, CR,
/// form feed, escape for ANSI art, backspace). Bytes >= 0x80 do not
/// count: they are UTF-8 or legacy-encoded text.
pub(crate) fn looks_binary(sample: &[u8]) -> bool {
    if sample.contains(&0) {
        return true;
    }
    let control = sample
        .iter()
        .filter(|&&b| {
            (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b | 0x08)) || b == 0x7f
        })
        .count();
    control * 10 > sample.len() * 3
}

/// Streams bytes into a rope, validating UTF-8 as it goes and falling back
/// to lossy replacement (exactly like `String::from_utf8_lossy`) without
/// re-reading. Sequences split across chunks are carried over.
#[derive(Default)]
struct Decoder {
    builder: RopeBuilder,
    /// At most 3 bytes of a UTF-8 sequence cut by the chunk boundary.
    pending: Vec<u8>,
    invalid: bool,
    line_ending: Option<LineEnding>,
    last_byte: Option<u8>,
}

impl Decoder {
    fn feed(&mut self, mut input: &[u8]) {
        if input.is_empty() {
            return;
        }
        if self.line_ending.is_none() {
            if let Some(i) = input.iter().position(|&b| b == b'\n') {
                let before = if i > 0 {
                    Some(input[i - 1])
                } else {
                    self.last_byte
                };
                self.line_ending = Some(if before == Some(b'\r') {
                    LineEnding::Crlf
                } else {
                    LineEnding::Lf
                });
            }
        }
        self.last_byte = input.last().copied();

        // Complete (or reject) a sequence cut at the previous boundary.
        while !self.pending.is_empty() && !input.is_empty() {
            self.pending.push(input[0]);
            input = &input[1..];
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    self.builder.append(s);
                    self.pending.clear();
                }
                Err(e) if e.error_len().is_some() => {
                    self.invalid = true;
                    self.builder.append(&String::from_utf8_lossy(&self.pending));
                    self.pending.clear();
                }
                Err(_) => {} // still incomplete
            }
        }

        loop {
            match std::str::from_utf8(input) {
                Ok(s) => {
                    self.builder.append(s);
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    if let Ok(s) = std::str::from_utf8(&input[..valid]) {
                        self.builder.append(s);
                    }
                    match e.error_len() {
                        Some(len) => {
                            self.invalid = true;
                            self.builder.append("\u{FFFD}");
                            input = &input[valid + len..];
                        }
                        None => {
                            self.pending.extend_from_slice(&input[valid..]);
                            return;
                        }
                    }
                }
            }
        }
    }

    fn finish(mut self) -> (Rope, LineEnding, bool) {
        if !self.pending.is_empty() {
            // Truncated sequence at end of file.
            self.invalid = true;
            self.builder.append("\u{FFFD}");
        }
        (
            self.builder.finish(),
            self.line_ending.unwrap_or_default(),
            self.invalid,
        )
    }

    /// Ends a deliberately truncated read: a sequence cut by the limit is
    /// not an error, it is just dropped; then the note is appended.
    fn finish_preview(mut self, note: &str) -> (Rope, LineEnding, bool) {
        self.pending.clear();
        self.builder.append(note);
        self.finish()
    }
}

/// `xxd`-style dump: `00000010: 0102 0304 ...  ASCII`, 16 bytes a line,
/// with a final note when the file is longer than what is shown.
pub(crate) fn hex_dump(bytes: &[u8], total_size: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let lines = bytes.len().div_ceil(16);
    let mut out = String::with_capacity(lines * 68 + 128);
    for (i, line) in bytes.chunks(16).enumerate() {
        out.push_str(&format!("{:08x}: ", i * 16));
        for j in 0..16 {
            match line.get(j) {
                Some(&b) => {
                    out.push(HEX[(b >> 4) as usize] as char);
                    out.push(HEX[(b & 0xf) as usize] as char);
                }
                None => out.push_str("  "),
            }
            if j % 2 == 1 && j != 15 {
                out.push(' ');
            }
        }
        out.push_str("  ");
        for &b in line {
            out.push(if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            });
        }
        out.push('\n');
    }
    if (bytes.len() as u64) < total_size {
        out.push_str(&format!(
            "[lshed: binary file of {}; only the first {} are shown]\n",
            human_size(total_size),
            human_size(bytes.len() as u64)
        ));
    }
    out
}

/// "512 bytes", "3.2 KiB", "16.0 MiB", "1.5 GiB".
pub(crate) fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        fs::write(&p, bytes).unwrap();
        p
    }

    fn rope_bytes(rope: &Rope) -> Vec<u8> {
        let mut v = Vec::new();
        for c in rope.chunks() {
            v.extend_from_slice(c.as_bytes());
        }
        v
    }

    #[test]
    fn lf_and_crlf_are_kept_exactly() {
        let d = tempfile::tempdir().unwrap();
        let lf = write(d.path(), "lf.txt", b"one\ntwo\n");
        let crlf = write(d.path(), "crlf.txt", b"one\r\ntwo\r\nthree");
        let none = write(d.path(), "none.txt", b"no newline");
        let mixed = write(d.path(), "mixed.txt", b"a\r\nb\nc\r\n");
        let f = load_file(&lf).unwrap();
        assert_eq!(f.line_ending, LineEnding::Lf);
        assert_eq!(rope_bytes(&f.rope), b"one\ntwo\n");
        assert_eq!(f.read_only, None);
        assert_eq!(f.size, 8);
        assert!(f.mtime.is_some());
        let f = load_file(&crlf).unwrap();
        assert_eq!(f.line_ending, LineEnding::Crlf);
        assert_eq!(rope_bytes(&f.rope), b"one\r\ntwo\r\nthree");
        assert_eq!(f.rope.len_lines(), 3);
        assert_eq!(load_file(&none).unwrap().line_ending, LineEnding::Lf);
        let f = load_file(&mixed).unwrap();
        assert_eq!(f.line_ending, LineEnding::Crlf);
        assert_eq!(rope_bytes(&f.rope), b"a\r\nb\nc\r\n");
    }

    #[test]
    fn empty_file_and_bom() {
        let d = tempfile::tempdir().unwrap();
        let f = load_file(&write(d.path(), "empty", b"")).unwrap();
        assert_eq!(f.rope.len_bytes(), 0);
        assert_eq!(f.read_only, None);
        assert_eq!(f.line_ending, LineEnding::Lf);
        let bom = b"\xef\xbb\xbfhello\r\n";
        let f = load_file(&write(d.path(), "bom", bom)).unwrap();
        assert_eq!(rope_bytes(&f.rope), bom);
        assert_eq!(f.line_ending, LineEnding::Crlf);
    }

    #[test]
    fn crlf_detection_across_chunk_boundary() {
        let d = tempfile::tempdir().unwrap();
        let mut bytes = vec![b'x'; CHUNK - 1];
        bytes.extend_from_slice(b"\r\nrest\n");
        let f = load_file(&write(d.path(), "big", &bytes)).unwrap();
        assert_eq!(f.line_ending, LineEnding::Crlf);
        assert_eq!(rope_bytes(&f.rope), bytes);
    }

    #[test]
    fn decoder_matches_from_utf8_lossy_at_every_split() {
        let samples: [&[u8]; 5] = [
            "héllo wörld — ✓ 😀".as_bytes(),
            b"caf\xe9 cr\xe8me\n",
            b"\xf0\x9f\x98",
            b"ok\xe2\x82x\xff\xfe end \xf0\x9f\x98\x80",
            b"\xc3",
        ];
        for s in samples {
            let expected = String::from_utf8_lossy(s).into_owned();
            for split in 0..=s.len() {
                for split2 in split..=s.len() {
                    let mut dec = Decoder::default();
                    dec.feed(&s[..split]);
                    dec.feed(&s[split..split2]);
                    dec.feed(&s[split2..]);
                    let (rope, _, invalid) = dec.finish();
                    assert_eq!(
                        rope.to_string(),
                        expected,
                        "split {split}/{split2} of {s:?}"
                    );
                    assert_eq!(invalid, std::str::from_utf8(s).is_err());
                }
            }
        }
    }

    #[test]
    fn latin1_opens_read_only_lossy() {
        let d = tempfile::tempdir().unwrap();
        let f = load_file(&write(d.path(), "latin1.txt", b"caf\xe9\nna\xefve\n")).unwrap();
        assert_eq!(f.read_only, Some(ReadOnlyReason::NotUtf8));
        assert_eq!(f.rope.to_string(), "caf\u{FFFD}\nna\u{FFFD}ve\n");
        assert!(f.read_only.unwrap().message().contains("UTF-8"));
    }

    #[test]
    fn binary_opens_as_hex_dump() {
        let d = tempfile::tempdir().unwrap();
        let mut bytes = b"\x7fELF\x02\x01\x01\x00".to_vec();
        bytes.extend(0u8..40);
        let f = load_file(&write(d.path(), "prog", &bytes)).unwrap();
        assert_eq!(f.read_only, Some(ReadOnlyReason::Binary));
        assert_eq!(f.size, 48);
        let text = f.rope.to_string();
        let lines: Vec<&str> = text.lines().collect();
        // Same layout as `xxd`.
        assert_eq!(
            lines[0],
            "00000000: 7f45 4c46 0201 0100 0001 0203 0405 0607  .ELF............"
        );
        assert_eq!(lines.len(), 3);
        assert!(lines[2].starts_with("00000020: 1819"));
        assert_eq!(lines[2].len(), lines[0].len());
        assert_eq!(
            ReadOnlyReason::Binary.message(),
            "binary file: shown as hex, read-only"
        );
    }

    #[test]
    fn short_last_hex_line_is_padded() {
        // Byte for byte what `printf '\0AB' | xxd` prints.
        let expected = format!("00000000: 0041 42{}.AB\n", " ".repeat(34));
        assert_eq!(hex_dump(b"\x00AB", 3), expected);
    }

    #[test]
    fn big_binary_is_capped_with_a_note() {
        let d = tempfile::tempdir().unwrap();
        let bytes = vec![0u8; HEX_DUMP_LIMIT as usize + 1000];
        let f = load_file(&write(d.path(), "zeros.bin", &bytes)).unwrap();
        let lines = f.rope.len_lines();
        assert_eq!(lines, HEX_DUMP_LIMIT as usize / 16 + 2);
        let last = f.rope.line(lines - 2).to_string();
        assert!(last.contains("only the first 4.0 MiB"), "{last}");
    }

    #[test]
    fn control_heavy_file_is_binary_but_ansi_text_is_not() {
        assert!(looks_binary(&[1, 2, 3, 4, b'a', 5, 6]));
        assert!(!looks_binary(b"\x1b[31mred\x1b[0m\n\ttab\x0c"));
        assert!(!looks_binary("ünïcödé".as_bytes()));
        assert!(!looks_binary(b""));
    }

    #[test]
    fn read_only_file_is_flagged() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "ro.txt", b"x\n");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o444)).unwrap();
        let f = load_file(&p).unwrap();
        assert_eq!(f.read_only, Some(ReadOnlyReason::NoWritePermission));
        assert_eq!(f.rope.to_string(), "x\n");
    }

    #[test]
    fn errors_are_clear_and_name_the_path() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("missing.txt");
        let e = load_file(&missing).unwrap_err();
        assert!(matches!(e, WorkspaceError::NotFound { .. }));
        assert_eq!(
            e.to_string(),
            format!("{} does not exist", missing.display())
        );
        let e = load_file(d.path()).unwrap_err();
        assert!(matches!(e, WorkspaceError::IsDirectory { .. }), "{e}");
        assert!(e.to_string().contains("is a folder"));
        let sock = d.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert!(matches!(
            load_file(&sock).unwrap_err(),
            WorkspaceError::NotAFile { .. }
        ));
        let under_file = write(d.path(), "f", b"").join("x");
        assert!(matches!(
            load_file(&under_file).unwrap_err(),
            WorkspaceError::NotFound { .. }
        ));
    }

    #[test]
    fn unreadable_file_is_permission_denied() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "secret", b"x");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
        if File::open(&p).is_ok() {
            eprintln!("skipped: running as root, permission checks do not apply");
            return;
        }
        let e = load_file(&p).unwrap_err();
        assert!(matches!(e, WorkspaceError::PermissionDenied { .. }), "{e}");
        assert!(e.to_string().contains("permission denied"));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(12), "12 bytes");
        assert_eq!(human_size(16 * 1024 * 1024), "16.0 MiB");
        assert_eq!(human_size(1536), "1.5 KiB");
    }
}
