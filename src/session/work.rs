//! Document work too slow for the driver thread, run on worker threads.
//!
//! The session core lives on the driver (UI) thread, but building CRDT
//! state for a file (about 0.4 s per MB), loading a snapshot (0.3–0.5 s per
//! MB) or applying a large change message (seconds for a big paste) would
//! freeze the UI. [`Workers`] runs such a [`Job`] on a thread of its own
//! (each job owns its data: a rope, snapshot bytes or a document detached
//! with `Document::detach_for_sync`, never a borrow of the driver's), sends
//! the [`Done`] back over a channel the core owns, and wakes the driver
//! (the runtime's `notify`), which then calls `SessionCore::poll`.
//!
//! Jobs are numbered so the core can tell a result it still wants from a
//! late one (file closed, session over) and drop the latter.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::doc::{ActorId, Change, ChangeHash, DocError, Document, SharedState};

use super::limits::{LIST_FILES_TIMEOUT, MAX_LISTED_FILES, MAX_WORKER_THREADS};

/// Wakes the driver so it polls the core.
pub(super) type Waker = Arc<dyn Fn() + Send + Sync>;

/// Work for a worker thread; owns everything it touches.
pub(super) enum Job {
    /// Host: CRDT state for `text`, then its snapshot for the guests.
    Build {
        /// A clone of the document's rope when the first guest opened it.
        text: ropey::Rope,
        /// The host's fresh actor id for this document.
        actor: ActorId,
    },
    /// Guest: the host's snapshot, loaded.
    Load {
        /// `OpenedState` bytes.
        state: Vec<u8>,
    },
    /// Host: a fresh snapshot of a copy of a shared document's state.
    Save {
        /// The copy (boxed: it is large beside the other jobs).
        state: Box<SharedState>,
    },
    /// Host: every file of the shared folder, for a guest's quick open.
    ListFiles {
        /// The shared root.
        root: std::path::PathBuf,
    },
    /// A large change message applied to a detached document.
    Apply {
        /// From `Document::detach_for_sync`.
        doc: Document,
        /// The message, handed back for forwarding.
        changes: Vec<u8>,
    },
}

/// What a [`Job`] produced.
pub(super) enum Output {
    /// See [`Job::Build`]: the state and its saved bytes.
    Built(Result<(SharedState, Vec<u8>), DocError>),
    /// See [`Job::Load`].
    Loaded(Result<SharedState, DocError>),
    /// See [`Job::Save`]: the snapshot and the heads it is of.
    Saved(Vec<u8>, Vec<ChangeHash>),
    /// See [`Job::Apply`]: the worker's document (to reattach whatever
    /// happened) and the message it applied.
    Applied {
        doc: Document,
        changes: Vec<u8>,
        result: Result<Vec<Change>, DocError>,
    },
    /// See [`Job::ListFiles`]: the files, and whether the list was cut
    /// short; or why the folder could not be listed.
    Files(Result<(Vec<String>, bool), String>),
    /// The job panicked; what it owned is gone.
    Panicked,
}

impl Job {
    fn run(self) -> Output {
        match self {
            Job::Build { text, actor } => {
                Output::Built(SharedState::build(&text, actor).map(|mut state| {
                    let bytes = state.save();
                    (state, bytes)
                }))
            }
            Job::Load { state } => Output::Loaded(SharedState::load(&state, ActorId::random())),
            Job::Save { mut state } => {
                let heads = state.heads();
                Output::Saved(state.save(), heads)
            }
            Job::ListFiles { root } => {
                let index = crate::workspace::FileIndex::spawn_with_limit(&root, MAX_LISTED_FILES);
                index.wait(LIST_FILES_TIMEOUT);
                Output::Files(match index.error() {
                    Some(e) => Err(e),
                    None => Ok((
                        index.snapshot().iter().map(|p| p.to_string()).collect(),
                        index.is_truncated() || !index.is_complete(),
                    )),
                })
            }
            Job::Apply { mut doc, changes } => {
                let result = doc.apply_remote(&changes);
                Output::Applied {
                    doc,
                    changes,
                    result,
                }
            }
        }
    }
}

/// A finished job, for the core.
pub(super) struct Done {
    /// The shared path the job was for.
    pub path: String,
    /// The number [`Workers::spawn`] gave it.
    pub job: u64,
    pub output: Output,
}

/// Starts jobs and collects what they produce.
pub(super) struct Workers {
    tx: Sender<Done>,
    rx: Receiver<Done>,
    waker: Option<Waker>,
    next_job: u64,
    /// Started or waiting, and not yet received.
    in_flight: usize,
    /// Threads running now (at most [`MAX_WORKER_THREADS`]).
    running: usize,
    /// Jobs waiting for a thread, oldest first.
    waiting: std::collections::VecDeque<(u64, String, Job)>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl Default for Workers {
    fn default() -> Self {
        let (tx, rx) = channel();
        Self {
            tx,
            rx,
            waker: None,
            next_job: 0,
            in_flight: 0,
            running: 0,
            waiting: std::collections::VecDeque::new(),
        }
    }
}

impl Workers {
    /// Wake the driver with `waker` whenever a job finishes.
    pub fn set_waker(&mut self, waker: Waker) {
        self.waker = Some(waker);
    }

    /// Runs `job` for `path` on a worker thread (at once if fewer than
    /// [`MAX_WORKER_THREADS`] run, else when one is free); returns its
    /// number.
    pub fn spawn(&mut self, path: &str, job: Job) -> u64 {
        self.next_job += 1;
        let id = self.next_job;
        self.in_flight += 1;
        if self.running >= MAX_WORKER_THREADS {
            self.waiting.push_back((id, path.to_string(), job));
        } else {
            self.start(id, path, job);
        }
        id
    }

    fn start(&mut self, id: u64, path: &str, job: Job) {
        self.running += 1;
        // The job sits in a slot rather than moving into the closure so
        // that it can still run here if no thread can be started.
        let slot = Arc::new(Mutex::new(Some(job)));
        let theirs = slot.clone();
        let (tx, waker, name) = (self.tx.clone(), self.waker.clone(), path.to_string());
        let spawned = std::thread::Builder::new()
            .name("lshed-doc-work".into())
            .spawn(move || {
                if let Some(job) = theirs.lock().ok().and_then(|mut j| j.take()) {
                    finish(&tx, waker.as_ref(), name, id, job);
                }
            });
        if spawned.is_err() {
            if let Some(job) = slot.lock().ok().and_then(|mut j| j.take()) {
                finish(&self.tx, None, path.to_string(), id, job);
            }
        }
    }

    /// A finished job, if any; with `block`, waits for one while any runs.
    pub fn next(&mut self, block: bool) -> Option<Done> {
        let done = if block && self.in_flight > 0 {
            self.rx.recv().ok()
        } else {
            self.rx.try_recv().ok()
        };
        if done.is_some() {
            self.in_flight -= 1;
            self.running = self.running.saturating_sub(1);
            if let Some((id, path, job)) = self.waiting.pop_front() {
                self.start(id, &path, job);
            }
        }
        done
    }
}

fn finish(tx: &Sender<Done>, waker: Option<&Waker>, path: String, job: u64, work: Job) {
    // A panic must still report, or the core would wait for this job forever.
    let output = catch_unwind(AssertUnwindSafe(|| work.run())).unwrap_or(Output::Panicked);
    if tx.send(Done { path, job, output }).is_ok() {
        if let Some(wake) = waker {
            wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_cap_of_threads_run_and_every_job_finishes() {
        let mut workers = Workers::default();
        let jobs = 3 * MAX_WORKER_THREADS + 1;
        for i in 0..jobs {
            // Not a snapshot: the load fails fast, which is all this needs.
            workers.spawn(
                &format!("f{i}"),
                Job::Load {
                    state: vec![i as u8],
                },
            );
            assert!(workers.running <= MAX_WORKER_THREADS);
        }
        assert_eq!(workers.waiting.len(), jobs - MAX_WORKER_THREADS);
        let mut done = std::collections::HashSet::new();
        while let Some(d) = workers.next(true) {
            assert!(workers.running <= MAX_WORKER_THREADS);
            done.insert(d.job);
            if done.len() == jobs {
                break;
            }
        }
        assert_eq!(done.len(), jobs, "every queued job ran");
        assert!(workers.next(false).is_none());
        assert_eq!((workers.running, workers.in_flight), (0, 0));
    }
}
