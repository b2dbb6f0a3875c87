//! Binding a listener on a shard: one listening socket per listener per shard, all on the same
//! address with SO_REUSEPORT, so each shard has its own accept queue and the kernel spreads new
//! connections over the shards by a hash of their addresses and ports.
//!
//! [`bind_listener`] runs on the shard's own thread, inside its glommio executor, once per
//! listener at start-up. It builds the socket with `socket2` rather than glommio's
//! `TcpListener::bind`, which fixes the backlog at 1024 and leaves dual-stack to the
//! `net.ipv6.bindv6only` sysctl. It must never be called outside an executor, and it never
//! accepts: accepting is the shard's accept loop.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};

use glommio::net::TcpListener;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::config::ListenerConfig;

/// Binds `config.bind` for this shard and listens with `config.backlog`.
///
/// The socket has SO_REUSEADDR (a restart binds while old connections sit in TIME_WAIT) and
/// SO_REUSEPORT (every shard binds the same address); an unspecified IPv6 address (`[::]`) is
/// made dual-stack, so it also takes IPv4 clients whatever `net.ipv6.bindv6only` says. The
/// socket stays blocking, as glommio's own `TcpListener::bind` leaves it: glommio's accept
/// first tries `accept` with `O_NONBLOCK` set and then restored around the call, then waits
/// through io_uring, so the descriptor's own mode never blocks the shard.
///
/// # Panics
///
/// glommio panics when the calling thread runs no glommio executor: call this on a shard.
pub fn bind_listener(config: &ListenerConfig) -> io::Result<TcpListener> {
    let socket = listening_socket(config)?;
    // SAFETY: `into_raw_fd` hands over sole ownership of an open TCP socket that is bound and
    // listening, which is what glommio's `from_raw_fd` requires; the listener now closes it.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

/// The bound, listening socket, before glommio takes it; needs no executor.
fn listening_socket(config: &ListenerConfig) -> io::Result<Socket> {
    let addr = config.bind;
    // socket2 opens it with SOCK_CLOEXEC, so no child process inherits the listener.
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if let SocketAddr::V6(v6) = addr {
        if v6.ip().is_unspecified() {
            socket.set_only_v6(false)?;
        }
    }
    socket.bind(&SockAddr::from(addr))?;
    // Validation bounds the backlog far below `c_int::MAX`; the kernel caps it at
    // `net.core.somaxconn` anyway.
    let backlog = i32::try_from(config.backlog.get()).unwrap_or(i32::MAX);
    socket.listen(backlog)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::{Ipv6Addr, TcpStream};
    use std::num::NonZeroU32;
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::config::Transport;

    fn listener(bind: &str) -> ListenerConfig {
        ListenerConfig {
            name: "test".to_owned(),
            bind: bind.parse().unwrap(),
            transport: Transport::Tcp,
            backlog: NonZeroU32::new(16).unwrap(),
        }
    }

    fn with_port(config: &ListenerConfig, port: u16) -> ListenerConfig {
        let mut config = config.clone();
        config.bind.set_port(port);
        config
    }

    #[test]
    fn the_socket_listens_with_reuse_options_and_blocking() {
        let socket = listening_socket(&listener("127.0.0.1:0")).unwrap();
        assert!(socket.is_listener().unwrap());
        assert!(socket.reuse_address().unwrap());
        assert!(socket.reuse_port().unwrap());
        assert!(!socket.nonblocking().unwrap());
        // Its file descriptor does not leak into child processes.
        // SAFETY: F_GETFD reads the flags of a descriptor `socket` keeps open.
        let flags = unsafe { libc::fcntl(socket.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }

    #[test]
    fn sockets_of_every_shard_share_the_port() {
        let first = listening_socket(&listener("127.0.0.1:0")).unwrap();
        let port = first.local_addr().unwrap().as_socket().unwrap().port();
        let config = with_port(&listener("127.0.0.1:0"), port);
        let second = listening_socket(&config).unwrap();
        let third = listening_socket(&config).unwrap();
        assert_eq!(second.local_addr().unwrap(), first.local_addr().unwrap());
        assert_eq!(third.local_addr().unwrap(), first.local_addr().unwrap());
    }

    #[test]
    fn a_port_held_without_reuseport_is_refused() {
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = holder.local_addr().unwrap().port();
        let error = listening_socket(&with_port(&listener("127.0.0.1:0"), port)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn the_ipv6_wildcard_takes_ipv4_clients() {
        let socket = match listening_socket(&listener("[::]:0")) {
            Ok(socket) => socket,
            Err(error) => {
                // Kernels booted with ipv6.disable=1 have no IPv6 sockets at all.
                eprintln!("skipped: no IPv6 here ({error})");
                return;
            }
        };
        assert!(!socket.only_v6().unwrap());
        let port = socket.local_addr().unwrap().as_socket().unwrap().port();
        // The kernel completes the handshake from the backlog; no accept is needed.
        TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (accepted, peer) = socket.accept().unwrap();
        drop(accepted);
        let peer = peer.as_socket_ipv6().unwrap();
        assert_eq!(
            peer.ip().to_ipv4_mapped(),
            Some(std::net::Ipv4Addr::LOCALHOST)
        );
        // A specific IPv6 address keeps the kernel's default.
        if let Ok(loopback) = listening_socket(&listener("[::1]:0")) {
            let addr = loopback.local_addr().unwrap().as_socket().unwrap();
            assert_eq!(addr.ip(), Ipv6Addr::LOCALHOST);
        }
    }
}
