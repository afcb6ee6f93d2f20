//! Port forwards: an `ssh -N -L` process (survives kdbg when detached), or a proxy thread in kdbg
//! that pipes each accepted connection to a fresh backend (this host, `docker exec`).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Tunnel, CONNECT_TIMEOUT};

/// A free port on 127.0.0.1 (the OS picks it; there is a short race until the forward binds it).
pub(crate) fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// A forward served by a child process (`ssh -N -L ...`).
pub(crate) struct ProcessTunnel {
    child: Option<Child>,
    port: u16,
}

impl ProcessTunnel {
    /// Waits until `port` accepts connections, or fails with what the process said.
    pub(crate) fn start(mut child: Child, port: u16, log: &std::path::Path) -> Result<ProcessTunnel, String> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let said = std::fs::read_to_string(log).unwrap_or_default();
                return Err(format!("the forward exited ({status}): {}", said.trim()));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(ProcessTunnel { child: Some(child), port });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("nothing listened on 127.0.0.1:{port} within {CONNECT_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Tunnel for ProcessTunnel {
    fn local_port(&self) -> u16 {
        self.port
    }
    fn detach(mut self: Box<Self>) -> Option<u32> {
        self.child.take().map(|c| c.id())
    }
}

impl Drop for ProcessTunnel {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A backend connection: what to read from and write to for one accepted client.
pub(crate) type Backend = (Box<dyn Read + Send>, Box<dyn Write + Send>);

/// A forward served by a thread of this process; it ends with kdbg (detach cannot keep it).
pub(crate) struct ProxyTunnel {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl ProxyTunnel {
    pub(crate) fn start(
        local_port: u16,
        connect: impl Fn() -> io::Result<Backend> + Send + 'static,
    ) -> io::Result<ProxyTunnel> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, local_port))?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok((mut from, mut to)) = connect() else { continue };
                let (Ok(mut c_read), mut c_write) = (client.try_clone(), client) else {
                    continue;
                };
                std::thread::spawn(move || {
                    let _ = io::copy(&mut c_read, &mut to);
                });
                std::thread::spawn(move || {
                    let _ = io::copy(&mut from, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Ok(ProxyTunnel { port, stop })
    }
}

impl Tunnel for ProxyTunnel {
    fn local_port(&self) -> u16 {
        self.port
    }
    fn detach(self: Box<Self>) -> Option<u32> {
        // The proxy lives in this process; it keeps serving until kdbg exits.
        std::mem::forget(self);
        None
    }
}

impl Drop for ProxyTunnel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

/// No forward needed: the port is already where the IDE looks.
pub(crate) struct Direct(pub u16);

impl Tunnel for Direct {
    fn local_port(&self) -> u16 {
        self.0
    }
    fn detach(self: Box<Self>) -> Option<u32> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_pipes_both_ways_and_stops() {
        let backend = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let backend_port = backend.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = backend.accept().unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf.map(|b| b.to_ascii_uppercase())).unwrap();
        });
        let tunnel = ProxyTunnel::start(0, move || {
            let s = TcpStream::connect((Ipv4Addr::LOCALHOST, backend_port))?;
            Ok((Box::new(s.try_clone()?) as _, Box::new(s) as _))
        })
        .unwrap();
        let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, tunnel.local_port())).unwrap();
        c.write_all(b"ping").unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert_eq!(got, "PING");
        let port = tunnel.local_port();
        drop(tunnel);
        // The accept loop sees the flag, returns and closes the listener (bounded: 10 s).
        let closed = (0..1000).any(|_| {
            let refused = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err();
            if !refused {
                std::thread::sleep(Duration::from_millis(10));
            }
            refused
        });
        assert!(closed, "the proxy still accepts on {port} after it was dropped");
    }
}
