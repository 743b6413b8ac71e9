//! Collaboration in the UI: Share / Join / Leave / End session, the invite
//! link (clipboard, OSC 52 and on screen), the display-name question,
//! approving joiners, the participants panel, follow mode, and keeping the
//! session told about local edits and the cursor.
//!
//! The session core runs here, on the UI thread, over the editor's buffers
//! ([`EditorStore`]); its network half wakes the loop with
//! [`AppEvent::SessionWake`].

use std::str::FromStr;

use super::app::{App, ConfirmKind, Focus, Level, Overlay, PromptKind};
use super::tree_pane::{RemoteTree, TreePane};
use super::AppEvent;
use crate::editor::collab::EditorStore;
use crate::editor::{Command, RemoteCursor, Selection};
use crate::net::InviteLink;
use crate::session::{self, Profile, SessionCore, SessionEvent, SessionOptions, SessionState};
use crate::workspace::FileTree;

/// Colours offered to a new participant (also the order of the theme's).
const DEFAULT_COLORS: &[&str] = &[
    "#e06c75", "#98c379", "#e5c07b", "#61afef", "#c678dd", "#56b6c2", "#d19a66", "#be5046",
];

/// What to do once the display name is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Share the folder.
    Share,
    /// Join the session at this link.
    Join(String),
}

/// What the local user looked at before an input event, to tell the
/// session what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Before {
    buffer: Option<u64>,
    revision: u64,
    selection: Selection,
}

/// What was last said about our cursor (see `App::send_presence`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceSent {
    /// The shared file it is in, if any.
    pub path: Option<String>,
    /// Selection anchor (char offset).
    pub anchor: usize,
    /// Selection head (char offset).
    pub head: usize,
    /// Whether the file's CRDT state was there (a cursor needs it).
    pub live: bool,
    /// The document's layout generation (`Document::layout_generation`):
    /// a split retires the chunk a cursor named.
    pub layout: usize,
}

impl App {
    /// The session state's status-line name.
    pub fn session_state(&self) -> SessionState {
        self.session
            .as_ref()
            .map(|s| s.state())
            .unwrap_or(SessionState::Inactive)
    }

    /// The status-line badge: state, path, people, read-only.
    pub fn session_badge(&self) -> String {
        let Some(s) = &self.session else {
            return "Inactive".to_string();
        };
        let mut out = s.state().label().to_string();
        if let Some(p) = s.path_kind() {
            out.push_str(&format!(" · {p}"));
        }
        if matches!(s.state(), SessionState::Sharing | SessionState::Joined) {
            let n = s.participants().len();
            out.push_str(&format!(
                " · {n} {}",
                if n == 1 { "person" } else { "people" }
            ));
        }
        if s.is_read_only() {
            out.push_str(" · read-only");
        }
        out
    }

    /// Runs a collaboration command.
    pub fn collab_command(&mut self, cmd: Command) {
        match cmd {
            Command::Share => self.begin(Intent::Share),
            Command::Join => {
                if self.session.is_some() {
                    self.notify(Level::Info, "already in a session: leave it first");
                } else {
                    self.open_prompt_pub(PromptKind::Join, "");
                }
            }
            Command::Leave => match &mut self.session {
                Some(s) if !s.is_host() => {
                    self.leaving = true;
                    s.leave()
                }
                Some(_) => self.notify(Level::Info, "you are the host: use End Session"),
                None => self.notify(Level::Info, "not in a session"),
            },
            Command::EndSession => match &mut self.session {
                Some(s) if s.is_host() => s.end(),
                Some(_) => self.notify(Level::Info, "only the host can end the session: use Leave"),
                None => self.notify(Level::Info, "not in a session"),
            },
            Command::OpenJoinPage => {
                let url = self.session.as_ref().and_then(|s| s.invite_url());
                match url {
                    Some(url) => self.open_in_browser(&url, "the join page"),
                    None if self.session.as_ref().is_some_and(|s| s.is_host()) => self.notify(
                        Level::Info,
                        "no join page: the session's relay serves none (its operator can add one with lshed relay --web-listen)",
                    ),
                    None => self.notify(Level::Info, "not sharing: there is no join page"),
                }
            }
            Command::CopyInviteLink => match self.session.as_ref().and_then(|s| s.invite_link()) {
                Some(link) => {
                    let url = self.session.as_ref().and_then(|s| s.invite_url());
                    self.show_link(&link, url.as_deref())
                }
                None => self.notify(Level::Info, "no invite link: share first"),
            },
            Command::Participants | Command::FollowParticipant => {
                if self.session.is_none() {
                    self.notify(Level::Info, "not in a session");
                } else {
                    self.overlay = Some(Overlay::Participants { selected: 0 });
                }
            }
            _ => {}
        }
    }

    /// Starts sharing or joining, asking for a display name first if the
    /// config has none.
    pub fn begin(&mut self, intent: Intent) {
        if self.session.is_some() {
            self.notify(Level::Info, "already in a session");
            return;
        }
        if self.editor.config.display_name.is_none() {
            let name = session::default_display_name();
            self.open_prompt_pub(PromptKind::DisplayName(intent), &name);
            return;
        }
        self.start(intent);
    }

    /// The display name was answered: keep it in the config, then go on.
    pub fn set_display_name(&mut self, name: &str, intent: Intent) -> Result<(), String> {
        let name = name.trim();
        if name.is_empty() {
            return Err("please type a name".into());
        }
        let color = self.editor.config.color.clone().unwrap_or_else(|| {
            let h = name
                .bytes()
                .fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(b as usize));
            DEFAULT_COLORS[h % DEFAULT_COLORS.len()].to_string()
        });
        if let Err(e) = crate::config::save_identity(&self.config_path, name, &color) {
            self.notify(Level::Warning, format!("could not save your name: {e}"));
        }
        self.editor.config.display_name = Some(name.to_string());
        self.editor.config.color = Some(color);
        self.start(intent);
        Ok(())
    }

    fn profile(&self) -> Profile {
        Profile {
            name: self
                .editor
                .config
                .display_name
                .clone()
                .unwrap_or_else(session::default_display_name),
            color: self
                .editor
                .config
                .color
                .clone()
                .unwrap_or_else(|| DEFAULT_COLORS[0].to_string()),
        }
    }

    fn options(&self) -> Result<SessionOptions, String> {
        let mut o = SessionOptions::from_config(&self.editor.config)?;
        // Which address the host listens on (default: every interface).
        // Tests pin it to loopback.
        if let Some(ip) = std::env::var("LSHED_BIND")
            .ok()
            .and_then(|v| v.parse::<std::net::IpAddr>().ok())
        {
            o.bind_ip = ip;
        }
        Ok(o)
    }

    fn notifier(&self) -> session::runtime::Notify {
        let waker = self.waker.clone();
        Box::new(move || {
            if let Some(w) = &waker {
                let _ = w.send(AppEvent::SessionWake);
            }
        })
    }

    fn start(&mut self, intent: Intent) {
        let options = match self.options() {
            Ok(o) => o,
            Err(e) => {
                self.notify(Level::Error, e);
                return;
            }
        };
        match intent {
            Intent::Share => {
                let core = SessionCore::host(
                    self.editor.root.clone(),
                    self.profile(),
                    options,
                    self.notifier(),
                );
                self.session = Some(core);
            }
            Intent::Join(text) => {
                let link = match InviteLink::from_str(&text) {
                    Ok(l) => l,
                    Err(e) => {
                        self.open_prompt_pub(PromptKind::Join, &text);
                        self.set_prompt_error(e.to_string());
                        return;
                    }
                };
                let core = SessionCore::join(link, self.profile(), options, self.notifier());
                self.session = Some(core);
            }
        }
    }

    /// Writes the host's files that changed here since they were last saved
    /// to the recovery folder, and says where.
    fn keep_host_buffers(&mut self) {
        let changed: Vec<usize> = self
            .editor
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.shared_path.is_some() && b.path.is_none() && b.is_dirty())
            .map(|(i, _)| i)
            .collect();
        if changed.is_empty() {
            return;
        }
        match super::app::write_recovery(&self.editor, &changed) {
            Ok(dir) => self.notify(
                Level::Warning,
                format!(
                    "session over: your changed copies kept in {}",
                    dir.display()
                ),
            ),
            Err(e) => self.notify(
                Level::Error,
                format!("the session ended and your copies could not be kept: {e}"),
            ),
        }
    }

    /// Puts the oldest waiting join request on screen, if any.
    pub fn show_next_approval(&mut self) {
        let Some((pending, name)) = self.approvals_waiting.pop_front() else {
            return;
        };
        let more = match self.approvals_waiting.len() {
            0 => String::new(),
            n => format!("  ({n} more waiting)"),
        };
        self.approval_shown = Some(std::time::Instant::now());
        self.overlay = Some(Overlay::Confirm {
            message: format!("{name} wants to join.  [a]ccept  [r]eject{more}"),
            kind: ConfirmKind::Approve(pending),
        });
    }

    fn show_link(&mut self, link: &str, url: Option<&str>) {
        // The web form is what people can click in a chat; lshed takes both.
        let shown = url.unwrap_or(link);
        self.copy_text(shown);
        let page = match (url, self.keymap.keys_for(Command::OpenJoinPage).first()) {
            (Some(_), Some(key)) => format!(
                " It opens the relay's join page in a browser ({key} here); lshed's join prompt takes it too."
            ),
            (Some(_), None) => " It opens the relay's join page in a browser; lshed's join prompt takes it too.".to_string(),
            (None, _) => String::new(),
        };
        let plain = match url {
            Some(_) => format!("\n\nThe same invite as an lshed link: {link}"),
            None => String::new(),
        };
        let again = match self.keymap.keys_for(Command::CopyInviteLink).first() {
            Some(key) => format!("; {key} shows it again"),
            None => String::new(),
        };
        let how = if self.clipboard.has_system() {
            "copied to the clipboard"
        } else {
            "sent to your terminal's clipboard (OSC 52)"
        };
        self.overlay = Some(Overlay::Info {
            title: "Invite link".into(),
            body: format!(
                "{shown}\n\n{how}; select it here to copy it by hand. Anyone with this link can join: \
                 send it privately.{page} Any key closes this{again}.{plain}"
            ),
        });
    }

    /// The session's network half has news: let the core act on it, then
    /// show what it reports.
    pub fn on_session_wake(&mut self) {
        let Some(core) = self.session.as_mut() else {
            return;
        };
        let mut store = EditorStore::new(&mut self.editor);
        core.poll(&mut store);
        let events = core.drain_events();
        for ev in events {
            self.on_session_event(ev);
        }
        self.sync_tree_requests();
        // Files too large to share editable became read-only for everyone
        // (not those read-only only while a worker has their document).
        let session = self.session.as_ref();
        for b in &mut self.editor.buffers {
            let working = b
                .shared_path
                .as_deref()
                .is_some_and(|p| session.is_some_and(|s| s.doc_work_pending(p)));
            if b.read_only.is_none() && b.doc.is_read_only() && !working {
                b.read_only = b.doc.read_only_reason().map(str::to_string);
            }
        }
        self.update_remote_cursors();
        // Following or a file arriving may have moved us.
        self.send_presence();
        if self.session_state() == SessionState::Inactive && self.session.is_some() {
            self.finish_session();
        }
    }

    fn on_session_event(&mut self, ev: SessionEvent) {
        match ev {
            SessionEvent::Shared { link, url } => {
                self.show_link(&link, url.as_deref());
                for b in &mut self.editor.buffers {
                    if let Some(p) = &b.path {
                        b.shared_path = crate::workspace::relative(&self.editor.root, p);
                    }
                }
            }
            SessionEvent::GuestWantsToJoin { pending, name } => {
                self.approvals_waiting.push_back((pending, name));
                let asking = matches!(
                    self.overlay,
                    Some(Overlay::Confirm {
                        kind: ConfirmKind::Approve(_),
                        ..
                    })
                );
                if !asking {
                    self.show_next_approval();
                }
            }
            SessionEvent::ParticipantJoined { name, .. } => {
                self.notify(Level::Info, format!("{name} joined"));
            }
            SessionEvent::ParticipantLeft { name, reason, .. } => {
                // "left" is the common case; anything else says why.
                let message = if reason == "left" {
                    format!("{name} left")
                } else {
                    format!("{name} left: {reason}")
                };
                self.notify(Level::Info, message);
            }
            SessionEvent::Joined {
                host_name,
                path_kind,
            } => {
                self.notify(
                    Level::Info,
                    format!("joined {host_name}'s session ({path_kind})"),
                );
                self.local_tree = self.tree.take();
                self.tree = Some(TreePane::Remote(RemoteTree::new()));
                self.tree_visible = true;
                self.tree_selected = 0;
                self.focus = Focus::Tree;
                self.sync_tree_requests();
            }
            SessionEvent::JoinFailed { message } => {
                self.session = None;
                self.open_prompt_pub(PromptKind::Join, "");
                self.set_prompt_error(message);
            }
            SessionEvent::FileOpened { path, .. } => {
                // The text is here; the CRDT state follows (FileReady).
                if self.follow_pending.as_deref() == Some(path.as_str()) {
                    self.follow_pending = None;
                }
                if let Some(i) = self.editor.find_shared(&path) {
                    self.editor.buffers[i].hidden = false;
                    self.editor.buffers[i].read_only = Some("loading the shared state…".into());
                    self.editor.active = Some(i);
                    self.focus = Focus::Editor;
                }
            }
            SessionEvent::FileReady { path, read_only } => {
                // A large change that arrived while loading may already be
                // applying on a worker: that read-only spell is the doc's
                // own and ends by itself.
                let working = self
                    .session
                    .as_ref()
                    .is_some_and(|s| s.doc_work_pending(&path));
                if let Some(i) = self.editor.find_shared(&path) {
                    let b = &mut self.editor.buffers[i];
                    b.read_only = if read_only {
                        Some("the host made this session read-only for you".into())
                    } else if working {
                        None
                    } else {
                        b.doc.read_only_reason().map(str::to_string)
                    };
                }
            }
            SessionEvent::FileList { paths, truncated } => {
                if truncated {
                    self.notify(
                        Level::Info,
                        format!(
                            "the host's folder has more files than the {} listed",
                            paths.len()
                        ),
                    );
                }
                self.set_remote_files(paths);
            }
            SessionEvent::DirListing { path, entries } => {
                if let Some(TreePane::Remote(t)) = &mut self.tree {
                    t.set_listing(&path, &entries);
                }
            }
            SessionEvent::Saved { path } => {
                if let Some(i) = self.editor.find_shared(&path) {
                    self.editor.buffers[i].mark_saved();
                }
                self.notify(Level::Info, format!("saved {path} on the host"));
            }
            SessionEvent::TreeChanged { .. } => {
                if let Some(t) = &mut self.tree {
                    let _ = t.refresh();
                }
            }
            SessionEvent::Changed { .. } => {}
            SessionEvent::ReadOnlyChanged { read_only } => {
                for b in &mut self.editor.buffers {
                    if b.shared_path.is_some() && b.path.is_none() {
                        b.read_only = read_only
                            .then(|| "the host made this session read-only for you".to_string());
                    }
                }
                let what = if read_only {
                    "the host made the session read-only for you"
                } else {
                    "you may edit again"
                };
                self.notify(Level::Info, what);
            }
            SessionEvent::Removed => {
                self.notify(Level::Warning, "the host removed you from the session");
            }
            SessionEvent::SessionEnded { message } => {
                self.notify(Level::Warning, message);
            }
            SessionEvent::Error { message } => self.notify(Level::Error, message),
            SessionEvent::Follow { path, pos } => self.follow_to(&path, pos),
        }
    }

    fn follow_to(&mut self, path: &str, pos: Option<crate::doc::StablePos>) {
        let Some(core) = self.session.as_mut() else {
            return;
        };
        let idx = match self.editor.find_shared(path) {
            Some(i) => i,
            None => {
                if core.is_host() {
                    let mut store = EditorStore::new(&mut self.editor);
                    if crate::session::DocStore::open_for_peer(&mut store, path).is_err() {
                        return;
                    }
                    match self.editor.find_shared(path) {
                        Some(i) => i,
                        None => return,
                    }
                } else {
                    // The core has asked the host for it; FileOpened will
                    // bring it to the front.
                    self.follow_pending = Some(path.to_string());
                    return;
                }
            }
        };
        self.editor.buffers[idx].hidden = false;
        self.editor.active = Some(idx);
        if let Some(p) = pos {
            let b = &mut self.editor.buffers[idx];
            if let Some(at) = b.doc.resolve(&p) {
                b.selection = Selection::point(at.min(b.rope().len_chars()));
                b.view.scrolled_by_user = false;
            }
        }
    }

    fn sync_tree_requests(&mut self) {
        let Some(t) = &mut self.tree else { return };
        let reqs = t.take_requests();
        if let Some(core) = &mut self.session {
            for r in reqs {
                core.list_dir(&r);
            }
        }
    }

    /// Resolves every participant's cursor into the buffers.
    pub fn update_remote_cursors(&mut self) {
        for b in &mut self.editor.buffers {
            b.remote_cursors.clear();
        }
        let Some(core) = &self.session else { return };
        let me = core.my_id();
        for p in core.participants() {
            if p.id == me {
                continue;
            }
            let (Some(file), Some((a, h))) = (&p.file, &p.cursor) else {
                continue;
            };
            let Some(i) = self.editor.find_shared(file) else {
                continue;
            };
            let b = &mut self.editor.buffers[i];
            let (Some(anchor), Some(head)) = (b.doc.resolve(a), b.doc.resolve(h)) else {
                continue;
            };
            b.remote_cursors.push(RemoteCursor {
                id: p.id,
                name: p.name.clone(),
                color: p.color.clone(),
                anchor,
                head,
            });
        }
    }

    /// What the user is looking at, before an input event.
    pub fn before_input(&self) -> Before {
        match self.editor.buffer() {
            Some(b) => Before {
                buffer: Some(b.id),
                revision: b.doc.revision(),
                selection: b.selection,
            },
            None => Before {
                buffer: None,
                revision: 0,
                selection: Selection::default(),
            },
        }
    }

    /// After an input event: send local edits and the cursor to the session;
    /// moving by yourself stops following.
    pub fn after_input(&mut self, before: Before) {
        if self.session.is_none() {
            return;
        }
        let now = self.before_input();
        if now == before {
            return;
        }
        let Some(core) = self.session.as_mut() else {
            return;
        };
        if core.following().is_some() && now.buffer == before.buffer {
            core.follow(None);
            self.notify(Level::Info, "stopped following");
        }
        let Some(core) = self.session.as_mut() else {
            return;
        };
        let path = self.editor.buffer().and_then(|b| b.shared_path.clone());
        let mut store = EditorStore::new(&mut self.editor);
        if let Some(p) = &path {
            if now.buffer == before.buffer && now.revision != before.revision {
                core.local_edit(p, &mut store);
            }
        }
        self.send_presence();
    }

    /// Tells the others where our cursor is, if that changed.
    pub fn send_presence(&mut self) {
        let Some(core) = self.session.as_mut() else {
            return;
        };
        let (path, sel, live, layout) = match self.editor.buffer() {
            Some(b) => (
                b.shared_path.clone(),
                b.selection,
                b.doc.is_shared(),
                b.doc.layout_generation(),
            ),
            None => (None, Selection::default(), false, 0),
        };
        // A cursor can only be sent once the file's CRDT state is there;
        // after the host split the chunk it named, it is sent again (the
        // old one no longer resolves for the others).
        let now = PresenceSent {
            path: path.clone(),
            anchor: sel.anchor,
            head: sel.head,
            live,
            layout,
        };
        if self.last_presence.as_ref() == Some(&now) {
            return;
        }
        self.last_presence = Some(now);
        let mut store = EditorStore::new(&mut self.editor);
        core.local_presence(path.as_deref(), sel.anchor, sel.head, &mut store);
    }

    /// The session is over: guests drop the host's files and get their own
    /// folder back; the host's buffers stop being shared.
    fn finish_session(&mut self) {
        let was_guest = self.session.as_ref().is_some_and(|s| !s.is_host());
        if was_guest && !std::mem::take(&mut self.leaving) {
            // The session ended without our leaving (the host ended it, the
            // connection broke): what we typed last may not have reached
            // the host, and these buffers are about to go. Keep copies.
            self.keep_host_buffers();
        }
        self.session = None;
        self.last_presence = None;
        self.remote_files = None;
        self.follow_pending = None;
        if was_guest {
            self.editor
                .buffers
                .retain(|b| !(b.shared_path.is_some() && b.path.is_none()));
            let first = self.editor.visible_buffers().next();
            self.editor.active = first;
            self.tree = self
                .local_tree
                .take()
                .or_else(|| FileTree::new(&self.editor.root).ok().map(TreePane::Local));
        } else {
            for b in &mut self.editor.buffers {
                b.shared_path = None;
                b.doc.unshare();
            }
            self.editor.buffers.retain(|b| !b.hidden || b.is_dirty());
            for b in &mut self.editor.buffers {
                b.hidden = false;
            }
            if self
                .editor
                .active
                .is_some_and(|a| a >= self.editor.buffers.len())
            {
                let first = self.editor.visible_buffers().next();
                self.editor.active = first;
            }
        }
        for b in &mut self.editor.buffers {
            b.remote_cursors.clear();
        }
    }
}
