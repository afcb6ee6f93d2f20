//! Writing the node's journal, and with it the node's own way back: before each write, the
//! restore script for the journal and the session's lease (`session::lease`); once the journal is
//! empty, they go with it. Every change kdbg makes to a node is preceded by one of these writes.

use std::sync::Mutex;

use super::journal::{now, Entry, EntryState, Journal};
use super::SessionError;
use crate::layout::JOURNAL;
use crate::node::{Node, Privilege};

/// Writes the journal durably; an empty journal removes the file. Before a journal is written,
/// the node's own restore script for it and the session's lease are (see `session::lease`:
/// arming renews the lease); once it is empty, they and the node's watchdog go with it.
pub(crate) fn save(node: &dyn Node, journal: &Journal) -> Result<(), SessionError> {
    let failed = |detail: String| SessionError::Journal { node: node.describe(), path: JOURNAL.into(), detail };
    if journal.components.is_empty() {
        return super::lease::disarm(node).map_err(|e| failed(e.to_string()));
    }
    let mut journal = journal.clone();
    super::lease::arm(node, &mut journal)?;
    let mut bytes = serde_json::to_vec_pretty(&journal).expect("the journal serializes");
    bytes.push(b'\n');
    node.write_file(JOURNAL, &bytes, 0o600, Privilege::Root)?;
    Ok(())
}

/// Sets one component's entry (and its update time), then saves.
pub(crate) fn put(node: &dyn Node, journal: &mut Journal, mut entry: Entry) -> Result<(), SessionError> {
    entry.updated_at = now();
    journal.components.insert(entry.component.clone(), entry);
    save(node, journal)
}

/// Journals `entry` as launching (no Delve pid), before Delve starts: `kdbg debug`'s launch and
/// `kdbg watch`'s relaunch. The journal is shared by steps that run at once.
pub(crate) fn launching(node: &dyn Node, journal: &Mutex<Journal>, entry: &mut Entry) -> Result<(), SessionError> {
    entry.state = EntryState::Launching;
    entry.dlv_pid = None;
    put(node, &mut journal.lock().unwrap(), entry.clone())
}

/// Journals `entry` as launched: Delve `pid` listens.
pub(crate) fn launched(
    node: &dyn Node,
    journal: &Mutex<Journal>,
    entry: &mut Entry,
    pid: u32,
) -> Result<(), SessionError> {
    entry.state = EntryState::Launched;
    entry.dlv_pid = Some(pid);
    put(node, &mut journal.lock().unwrap(), entry.clone())
}
