//! The guest's side of [`SessionCore`]: joining, what the host sends, and
//! the guest's requests to the host (open, save, tree operations, leave).

use super::*;

impl SessionCore {
    pub(super) fn guest_net(&mut self, ev: NetEvent, store: &mut dyn DocStore) {
        if self.guest_mut().is_some_and(|g| g.over) {
            return;
        }
        match ev {
            NetEvent::Joined { id, path } => {
                self.me = id;
                self.path_kind = Some(path);
            }
            NetEvent::JoinFailed(e) => self.join_failed(e.to_string()),
            // The runtime itself could not start.
            NetEvent::HostFailed { message } => self.join_failed(message),
            NetEvent::Message { from: _, bytes } => match decode_host(&bytes) {
                Ok(msg) => self.guest_message(msg, store),
                Err(e) => {
                    // The host is the authority; a message we cannot read
                    // means we are out of step: leave rather than diverge.
                    self.outbox.push(NetCommand::Drop {
                        to: HOST_PARTICIPANT_ID,
                        detail: format!("undecodable message: {e}"),
                    });
                    self.finish(format!(
                        "left: the host sent a message this lshed cannot read ({e})"
                    ));
                }
            },
            NetEvent::PeerClosed { reason, .. } => {
                let message = match reason {
                    CloseReason::Local(CloseCode::Left) => "you left the session".to_string(),
                    other => other.to_string(),
                };
                self.finish(message);
            }
            _ => {}
        }
    }

    pub(super) fn join_failed(&mut self, message: String) {
        self.state = SessionState::Inactive;
        if let Some(g) = self.guest_mut() {
            g.over = true;
        }
        self.push(SessionEvent::JoinFailed { message });
        self.shutdown_runtime();
    }

    /// The guest's session is over: tell the UI once and stop the runtime.
    pub(super) fn finish(&mut self, message: String) {
        let Some(g) = self.guest_mut() else { return };
        if g.over {
            return;
        }
        g.over = true;
        g.open.clear();
        self.state = SessionState::Inactive;
        self.forget_doc_work();
        self.push(SessionEvent::SessionEnded { message });
        self.shutdown_runtime();
    }

    pub(super) fn guest_message(&mut self, msg: HostToGuest, store: &mut dyn DocStore) {
        // (A `Sync` waits in `apply_sync`.)
        if let HostToGuest::Opened { path, .. } | HostToGuest::OpenedState { path, .. } = &msg {
            if self.jobs.contains_key(path) {
                let path = path.clone();
                return self.defer(path, Deferred::FromHost(msg));
            }
        }
        match msg {
            HostToGuest::Welcome {
                host_name,
                folder,
                you,
                participants,
                session_read_only,
            } => {
                self.me = you;
                self.session_read_only = session_read_only;
                self.participants = participants
                    .into_iter()
                    .map(|i| {
                        (
                            i.id,
                            Participant {
                                id: i.id,
                                name: i.name,
                                color: i.color,
                                file: i.file,
                                read_only: i.read_only,
                                is_host: i.is_host,
                                following: i.following,
                                cursor: None,
                                path: None,
                            },
                        )
                    })
                    .collect();
                self.state = SessionState::Joined;
                if let Some(g) = self.guest_mut() {
                    g.host_name = host_name.clone();
                    g.host_folder = folder;
                    g.welcomed = true;
                }
                self.push(SessionEvent::Joined {
                    host_name,
                    path_kind: self.path_kind.unwrap_or(Path::Direct),
                });
            }
            HostToGuest::DirListing { path, entries } => {
                self.push(SessionEvent::DirListing { path, entries })
            }
            HostToGuest::Opened {
                path,
                text,
                live,
                read_only,
            } => {
                // Shown at once; read-only until its state arrives.
                let doc = if live {
                    Document::loading(&text)
                } else {
                    Document::from_text(&text)
                };
                let read_only = read_only || !live;
                store.adopt(&path, doc, read_only);
                if let Some(g) = self.guest_mut() {
                    g.open.insert(path.clone());
                }
                self.push(SessionEvent::FileOpened {
                    path: path.clone(),
                    read_only,
                });
                if live {
                    self.yield_to_driver = true;
                } else {
                    self.push(SessionEvent::FileReady { path, read_only });
                }
            }
            HostToGuest::OpenedState { path, state } => {
                if store.doc_mut(&path).is_none() {
                    return;
                }
                let job = self.workers.spawn(&path, Job::Load { state });
                self.jobs.insert(
                    path,
                    Pending {
                        job,
                        kind: PendingKind::Load,
                    },
                );
            }
            HostToGuest::Sync { path, changes } => {
                self.apply_sync(HOST_PARTICIPANT_ID, path, changes, store)
            }
            HostToGuest::EditRefused { path, message } => {
                self.error(format!("{path}: {message}"));
                // Our doc holds the refused edit: take the host's copy again.
                self.send_to(HOST_PARTICIPANT_ID, &GuestToHost::Open { path });
            }
            HostToGuest::Presence { who, path, cursor } => {
                let decoded = decode_cursor(&cursor);
                if let Some(p) = self.participants.get_mut(&who) {
                    p.file = path.clone();
                    p.cursor = decoded;
                }
                self.follow_moved(who, path);
            }
            HostToGuest::Saved { path } => self.push(SessionEvent::Saved { path }),
            HostToGuest::TreeChanged { paths } => self.push(SessionEvent::TreeChanged { paths }),
            HostToGuest::Renamed { from, to } => self.rename_shared(&from, &to, store),
            HostToGuest::FileList { paths, truncated } => {
                self.push(SessionEvent::FileList { paths, truncated })
            }
            HostToGuest::ParticipantJoined(info) => {
                let name = info.name.clone();
                let id = info.id;
                self.upsert(info);
                self.push(SessionEvent::ParticipantJoined { id, name });
            }
            HostToGuest::ParticipantUpdated(info) => self.upsert(info),
            HostToGuest::ParticipantLeft { who, reason } => {
                if let Some(p) = self.participants.remove(&who) {
                    if self.following() == Some(who) {
                        if let Some(me) = self.participants.get_mut(&self.me) {
                            me.following = None;
                        }
                    }
                    self.push(SessionEvent::ParticipantLeft {
                        id: who,
                        name: p.name,
                        reason,
                    });
                }
            }
            HostToGuest::ReadOnly { who, value } => {
                let before = self.is_read_only();
                match who {
                    None => self.session_read_only = value,
                    Some(id) => {
                        if let Some(p) = self.participants.get_mut(&id) {
                            p.read_only = value;
                        }
                    }
                }
                let now = self.is_read_only();
                if now != before {
                    self.push(SessionEvent::ReadOnlyChanged { read_only: now });
                }
            }
            HostToGuest::Removed => {
                self.push(SessionEvent::Removed);
                self.finish("the host removed you from the session".into());
            }
            HostToGuest::SessionEnded { message } => self.finish(message),
            HostToGuest::Error { request, message } => self.error(format!("{request}: {message}")),
        }
    }

    pub(super) fn upsert(&mut self, info: ParticipantInfo) {
        let cursor = self
            .participants
            .get(&info.id)
            .and_then(|p| p.cursor.clone());
        self.participants.insert(
            info.id,
            Participant {
                id: info.id,
                name: info.name,
                color: info.color,
                file: info.file,
                read_only: info.read_only,
                is_host: info.is_host,
                following: info.following,
                cursor,
                path: None,
            },
        );
    }

    pub(super) fn guest_request(&mut self, msg: GuestToHost) {
        if self.is_host() || self.state != SessionState::Joined {
            self.error("not in a session as a guest");
            return;
        }
        self.send_to(HOST_PARTICIPANT_ID, &msg);
        self.flush();
    }

    /// Guest: ask the host for a file (it arrives through `DocStore::adopt`
    /// and a `FileOpened` event).
    pub fn open(&mut self, path: &str) {
        self.guest_request(GuestToHost::Open { path: path.into() });
    }

    /// Guest: stop receiving changes of a file (its buffer was closed).
    pub fn close(&mut self, path: &str) {
        if let Some(g) = self.guest_mut() {
            g.open.remove(path);
        }
        // Whatever a worker is still doing for the closed file is dropped.
        self.jobs.remove(path);
        self.deferred.remove(path);
        self.guest_request(GuestToHost::Close { path: path.into() });
    }

    /// Guest: ask for every file of the shared folder (a `FileList` event
    /// follows), for quick open.
    pub fn list_files(&mut self) {
        self.guest_request(GuestToHost::ListFiles);
    }

    /// Guest: ask for a folder listing (a `DirListing` event follows).
    pub fn list_dir(&mut self, path: &str) {
        self.guest_request(GuestToHost::ListDir { path: path.into() });
    }

    /// Guest: ask the host to save a file (a `Saved` event follows).
    pub fn save(&mut self, path: &str) {
        self.guest_request(GuestToHost::Save { path: path.into() });
    }

    /// Guest: create a file or folder on the host.
    pub fn create(&mut self, path: &str, dir: bool) {
        self.guest_request(GuestToHost::Create {
            path: path.into(),
            dir,
        });
    }

    /// Guest: rename on the host.
    pub fn rename(&mut self, from: &str, to: &str) {
        self.guest_request(GuestToHost::Rename {
            from: from.into(),
            to: to.into(),
        });
    }

    /// Guest: delete on the host.
    pub fn delete(&mut self, path: &str) {
        self.guest_request(GuestToHost::Delete { path: path.into() });
    }

    /// Guest: leave; the session goes on for the others.
    pub fn leave(&mut self) {
        if self.is_host() {
            return self.end();
        }
        // What was held while the link was busy goes before the goodbye.
        self.send_held(None);
        self.finish("you left the session".into());
        self.flush();
    }
}
