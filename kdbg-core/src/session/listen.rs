//! Delve's `--listen` address on the node, one type from the choice ([`super::endpoint`]) through
//! the journal, the launch and `kdbg watch`'s relaunch to the forward, `kdbg status` and restore.
//!
//! `Display` is Delve's `--listen` value (`unix:/var/lib/kdbg/run/kube-apiserver/dlv.sock`,
//! `127.0.0.1:2345`, `0.0.0.0:2345`) and [`FromStr`] reads it back unchanged: the host is kept
//! (a `--expose` session stays on `0.0.0.0` through `kdbg watch`, `status` and the journal). In
//! the journal it is a tagged value (`{"kind": "tcp", "host": "127.0.0.1", "port": 2345}`); the
//! CLI's JSON shows the `--listen` string ([`as_delve`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::node::Endpoint;

/// Where Delve listens on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Listen {
    /// A unix socket (Delve ≥ 1.22.1): `/var/lib/kdbg/run/<component>/dlv.sock`.
    Unix { path: String },
    /// A TCP address: `127.0.0.1:PORT`, or `0.0.0.0:PORT` with `--expose`.
    Tcp { host: IpAddr, port: u16 },
}

/// A `--listen` value kdbg cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a Delve listen address: expected unix:PATH or HOST:PORT")]
pub struct BadListen(pub String);

impl Listen {
    /// `127.0.0.1:port`: the node's loopback only.
    pub(crate) fn loopback(port: u16) -> Listen {
        Listen::Tcp { host: Ipv4Addr::LOCALHOST.into(), port }
    }

    /// `0.0.0.0:port`: every interface of the node (`--expose`).
    pub(crate) fn every_interface(port: u16) -> Listen {
        Listen::Tcp { host: Ipv4Addr::UNSPECIFIED.into(), port }
    }

    /// The socket's path, when Delve listens on one.
    pub fn socket(&self) -> Option<&str> {
        match self {
            Listen::Unix { path } => Some(path),
            Listen::Tcp { .. } => None,
        }
    }

    /// What a forward to this Delve reaches on the node: its socket, or its port on the node's
    /// loopback (where a Delve on `0.0.0.0` answers too).
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Listen::Unix { path } => Endpoint::Socket(path.clone()),
            Listen::Tcp { port, .. } => Endpoint::Loopback(*port),
        }
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Unix { path } => write!(f, "unix:{path}"),
            Listen::Tcp { host, port } => write!(f, "{}", SocketAddr::new(*host, *port)),
        }
    }
}

impl FromStr for Listen {
    type Err = BadListen;

    fn from_str(s: &str) -> Result<Listen, BadListen> {
        let bad = || BadListen(s.to_string());
        if let Some(path) = s.strip_prefix("unix:") {
            return match path.is_empty() {
                true => Err(bad()),
                false => Ok(Listen::Unix { path: path.into() }),
            };
        }
        let addr: SocketAddr = s.parse().map_err(|_| bad())?;
        Ok(Listen::Tcp { host: addr.ip(), port: addr.port() })
    }
}

/// Serde as Delve's `--listen` string (`#[serde(with = "…::as_delve")]`): the CLI's JSON and
/// schema-1 journals.
pub mod as_delve {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    use super::Listen;

    pub fn serialize<S: Serializer>(listen: &Listen, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(listen)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Listen, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delves_listen_values_read_back_unchanged() {
        for text in ["unix:/var/lib/kdbg/run/kube-apiserver/dlv.sock", "127.0.0.1:2345", "0.0.0.0:2349", "[::1]:2345"] {
            let listen: Listen = text.parse().unwrap();
            assert_eq!(listen.to_string(), text);
        }
        let sock: Listen = "unix:/var/lib/kdbg/run/kube-apiserver/dlv.sock".parse().unwrap();
        assert_eq!(sock, Listen::Unix { path: "/var/lib/kdbg/run/kube-apiserver/dlv.sock".into() });
        assert_eq!(sock.socket(), Some("/var/lib/kdbg/run/kube-apiserver/dlv.sock"));
        assert_eq!(sock.endpoint(), Endpoint::Socket("/var/lib/kdbg/run/kube-apiserver/dlv.sock".into()));
        // `--expose` keeps its host; the forward still reaches it on the node's loopback.
        let exposed: Listen = "0.0.0.0:2345".parse().unwrap();
        assert_eq!(exposed, Listen::every_interface(2345));
        assert_ne!(exposed, Listen::loopback(2345));
        assert_eq!((exposed.socket(), exposed.endpoint()), (None, Endpoint::Loopback(2345)));
        for bad in ["nonsense", "unix:", "2345", "localhost:2345", "127.0.0.1:99999", ""] {
            assert_eq!(bad.parse::<Listen>(), Err(BadListen(bad.into())), "{bad}");
        }
    }

    #[test]
    fn the_journal_holds_a_typed_value_and_the_cli_the_listen_string() {
        let typed = serde_json::to_string(&Listen::every_interface(2349)).unwrap();
        assert_eq!(typed, r#"{"kind":"tcp","host":"0.0.0.0","port":2349}"#);
        assert_eq!(serde_json::from_str::<Listen>(&typed).unwrap(), Listen::every_interface(2349));
        let sock = Listen::Unix { path: "/var/lib/kdbg/run/kubelet/dlv.sock".into() };
        let typed = serde_json::to_string(&sock).unwrap();
        assert_eq!(typed, r#"{"kind":"unix","path":"/var/lib/kdbg/run/kubelet/dlv.sock"}"#);

        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Cli {
            #[serde(with = "as_delve")]
            listen: Listen,
        }
        let text = serde_json::to_string(&Cli { listen: sock.clone() }).unwrap();
        assert_eq!(text, r#"{"listen":"unix:/var/lib/kdbg/run/kubelet/dlv.sock"}"#);
        assert_eq!(serde_json::from_str::<Cli>(&text).unwrap(), Cli { listen: sock });
        let err = serde_json::from_str::<Cli>(r#"{"listen":"nonsense"}"#).unwrap_err().to_string();
        assert!(err.contains("`nonsense` is not a Delve listen address"), "{err}");
    }
}
