//! Processes and listening ports on the node, read from `/proc` in one round trip each: which
//! process runs a binary, is a pid still alive, who listens on a port.

use std::net::IpAddr;

use super::scripts;
use crate::component::Component;
use crate::node::{Endpoint, Node, NodeError};

/// `#PID` then one argument per line, for each pid given.
const CMDLINES: &str = r##"for p; do echo "#$p"; tr '\0' '\n' < "/proc/$p/cmdline" 2>/dev/null; echo; done"##;

/// Which of the pids given are alive (not zombies), then the TCP tables and the unix sockets.
const POLL: &str = r#"for p; do alive "$p" && echo "alive $p"; done
cat /proc/net/tcp /proc/net/tcp6 /proc/net/unix 2>/dev/null; true"#;

/// The process holding a listening socket: `$1` port, `$2` socket inode.
const HOLDER: &str = r#"p=$(ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1)
[ -n "$p" ] || p=$(find /proc/[0-9]*/fd -lname "socket:\[$2\]" 2>/dev/null | head -n 1 | cut -d/ -f3)
[ -n "$p" ] && echo "pid $p: $(tr '\0' ' ' < "/proc/$p/cmdline" | cut -c1-160)"; true"#;

/// The TCP listeners in PID's network namespace, the socket inodes PID holds, and the node's
/// ephemeral port range (ports in it are not stable across restarts).
const PID_PORTS: &str = r##"cat "/proc/$1/net/tcp" "/proc/$1/net/tcp6" 2>/dev/null
echo "#fds"
ls -l "/proc/$1/fd" 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\].*/\1/p'
echo "#range $(cat /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)""##;

/// SIGKILLs the pids given and waits (10 s at most) until they are gone.
const KILL: &str = r#"kill_wait "$@""#;

/// A TCP socket in the LISTEN state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listener {
    pub addr: IpAddr,
    pub port: u16,
    pub inode: u64,
}

/// One poll of the node: live pids among those asked about, and every listening socket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Poll {
    pub alive: Vec<u32>,
    pub listeners: Vec<Listener>,
    /// Paths of the unix sockets that accept connections.
    pub sockets: Vec<String>,
}

impl Poll {
    pub(crate) fn listening(&self, port: u16) -> Option<&Listener> {
        self.listeners.iter().find(|l| l.port == port)
    }

    /// Something accepts connections at `endpoint` (any address, for a TCP port).
    pub(crate) fn serves(&self, endpoint: &Endpoint) -> bool {
        match endpoint {
            Endpoint::Loopback(port) => self.listening(*port).is_some(),
            Endpoint::Socket(path) => self.sockets.iter().any(|s| s == path),
        }
    }
}

/// A root script of this module; a failure names the script's first line.
fn run(node: &dyn Node, script: &str, args: &[String]) -> Result<String, NodeError> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    crate::node::root_sh(node, script, &args, script.lines().next().unwrap_or_default())
}

/// Every process and its executable (` (deleted)` stripped).
pub(crate) fn exes(node: &dyn Node) -> Result<Vec<(u32, String)>, NodeError> {
    Ok(parse_exes(&run(node, &scripts::with(&[scripts::EXES], "exes"), &[])?))
}

pub(crate) fn parse_exes(text: &str) -> Vec<(u32, String)> {
    text.lines()
        .filter_map(|l| {
            let (head, exe) = l.split_once(" -> ")?;
            let pid = head.rsplit_once("/proc/")?.1.strip_suffix("/exe")?.parse().ok()?;
            Some((pid, exe.trim_end().trim_end_matches(" (deleted)").to_string()))
        })
        .collect()
}

/// The processes whose executable is called `name`, outside `except_dir` (kdbg's own builds).
pub(crate) fn running(node: &dyn Node, name: &str, except_dir: &str) -> Result<Vec<u32>, NodeError> {
    Ok(exes(node)?
        .into_iter()
        .filter(|(_, exe)| exe.rsplit('/').next() == Some(name) && !exe.starts_with(except_dir))
        .map(|(pid, _)| pid)
        .collect())
}

/// Command lines of the pids given (a vanished pid is left out).
pub(crate) fn cmdlines(node: &dyn Node, pids: &[u32]) -> Result<Vec<(u32, Vec<String>)>, NodeError> {
    if pids.is_empty() {
        return Ok(Vec::new());
    }
    let text = run(node, CMDLINES, &pids.iter().map(u32::to_string).collect::<Vec<_>>())?;
    let mut out: Vec<(u32, Vec<String>)> = Vec::new();
    for line in text.lines() {
        match line.strip_prefix('#').and_then(|p| p.parse().ok()) {
            Some(pid) => out.push((pid, Vec::new())),
            None if !line.is_empty() => out.last_mut().into_iter().for_each(|(_, a)| a.push(line.to_string())),
            None => {}
        }
    }
    out.retain(|(_, argv)| !argv.is_empty());
    Ok(out)
}

pub(crate) fn poll(node: &dyn Node, pids: &[u32]) -> Result<Poll, NodeError> {
    let script = scripts::with(&[scripts::ALIVE], POLL);
    Ok(parse_poll(&run(node, &script, &pids.iter().map(u32::to_string).collect::<Vec<_>>())?))
}

pub(crate) fn parse_poll(text: &str) -> Poll {
    let mut poll = Poll::default();
    for line in text.lines() {
        if let Some(pid) = line.strip_prefix("alive ").and_then(|p| p.trim().parse().ok()) {
            poll.alive.push(pid);
        } else if let Some(l) = parse_tcp_line(line) {
            poll.listeners.push(l);
        } else if let Some(path) = parse_unix_line(line) {
            poll.sockets.push(path);
        }
    }
    poll
}

/// One line of `/proc/net/tcp{,6}`, if it is a listening socket.
fn parse_tcp_line(line: &str) -> Option<Listener> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 || f[3] != "0A" {
        return None;
    }
    let (addr, port) = f[1].split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> =
        (0..addr.len() / 8).map(|i| u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16).ok()).collect::<Option<_>>()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let addr = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    Some(Listener { addr, port, inode: f[9].parse().ok()? })
}

/// One line of `/proc/net/unix` (`Num RefCount Protocol Flags Type St Inode Path`), if it is a
/// listening socket bound to a path (flags `00010000`: `__SO_ACCEPTCON`).
fn parse_unix_line(line: &str) -> Option<String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    match f[..] {
        [num, _, _, "00010000", _, _, _, path] if num.ends_with(':') && path.starts_with('/') => Some(path.into()),
        _ => None,
    }
}

/// Who holds a listening socket, in words (`pid 123: /usr/bin/foo --x`), if the node can tell.
pub(crate) fn holder(node: &dyn Node, l: &Listener) -> Option<String> {
    let text = run(node, HOLDER, &[l.port.to_string(), l.inode.to_string()]).ok()?;
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

/// SIGKILLs `pids` and waits until they are gone.
/// The ports `pid` listens on (outside the ephemeral range), as seen before stopping it: what the
/// original really serves, whatever its flags or config file say.
pub(crate) fn listening_ports(node: &dyn Node, pid: u32) -> Result<Vec<u16>, NodeError> {
    Ok(parse_pid_ports(&run(node, PID_PORTS, &[pid.to_string()])?))
}

pub(crate) fn parse_pid_ports(text: &str) -> Vec<u16> {
    let (tables, rest) = text.split_once("#fds").unwrap_or((text, ""));
    let mut inodes = std::collections::BTreeSet::new();
    let mut range = (32768, 60999);
    for line in rest.lines() {
        if let Some(r) = line.strip_prefix("#range") {
            let v: Vec<u16> = r.split_whitespace().filter_map(|w| w.parse().ok()).collect();
            if let [lo, hi] = v[..] {
                range = (lo, hi);
            }
        } else if let Ok(inode) = line.trim().parse::<u64>() {
            inodes.insert(inode);
        }
    }
    let mut ports: Vec<u16> = parse_poll(tables)
        .listeners
        .into_iter()
        .filter(|l| inodes.contains(&l.inode) && !(range.0..=range.1).contains(&l.port))
        .map(|l| l.port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

pub(crate) fn kill(node: &dyn Node, pids: &[u32]) -> Result<(), NodeError> {
    if pids.is_empty() {
        return Ok(());
    }
    let script = scripts::with(&[scripts::ALIVE, scripts::KILL_WAIT], KILL);
    run(node, &script, &pids.iter().map(u32::to_string).collect::<Vec<_>>()).map(drop)
}

/// The TCP ports a component serves on, from its arguments (flag given, else the default the
/// component uses); `0` means disabled and is left out.
pub(crate) fn ports_from_args(c: &Component, argv: &[String]) -> Vec<u16> {
    let flags: &[(&str, u16)] = match c.name {
        "kube-apiserver" => &[("secure-port", 6443), ("insecure-port", 0)],
        "kube-controller-manager" => &[("secure-port", 10257), ("port", 0)],
        "kube-scheduler" => &[("secure-port", 10259), ("port", 0)],
        "kubelet" => &[("port", 10250), ("healthz-port", 10248), ("read-only-port", 0)],
        "kube-proxy" => &[("healthz-port", 0), ("metrics-port", 0)],
        _ => &[],
    };
    let mut ports: Vec<u16> = flags
        .iter()
        .map(|(flag, default)| flag_value(argv, flag).and_then(|v| v.parse().ok()).unwrap_or(*default))
        .collect();
    ports.retain(|p| *p != 0);
    ports.dedup();
    ports
}

/// The value of `--flag=V` or `--flag V` (the last one wins, as with Go's flag packages).
pub(crate) fn flag_value<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    let long = format!("--{flag}");
    let mut found = None;
    for (i, a) in argv.iter().enumerate().skip(1) {
        if let Some(v) = a.strip_prefix(&long).and_then(|r| r.strip_prefix('=')) {
            found = Some(v);
        } else if *a == long {
            found = argv.get(i + 1).map(String::as_str);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0929 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 23814 1 0000000000000000 100 0 0 10 0
   1: 0200D50A:20FB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1 0000000000000000 100 0 0 10 0
   2: 0200D50A:0016 0100D50A:C8A2 01 00000000:00000000 02:000A7A2A 00000000     0        0 777 2 0000000000000000 20 4 30 10 -1
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1A0A 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn a_pids_ports_are_its_listening_sockets_outside_the_ephemeral_range() {
        // 0x0929 = 2345 (inode 23814), 0x20FB = 8443 (inode 555), 0x1A0A = 6666 (inode 999, not ours).
        let text = format!("{TCP}#fds\n23814\n555\n777\n#range 8000 9000\n");
        assert_eq!(parse_pid_ports(&text), [2345]);
        let text = format!("{TCP}#fds\n23814\n555\n#range 32768 60999\n");
        assert_eq!(parse_pid_ports(&text), [2345, 8443]);
    }

    #[test]
    fn tcp_tables_give_listeners_with_addresses() {
        let p = parse_poll(&format!("alive 42\n{TCP}"));
        assert_eq!(p.alive, [42]);
        let got: Vec<(String, u16, u64)> = p.listeners.iter().map(|l| (l.addr.to_string(), l.port, l.inode)).collect();
        assert_eq!(
            got,
            [("127.0.0.1".into(), 2345, 23814), ("10.213.0.2".into(), 8443, 555), ("::".into(), 6666, 999)]
        );
        assert!(p.listening(22).is_none(), "an established connection is not a listener");
        assert!(p.serves(&Endpoint::Loopback(2345)) && p.sockets.is_empty());
        let unix = "Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 41234 /var/lib/kdbg/run/kube-apiserver/dlv.sock
0000000000000000: 00000003 00000000 00000000 0001 03 41240 /var/lib/kdbg/run/kube-apiserver/dlv.sock
0000000000000000: 00000002 00000000 00010000 0001 01 2011 @/containerd-shim/abc.sock
0000000000000000: 00000002 00000000 00000000 0002 01 2012
";
        let p = parse_poll(&format!("{TCP}{unix}"));
        assert_eq!(p.sockets, ["/var/lib/kdbg/run/kube-apiserver/dlv.sock"], "listening, bound to a path");
        assert!(p.serves(&Endpoint::Socket("/var/lib/kdbg/run/kube-apiserver/dlv.sock".into())));
        assert!(!p.serves(&Endpoint::Socket("/var/lib/kdbg/run/kubelet/dlv.sock".into())));
        assert_eq!(p.listeners.len(), 3, "unix lines are not TCP listeners");
    }

    #[test]
    fn exes_from_ls() {
        let ls = "lrwxrwxrwx 1 root root 0 Nov 26 18:00 /proc/1/exe -> /usr/bin/kdbg-testnode\n\
                  lrwxrwxrwx 1 root root 0 Nov 26 18:00 /proc/77/exe -> /var/lib/kdbg/bin/kube-apiserver (deleted)\n";
        assert_eq!(
            parse_exes(ls),
            [(1, "/usr/bin/kdbg-testnode".to_string()), (77, "/var/lib/kdbg/bin/kube-apiserver".to_string())]
        );
    }

    #[test]
    fn ports_come_from_flags_or_defaults() {
        let api = Component::lookup("apiserver").unwrap();
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(ports_from_args(api, &args(&["x", "--secure-port=8443", "--insecure-port=0"])), [8443]);
        assert_eq!(ports_from_args(api, &args(&["x"])), [6443]);
        assert_eq!(ports_from_args(api, &args(&["x", "--secure-port", "7000", "--insecure-port=8080"])), [7000, 8080]);
        let kubelet = Component::lookup("kubelet").unwrap();
        assert_eq!(ports_from_args(kubelet, &args(&["kubelet"])), [10250, 10248]);
        assert_eq!(flag_value(&args(&["x", "--port=1", "--port=2"]), "port"), Some("2"));
        assert_eq!(flag_value(&args(&["x", "--portal=1"]), "port"), None);
    }
}
