//! Pulling one component's binary: look its tag up, check the artifact's facts against the key,
//! stream the layer through zstd into a file beside the binary while hashing both the compressed
//! and the uncompressed bytes, check everything, and only then rename it into place. Anything
//! that does not match is a miss with a reason, and nothing is left behind.

use std::io::Write;
use std::time::Instant;

use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};

use super::artifact::{Expect, Facts, LAYER_TYPE};
use super::{Remote, RemoteError};
use crate::binary::{elf_arch, needs_of, Needs};

/// A binary pulled into place, with what its verification read of it.
#[derive(Debug, Clone)]
pub(crate) struct Pulled {
    /// sha256 (hex) of the binary, and its Go and DWARF.
    pub sha256: String,
    pub needs: Needs,
    /// Bytes moved.
    pub compressed: u64,
    pub seconds: f64,
    /// `oci://HOST/PREFIX/COMPONENT:TAG`.
    pub location: String,
}

/// Why a pull was not used: the store failed, or the artifact failed verification.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Miss {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("{location} failed verification ({why}): not used")]
    Unverified { location: String, why: String },
}

/// Pulls `expect.component`'s artifact tagged `tag` to `dest`: `Ok(None)` when the store has none.
pub(crate) fn pull(
    remote: &dyn Remote,
    expect: &Expect,
    tag: &str,
    dest: &Utf8Path,
    progress: &dyn Fn(u64, u64),
) -> Result<Option<Pulled>, Miss> {
    let started = Instant::now();
    let location = remote.url().artifact(&expect.component, tag);
    let unverified = |why: String| Miss::Unverified { location: location.clone(), why };
    let Some(found) = remote.lookup(&expect.component, tag)? else { return Ok(None) };
    let facts = found.facts.clone().map_err(unverified)?;
    if let Some(why) = expect.mismatch(&facts) {
        return Err(unverified(why));
    }
    let layer = found.layer.clone().ok_or_else(|| unverified("not exactly one layer".into()))?;
    if layer.media_type != LAYER_TYPE {
        return Err(unverified(format!("layer of type {}, not {LAYER_TYPE}", layer.media_type)));
    }
    let part = Part::new(dest).map_err(|e| unverified(format!("cannot write {}: {e}", dest)))?;
    let mut sink = Sink::new(&part.path).map_err(|e| unverified(format!("cannot write {}: {e}", part.path)))?;
    let total = layer.size;
    remote.download(&expect.component, &found, &mut |b| sink.write(b), &|done| progress(done, total)).map_err(|e| {
        match e {
            RemoteError::Corrupt { detail, .. } => unverified(format!("checksum mismatch: {detail}")),
            e => Miss::Remote(e),
        }
    })?;
    let (compressed, sha256, size) = sink.finish().map_err(|e| unverified(format!("not zstd data: {e}")))?;
    if compressed != layer.digest {
        return Err(unverified(format!("the layer's sha256 is {compressed}, its manifest says {}", layer.digest)));
    }
    let needs = check_binary(&part.path, &facts, &sha256, size).map_err(unverified)?;
    part.place(dest).map_err(|e| unverified(format!("cannot move it to {dest}: {e}")))?;
    Ok(Some(Pulled { sha256, needs, compressed: layer.size, seconds: started.elapsed().as_secs_f64(), location }))
}

/// The uncompressed binary against the facts it was pushed with: sha256, size, machine, Go, DWARF.
fn check_binary(path: &Utf8Path, facts: &Facts, sha256: &str, size: u64) -> Result<Needs, String> {
    if sha256 != facts.sha256 || size != facts.size {
        return Err(format!(
            "the binary's sha256 is {sha256} ({size} bytes), the artifact says {} ({} bytes)",
            facts.sha256, facts.size
        ));
    }
    let arch = facts.platform.split('/').nth(1).unwrap_or_default();
    match elf_arch(path) {
        Some(a) if a == arch => {}
        other => return Err(format!("not a {} executable (ELF machine {other:?})", facts.platform)),
    }
    let needs = needs_of(path).map_err(|e| e.to_string())?;
    if needs.go_version != facts.go || needs.dwarf != facts.dwarf {
        return Err(format!("built by {} with DWARF {}, not {} as annotated", needs.go_version, needs.dwarf, facts.go));
    }
    Ok(needs)
}

/// A download in progress beside its destination, removed unless it is placed.
struct Part {
    path: Utf8PathBuf,
    placed: bool,
}

impl Part {
    fn new(dest: &Utf8Path) -> std::io::Result<Part> {
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let name = format!(".{}.kdbg-pull.{}", dest.file_name().unwrap_or("binary"), std::process::id());
        Ok(Part { path: dest.with_file_name(name), placed: false })
    }

    fn place(mut self, dest: &Utf8Path) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&self.path, dest)?;
        self.placed = true;
        Ok(())
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        if !self.placed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Hashes the compressed bytes, decompresses them into the file and hashes what it writes.
struct Sink {
    compressed: Sha256,
    decoder: zstd::stream::write::Decoder<'static, Hashed>,
}

struct Hashed {
    file: std::io::BufWriter<std::fs::File>,
    hasher: Sha256,
    size: u64,
}

impl Write for Hashed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Sink {
    fn new(path: &Utf8Path) -> std::io::Result<Sink> {
        let file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
        let decoder = zstd::stream::write::Decoder::new(Hashed { file, hasher: Sha256::new(), size: 0 })?;
        Ok(Sink { compressed: Sha256::new(), decoder })
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.compressed.update(bytes);
        self.decoder.write_all(bytes)
    }

    /// `sha256:<hex>` of the compressed bytes, and the sha256 (hex) and size of the binary.
    fn finish(mut self) -> std::io::Result<(String, String, u64)> {
        self.decoder.flush()?;
        let mut out = self.decoder.into_inner();
        out.file.flush()?;
        out.file.get_ref().sync_all()?;
        let compressed = format!("sha256:{}", hex::encode(self.compressed.finalize()));
        Ok((compressed, hex::encode(out.hasher.finalize()), out.size))
    }
}
