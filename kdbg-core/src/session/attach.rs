//! How to attach once Delve runs: VSCode entries (unless `--no-ide`) with `substitutePath` rules
//! read from the built binary's DWARF, and instructions for `dlv connect`, GoLand and nvim-dap.

use crate::build::Built;
use crate::ide::other_editors;
use crate::ide::vscode::{self, IdeEntry, IdeReport, TaskArgs};
use crate::report::Reporter;
use crate::tree::SourceTree;

/// One component under debug, as `kdbg debug` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Session {
    pub component: String,
    /// Delve on the node: `unix:/var/lib/kdbg/run/<component>/dlv.sock` or `127.0.0.1:2345`.
    #[serde(serialize_with = "super::listen::as_delve::serialize")]
    pub listen: super::listen::Listen,
    /// Why Delve listens on TCP, when it does.
    pub tcp_because: Option<String>,
    /// The IDE's port (on TCP also Delve's on the node).
    pub port: u16,
    /// Where the IDE attaches on this workstation (`localhost:<port>`), when tunneled.
    pub local_port: Option<u16>,
    pub dlv_pid: u32,
    pub tunnel_pid: Option<u32>,
    pub log: String,
    pub captured_from: String,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Attach {
    /// The VSCode files written, when asked.
    pub ide: Option<IdeReport>,
    /// What to print: per component, how each editor attaches.
    pub instructions: String,
}

/// The instructions for every editor, and the VSCode entries to write (`write-ide`).
pub(crate) fn attach(
    tree: &SourceTree,
    sessions: &[Session],
    built: &[Built],
    reporter: &dyn Reporter,
) -> (Attach, Vec<IdeEntry>) {
    let mut out = Attach::default();
    let mut entries = Vec::new();
    for s in sessions {
        let port = s.local_port.unwrap_or(s.port);
        let entry = entry(tree, s, port, built, reporter);
        out.instructions.push_str(&other_editors(&s.component, port, &tree.root, &entry.substitute_from_to));
        entries.push(entry);
    }
    (out, entries)
}

/// The `write-ide` step: a failure is a warning (Delve runs either way).
pub(crate) fn write_ide(
    tree: &SourceTree,
    entries: &[IdeEntry],
    args: &TaskArgs,
    reporter: &dyn Reporter,
) -> Result<IdeReport, String> {
    vscode::write(&tree.root, entries, args).map_err(|e| {
        reporter.warn(format!("VSCode entries not written: {e}"));
        e.to_string()
    })
}

/// A session's IDE entry ([`vscode::entry`]: path rules from its binary's DWARF); without rules,
/// with a warning, when the binary cannot be read.
fn entry(tree: &SourceTree, s: &Session, port: u16, built: &[Built], reporter: &dyn Reporter) -> IdeEntry {
    let bare = || IdeEntry { component: s.component.clone(), port, substitute_from_to: Vec::new(), node: None };
    let Some(built) = built.iter().find(|b| b.name == s.component) else { return bare() };
    match vscode::entry(&s.component, port, &built.binary, &tree.root) {
        Ok((entry, ..)) => entry,
        Err(e) => {
            reporter.warn(format!("cannot read the source paths recorded in {}: {e}", built.binary));
            bare()
        }
    }
}
