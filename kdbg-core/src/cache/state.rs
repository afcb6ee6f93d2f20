//! kdbg's persisted build state under `_output/kdbg/`: the stat index, each component's closure, key inputs and output record.

use std::collections::BTreeMap;
use std::io::Write;

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use super::golist::Closure;
use super::index::Index;
use super::key::{KeyInputs, SCHEMA};

/// A built binary as kdbg last saw it. A missing or altered binary is a miss.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub key: String,
    /// Repo-relative path of the binary.
    pub path: String,
    pub sha256: String,
    pub size: u64,
    pub mtime_ns: i64,
    /// The Go that built it and its DWARF version (absent in records of older kdbg).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs: Option<crate::binary::Needs>,
    /// The team cache artifact it was pulled from (`oci://…:TAG`), when it was not built here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulled_from: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ComponentState {
    /// What `go list` said last time, and under which conditions it said it.
    pub closure: Closure,
    pub closure_env: String,
    /// The inputs of the last successful build, for `--explain`.
    pub built_inputs: Option<KeyInputs>,
    pub output: Option<OutputRecord>,
    /// Inputs that changed while the last make that changed any ran (see [`super::rewritten`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rewritten_by_make: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CacheState {
    pub schema: u32,
    pub index: Index,
    pub components: BTreeMap<String, ComponentState>,
}

pub(crate) const STATE_FILE: &str = "state.json";

impl CacheState {
    /// Loads the state; anything unreadable becomes an empty state and a warning, never an error.
    pub(crate) fn load(dir: &Utf8Path) -> (CacheState, Option<String>) {
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (CacheState::default(), None),
            Err(e) => {
                let e = crate::host::io_text(&e);
                return (CacheState::default(), Some(format!("cannot read the build state {path} ({e}); rebuilding")));
            }
        };
        match serde_json::from_slice::<CacheState>(&text) {
            Ok(s) if s.schema == SCHEMA => (s, None),
            Ok(s) => {
                let why = format!("schema {}, this kdbg writes {SCHEMA}", s.schema);
                (CacheState::default(), Some(format!("ignoring build state {path} ({why}); rebuilding")))
            }
            Err(e) => (CacheState::default(), Some(format!("ignoring corrupt build state {path} ({e}); rebuilding"))),
        }
    }

    /// Writes the state atomically (temp file, fsync, rename), stamping the index's write time.
    pub fn save(&mut self, dir: &Utf8Path) -> std::io::Result<Utf8PathBuf> {
        self.schema = SCHEMA;
        self.index.written_ns = now_ns();
        std::fs::create_dir_all(dir)?;
        let path = dir.join(STATE_FILE);
        write_atomic(&path, &serde_json::to_vec(self).expect("state serializes"))?;
        Ok(path)
    }
}

pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// Replaces `path` with `bytes` so that readers see the old or the new file, never a partial one.
/// A failed write leaves no temp file behind.
pub(crate) fn write_atomic(path: &Utf8Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_state_is_a_warning_and_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::write(dir.join(STATE_FILE), "{ not json").unwrap();
        let (state, warning) = CacheState::load(dir);
        assert!(state.components.is_empty());
        assert!(warning.unwrap().contains("ignoring corrupt build state"));
    }

    #[test]
    fn an_unknown_schema_is_a_warning_and_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::write(
            dir.join(STATE_FILE),
            r#"{"schema": 99, "index": {"written_ns": 0, "files": {}, "dirs": {}}, "components": {}}"#,
        )
        .unwrap();
        let (state, warning) = CacheState::load(dir);
        assert!(state.components.is_empty());
        assert!(warning.unwrap().contains("(schema 99, this kdbg writes 1); rebuilding"));
    }

    #[test]
    fn a_failed_save_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::create_dir_all(dir.join(STATE_FILE).join("x")).unwrap();
        assert!(CacheState::default().save(dir).is_err());
        let names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, [STATE_FILE]);
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        let mut s = CacheState::default();
        s.components.insert("kube-apiserver".into(), ComponentState::default());
        s.save(dir).unwrap();
        let (back, warning) = CacheState::load(dir);
        assert!(warning.is_none());
        assert!(back.components.contains_key("kube-apiserver") && back.index.written_ns > 0);
    }
}
