//! Editor integration: VSCode launch/tasks JSONC merging and source-path mapping read from DWARF.
//!
//! [`dwarf`] reads how a built binary recorded its source paths, [`mapping`] turns that into
//! Delve `substitutePath` rules between the tree (what the editor shows) and the binary,
//! [`vscode`] writes `.vscode/launch.json` and `tasks.json` in place (comments, trailing commas
//! and the user's entries survive), and [`other_editors`] says how GoLand, `dlv connect` and
//! nvim-dap attach.

pub mod dwarf;
mod editors;
mod jsonc;
pub mod mapping;
pub mod vscode;

#[cfg(test)]
pub(crate) mod fixture;

pub use editors::other_editors;
