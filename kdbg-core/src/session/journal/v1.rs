//! Schema 1 of the journal (kdbg before schema 2): read and upgraded, never written. Its entry is
//! also the shape of each component in `kdbg status --json`, which did not change with schema 2
//! (Delve's listen address as its `--listen` string, no session id).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{BuiltFrom, EntryState, How, SessionId, Who};
use crate::session::listen::{as_delve, Listen};

/// A schema-1 journal: components, no lease.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Journal {
    pub components: BTreeMap<String, Entry>,
}

/// A schema-1 entry, field for field as kdbg wrote it (`listen`: Delve's `--listen` string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub component: String,
    pub state: EntryState,
    pub who: Who,
    pub started_at: u64,
    pub updated_at: u64,
    pub how: How,
    pub captured_from: String,
    pub was_running: bool,
    pub args: Vec<String>,
    pub env_names: Vec<String>,
    pub ports: Vec<u16>,
    pub binary: String,
    pub dlv: String,
    #[serde(with = "as_delve")]
    pub listen: Listen,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_because: Option<String>,
    pub port: u16,
    pub dlv_pid: Option<u32>,
    pub log: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_from: Option<BuiltFrom>,
}

impl Journal {
    /// The same journal in schema 2: each entry owned by the session of the kdbg that wrote it
    /// ([`SessionId::of_v1`]), no lease.
    pub(crate) fn upgrade(self) -> super::Journal {
        let components = self.components.into_iter().map(|(name, e)| (name, e.upgrade())).collect();
        super::Journal { schema: super::JOURNAL_SCHEMA, lease: None, components }
    }
}

impl Entry {
    fn upgrade(self) -> super::Entry {
        super::Entry {
            session: SessionId::of_v1(&self.who),
            component: self.component,
            state: self.state,
            who: self.who,
            started_at: self.started_at,
            updated_at: self.updated_at,
            how: self.how,
            captured_from: self.captured_from,
            was_running: self.was_running,
            args: self.args,
            env_names: self.env_names,
            ports: self.ports,
            binary: self.binary,
            dlv: self.dlv,
            listen: self.listen,
            tcp_because: self.tcp_because,
            port: self.port,
            dlv_pid: self.dlv_pid,
            log: self.log,
            built_from: self.built_from,
        }
    }
}

impl From<&super::Entry> for Entry {
    /// The schema-1 view of an entry (`kdbg status --json`): the session id left out.
    fn from(e: &super::Entry) -> Entry {
        let e = e.clone();
        Entry {
            component: e.component,
            state: e.state,
            who: e.who,
            started_at: e.started_at,
            updated_at: e.updated_at,
            how: e.how,
            captured_from: e.captured_from,
            was_running: e.was_running,
            args: e.args,
            env_names: e.env_names,
            ports: e.ports,
            binary: e.binary,
            dlv: e.dlv,
            listen: e.listen,
            tcp_because: e.tcp_because,
            port: e.port,
            dlv_pid: e.dlv_pid,
            log: e.log,
            built_from: e.built_from,
        }
    }
}
