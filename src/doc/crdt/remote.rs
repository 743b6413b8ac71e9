//! Taking in what peers send: remote changes (held until their
//! dependencies arrive, applied in batches, contained if automerge panics)
//! and the sync protocol.

use super::*;

impl SharedState {
    /// Rebuilds automerge from the checkpoint and the log of good changes,
    /// after a panic may have left it half-modified.
    pub(super) fn recover(&mut self) -> Result<(), DocError> {
        let actor = self.am.get_actor().clone();
        let checkpoint = &self.checkpoint;
        let log = &self.log;
        let rebuilt = contain("recovery", || -> Result<Automerge, AutomergeError> {
            let mut am = if checkpoint.is_empty() {
                Automerge::new_with_encoding(TextEncoding::UnicodeCodePoint)
            } else {
                Automerge::load_with_options(checkpoint, load_options())?
            };
            for change in log {
                am.load_incremental(change)?;
            }
            Ok(am)
        })?
        .map_err(|e| DocError::rejected("recovery", e))?;
        self.am = rebuilt.with_actor(actor);
        self.max_op = None;
        self.rebuild_table();
        Ok(())
    }

    /// Applies a message made by a peer's [`Self::take_outgoing`]. Patches
    /// `rope` and returns the changes applied to it, in order.
    pub(crate) fn apply_remote(&mut self, rope: &mut Rope, bytes: &[u8]) -> Remote {
        let before = rope.clone();
        self.settled = false;
        let mut remote = self.apply_remote_inner(rope, bytes);
        self.report_net(&before, rope, &mut remote);
        remote
    }

    /// When this replica moved its own racing edits during a remote apply
    /// (`settle_own`), the split took them out of the rope and the move
    /// put them back: report the net difference instead, so that the
    /// author's text, cursor and selections never see them leave.
    fn report_net(&mut self, before: &Rope, rope: &Rope, remote: &mut Remote) {
        if std::mem::take(&mut self.settled) {
            remote.changes = net_changes(before, rope);
        }
    }

    fn apply_remote_inner(&mut self, rope: &mut Rope, bytes: &[u8]) -> Remote {
        self.text_cache = None;
        let known_max_op = self.max_op.take();
        // The recovery log must hold every local change before foreign
        // input can make automerge panic.
        self.flush();
        // Decoding touches no document: a failure here changes nothing.
        let decoded = match decode_changes(bytes) {
            Ok(d) => d,
            Err(e) => return Remote::failed(e),
        };
        let incoming = decoded.into_iter().map(|(c, raw)| (c, raw.to_vec()));
        let ready = self.take_ready(incoming.collect());
        self.apply_ready(rope, ready, known_max_op)
    }

    /// Applies changes whose dependencies are all in (see
    /// [`Self::take_ready`]). `known_max_op`: the highest op before, if known.
    pub(super) fn apply_ready(
        &mut self,
        rope: &mut Rope,
        ready: Vec<(automerge::Change, Vec<u8>)>,
        known_max_op: Option<u64>,
    ) -> Remote {
        const WHAT: &str = "change message";
        if ready.is_empty() {
            self.max_op = known_max_op;
            return Remote {
                changes: Vec::new(),
                error: None,
            };
        }
        let (changes, raws): (Vec<automerge::Change>, Vec<Vec<u8>>) = ready.into_iter().unzip();
        let stamps: Vec<u64> = changes.iter().map(|c| c.max_op()).collect();
        if !self.splitter {
            self.arriving = changes.iter().map(arrival).collect();
        }
        let nothing_queued = self.am.get_missing_deps(&[]).is_empty();
        let mut plog = PatchLog::active();
        let am = &mut self.am;
        let outcome = contain(WHAT, || am.apply_changes_log_patches(changes, &mut plog));
        let mut remote = self.finish_remote(rope, outcome, plog, WHAT, |s| {
            for raw in raws {
                s.log_raw(raw);
            }
        });
        self.arriving.clear();
        // Our next ops are numbered past every applied change. When nothing
        // waits in automerge's queue before or after (so exactly these
        // changes were applied, none held back for a missing dependency and
        // no earlier one released), the highest op is known without a
        // probe at the next keystroke.
        if remote.error.is_none() && nothing_queued && self.am.get_missing_deps(&[]).is_empty() {
            let newest = stamps.iter().copied().max().unwrap_or(0);
            self.max_op = known_max_op.map(|m| m.max(newest));
        }
        remote.changes.extend(self.maintain(rope));
        remote
    }

    /// Common tail of every remote apply: on a panic, recover; otherwise
    /// turn the patches into rope changes; then report automerge's verdict.
    pub(super) fn finish_remote(
        &mut self,
        rope: &mut Rope,
        outcome: Result<Result<(), AutomergeError>, DocError>,
        plog: PatchLog,
        what: &'static str,
        on_success: impl FnOnce(&mut Self),
    ) -> Remote {
        let result = self.finish_remote_inner(rope, outcome, plog, what, on_success);
        // Remote changes are not ours to send: move the flush mark past them.
        self.flushed_heads = self.am.get_heads();
        result
    }

    pub(super) fn finish_remote_inner(
        &mut self,
        rope: &mut Rope,
        outcome: Result<Result<(), AutomergeError>, DocError>,
        mut plog: PatchLog,
        what: &'static str,
        on_success: impl FnOnce(&mut Self),
    ) -> Remote {
        let mut out = Vec::new();
        let applied = match outcome {
            Err(panicked) => {
                if let Err(e) = self.recover() {
                    return Remote::failed(e);
                }
                // Normally a no-op: the rebuilt state is the one the rope
                // already mirrors.
                self.resync_rope(rope, &mut out);
                return Remote {
                    changes: out,
                    error: Some(panicked),
                };
            }
            Ok(applied) => applied,
        };
        let am = &self.am;
        match contain(what, || am.make_patches(&mut plog)) {
            Ok(patches) => self.patch_rope(rope, &patches, &mut out),
            Err(_) => self.resync_rope(rope, &mut out),
        }
        match applied {
            Ok(()) => {
                on_success(self);
                Remote {
                    changes: out,
                    error: None,
                }
            }
            // Part of the input may have been applied; the rope follows
            // automerge either way, so report the error with nothing lost.
            Err(e) => Remote {
                changes: out,
                error: Some(DocError::rejected(what, e)),
            },
        }
    }

    /// Next message of the sync protocol for `peer`, if there is anything to
    /// say. Call after every change (local or remote) and after receiving.
    pub(crate) fn generate_sync_message(
        &self,
        peer: &mut PeerSync,
    ) -> Result<Option<Vec<u8>>, DocError> {
        let am = &self.am;
        let state = &mut peer.state;
        match contain("sync message", || am.generate_sync_message(state)) {
            Ok(msg) => Ok(msg.map(|m| m.encode())),
            Err(e) => {
                // The peer's advertised state made automerge panic: forget it.
                peer.state = sync::State::new();
                Err(e)
            }
        }
    }

    /// Applies a sync message from `peer`. Patches `rope` and returns the
    /// changes applied to it.
    pub(crate) fn receive_sync_message(
        &mut self,
        rope: &mut Rope,
        peer: &mut PeerSync,
        bytes: &[u8],
    ) -> Remote {
        let before = rope.clone();
        self.settled = false;
        let mut remote = self.receive_sync_inner(rope, peer, bytes);
        self.report_net(&before, rope, &mut remote);
        remote
    }

    fn receive_sync_inner(&mut self, rope: &mut Rope, peer: &mut PeerSync, bytes: &[u8]) -> Remote {
        const WHAT: &str = "sync message";
        self.text_cache = None;
        self.max_op = None;
        self.flush();
        let msg = match contain(WHAT, || sync::Message::decode(bytes)) {
            Ok(Ok(msg)) => msg,
            Ok(Err(e)) => return Remote::failed(DocError::malformed(WHAT, e)),
            Err(e) => return Remote::failed(e),
        };
        let heads_before = self.am.get_heads();
        let mut plog = PatchLog::active();
        let am = &mut self.am;
        let state = &mut peer.state;
        let outcome = contain(WHAT, || {
            am.receive_sync_message_log_patches(state, msg, &mut plog)
        });
        if outcome.is_err() {
            peer.state = sync::State::new();
        }
        let big = bytes.len() > BIG_SYNC_BYTES;
        // (After a contained panic automerge is half-modified: not read
        // until `finish_remote` has rebuilt it.)
        let moved = outcome.is_ok() && self.am.get_heads() != heads_before;
        // What the message brought, read once (for the log, for following
        // a split); not for a big message (a whole document's changes: the
        // log takes a save instead).
        let received: Vec<automerge::Change> = if moved && !big {
            self.am.get_changes(&heads_before)
        } else {
            Vec::new()
        };
        if !self.splitter {
            self.arriving = received.iter().map(arrival).collect();
        }
        let mut remote = self.finish_remote(rope, outcome, plog, WHAT, |s| {
            if !moved {
                return;
            }
            if big {
                s.checkpoint = s.am.save();
                s.log.clear();
                s.log_bytes = 0;
            } else {
                for c in &received {
                    s.log_raw(c.raw_bytes().to_vec());
                }
            }
        });
        self.arriving.clear();
        if !self.held.is_empty() && self.am.get_heads() != heads_before {
            // What the sync brought may be what held changes waited for.
            let ready = self.take_ready(Vec::new());
            let released = self.apply_ready(rope, ready, None);
            remote.changes.extend(released.changes);
            remote.error = remote.error.or(released.error);
        }
        remote.changes.extend(self.maintain(rope));
        remote
    }

    /// Sorts `incoming` and the held changes into those that can be applied
    /// now (each dependency is in the document or among them), returned in
    /// an order automerge applies without queueing, and those that wait
    /// for a missing one (kept in `held`, oldest forgotten past
    /// [`MAX_HELD_BYTES`]).
    pub(super) fn take_ready(
        &mut self,
        incoming: Vec<(automerge::Change, Vec<u8>)>,
    ) -> Vec<(automerge::Change, Vec<u8>)> {
        let mut batch = std::mem::take(&mut self.held);
        self.held_bytes = 0;
        batch.extend(incoming);
        let mut seen = HashSet::new();
        batch.retain(|(c, _)| seen.insert(c.hash()));
        let index: HashMap<ChangeHash, usize> = batch
            .iter()
            .enumerate()
            .map(|(i, (c, _))| (c.hash(), i))
            .collect();
        // One lookup for every dependency outside the batch.
        let outside: Vec<ChangeHash> = batch
            .iter()
            .flat_map(|(c, _)| c.deps().iter().copied())
            .filter(|d| !index.contains_key(d))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let missing: HashSet<ChangeHash> = if outside.is_empty() {
            HashSet::new()
        } else {
            self.am.get_missing_deps(&outside).into_iter().collect()
        };
        // Kahn's algorithm over the batch: a change is ready once nothing
        // it depends on is missing or still waiting.
        let mut waiting_on = vec![0usize; batch.len()];
        let mut blocked = vec![false; batch.len()];
        let mut dependents: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, (c, _)) in batch.iter().enumerate() {
            for d in c.deps() {
                if let Some(&j) = index.get(d) {
                    waiting_on[i] += 1;
                    dependents.entry(j).or_default().push(i);
                } else if missing.contains(d) {
                    blocked[i] = true;
                }
            }
        }
        let mut order: Vec<usize> = (0..batch.len())
            .filter(|&i| waiting_on[i] == 0 && !blocked[i])
            .collect();
        let mut next = 0;
        while next < order.len() {
            if let Some(ds) = dependents.get(&order[next]) {
                for &i in ds {
                    waiting_on[i] -= 1;
                    if waiting_on[i] == 0 && !blocked[i] {
                        order.push(i);
                    }
                }
            }
            next += 1;
        }
        let mut slots: Vec<Option<(automerge::Change, Vec<u8>)>> =
            batch.into_iter().map(Some).collect();
        let ready = order.iter().filter_map(|&i| slots[i].take()).collect();
        let held: Vec<_> = slots.into_iter().flatten().collect();
        let mut keep = 0;
        let mut bytes = 0;
        for (_, raw) in held.iter().rev() {
            if bytes + raw.len() > MAX_HELD_BYTES {
                break;
            }
            bytes += raw.len();
            keep += 1;
        }
        self.held = held.into_iter().rev().take(keep).rev().collect();
        self.held_bytes = bytes;
        ready
    }

    /// How many remote changes wait for a change they depend on.
    pub fn held_count(&self) -> usize {
        self.held.len()
    }
}

/// The highest op counter of `am`: a transaction numbers its ops from
/// max_op + 1, so a probe op (rolled back: nothing changes) tells it. Costs
/// about as much as one small local edit.
pub(super) fn probe_max_op(am: &mut Automerge) -> Option<u64> {
    let mut tx = am.transaction();
    let n = match tx.put_object(ROOT, "lshed-probe", ObjType::Map) {
        Ok(ObjId::Id(ctr, _, _)) => ctr.checked_sub(1),
        _ => None,
    };
    tx.rollback();
    n
}
