//! The workstation's record of which tree each debug session it started was built from
//! (`worktree-uses.json` in the state directory), so `kdbg worktrees prune` never removes the
//! tree of a session that still runs: `kdbg debug` records it before the node changes,
//! `kdbg restore` forgets it.

use std::io;

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use crate::statefile;

const FILE: &str = "worktree-uses.json";

/// One component under debug on one node, built from `tree`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Use {
    pub tree: Utf8PathBuf,
    /// The node, as `Node::describe` names it.
    pub node: String,
    pub component: String,
    /// Unix seconds.
    pub since: u64,
}

pub(super) fn load(state_dir: &Utf8Path) -> Vec<Use> {
    statefile::load(state_dir, FILE).unwrap_or_default()
}

/// Records that `components` on `node` run builds of `tree` (replacing what was recorded for them).
pub fn record(state_dir: &Utf8Path, tree: &Utf8Path, node: &str, components: &[&str]) -> io::Result<()> {
    statefile::update(state_dir, FILE, |uses: &mut Vec<Use>| {
        uses.retain(|u| !(u.node == node && components.contains(&u.component.as_str())));
        let since = super::now();
        uses.extend(components.iter().map(|c| Use {
            tree: tree.to_owned(),
            node: node.into(),
            component: c.to_string(),
            since,
        }));
    })
}

/// Forgets the sessions of `components` on `node` (all of the node's when empty).
pub fn forget(state_dir: &Utf8Path, node: &str, components: &[&str]) -> io::Result<()> {
    statefile::update(state_dir, FILE, |uses: &mut Vec<Use>| {
        uses.retain(|u| !(u.node == node && (components.is_empty() || components.contains(&u.component.as_str()))))
    })
}
