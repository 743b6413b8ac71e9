//! The wire format of change messages: length-prefixed automerge change
//! chunks, decoded (and checked) before the document is touched.

use super::*;

pub(super) fn read_u32(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let head: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    Some((u32::from_le_bytes(head) as usize, &bytes[4..]))
}

/// Splits a change message into automerge changes, without touching any
/// document. Format: repeated `[u32 LE length][raw automerge change]`.
pub(super) fn decode_changes(bytes: &[u8]) -> Result<Vec<(automerge::Change, &[u8])>, DocError> {
    const WHAT: &str = "change message";
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (len, tail) = read_u32(rest).ok_or_else(|| DocError::malformed(WHAT, "truncated"))?;
        if tail.len() < len {
            return Err(DocError::malformed(WHAT, "truncated change"));
        }
        let (raw, tail) = tail.split_at(len);
        let change = contain(WHAT, || automerge::Change::from_bytes(raw.to_vec()))?
            .map_err(|e| DocError::malformed(WHAT, e))?;
        out.push((change, raw));
        rest = tail;
    }
    Ok(out)
}

/// The actors that authored the changes of a change message, without
/// applying anything. automerge changes are not signed: a peer can send
/// changes under someone else's actor id (and so pre-empt that peer's real
/// changes), so the session layer should check that each peer only sends
/// changes of the actors it owns.
pub fn change_actors(bytes: &[u8]) -> Result<Vec<ActorId>, DocError> {
    let mut out: Vec<ActorId> = Vec::new();
    for (change, _) in decode_changes(bytes)? {
        if !out.contains(change.actor_id()) {
            out.push(change.actor_id().clone());
        }
    }
    Ok(out)
}

pub(super) fn encode_changes(changes: &[Vec<u8>]) -> Vec<u8> {
    let total = changes.iter().map(|c| c.len() + 4).sum();
    let mut out = Vec::with_capacity(total);
    for c in changes {
        out.extend_from_slice(&(c.len() as u32).to_le_bytes());
        out.extend_from_slice(c);
    }
    out
}

pub(super) fn arrival(c: &automerge::Change) -> Arrival {
    (
        c.actor_id().clone(),
        c.start_op().get()..=c.max_op(),
        c.hash(),
    )
}

pub(super) fn load_options() -> LoadOptions<'static> {
    LoadOptions::new().text_encoding(TextEncoding::UnicodeCodePoint)
}
