//! A timestamping TCP proxy that records libvirt RPC frames in both directions, so the
//! calls of any client (livemig, virsh, a source daemon in P2P mode) can be compared
//! (libvirt-real-peer.md §4 captured the reference sequences this way).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// Which way a frame went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Client → server.
    Call,
    /// Server → client.
    Reply,
}

/// One whole RPC frame (length word included).
#[derive(Clone, Debug)]
pub struct Captured {
    /// Which accepted connection (0, 1, ...).
    pub conn: usize,
    /// When its last byte passed.
    pub at: Instant,
    /// Direction.
    pub dir: Dir,
    /// The frame.
    pub bytes: Vec<u8>,
}

impl Captured {
    /// The procedure number in the header.
    pub fn procedure(&self) -> Option<u32> {
        self.word(3)
    }
    /// The program in the header.
    pub fn program(&self) -> Option<u32> {
        self.word(1)
    }
    /// The message type (0 call, 1 reply, 2 message).
    pub fn kind(&self) -> Option<u32> {
        self.word(4)
    }
    /// The status (0 ok, 1 error).
    pub fn status(&self) -> Option<u32> {
        self.word(6)
    }
    /// The XDR body after the 28 bytes of length and header.
    pub fn body(&self) -> &[u8] {
        self.bytes.get(28..).unwrap_or(&[])
    }
    fn word(&self, i: usize) -> Option<u32> {
        let b = self.bytes.get(i * 4..i * 4 + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// A running proxy; frames accumulate until it is dropped.
pub struct Proxy {
    addr: SocketAddr,
    frames: Arc<Mutex<Vec<Captured>>>,
    _accept: JoinHandle<()>,
}

impl Proxy {
    /// Listen on `listen` (port 0 picks one) and forward each connection to `upstream`.
    pub fn start(listen: &str, upstream: &str) -> std::io::Result<Proxy> {
        let l = TcpListener::bind(listen)?;
        let addr = l.local_addr()?;
        let frames = Arc::new(Mutex::new(Vec::new()));
        let upstream = upstream.to_owned();
        let f = frames.clone();
        let accept = std::thread::spawn(move || {
            for (n, conn) in l.incoming().enumerate() {
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                for (from, to, dir) in [
                    (client.try_clone(), server.try_clone(), Dir::Call),
                    (server.try_clone(), client.try_clone(), Dir::Reply),
                ] {
                    if let (Ok(from), Ok(to)) = (from, to) {
                        let f = f.clone();
                        std::thread::spawn(move || pump(from, to, dir, n, f));
                    }
                }
            }
        });
        Ok(Proxy {
            addr,
            frames,
            _accept: accept,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every frame captured so far, in the order they passed.
    pub fn frames(&self) -> Vec<Captured> {
        self.frames.lock().map(|f| f.clone()).unwrap_or_default()
    }
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    dir: Dir,
    conn: usize,
    out: Arc<Mutex<Vec<Captured>>>,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        if to.write_all(chunk).is_err() {
            break;
        }
        pending.extend_from_slice(chunk);
        while pending.len() >= 4 {
            let len = u32::from_be_bytes([pending[0], pending[1], pending[2], pending[3]]) as usize;
            if len < 4 || pending.len() < len {
                break;
            }
            let frame: Vec<u8> = pending.drain(..len).collect();
            if let Ok(mut v) = out.lock() {
                v.push(Captured {
                    conn,
                    at: Instant::now(),
                    dir,
                    bytes: frame,
                });
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
