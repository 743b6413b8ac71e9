//! The session's wire messages, carried as [`crate::net::PeerConnection`]
//! messages once the join handshake is done.
//!
//! Messages are named by direction ([`GuestToHost`], [`HostToGuest`], in the
//! manner of iroh-relay) and encoded with postcard through
//! [`crate::net::frame::encode`] / [`crate::net::frame::decode`], which fail
//! cleanly on any input. Paths are '/'-separated and relative to the shared
//! root. CRDT payloads (`changes`, `state`, stable positions) are opaque
//! bytes produced and checked by [`crate::doc`].
//!
//! | guest → host | answer |
//! |---|---|
//! | `ListDir{path}` | `DirListing` or `Error` |
//! | `Open{path}` | `Opened` (text, shown at once) then `OpenedState` (CRDT snapshot), or `Error` |
//! | `Close{path}` | none (stop forwarding that file's changes) |
//! | `Sync{path, changes}` | forwarded to every other viewer; `EditRefused` if read-only |
//! | `Presence{path, cursor}` | forwarded as `Presence{who, …}` to every other guest |
//! | `Save{path}` | `Saved` or `Error` |
//! | `Create/Rename/Delete` | `TreeChanged` to everyone, or `Error` |
//! | `Follow{who}` | `ParticipantUpdated` to everyone |
//! | `ListFiles` | `FileList` (every file, for quick open) or `Error` |
//!
//! Host-initiated: `Welcome` (first message after the handshake),
//! `ParticipantJoined/Left/Updated`, `ReadOnly`, `Removed`, `SessionEnded`.
//!
//! The channel is reliable and ordered (one QUIC stream), so the host sends
//! `Opened` (a snapshot) and then every later change of that file in order;
//! the CRDT would also accept them duplicated or out of order (see
//! `doc::Document::apply_remote`). The automerge sync protocol is not used
//! yet: it is for reconnection, which this version does not do.
//!
//! What happens to a message that breaks the rules is decided in
//! the session core (`session::core`, module docs, "Misbehaving guests").
//!
//! May depend on: serde, `net::frame` (postcard).

use serde::{Deserialize, Serialize};

use crate::net::frame::{decode, encode, CodecError};

/// A participant id: the host is [`crate::net::limits::HOST_PARTICIPANT_ID`]
/// (0), guests 1, 2, 3, … in join order.
pub type ParticipantId = u64;

/// A participant as the host describes it to guests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// Id.
    pub id: ParticipantId,
    /// Display name (sanitised by the host).
    pub name: String,
    /// Cursor colour.
    pub color: String,
    /// Whether this is the host.
    pub is_host: bool,
    /// Whether this guest may not edit (not counting a read-only session).
    pub read_only: bool,
    /// The file the participant is in, if any.
    pub file: Option<String>,
    /// Whom the participant follows.
    pub following: Option<ParticipantId>,
}

/// One entry of a folder listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// File name (no '/').
    pub name: String,
    /// A folder (or a symlink to one).
    pub is_dir: bool,
}

/// A cursor: anchor and head as `doc::StablePos` bytes.
pub type WireCursor = (Vec<u8>, Vec<u8>);

/// Messages a guest sends the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GuestToHost {
    /// List a folder (`"."` for the root).
    ListDir {
        /// Folder.
        path: String,
    },
    /// Open a file: the host answers `Opened` and forwards its changes from then on.
    Open {
        /// File.
        path: String,
    },
    /// Stop receiving a file's changes.
    Close {
        /// File.
        path: String,
    },
    /// Changes made by this guest (`Document::take_outgoing` bytes).
    Sync {
        /// File.
        path: String,
        /// Opaque change message.
        changes: Vec<u8>,
    },
    /// Where this guest's cursor is.
    Presence {
        /// File, or `None` when not in a shared file.
        path: Option<String>,
        /// Anchor and head, if in a file.
        cursor: Option<WireCursor>,
    },
    /// Write the file on the host's disk.
    Save {
        /// File.
        path: String,
    },
    /// Create a file or folder.
    Create {
        /// Path.
        path: String,
        /// A folder rather than a file.
        dir: bool,
    },
    /// Rename / move.
    Rename {
        /// From.
        from: String,
        /// To.
        to: String,
    },
    /// Delete a file or folder.
    Delete {
        /// Path.
        path: String,
    },
    /// Follow a participant (`None`: stop).
    Follow {
        /// Whom.
        who: Option<ParticipantId>,
    },
    /// Every file of the shared folder, for quick open. (Added in protocol
    /// version 3.)
    ListFiles,
}

/// Messages the host sends a guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostToGuest {
    /// First message after the handshake.
    Welcome {
        /// The host's display name.
        host_name: String,
        /// The name of the shared folder (its last component only: never
        /// the host's absolute path).
        folder: String,
        /// The guest's own id.
        you: ParticipantId,
        /// Everyone in the session (host and guests, this guest included).
        participants: Vec<ParticipantInfo>,
        /// The whole session is read-only.
        session_read_only: bool,
    },
    /// Answer to `ListDir`.
    DirListing {
        /// Folder.
        path: String,
        /// Entries, folders first, in the host's tree order.
        entries: Vec<DirEntry>,
    },
    /// Answer to `Open`: the text, sent before the CRDT snapshot is even
    /// made, so the guest shows the file at once.
    Opened {
        /// File.
        path: String,
        /// Its text.
        text: String,
        /// An `OpenedState` follows (false: the file is shared read-only
        /// without CRDT state, e.g. too large).
        live: bool,
        /// The guest may not edit it.
        read_only: bool,
    },
    /// Follows a live `Opened`, before any `Sync` of that file: the CRDT
    /// snapshot (`Document::save_crdt` bytes). Its text is the one the
    /// guest keeps; it can be older than `Opened`'s when the host edited
    /// while building it, and a `Sync` with those edits follows.
    OpenedState {
        /// File.
        path: String,
        /// Snapshot.
        state: Vec<u8>,
    },
    /// Changes to an open file, by the host or another guest.
    Sync {
        /// File.
        path: String,
        /// Opaque change message.
        changes: Vec<u8>,
    },
    /// The guest's `Sync` was not applied (read-only). The guest should
    /// reopen the file to drop its local edit.
    EditRefused {
        /// File.
        path: String,
        /// Why.
        message: String,
    },
    /// Where a participant's cursor is.
    Presence {
        /// Whose.
        who: ParticipantId,
        /// File.
        path: Option<String>,
        /// Anchor and head.
        cursor: Option<WireCursor>,
    },
    /// Answer to `Save`.
    Saved {
        /// File.
        path: String,
    },
    /// Entries were created, renamed or deleted (re-list these folders/paths).
    TreeChanged {
        /// Affected paths.
        paths: Vec<String>,
    },
    /// Someone joined.
    ParticipantJoined(ParticipantInfo),
    /// Someone left.
    ParticipantLeft {
        /// Who.
        who: ParticipantId,
        /// Why, as a sentence.
        reason: String,
    },
    /// Someone's file, read-only flag or following changed.
    ParticipantUpdated(ParticipantInfo),
    /// The whole session (`who: None`) or one guest became read-only or editable.
    ReadOnly {
        /// Whom (`None`: the whole session).
        who: Option<ParticipantId>,
        /// Read-only now.
        value: bool,
    },
    /// The host removed this guest; the connection closes next.
    Removed,
    /// The host ended the session; the connection closes next.
    SessionEnded {
        /// For the user.
        message: String,
    },
    /// A request failed.
    Error {
        /// The request, e.g. `open src/main.rs`.
        request: String,
        /// Why, as a sentence.
        message: String,
    },
    /// `from` (a file or folder) is now `to`: open files under it keep
    /// their documents under the new path. (Added in protocol version 2.)
    Renamed {
        /// Old path.
        from: String,
        /// New path.
        to: String,
    },
    /// Answer to `ListFiles`: the shared folder's files, '/'-separated, with
    /// the tree's ignore rules. (Added in protocol version 3.)
    FileList {
        /// Files.
        paths: Vec<String>,
        /// More files exist than were listed.
        truncated: bool,
    },
}

/// Encodes a message for the wire.
pub fn encode_msg<T: Serialize>(msg: &T) -> Result<Vec<u8>, CodecError> {
    encode(msg)
}

/// Decodes a guest's message; never panics.
pub fn decode_guest(bytes: &[u8]) -> Result<GuestToHost, CodecError> {
    decode(bytes)
}

/// Decodes a host's message; never panics.
pub fn decode_host(bytes: &[u8]) -> Result<HostToGuest, CodecError> {
    decode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn samples() -> (Vec<GuestToHost>, Vec<HostToGuest>) {
        let info = ParticipantInfo {
            id: 3,
            name: "Ann ✓".into(),
            color: "#ff0000".into(),
            is_host: false,
            read_only: true,
            file: Some("src/a.rs".into()),
            following: Some(0),
        };
        let g = vec![
            GuestToHost::ListDir { path: ".".into() },
            GuestToHost::Open {
                path: "a/b.txt".into(),
            },
            GuestToHost::Close { path: "a".into() },
            GuestToHost::Sync {
                path: "x".into(),
                changes: vec![1, 2, 3],
            },
            GuestToHost::Presence {
                path: Some("x".into()),
                cursor: Some((vec![1], vec![2, 3])),
            },
            GuestToHost::Presence {
                path: None,
                cursor: None,
            },
            GuestToHost::Save { path: "x".into() },
            GuestToHost::Create {
                path: "n".into(),
                dir: true,
            },
            GuestToHost::Rename {
                from: "a".into(),
                to: "b".into(),
            },
            GuestToHost::Delete { path: "d".into() },
            GuestToHost::Follow { who: Some(2) },
            GuestToHost::ListFiles,
        ];
        let h = vec![
            HostToGuest::Welcome {
                host_name: "Host".into(),
                folder: "project".into(),
                you: 3,
                participants: vec![info.clone()],
                session_read_only: false,
            },
            HostToGuest::DirListing {
                path: ".".into(),
                entries: vec![DirEntry {
                    name: "src".into(),
                    is_dir: true,
                }],
            },
            HostToGuest::Opened {
                path: "a".into(),
                text: "hello\n".into(),
                live: true,
                read_only: false,
            },
            HostToGuest::OpenedState {
                path: "a".into(),
                state: vec![9; 100],
            },
            HostToGuest::Renamed {
                from: "a".into(),
                to: "b/a".into(),
            },
            HostToGuest::Sync {
                path: "a".into(),
                changes: vec![],
            },
            HostToGuest::EditRefused {
                path: "a".into(),
                message: "read-only".into(),
            },
            HostToGuest::Presence {
                who: 0,
                path: None,
                cursor: None,
            },
            HostToGuest::Saved { path: "a".into() },
            HostToGuest::TreeChanged {
                paths: vec!["a".into()],
            },
            HostToGuest::ParticipantJoined(info.clone()),
            HostToGuest::ParticipantLeft {
                who: 3,
                reason: "left".into(),
            },
            HostToGuest::ParticipantUpdated(info),
            HostToGuest::ReadOnly {
                who: None,
                value: true,
            },
            HostToGuest::Removed,
            HostToGuest::SessionEnded {
                message: "bye".into(),
            },
            HostToGuest::Error {
                request: "open a".into(),
                message: "no".into(),
            },
            HostToGuest::FileList {
                paths: vec!["src/main.rs".into(), "README.md".into()],
                truncated: false,
            },
        ];
        (g, h)
    }

    #[test]
    fn every_message_round_trips() {
        let (g, h) = samples();
        for m in g {
            let bytes = encode_msg(&m).unwrap();
            assert_eq!(decode_guest(&bytes).unwrap(), m);
        }
        for m in h {
            let bytes = encode_msg(&m).unwrap();
            assert_eq!(decode_host(&bytes).unwrap(), m);
        }
    }

    #[test]
    fn truncated_and_trailing_bytes_are_errors() {
        let (g, _) = samples();
        for m in g {
            let bytes = encode_msg(&m).unwrap();
            for cut in 0..bytes.len() {
                let _ = decode_guest(&bytes[..cut]);
            }
            let mut long = bytes.clone();
            long.push(0);
            assert!(decode_guest(&long).is_err());
        }
        assert!(decode_guest(&[]).is_err());
        assert!(decode_host(&[0xff; 3]).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_guest(&bytes);
            let _ = decode_host(&bytes);
        }

        #[test]
        fn sync_round_trips(path in "[a-z/._]{0,20}", changes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let m = GuestToHost::Sync { path, changes };
            prop_assert_eq!(decode_guest(&encode_msg(&m).unwrap()).unwrap(), m);
        }
    }
}
