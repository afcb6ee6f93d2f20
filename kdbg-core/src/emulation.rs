//! Emulated nodes: a node (or one component on it) whose binaries run under user-mode emulation.
//!
//! Delve cannot set breakpoints in a process that runs under qemu-user or Rosetta
//! (go-delve/delve#2812, #3616): it hangs at the first one. That happens with an amd64 kind or
//! minikube node image on an Apple Silicon Mac (Docker Desktop runs it through Rosetta or qemu),
//! or an arm64 image on an amd64 host. `uname -m` on such a node names the emulated machine (the
//! emulator answers it), so [`detect`] looks further, in one root script on the node
//! ([`SCRIPT`]): the binfmt_misc handlers, the component's `/proc/PID/maps` (a `qemu-*` or
//! `rosetta` mapping) and the ELF machine of its `/proc/PID/exe` against `uname -m`. [`judge`]
//! decides from that text alone, so it is unit-tested on signals recorded from real processes
//! (`emulation/testdata/`).

use std::fmt;

use crate::node::{Node, NodeError, Privilege};

/// The node-side collector. `$1`: the component's pid, or empty; `$2`: the component's binary
/// name, or empty: without a pid, a process whose executable is an emulator and whose command
/// line names `*/$2` is looked for (under emulation `/proc/PID/exe` is the emulator, so kdbg's
/// search by executable finds no component). Prints `key=value` lines: `uname=`,
/// `binfmt_status=` (`enabled`, `disabled` or `absent`), one `binfmt=NAME STATE offset=N
/// magic=HEX interpreter=PATH` per handler; for this script's own shell and for the pid (keys
/// prefixed `self_`, or not): `exe=` (the link), `head=` (the executable's first 20 bytes, hex)
/// and one `map=` per mapped file whose name starts with `qemu-` or `rosetta`; then `pid=` (with
/// `found=1` when found by name) or `pid_gone=1`. POSIX sh and busybox tools only.
pub(crate) const SCRIPT: &str = r#"
echo "uname=$(uname -m)"
d=/proc/sys/fs/binfmt_misc
if [ -r "$d/status" ]; then
  echo "binfmt_status=$(cat "$d/status")"
  for f in "$d"/*; do
    n=${f##*/}
    case "$n" in status|register) continue ;; esac
    [ -f "$f" ] || continue
    state=$(sed -n 1p "$f")
    off=$(sed -n 's/^offset //p' "$f")
    magic=$(sed -n 's/^magic //p' "$f")
    interp=$(sed -n 's/^interpreter //p' "$f")
    echo "binfmt=$n $state offset=${off:--} magic=${magic:--} interpreter=$interp"
  done
else
  echo "binfmt_status=absent"
fi
proc() {
  echo "${2}exe=$(readlink "/proc/$1/exe")"
  echo "${2}head=$(head -c 20 "/proc/$1/exe" | od -An -tx1 -v | tr -s ' \n' '  ' | sed 's/^ *//;s/ *$//')"
  grep -E '/(qemu-[^/]*|rosetta[^/]*)$' "/proc/$1/maps" | awk '{print $6}' | sort -u | sed "s/^/${2}map=/"
}
proc $$ self_
pid=$1
if [ -z "$pid" ] && [ -n "$2" ]; then
  for p in /proc/[0-9]*; do
    e=$(readlink "$p/exe" 2>/dev/null) || continue
    case "${e##*/}" in qemu-*|rosetta*) ;; *) continue ;; esac
    if tr '\0' '\n' < "$p/cmdline" 2>/dev/null | grep -qxE "(.*/)?$2"; then
      pid=${p#/proc/}
      echo "found=1"
      break
    fi
  done
fi
if [ -n "$pid" ]; then
  echo "pid=$pid"
  if [ -r "/proc/$pid/maps" ]; then proc "$pid" ""; else echo "pid_gone=1"; fi
fi
exit 0
"#;

/// Why kdbg refuses a node: its component runs under emulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emulated {
    /// Which signal showed it, and what it means for Delve.
    pub reason: String,
    /// What to do instead.
    pub fix: String,
}

impl fmt::Display for Emulated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n  fix: {}", self.reason, self.fix)
    }
}

/// Collects the signals on `node` (for the component's `pid` when known) and judges them.
/// `Ok(None)`: nothing says the node is emulated.
pub(crate) fn detect(node: &dyn Node, pid: Option<u32>) -> Result<Option<Emulated>, NodeError> {
    collect_and_judge(node, &pid.map(|p| p.to_string()).unwrap_or_default(), "")
}

/// [`detect`] for a component kdbg found no process of: a process that runs the binary `name`
/// through an emulator counts as the component's (kdbg looks for processes by their
/// executable, and under emulation that is the emulator).
pub(crate) fn detect_by_name(node: &dyn Node, name: &str) -> Result<Option<Emulated>, NodeError> {
    collect_and_judge(node, "", name)
}

fn collect_and_judge(node: &dyn Node, pid: &str, name: &str) -> Result<Option<Emulated>, NodeError> {
    let out = node.exec(&["sh", "-c", SCRIPT, "kdbg", pid, name], Privilege::Root, &[])?;
    if out.status != 0 {
        let stderr = out.stderr_str().trim().to_string();
        let cmd = "sh -c <emulation checks>".to_string();
        return Err(NodeError::Command { node: node.describe(), cmd, status: out.status, stderr });
    }
    Ok(judge(&out.stdout_str()))
}

/// One process's signals: its executable, that executable's ELF machine, emulator mappings.
#[derive(Debug, Default)]
struct Proc<'a> {
    exe: &'a str,
    machine: Option<u16>,
    maps: Vec<&'a str>,
}

/// The signals [`SCRIPT`] printed, parsed.
#[derive(Debug, Default)]
struct Signals<'a> {
    uname: &'a str,
    /// Enabled handlers: (name, ELF machine its magic matches, interpreter).
    handlers: Vec<(&'a str, Option<u16>, &'a str)>,
    /// The script's own shell.
    shell: Proc<'a>,
    pid: Option<&'a str>,
    target: Proc<'a>,
}

fn parse(text: &str) -> Signals<'_> {
    let mut s = Signals::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else { continue };
        let value = value.trim();
        let (proc, key) = match key.strip_prefix("self_") {
            Some(k) => (&mut s.shell, k),
            None => (&mut s.target, key),
        };
        match key {
            "exe" => proc.exe = value,
            "head" => proc.machine = elf_machine(&hex_bytes(value)),
            "map" => proc.maps.push(value),
            "uname" => s.uname = value,
            "pid" => s.pid = Some(value),
            "binfmt" => {
                let (head, interpreter) = value.split_once(" interpreter=").unwrap_or((value, ""));
                let words: Vec<&str> = head.split_whitespace().collect();
                let field = |k: &str| words.iter().find_map(|w| w.strip_prefix(k)).unwrap_or("-");
                if words.get(1) == Some(&"enabled") {
                    s.handlers.push((words[0], magic_machine(field("offset="), field("magic=")), interpreter.trim()));
                }
            }
            _ => {}
        }
    }
    s
}

fn hex_bytes(text: &str) -> Vec<u8> {
    text.split_whitespace().filter_map(|b| u8::from_str_radix(b, 16).ok()).collect()
}

/// `e_machine` of an ELF header's first 20 bytes (either byte order).
fn elf_machine(head: &[u8]) -> Option<u16> {
    if head.len() < 20 || head[..4] != [0x7f, b'E', b'L', b'F'] {
        return None;
    }
    let bytes = [head[18], head[19]];
    Some(if head[5] == 2 { u16::from_be_bytes(bytes) } else { u16::from_le_bytes(bytes) })
}

/// The ELF machine a binfmt handler's magic (from `offset`, as one hex string) matches.
fn magic_machine(offset: &str, magic: &str) -> Option<u16> {
    if offset != "0" || !magic.is_ascii() || !magic.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Vec<u8> =
        (0..magic.len()).step_by(2).filter_map(|i| u8::from_str_radix(&magic[i..i + 2], 16).ok()).collect();
    elf_machine(&bytes)
}

/// ELF `e_machine` of a `uname -m` answer, and the name Go gives that architecture.
const MACHINES: &[(&str, u16, &str)] = &[
    ("x86_64", 62, "amd64"),
    ("aarch64", 183, "arm64"),
    ("arm64", 183, "arm64"),
    ("armv7l", 40, "arm"),
    ("armv8l", 40, "arm"),
    ("ppc64le", 21, "ppc64le"),
    ("s390x", 22, "s390x"),
    ("riscv64", 243, "riscv64"),
    ("i686", 3, "386"),
];

fn machine_of_uname(uname: &str) -> Option<u16> {
    MACHINES.iter().find(|m| m.0 == uname).map(|m| m.1)
}

/// Whether a kernel of machine `kernel` runs executables of `exe` itself: its own, or the 32-bit
/// ones of its family (a 32-bit Raspberry Pi OS on a 64-bit kernel is native, not emulated).
fn runs_natively(kernel: u16, exe: u16) -> bool {
    exe == kernel || matches!((kernel, exe), (183, 40) | (62, 3))
}

/// `linux/arm64` for an ELF machine.
fn platform_of_machine(machine: u16) -> String {
    MACHINES.iter().find(|m| m.1 == machine).map_or(format!("ELF machine {machine}"), |m| format!("linux/{}", m.2))
}

/// Decides from [`SCRIPT`]'s output whether the node runs its binaries under emulation.
/// The signals, strongest first, for the component's process and then for the script's own
/// shell: an emulator mapped into it; an executable of another machine than `uname -m` says
/// (inside an emulated node `uname -m` answers the emulated machine, while `/proc/PID/exe` is
/// the emulator, built for the real one); then an enabled binfmt_misc handler for the machine
/// `uname -m` names (the node's own binaries go through an interpreter). A handler for another
/// machine alone is common on build hosts and proves nothing.
pub(crate) fn judge(signals: &str) -> Option<Emulated> {
    let s = parse(signals);
    let uname = machine_of_uname(s.uname);
    let target = s.pid.map(|pid| (format!("process {pid} (`{}`)", s.target.exe), pid, &s.target));
    let shell = ("the node's shell (`".to_string() + s.shell.exe + "`)", "$$", &s.shell);
    let procs: Vec<(String, &str, &Proc<'_>)> = target.into_iter().chain([shell]).collect();
    for (what, pid, p) in &procs {
        if let Some(map) = p.maps.first() {
            let host = p.machine.filter(|m| Some(*m) != uname).or(uname);
            let emulator = map.rsplit('/').next().unwrap_or(map);
            return Some(emulated(format!("{what} runs under {emulator} ({map} is mapped in /proc/{pid}/maps)"), host));
        }
    }
    for (what, _, p) in &procs {
        if let (Some(exe), Some(u)) = (p.machine, uname) {
            if !runs_natively(u, exe) {
                let (p, e) = (platform_of_machine(exe), platform_of_machine(u));
                let signal = format!(
                    "{what} is an executable for {p}, but `uname -m` answers {} ({e}): an emulator answers for it",
                    s.uname
                );
                return Some(emulated(signal, Some(exe)));
            }
        }
    }
    // The node's own machine handed to an interpreter: only an emulated node does that.
    let (name, _, interpreter) = s.handlers.iter().find(|h| uname.is_some() && h.1 == uname)?;
    let host = interpreter.contains("rosetta").then_some(183);
    let signal =
        format!("the binfmt_misc handler {name} hands the node's own {} executables to {interpreter}", s.uname);
    Some(emulated(signal, host))
}

fn emulated(signal: String, host: Option<u16>) -> Emulated {
    let platform = host.map_or(String::new(), |m| format!(" ({})", platform_of_machine(m)));
    Emulated {
        reason: format!(
            "the node runs its binaries under emulation: {signal}; Delve cannot set breakpoints in an emulated process (go-delve/delve#2812)"
        ),
        fix: format!(
            "run the node from an image of the host's own platform{platform}, e.g. the default kind or minikube node image rather than one for another architecture, so its components run natively; then run kdbg again"
        ),
    }
}

#[cfg(test)]
#[path = "emulation/tests.rs"]
mod tests;
