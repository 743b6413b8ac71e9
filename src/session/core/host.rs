//! The host's side of [`SessionCore`]: admitting and dropping guests, serving
//! their requests (open, save, tree operations) inside the shared folder,
//! forwarding their changes, the host-only driver calls, and watching the
//! disk. May depend on what `core` does.

use super::*;

impl SessionCore {
    pub(super) fn host_net(&mut self, ev: NetEvent, store: &mut dyn DocStore) {
        match ev {
            NetEvent::HostStarted { link, url } => {
                self.state = SessionState::Sharing;
                self.link = Some(link.clone());
                self.link_url = url.clone();
                self.push(SessionEvent::Shared { link, url });
            }
            NetEvent::HostFailed { message } => {
                self.state = SessionState::Inactive;
                self.push(SessionEvent::Error { message });
                self.shutdown_runtime();
            }
            NetEvent::GuestPending {
                pending,
                name,
                color: _,
            } => {
                let auto = self
                    .host_ref()
                    .is_some_and(|h| h.approval == GuestApproval::Auto);
                if auto {
                    self.outbox.push(NetCommand::Approve {
                        pending,
                        accept: true,
                    });
                } else {
                    if let Some(h) = self.host_mut() {
                        h.pending.insert(pending, name.clone());
                    }
                    self.push(SessionEvent::GuestWantsToJoin { pending, name });
                }
            }
            NetEvent::PendingFailed { pending, message } => {
                let name = self
                    .host_mut()
                    .and_then(|h| h.pending.remove(&pending))
                    .unwrap_or_else(|| "a guest".into());
                self.error(format!("{name} could not be admitted: {message}"));
            }
            NetEvent::GuestJoined {
                id,
                name,
                color,
                path,
            } => self.guest_joined(id, name, color, path),
            NetEvent::HostWarning { message } => self.error(message),
            NetEvent::Message { from, bytes } => {
                if !self.participants.contains_key(&from) {
                    return;
                }
                match decode_guest(&bytes) {
                    Ok(msg) => self.host_message(from, msg, store),
                    Err(e) => self.drop_guest(from, &format!("undecodable message: {e}")),
                }
            }
            NetEvent::PeerClosed { id, reason } => {
                let why = match reason {
                    CloseReason::Remote(CloseCode::Left) => "left".to_string(),
                    CloseReason::Local(CloseCode::TooSlow) => {
                        "dropped: their connection fell too far behind".to_string()
                    }
                    CloseReason::Local(CloseCode::Removed) => "removed by the host".to_string(),
                    CloseReason::Local(CloseCode::ProtocolViolation) => {
                        "dropped: protocol violation".to_string()
                    }
                    other => other.to_string(),
                };
                self.guest_gone(id, &why);
            }
            _ => {}
        }
    }

    pub(super) fn guest_joined(
        &mut self,
        id: ParticipantId,
        name: String,
        color: String,
        path: Path,
    ) {
        let mut p = participant(id, &name, &color, false);
        p.read_only = false;
        p.path = Some(path);
        self.participants.insert(id, p.clone());
        let folder = self
            .host_ref()
            .and_then(|h| h.root.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "folder".into());
        let welcome = HostToGuest::Welcome {
            host_name: self.profile.name.clone(),
            folder,
            you: id,
            participants: self.participants.values().map(info_of).collect(),
            session_read_only: self.session_read_only,
        };
        self.send_to(id, &welcome);
        self.broadcast(&HostToGuest::ParticipantJoined(info_of(&p)), Some(id));
        self.push(SessionEvent::ParticipantJoined { id, name });
    }

    pub(super) fn guest_gone(&mut self, id: ParticipantId, why: &str) {
        let Some(p) = self.participants.remove(&id) else {
            return;
        };
        if let Some(h) = self.host_mut() {
            for (path, f) in h.files.iter_mut() {
                f.viewers.remove(&id);
                for (actor, _) in f.actors.iter().filter(|(_, owner)| **owner == id) {
                    h.departed.push((path.clone(), actor.clone()));
                }
            }
        }
        for other in self.participants.values_mut() {
            if other.following == Some(id) {
                other.following = None;
            }
        }
        self.broadcast(
            &HostToGuest::ParticipantLeft {
                who: id,
                reason: why.to_string(),
            },
            None,
        );
        self.push(SessionEvent::ParticipantLeft {
            id,
            name: p.name,
            reason: why.to_string(),
        });
    }

    pub(super) fn drop_guest(&mut self, id: ParticipantId, detail: &str) {
        let name = self
            .participants
            .get(&id)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        self.error(format!("dropped {name}: {detail}"));
        self.outbox.push(NetCommand::Drop {
            to: id,
            detail: detail.chars().take(200).collect(),
        });
        self.guest_gone(id, "dropped: protocol violation");
    }

    pub(super) fn guest_may_edit(&self, id: ParticipantId) -> bool {
        !self.session_read_only && !self.participants.get(&id).is_some_and(|p| p.read_only)
    }

    /// Confines a guest's path and applies the tree's hiding rules.
    pub(super) fn check_path(&self, path: &str) -> Result<PathBuf, String> {
        let Some(h) = self.host_ref() else {
            return Err("not the host".into());
        };
        let abs = workspace::confine(&h.root, path).map_err(|e| e.to_string())?;
        if path != "." && workspace::is_hidden(&h.root, path) {
            return Err(format!(
                "{path} is not shared (hidden by the host's ignore rules)"
            ));
        }
        Ok(abs)
    }

    /// Tells a guest why its request failed. Every error a guest sees
    /// passes here, so the host's absolute paths are taken out here: a
    /// guest learns paths relative to the shared folder only.
    pub(super) fn refuse(&mut self, to: ParticipantId, request: String, message: String) {
        let message = match self.host_ref() {
            Some(h) => without_root(&message, &h.root),
            None => message,
        };
        self.send_to(to, &HostToGuest::Error { request, message });
    }

    pub(super) fn host_message(
        &mut self,
        from: ParticipantId,
        msg: GuestToHost,
        store: &mut dyn DocStore,
    ) {
        if let GuestToHost::Open { path } | GuestToHost::Save { path } = &msg {
            // The document is detached for a large message: what it is
            // opened or saved with must include that message.
            if matches!(
                self.jobs.get(path),
                Some(Pending {
                    kind: PendingKind::Apply { .. },
                    ..
                })
            ) {
                let path = path.clone();
                return self.defer(path, Deferred::FromGuest(from, msg));
            }
        }
        match msg {
            GuestToHost::ListDir { path } => {
                let request = format!("list {path}");
                let listed = self.check_path(&path).and_then(|_| {
                    let root = self.host_ref().map(|h| h.root.clone()).unwrap_or_default();
                    workspace::list_folder(&root, &path).map_err(|e| e.to_string())
                });
                match listed {
                    Ok(rows) => {
                        let entries = rows
                            .into_iter()
                            .map(|r| DirEntry {
                                name: r.name,
                                is_dir: r.is_dir,
                            })
                            .collect();
                        self.send_to(from, &HostToGuest::DirListing { path, entries });
                    }
                    Err(message) => self.refuse(from, request, message),
                }
            }
            GuestToHost::Open { path } => self.open_for(from, path, store),
            GuestToHost::Close { path } => {
                if let Some(f) = self.host_mut().and_then(|h| h.files.get_mut(&path)) {
                    f.viewers.remove(&from);
                }
            }
            GuestToHost::Sync { path, changes } => self.guest_sync(from, path, changes, store),
            GuestToHost::Presence { path, cursor } => {
                let decoded = decode_cursor(&cursor);
                if let Some(p) = self.participants.get_mut(&from) {
                    p.file = path.clone();
                    p.cursor = decoded;
                }
                self.broadcast(
                    &HostToGuest::Presence {
                        who: from,
                        path: path.clone(),
                        cursor,
                    },
                    Some(from),
                );
                self.follow_moved(from, path);
            }
            GuestToHost::Save { path } => {
                let request = format!("save {path}");
                if !self.guest_may_edit(from) {
                    return self.refuse(from, request, "you are read-only: not saved".into());
                }
                if let Err(message) = self.check_open(from, &path) {
                    return self.refuse(from, request, message);
                }
                match store.save(&path) {
                    Ok(()) => {
                        self.note_disk_text(&path, store);
                        self.send_to(from, &HostToGuest::Saved { path });
                    }
                    Err(message) => self.refuse(from, request, message),
                }
            }
            GuestToHost::Create { path, dir } => {
                let request = format!("create {path}");
                self.tree_op(from, request, vec![path.clone()], |root| {
                    if dir {
                        workspace::create_dir(root, &path).map(|_| ())
                    } else {
                        workspace::create_file(root, &path).map(|_| ())
                    }
                });
            }
            GuestToHost::Rename { from: a, to: b } => {
                let request = format!("rename {a} to {b}");
                let done = self.tree_op(from, request, vec![a.clone(), b.clone()], |root| {
                    workspace::rename(root, &a, &b).map(|_| ())
                });
                if done {
                    self.shared_renamed(&a, &b, store);
                }
            }
            GuestToHost::Delete { path } => {
                let request = format!("delete {path}");
                self.tree_op(from, request, vec![path.clone()], |root| {
                    workspace::delete(root, &path)
                });
            }
            GuestToHost::Follow { who } => {
                if let Some(p) = self.participants.get_mut(&from) {
                    p.following = who;
                    let info = info_of(p);
                    self.broadcast(&HostToGuest::ParticipantUpdated(info), None);
                }
            }
            GuestToHost::ListFiles => {
                if self.list_jobs.values().any(|g| *g == from) {
                    return; // One walk per guest at a time.
                }
                // A walk of the whole folder: on a worker, not here.
                let root = self.host_ref().map(|h| h.root.clone()).unwrap_or_default();
                let job = self.workers.spawn(".", Job::ListFiles { root });
                self.list_jobs.insert(job, from);
            }
        }
    }

    pub(super) fn check_open(&self, from: ParticipantId, path: &str) -> Result<(), String> {
        let open = self
            .host_ref()
            .and_then(|h| h.files.get(path))
            .is_some_and(|f| f.viewers.contains(&from));
        if open {
            Ok(())
        } else {
            Err(format!("{path} is not open"))
        }
    }

    pub(super) fn tree_op(
        &mut self,
        from: ParticipantId,
        request: String,
        paths: Vec<String>,
        op: impl FnOnce(&std::path::Path) -> Result<(), workspace::WorkspaceError>,
    ) -> bool {
        if !self.guest_may_edit(from) {
            self.refuse(from, request, "you are read-only".into());
            return false;
        }
        for p in &paths {
            if let Err(message) = self.check_path(p) {
                self.refuse(from, request, message);
                return false;
            }
        }
        let root = self.host_ref().map(|h| h.root.clone()).unwrap_or_default();
        match op(&root) {
            Ok(()) => {
                self.broadcast(
                    &HostToGuest::TreeChanged {
                        paths: paths.clone(),
                    },
                    None,
                );
                self.push(SessionEvent::TreeChanged { paths });
                true
            }
            Err(e) => {
                self.refuse(from, request, e.to_string());
                false
            }
        }
    }

    /// Host: `from` was renamed to `to` on disk (by a guest's request or
    /// by the host itself): open documents keep going under the new path,
    /// here and at every guest.
    pub(super) fn shared_renamed(&mut self, from: &str, to: &str, store: &mut dyn DocStore) {
        self.rename_shared(from, to, store);
        self.broadcast(
            &HostToGuest::Renamed {
                from: from.to_string(),
                to: to.to_string(),
            },
            None,
        );
        self.flush();
    }

    /// Moves everything kept per shared path from under `from` to under
    /// `to`, and tells the store.
    pub(super) fn rename_shared(&mut self, from: &str, to: &str, store: &mut dyn DocStore) {
        fn rekey<V>(map: &mut HashMap<String, V>, from: &str, to: &str) {
            let keys: Vec<String> = map
                .keys()
                .filter(|k| renamed_path(k, from, to).is_some())
                .cloned()
                .collect();
            for k in keys {
                if let (Some(v), Some(new)) = (map.remove(&k), renamed_path(&k, from, to)) {
                    map.insert(new, v);
                }
            }
        }
        if let Some(h) = self.host_mut() {
            let keys: Vec<String> = h
                .files
                .keys()
                .filter(|k| renamed_path(k, from, to).is_some())
                .cloned()
                .collect();
            for k in keys {
                if let (Some(f), Some(new)) = (h.files.remove(&k), renamed_path(&k, from, to)) {
                    h.files.insert(new, f);
                }
            }
        }
        if let Some(g) = self.guest_mut() {
            g.open = std::mem::take(&mut g.open)
                .into_iter()
                .map(|p| renamed_path(&p, from, to).unwrap_or(p))
                .collect();
        }
        rekey(&mut self.jobs, from, to);
        rekey(&mut self.deferred, from, to);
        rekey(&mut self.snapshot_jobs, from, to);
        for p in self.participants.values_mut() {
            if let Some(new) = p.file.as_deref().and_then(|f| renamed_path(f, from, to)) {
                p.file = Some(new);
            }
        }
        self.renames.push((from.to_string(), to.to_string()));
        store.renamed(from, to);
    }

    pub(super) fn open_for(&mut self, from: ParticipantId, path: String, store: &mut dyn DocStore) {
        let request = format!("open {path}");
        let abs = match self.check_path(&path) {
            Ok(abs) => abs,
            Err(message) => return self.refuse(from, request, message),
        };
        if abs.is_dir() {
            return self.refuse(from, request, format!("{path} is a folder"));
        }
        let doc = match store.open_for_peer(&path) {
            Ok(doc) => doc,
            Err(message) => return self.refuse(from, request, message),
        };
        // Building CRDT state costs about 0.4 s per MB (on a worker): the
        // guest gets the text first and can show it meanwhile.
        let needs_share = !doc.is_shared() && !doc.is_read_only();
        let text = doc.rope().to_string();
        let too_big = doc.rope().len_bytes() > crate::doc::MAX_SHARED_EDITABLE_BYTES;
        let live = doc.is_shared() || (needs_share && !too_big);
        let read_only =
            doc.is_read_only() || (needs_share && too_big) || !self.guest_may_edit(from);
        if text.len() + OPENED_OVERHEAD > MAX_FRAME_LEN {
            return self.refuse(
                from,
                request,
                format!("{path} is too large to send over the session"),
            );
        }
        let first_viewer = self.host_ref().is_none_or(|h| !h.files.contains_key(&path));
        if let Some(h) = self.host_mut() {
            h.files
                .entry(path.clone())
                .or_default()
                .viewers
                .insert(from);
        }
        // The text goes out now; making the snapshot takes longer, and the
        // guest can show the file meanwhile.
        self.send_to(
            from,
            &HostToGuest::Opened {
                path: path.clone(),
                text,
                live,
                read_only,
            },
        );
        self.flush();
        if needs_share && !too_big {
            self.build_for(from, &path, store);
        } else if needs_share {
            // Too large: shared read-only, without CRDT state (cheap).
            if let Some(doc) = store.doc_mut(&path) {
                if let Err(e) = doc.share(ActorId::random()) {
                    return self.refuse(from, request, format!("cannot share {path}: {e}"));
                }
            }
        } else if live {
            self.send_cached_snapshot(from, &path, store);
        }
        if first_viewer {
            // What is on disk now is the reference for the watcher.
            if let Ok(disk) = std::fs::read_to_string(&abs) {
                let stamp = stamp_of(&abs);
                if let Some(f) = self.host_mut().and_then(|h| h.files.get_mut(&path)) {
                    f.disk_text = Some(disk);
                    f.disk_stamp = stamp;
                }
            }
        }
    }

    pub(super) fn guest_sync(
        &mut self,
        from: ParticipantId,
        path: String,
        changes: Vec<u8>,
        store: &mut dyn DocStore,
    ) {
        if let Err(message) = self.check_open(from, &path) {
            return self.refuse(from, format!("edit {path}"), message);
        }
        if !self.guest_may_edit(from) {
            return self.send_to(
                from,
                &HostToGuest::EditRefused {
                    path,
                    message: "you are read-only: your edit was not applied".into(),
                },
            );
        }
        let actors = match crate::doc::change_actors(&changes) {
            Ok(a) => a,
            Err(e) => return self.drop_guest(from, &format!("bad changes to {path}: {e}")),
        };
        let Some(doc) = store.doc_mut(&path) else {
            return self.refuse(from, format!("edit {path}"), format!("{path} is not open"));
        };
        let doc_actor = doc.shared_state().map(|st| st.actor().clone());
        let file = self.host_mut().and_then(|h| h.files.get_mut(&path));
        if let Some(f) = file {
            let host_actor = doc_actor.or_else(|| f.host_actor.clone());
            let owners = &mut f.actors;
            let stolen = actors.iter().any(|a| {
                Some(a) == host_actor.as_ref() || owners.get(a).is_some_and(|o| *o != from)
            });
            if stolen {
                return self.drop_guest(
                    from,
                    &format!("changes to {path} under someone else's identity"),
                );
            }
            for a in actors {
                owners.insert(a, from);
            }
        }
        self.apply_sync(from, path, changes, store);
    }

    /// Host: admit or turn away a joiner.
    pub fn approve(&mut self, pending: PendingId, accept: bool) {
        let known = self
            .host_mut()
            .and_then(|h| h.pending.remove(&pending))
            .is_some();
        if !known {
            self.error(format!("no guest is waiting as #{pending}"));
            return;
        }
        self.outbox.push(NetCommand::Approve { pending, accept });
        self.flush();
    }

    /// Host: make the whole session (`who: None`) or one guest read-only or editable.
    pub fn set_read_only(&mut self, who: Option<ParticipantId>, read_only: bool) {
        if !self.is_host() {
            return self.error("only the host can change who may edit");
        }
        match who {
            None => self.session_read_only = read_only,
            Some(id) => match self.participants.get_mut(&id) {
                Some(p) if !p.is_host => p.read_only = read_only,
                _ => return self.error(format!("no guest #{id}")),
            },
        }
        self.broadcast(
            &HostToGuest::ReadOnly {
                who,
                value: read_only,
            },
            None,
        );
        self.flush();
    }

    /// Host: remove a guest (it is told, then disconnected).
    pub fn remove(&mut self, who: ParticipantId) {
        if !self.is_host() || who == HOST_PARTICIPANT_ID || !self.participants.contains_key(&who) {
            return self.error(format!("no guest #{who}"));
        }
        self.send_to(who, &HostToGuest::Removed);
        self.outbox.push(NetCommand::Close {
            to: who,
            code: CloseCode::Removed,
        });
        self.guest_gone(who, "removed by the host");
        self.flush();
    }

    /// Host: end the session; every guest is told and leaves.
    pub fn end(&mut self) {
        if !self.is_host() || !self.is_active() {
            return;
        }
        self.broadcast(
            &HostToGuest::SessionEnded {
                message: "the host ended the session".into(),
            },
            None,
        );
        self.state = SessionState::Inactive;
        self.link = None;
        let guests = self.guest_ids();
        for id in guests {
            self.participants.remove(&id);
        }
        if let Some(h) = self.host_mut() {
            h.files.clear();
            h.pending.clear();
        }
        self.forget_doc_work();
        self.push(SessionEvent::SessionEnded {
            message: "you ended the session".into(),
        });
        self.shutdown_runtime();
        self.flush();
    }

    /// Host: the driver saved a shared file itself (the host's Ctrl+S):
    /// the watcher takes the document's text as what is on disk.
    pub fn saved_locally(&mut self, path: &str, store: &mut dyn DocStore) {
        self.note_disk_text(path, store);
    }

    pub(super) fn note_disk_text(&mut self, path: &str, store: &mut dyn DocStore) {
        let Some(text) = store.doc_mut(path).map(|d| d.rope().to_string()) else {
            return;
        };
        let Some(root) = self.host_ref().map(|h| h.root.clone()) else {
            return;
        };
        let stamp = workspace::confine(&root, path)
            .ok()
            .and_then(|abs| stamp_of(&abs));
        if let Some(f) = self.host_mut().and_then(|h| h.files.get_mut(path)) {
            f.disk_text = Some(text);
            f.disk_stamp = stamp;
            f.seen = None;
        }
    }

    /// Host: merge changes made to shared files on disk by other programs.
    pub(super) fn check_disk(&mut self, store: &mut dyn DocStore) {
        let Some(h) = self.host_ref() else { return };
        if self.state != SessionState::Sharing {
            return;
        }
        let root = h.root.clone();
        let mut ready = Vec::new();
        let paths: Vec<String> = h.files.keys().cloned().collect();
        for path in paths {
            let Ok(abs) = workspace::confine(&root, &path) else {
                continue;
            };
            let stamp = stamp_of(&abs);
            let Some(f) = self.host_mut().and_then(|h| h.files.get_mut(&path)) else {
                continue;
            };
            if f.disk_text.is_none() || stamp.is_none() || stamp == f.disk_stamp {
                f.seen = None;
                continue;
            }
            if f.seen == stamp {
                ready.push((path, abs, stamp));
            } else {
                f.seen = stamp;
            }
        }
        for (path, abs, stamp) in ready {
            if self.jobs.contains_key(&path) {
                // Its document may be detached (read-only): the change
                // stays `seen` and is merged at a later tick.
                continue;
            }
            let Ok(new_text) = std::fs::read_to_string(&abs) else {
                continue;
            };
            let Some(f) = self.host_mut().and_then(|h| h.files.get_mut(&path)) else {
                continue;
            };
            let old_disk = f.disk_text.replace(new_text.clone()).unwrap_or_default();
            f.disk_stamp = stamp;
            f.seen = None;
            if new_text == old_disk {
                continue;
            }
            let Some(doc_text) = store.doc_mut(&path).map(|d| d.rope().to_string()) else {
                continue;
            };
            if doc_text == new_text {
                continue;
            }
            let changes = if doc_text == old_disk {
                diff_text(&doc_text, &new_text)
            } else {
                // Unsaved session edits and a new disk version: a three-way
                // merge keeps both.
                merge_disk_change(&old_disk, &doc_text, &new_text)
            };
            store.apply_disk_change(&path, &changes);
            self.push(SessionEvent::Changed { path: path.clone() });
            self.local_edit(&path, store);
        }
    }
}

/// `message` with the shared folder's absolute path (as given, and as
/// resolved) made relative: `/home/ada/project/x` becomes `x`.
pub(super) fn without_root(message: &str, root: &std::path::Path) -> String {
    let mut roots = vec![root.to_path_buf()];
    if let Ok(real) = root.canonicalize() {
        roots.push(real);
    }
    if let Ok(abs) = std::path::absolute(root) {
        roots.push(abs);
    }
    // Longest first, so a root inside another is not cut in half.
    roots.sort_by_key(|r| std::cmp::Reverse(r.as_os_str().len()));
    let mut out = message.to_string();
    for r in roots {
        let r = r.to_string_lossy().trim_end_matches('/').to_string();
        if r.is_empty() || !r.starts_with('/') {
            continue;
        }
        out = replace_path(&out, &r);
    }
    out
}

/// Replaces `root/` by nothing and a bare `root` by `.`, where `root` is a
/// whole path (`/a/b` is not replaced inside `/a/bc`).
pub(super) fn replace_path(text: &str, root: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(root) {
        let after = &rest[at + root.len()..];
        let starts_path = at == 0
            || !rest[..at]
                .ends_with(|c: char| !c.is_whitespace() && c != '\'' && c != '"' && c != '(');
        match after.chars().next() {
            Some('/') if starts_path => {
                out.push_str(&rest[..at]);
                rest = &after[1..];
            }
            None | Some(' ' | '\'' | '"' | ':' | ',' | ')' | '\n') if starts_path => {
                out.push_str(&rest[..at]);
                out.push('.');
                rest = after;
            }
            _ => {
                out.push_str(&rest[..at + root.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The disk went from `base` to `theirs` while the live document went from
/// `base` to `live`: the disk's changes, moved onto the live text, as
/// changes to apply to it in order.
///
/// Both diffs are in `base` coordinates, last change first (see
/// `diff.rs`). Each of the disk's changes is mapped through the session's
/// changes; where both touched the same place, both texts are kept (the
/// disk's after the session's), as a concurrent edit would be in the CRDT.
pub(super) fn merge_disk_change(base: &str, live: &str, theirs: &str) -> Vec<Change> {
    let ours = diff_text(base, live);
    let map = |pos: usize, assoc: Assoc| ours.iter().fold(pos, |p, c| c.map_pos(p, assoc));
    diff_text(base, theirs)
        .into_iter()
        .map(|c| {
            let start = map(c.start, Assoc::After);
            let end = map(c.end, Assoc::Before).max(start);
            Change::replace(start, end, c.text)
        })
        .collect()
}

pub(super) fn stamp_of(abs: &std::path::Path) -> Option<(Option<SystemTime>, u64)> {
    let meta = std::fs::metadata(abs).ok()?;
    Some((meta.modified().ok(), meta.len()))
}

#[cfg(test)]
mod root_tests {
    use super::without_root;
    use std::path::Path;

    #[test]
    fn errors_for_guests_name_paths_inside_the_folder_only() {
        let root = Path::new("/home/ada/project");
        assert_eq!(
            without_root("/home/ada/project/src/x.rs does not exist", root),
            "src/x.rs does not exist"
        );
        assert_eq!(
            without_root("permission denied: /home/ada/project", root),
            "permission denied: ."
        );
        assert_eq!(
            without_root(
                "cannot save /home/ada/project/a: the folder /home/ada/project is not writable",
                root
            ),
            "cannot save a: the folder . is not writable"
        );
        assert_eq!(without_root("no path here", root), "no path here");
        assert_eq!(
            without_root("/home/ada/projects-old/x", root),
            "/home/ada/projects-old/x",
            "a sibling sharing the root's prefix is left alone"
        );
        assert_eq!(
            without_root("/srv/home/ada/project/x", root),
            "/srv/home/ada/project/x",
            "the root inside another path is left alone"
        );
    }
}
