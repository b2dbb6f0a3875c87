//! Shutdown signals: SIGINT and SIGTERM are blocked in every thread and collected by `main`'s
//! thread with `sigtimedwait`, so no signal handler runs on a shard and no shard is ever
//! interrupted mid-syscall.
//!
//! [`block_shutdown_signals`] must run before the shard threads are spawned: a thread inherits
//! the signal mask of the thread that creates it. Runs only on `main`'s thread.

use std::io;
use std::time::Duration;

/// The signals that ask the broker to stop.
const SHUTDOWN_SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// The set of [`SHUTDOWN_SIGNALS`].
fn shutdown_set() -> libc::sigset_t {
    // SAFETY: `sigset_t` is plain data; `sigemptyset` initialises it before any other use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable `sigset_t`; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        for signal in SHUTDOWN_SIGNALS {
            libc::sigaddset(&mut set, signal);
        }
    }
    set
}

/// Blocks SIGINT and SIGTERM in the calling thread and every thread it creates afterwards, so
/// they stay pending until [`wait_for_shutdown_signal`] takes them.
pub fn block_shutdown_signals() -> io::Result<()> {
    let set = shutdown_set();
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let result = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(result))
    }
}

/// Waits up to `timeout` for SIGINT or SIGTERM; returns the signal's name if one came.
pub fn wait_for_shutdown_signal(timeout: Duration) -> Option<&'static str> {
    let set = shutdown_set();
    let timeout = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `set` and `timeout` are initialised and outlive the call; a null info pointer is
    // allowed. The signals are blocked (see `block_shutdown_signals`), as sigtimedwait needs.
    let signal = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
    match signal {
        libc::SIGINT => Some("SIGINT"),
        libc::SIGTERM => Some("SIGTERM"),
        // -1: the timeout passed (EAGAIN) or another signal interrupted the wait (EINTR).
        _ => None,
    }
}
