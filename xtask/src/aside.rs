//! Files and directories of a tree moved aside (renamed into a directory beside them, on the same
//! filesystem) so a command finds an empty kdbg state, and put back exactly — also when dropped
//! on a failure path.

use anyhow::{ensure, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};

pub struct Aside {
    /// Where each path went: `<dir>/<index>`.
    dir: Utf8PathBuf,
    paths: Vec<Utf8PathBuf>,
}

impl Aside {
    /// Renames every path of `paths` into `dir` (which must not exist yet).
    pub fn move_paths(dir: Utf8PathBuf, paths: Vec<Utf8PathBuf>) -> Result<Aside> {
        ensure!(
            !dir.exists(),
            "{dir} exists (left by an interrupted run): it holds, numbered in this order, {}; move them back, then remove {dir}",
            paths.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
        );
        std::fs::create_dir(&dir).with_context(|| format!("creating {dir}"))?;
        std::fs::write(dir.join("paths"), paths.iter().map(|p| format!("{p}\n")).collect::<String>())?;
        let aside = Aside { dir, paths };
        for (i, p) in aside.paths.iter().enumerate() {
            std::fs::rename(p, aside.dir.join(i.to_string())).with_context(|| format!("moving {p} aside"))?;
        }
        Ok(aside)
    }

    /// Removes what was made at the paths since they were moved aside.
    pub fn clear(&self) -> Result<()> {
        self.paths.iter().try_for_each(|p| remove(p))
    }

    /// Puts every path back (once: a second call finds nothing aside).
    pub fn restore(&self) -> Result<()> {
        if !self.dir.exists() {
            return Ok(());
        }
        for (i, p) in self.paths.iter().enumerate() {
            let from = self.dir.join(i.to_string());
            if from.symlink_metadata().is_ok() {
                remove(p)?;
                std::fs::rename(&from, p).with_context(|| format!("moving {from} back to {p}"))?;
            }
        }
        std::fs::remove_file(self.dir.join("paths"))?;
        std::fs::remove_dir(&self.dir).with_context(|| format!("removing {}", self.dir))
    }
}

impl Drop for Aside {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            eprintln!("xtask: could not put back what was moved aside into {}: {e:#}", self.dir);
        }
    }
}

fn remove(p: &Utf8Path) -> Result<()> {
    match p.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).with_context(|| format!("removing {p}")),
        Ok(_) => std::fs::remove_file(p).with_context(|| format!("removing {p}")),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::Aside;
    use camino::Utf8PathBuf;

    #[test]
    fn paths_come_back_exactly_and_what_was_made_meanwhile_goes() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::try_from(tmp.path().to_owned()).unwrap();
        std::fs::create_dir(root.join("state")).unwrap();
        std::fs::write(root.join("state/s.json"), "old").unwrap();
        std::fs::write(root.join("bin"), "binary").unwrap();
        let aside = Aside::move_paths(root.join("aside"), vec![root.join("state"), root.join("bin")]).unwrap();
        assert!(!root.join("state").exists() && !root.join("bin").exists());
        std::fs::create_dir(root.join("state")).unwrap();
        std::fs::write(root.join("state/new.json"), "new").unwrap();
        std::fs::write(root.join("bin"), "pulled").unwrap();
        drop(aside);
        assert_eq!(std::fs::read_to_string(root.join("state/s.json")).unwrap(), "old");
        assert!(!root.join("state/new.json").exists());
        assert_eq!(std::fs::read_to_string(root.join("bin")).unwrap(), "binary");
        assert!(!root.join("aside").exists());
    }
}
