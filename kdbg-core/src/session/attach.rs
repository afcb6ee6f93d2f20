//! How to attach once Delve runs: VSCode entries (unless `--no-ide`) with `substitutePath` rules
//! read from the built binary's DWARF, and instructions for `dlv connect`, GoLand and nvim-dap.

use std::time::Instant;

use super::debug::Session;
use crate::deploy::DeployOutcome;
use crate::ide::vscode::{self, IdeEntry, IdeReport, TaskArgs};
use crate::ide::{dwarf, mapping, other_editors, PathRule};
use crate::report::{Reporter, StepStatus};
use crate::tree::SourceTree;

#[derive(Debug, Clone, Default)]
pub struct Attach {
    /// The VSCode files written, when asked.
    pub ide: Option<IdeReport>,
    /// What to print: per component, how each editor attaches.
    pub instructions: String,
}

/// Writes the IDE entries (a failure is a warning: Delve runs either way) and the instructions.
pub fn attach(
    tree: &SourceTree,
    sessions: &[Session],
    deployed: &DeployOutcome,
    ide: Option<&TaskArgs>,
    reporter: &dyn Reporter,
) -> Attach {
    let mut out = Attach::default();
    let mut entries = Vec::new();
    for s in sessions {
        let port = s.local_port.unwrap_or(s.port);
        let rules = rules(tree, s, deployed, reporter);
        out.instructions.push_str(&other_editors(&s.component, port, &tree.root, &rules));
        entries.push(IdeEntry { component: s.component.clone(), port, substitute_from_to: rules });
    }
    if let Some(args) = ide {
        reporter.step("write-ide", StepStatus::Started);
        let started = Instant::now();
        match vscode::write(&tree.root, &entries, args) {
            Ok(report) => {
                reporter.step("write-ide", StepStatus::Done { seconds: started.elapsed().as_secs_f64() });
                out.ide = Some(report);
            }
            Err(e) => {
                reporter.step("write-ide", StepStatus::Failed { error: e.to_string() });
                reporter.warn(format!("VSCode entries not written: {e}"));
            }
        }
    }
    out
}

/// The editor ↔ binary path rules for a session's binary (none, with a warning, if unreadable).
fn rules(tree: &SourceTree, s: &Session, deployed: &DeployOutcome, reporter: &dyn Reporter) -> Vec<PathRule> {
    let Some(built) = deployed.build.components.iter().find(|b| b.name == s.component) else { return Vec::new() };
    match dwarf::recorded_sources(&built.binary) {
        Ok(recorded) => mapping::mapping(&recorded, &tree.root).rules,
        Err(e) => {
            reporter.warn(format!("cannot read the source paths recorded in {}: {e}", built.binary));
            Vec::new()
        }
    }
}
