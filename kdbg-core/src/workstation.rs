//! What kdbg asks of the workstation's own OS, in one place: its processes and their command
//! lines (to find a forward kdbg started). The workstation is Linux or macOS: on Linux `/proc`,
//! elsewhere `ps -axww -o pid=,command=` (macOS has no `/proc`), chosen at run time so both paths
//! are built and tested on either.
//!
//! **Architecture Invariant:** no other workstation-side code reads `/proc`, runs GNU-only tool
//! flags (`stat -c`, `sha256sum`, `readlink -f`, `timeout`) or `ip`, or makes a Linux-only call;
//! node-side scripts may (nodes are Linux).

use std::path::Path;

use crate::host::Cmd;

/// Where the process list comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Linux: `/proc/<pid>/cmdline`, arguments exact.
    Proc,
    /// macOS (or any system without `/proc`): `ps`, arguments split at blanks.
    Ps,
}

impl Source {
    /// This workstation's.
    pub(crate) fn here() -> Source {
        match Path::new("/proc/self/cmdline").exists() {
            true => Source::Proc,
            false => Source::Ps,
        }
    }
}

/// A process and its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Process {
    pub pid: u32,
    pub args: Vec<String>,
}

impl Process {
    /// The command line as one string, arguments joined by blanks.
    pub(crate) fn line(&self) -> String {
        self.args.join(" ")
    }
}

/// Every process of this workstation but kdbg itself.
pub(crate) fn processes(source: Source) -> Vec<Process> {
    let me = std::process::id();
    let all = match source {
        Source::Proc => {
            let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).filter_map(proc_process).collect()
        }
        Source::Ps => parse_ps(&Cmd::new("ps").args(["-axww", "-o", "pid=,command="]).read().unwrap_or_default()),
    };
    all.into_iter().filter(|p| p.pid != me).collect()
}

/// One process, if it runs.
pub(crate) fn process(source: Source, pid: u32) -> Option<Process> {
    match source {
        Source::Proc => proc_process(pid),
        Source::Ps => {
            let out = Cmd::new("ps").args(["-ww", "-o", "pid=,command=", "-p", &pid.to_string()]).read().ok()?;
            parse_ps(&out).into_iter().find(|p| p.pid == pid)
        }
    }
}

fn proc_process(pid: u32) -> Option<Process> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args = cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned());
    Some(Process { pid, args: args.collect() })
}

/// `ps -o pid=,command=` output: a pid, blanks, the command line.
fn parse_ps(text: &str) -> Vec<Process> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let (pid, rest) = l.split_once(char::is_whitespace)?;
            let args = rest.split_whitespace().map(String::from).collect();
            Some(Process { pid: pid.parse().ok()?, args })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ps -axww -o pid=,command=` as macOS prints it (recorded): right-aligned pids.
    const MACOS_PS: &str = "    1 /sbin/launchd
  512 /usr/libexec/logd
 4242 ssh -N -o ControlMaster=no -L 127.0.0.1:2345:127.0.0.1:2345 -o ExitOnForwardFailure=yes docker@192.168.49.2
 4300 socat TCP-LISTEN:2346,bind=127.0.0.1,reuseaddr,fork EXEC:'docker exec -i kind-control-plane socat - UNIX-CONNECT:/var/lib/kdbg/run/kube-scheduler/dlv.sock'
";

    #[test]
    fn ps_output_gives_pids_and_command_lines() {
        let ps = parse_ps(MACOS_PS);
        assert_eq!(ps.iter().map(|p| p.pid).collect::<Vec<_>>(), [1, 512, 4242, 4300]);
        assert!(ps[2].args.contains(&"127.0.0.1:2345:127.0.0.1:2345".to_string()));
        assert!(ps[3].line().contains("UNIX-CONNECT:/var/lib/kdbg/run/kube-scheduler/dlv.sock'"));
    }

    #[test]
    fn this_process_is_found_through_the_source_of_this_machine_and_through_ps() {
        let me = std::process::id();
        for source in [Source::here(), Source::Ps] {
            let p = process(source, me).unwrap_or_else(|| panic!("{source:?} finds this process"));
            assert!(!p.args.is_empty());
        }
        assert!(!processes(Source::Ps).iter().any(|p| p.pid == me), "kdbg itself is left out");
    }
}
