//! Document work off the driver thread, for both roles: building, loading
//! and saving CRDT state on workers, applying large change messages on a
//! detached copy, and replaying what waited for that work (see the module
//! docs of `core`, "Work off the driver thread").

use super::*;

impl SessionCore {
    pub(super) fn defer(&mut self, path: String, msg: Deferred) {
        self.deferred.entry(path).or_default().push_back(msg);
    }

    /// The session is over: results still to come are dropped when they
    /// arrive (their job is no longer known), and so is what waited for them.
    pub(super) fn forget_doc_work(&mut self) {
        self.jobs.clear();
        self.deferred.clear();
    }

    /// Host: `from` waits for `path`'s CRDT state, built on a worker from
    /// the text as it is now (the first guest starts it; others join it).
    pub(super) fn build_for(&mut self, from: ParticipantId, path: &str, store: &mut dyn DocStore) {
        if let Some(Pending {
            kind: PendingKind::Build { waiters, .. },
            ..
        }) = self.jobs.get_mut(path)
        {
            if !waiters.contains(&from) {
                waiters.push(from);
            }
            return;
        }
        let Some(doc) = store.doc_mut(path) else {
            return self.refuse(from, format!("open {path}"), format!("{path} is not open"));
        };
        let text = doc.rope().clone();
        let actor = ActorId::random();
        if let Some(f) = self.host_mut().and_then(|h| h.files.get_mut(path)) {
            f.host_actor = Some(actor.clone());
        }
        let job = self.workers.spawn(path, Job::Build { text, actor });
        self.jobs.insert(
            path.to_string(),
            Pending {
                job,
                kind: PendingKind::Build {
                    waiters: vec![from],
                },
            },
        );
    }

    /// Host: a guest opens a file that is already shared. It gets the
    /// cached snapshot and then, as one `Sync`, the changes made since (the
    /// guest applies it right after loading), so nothing is saved on the
    /// driver; the cache is refreshed on a worker once those changes pass
    /// [`SNAPSHOT_REFRESH_BYTES`].
    pub(super) fn send_cached_snapshot(
        &mut self,
        to: ParticipantId,
        path: &str,
        store: &mut dyn DocStore,
    ) {
        let cached = self
            .host_ref()
            .and_then(|h| h.files.get(path))
            .and_then(|f| f.snapshot.clone());
        let Some(state) = store.doc_mut(path).and_then(|d| d.shared_state()) else {
            return self.send_snapshot(&[to], path, None);
        };
        let since = cached.as_ref().map(|snap| state.changes_since(&snap.heads));
        match (cached, since) {
            (Some(snap), Some(since))
                if since
                    .as_ref()
                    .is_none_or(|c| c.len() + OPENED_OVERHEAD <= MAX_FRAME_LEN) =>
            {
                self.send_snapshot(&[to], path, Some(Ok(snap.bytes)));
                if let Some(changes) = since {
                    let big = changes.len() > SNAPSHOT_REFRESH_BYTES;
                    let msg = HostToGuest::Sync {
                        path: path.to_string(),
                        changes,
                    };
                    self.send_to(to, &msg);
                    if big {
                        self.refresh_snapshot(path, store);
                    }
                }
            }
            // No snapshot yet, or too much changed to send as one message:
            // a new one, here (rare: refreshes keep the backlog small).
            _ => {
                let saved = store.doc_mut(path).map(|d| {
                    let heads = d.shared_state().map(|s| s.heads()).unwrap_or_default();
                    d.save_crdt()
                        .map(|bytes| (std::sync::Arc::new(bytes), heads))
                });
                let state = saved.map(|r| {
                    r.map(|(bytes, heads)| {
                        if let Some(f) = self.host_mut().and_then(|h| h.files.get_mut(path)) {
                            f.snapshot = Some(Snapshot {
                                bytes: bytes.clone(),
                                heads,
                            });
                        }
                        bytes
                    })
                });
                self.send_snapshot(&[to], path, state);
            }
        }
    }

    /// Host: makes a new snapshot of `path` on a worker, from a copy of its
    /// state, unless one is being made.
    pub(super) fn refresh_snapshot(&mut self, path: &str, store: &mut dyn DocStore) {
        if self.snapshot_jobs.contains_key(path) {
            return;
        }
        let Some(state) = store
            .doc_mut(path)
            .and_then(|d| d.shared_state())
            .map(|s| Box::new(s.clone()))
        else {
            return;
        };
        let job = self.workers.spawn(path, Job::Save { state });
        self.snapshot_jobs.insert(path.to_string(), job);
    }

    /// Host: sends `path`'s snapshot (or why there is none) to `to`.
    pub(super) fn send_snapshot(
        &mut self,
        to: &[ParticipantId],
        path: &str,
        state: Option<Result<std::sync::Arc<Vec<u8>>, DocError>>,
    ) {
        let request = format!("open {path}");
        let refusal = match state {
            Some(Ok(state)) if state.len() + OPENED_OVERHEAD <= MAX_FRAME_LEN => {
                let msg = HostToGuest::OpenedState {
                    path: path.to_string(),
                    state: (*state).clone(),
                };
                match encode_msg(&msg) {
                    Ok(bytes) => {
                        for &id in to {
                            self.send_raw(id, bytes.clone());
                        }
                        return;
                    }
                    Err(e) => format!("could not encode {path}: {e}"),
                }
            }
            Some(Ok(_)) => format!("{path} has too much history to send"),
            Some(Err(e)) => e.to_string(),
            None => format!("{path} is not open"),
        };
        for &id in to {
            self.refuse(id, request.clone(), refusal.clone());
        }
    }

    /// Applies a change message from `from` (at a guest: the host) to
    /// `path`: queued behind pending work on the path, on a worker if it is
    /// large, else here and now.
    pub(super) fn apply_sync(
        &mut self,
        from: ParticipantId,
        path: String,
        changes: Vec<u8>,
        store: &mut dyn DocStore,
    ) {
        if self.jobs.contains_key(&path) {
            return self.defer(path, Deferred::Sync { from, changes });
        }
        let Some(doc) = store.doc_mut(&path) else {
            if self.is_host() {
                self.refuse(from, format!("edit {path}"), format!("{path} is not open"));
            }
            return;
        };
        if changes.len() > OFF_THREAD_CHANGE_BYTES {
            if let Some(worker) = doc.detach_for_sync() {
                let job = self.workers.spawn(
                    &path,
                    Job::Apply {
                        doc: worker,
                        changes,
                    },
                );
                let kind = PendingKind::Apply { from };
                self.jobs.insert(path, Pending { job, kind });
                return;
            }
        }
        let (applied, error) = match doc.apply_remote(&changes) {
            Ok(applied) => (applied, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        self.synced(from, path, changes, applied, error, store);
    }

    /// A change message from `from` was applied to `path` (`applied`: what
    /// it did to the text): report it and, on the host, pass it on.
    pub(super) fn synced(
        &mut self,
        from: ParticipantId,
        path: String,
        changes: Vec<u8>,
        applied: Vec<Change>,
        error: Option<DocError>,
        store: &mut dyn DocStore,
    ) {
        if !applied.is_empty() {
            store.remote_changed(&path, &applied);
            self.push(SessionEvent::Changed { path: path.clone() });
        }
        match error {
            Some(e) if self.is_host() => {
                self.drop_guest(from, &format!("bad changes to {path}: {e}"))
            }
            Some(e) => self.error(format!("bad changes to {path} from the host: {e}")),
            None if self.is_host() => {
                let viewers: Vec<_> = self
                    .host_ref()
                    .and_then(|h| h.files.get(&path))
                    .map(|f| f.viewers.iter().copied().filter(|&v| v != from).collect())
                    .unwrap_or_default();
                let Ok(bytes) = encode_msg(&HostToGuest::Sync {
                    path: path.clone(),
                    changes,
                }) else {
                    return;
                };
                for v in viewers {
                    self.send_raw(v, bytes.clone());
                }
                // Applying it may have made the host split a chunk: a
                // host change, for every viewer (the sender included).
                self.local_edit(&path, store);
            }
            // Following a split may have made the guest move its own edits
            // that raced it: its change, for the host.
            None => self.local_edit(&path, store),
        }
    }

    /// Takes in one finished job, then handles what waited for it.
    pub(super) fn doc_work_done(&mut self, done: Done, store: &mut dyn DocStore) {
        let Done { path, job, output } = done;
        if let Some(guest) = self.list_jobs.remove(&job) {
            match output {
                Output::Files(Ok((paths, truncated))) => {
                    self.send_to(guest, &HostToGuest::FileList { paths, truncated })
                }
                Output::Files(Err(message)) => self.refuse(guest, "list files".into(), message),
                _ => self.refuse(guest, "list files".into(), "listing failed".into()),
            }
            return;
        }
        let path = self.renames.iter().fold(path, |p, (from, to)| {
            renamed_path(&p, from, to).unwrap_or(p)
        });
        if self.snapshot_jobs.get(&path) == Some(&job) {
            self.snapshot_jobs.remove(&path);
            if let Output::Saved(bytes, heads) = output {
                if let Some(f) = self.host_mut().and_then(|h| h.files.get_mut(&path)) {
                    f.snapshot = Some(Snapshot {
                        bytes: std::sync::Arc::new(bytes),
                        heads,
                    });
                }
            }
            return;
        }
        if self.jobs.get(&path).is_none_or(|p| p.job != job) {
            // The file was closed or the session ended meanwhile.
            return;
        }
        let Some(Pending { kind, .. }) = self.jobs.remove(&path) else {
            return;
        };
        match (kind, output) {
            (PendingKind::Build { waiters }, Output::Built(result)) => {
                self.built(&path, waiters, result, store)
            }
            (PendingKind::Load, Output::Loaded(result)) => {
                let Some(doc) = store.doc_mut(&path) else {
                    return;
                };
                match result.and_then(|s| doc.attach(s, Attach::TakeSharedText)) {
                    Ok(changes) => {
                        if !changes.is_empty() {
                            store.remote_changed(&path, &changes);
                        }
                        let read_only = self.is_read_only();
                        self.push(SessionEvent::FileReady {
                            path: path.clone(),
                            read_only,
                        });
                    }
                    Err(e) => self.error(format!("cannot open {path}: {e}")),
                }
            }
            (
                PendingKind::Apply { from },
                Output::Applied {
                    doc: worker,
                    changes,
                    result,
                },
            ) => {
                let Some(doc) = store.doc_mut(&path) else {
                    return;
                };
                let applied = doc.reattach(worker);
                self.synced(from, path.clone(), changes, applied, result.err(), store);
            }
            (kind, _) => self.doc_work_lost(&path, kind, store),
        }
        self.replay(&path, store);
    }

    /// Host: `path`'s CRDT state is built: attach it (folding in the
    /// host's edits made meanwhile) and send the snapshot to the waiters.
    pub(super) fn built(
        &mut self,
        path: &str,
        waiters: Vec<ParticipantId>,
        result: Result<(crate::doc::SharedState, Vec<u8>), DocError>,
        store: &mut dyn DocStore,
    ) {
        let viewers = self
            .host_ref()
            .and_then(|h| h.files.get(path))
            .map(|f| f.viewers.clone())
            .unwrap_or_default();
        let waiters: Vec<_> = waiters
            .into_iter()
            .filter(|w| viewers.contains(w))
            .collect();
        let Some(doc) = store.doc_mut(path) else {
            return self.send_snapshot(&waiters, path, None);
        };
        match result.and_then(|(state, bytes)| {
            let heads = state.heads();
            doc.attach(state, Attach::KeepLocalText)
                .map(|_| (bytes, heads))
        }) {
            Ok((bytes, heads)) => {
                // Guests view it: keep every chunk's history short so that
                // each of their remote applies stays cheap (`doc` docs).
                if let Some(state) = store.doc_mut(path).and_then(|d| d.shared_state_mut()) {
                    state.set_splitting(true);
                }
                let bytes = std::sync::Arc::new(bytes);
                if let Some(f) = self.host_mut().and_then(|h| h.files.get_mut(path)) {
                    f.snapshot = Some(Snapshot {
                        bytes: bytes.clone(),
                        heads,
                    });
                }
                self.send_snapshot(&waiters, path, Some(Ok(bytes)));
                // The host's edits made while building are one local
                // change now: it follows the snapshot on every stream.
                self.local_edit(path, store);
            }
            Err(e) => {
                for w in waiters {
                    self.refuse(
                        w,
                        format!("open {path}"),
                        format!("cannot share {path}: {e}"),
                    );
                }
            }
        }
    }

    /// A worker panicked: what it held is gone. The document stays as it
    /// was shown; the user is told.
    pub(super) fn doc_work_lost(
        &mut self,
        path: &str,
        kind: PendingKind,
        store: &mut dyn DocStore,
    ) {
        self.error(format!(
            "{path}: internal error while preparing the shared document; close it and open it again"
        ));
        match kind {
            PendingKind::Build { waiters, .. } => {
                for w in waiters {
                    self.refuse(
                        w,
                        format!("open {path}"),
                        "the host could not share it".into(),
                    );
                }
            }
            PendingKind::Apply { .. } if self.is_host() => {
                // Its CRDT state went with the worker: back to a local
                // buffer, editable, shared afresh at the next `Open`.
                if let Some(doc) = store.doc_mut(path) {
                    doc.unshare();
                }
                if let Some(f) = self.host_mut().and_then(|h| h.files.get_mut(path)) {
                    f.snapshot = None;
                }
            }
            PendingKind::Apply { .. } | PendingKind::Load => {}
        }
    }

    /// Handles, in arrival order, the messages that waited for `path`'s
    /// work, until one of them starts more.
    pub(super) fn replay(&mut self, path: &str, store: &mut dyn DocStore) {
        while !self.jobs.contains_key(path) {
            let Some(msg) = self.deferred.get_mut(path).and_then(VecDeque::pop_front) else {
                break;
            };
            match msg {
                Deferred::Sync { from, changes } => {
                    self.apply_sync(from, path.to_string(), changes, store)
                }
                Deferred::FromGuest(from, msg) => {
                    if self.participants.contains_key(&from) {
                        self.host_message(from, msg, store);
                    }
                }
                Deferred::FromHost(msg) => self.guest_message(msg, store),
            }
        }
        if self.deferred.get(path).is_some_and(VecDeque::is_empty) {
            self.deferred.remove(path);
        }
    }

    /// Someone moved: if we follow them, tell the UI.
    pub(super) fn follow_moved(&mut self, who: ParticipantId, path: Option<String>) {
        if self.following() != Some(who) {
            return;
        }
        let Some(path) = path else { return };
        if let Role::Guest(g) = &self.role {
            if !g.open.contains(&path) {
                self.open(&path);
            }
        }
        let pos = self
            .participants
            .get(&who)
            .and_then(|p| p.cursor.as_ref())
            .map(|c| c.1.clone());
        self.push(SessionEvent::Follow { path, pos });
    }
}
