//! Process set-up that `main` does before any shard exists: membarrier registration and the
//! locked-memory limit.
//!
//! Part of the `starling` binary, not the library: these change process-wide state, which a
//! library must not do behind its caller's back. Nothing here knows the config; `main` passes
//! the numbers in.

use std::fmt;
use std::io;

/// `MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED` from `<linux/membarrier.h>` (Linux 4.14).
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;
/// `CAP_IPC_LOCK` from `<linux/capability.h>`: lock memory without limit.
const CAP_IPC_LOCK: u32 = 14;

/// Registers the process for private expedited membarriers.
///
/// glommio issues one before every park. Registering makes the kernel wait for every thread
/// of the process, so done later, with shards running, it stalls the first park of a shard
/// by 7 to 13 ms; done first thing in `main`, while there is one thread, it is free.
pub fn register_membarrier() -> io::Result<()> {
    // SAFETY: membarrier takes two integers (command and flags) and touches no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
            0 as libc::c_uint,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A resource limit in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Limit {
    /// At most this many bytes.
    Bytes(u64),
    /// `RLIM_INFINITY`.
    Unlimited,
}

impl Limit {
    fn from_raw(value: libc::rlim_t) -> Self {
        if value == libc::RLIM_INFINITY {
            Self::Unlimited
        } else {
            Self::Bytes(value)
        }
    }

    fn allows(self, bytes: u64) -> bool {
        match self {
            Self::Bytes(limit) => limit >= bytes,
            Self::Unlimited => true,
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(bytes) => f.write_str(&human_bytes(*bytes)),
            Self::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// RLIMIT_MEMLOCK before and after [`raise_memlock_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemlockReport {
    /// The soft limit found.
    pub soft_before: Limit,
    /// The soft limit in force now.
    pub soft_after: Limit,
    /// The hard limit, which an unprivileged process cannot raise.
    pub hard: Limit,
}

/// The locked memory the shards need is more than the limit allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the shards need about {} of locked memory for their io_uring rings, but RLIMIT_MEMLOCK \
     allows {limit}; raise the hard limit (ulimit -l, LimitMEMLOCK= in a systemd unit, memlock \
     in /etc/security/limits.conf), run with CAP_IPC_LOCK, or lower tuning.io_memory_bytes, \
     tuning.ring_depth or tuning.shards",
    human_bytes(*required_bytes)
)]
pub struct MemlockError {
    /// The estimate of what the shards lock.
    pub required_bytes: u64,
    /// The soft limit in force.
    pub limit: Limit,
}

impl MemlockReport {
    /// Checks that the limit in force allows `required_bytes`. A process with CAP_IPC_LOCK is
    /// not charged for what it locks, but glommio still refuses a soft limit below its floor
    /// (checked as root with `prlimit`), so the floor applies to every process.
    pub fn ensure(&self, required_bytes: u64, cap_ipc_lock: bool) -> Result<(), MemlockError> {
        let needed = if cap_ipc_lock {
            starling::config::GLOMMIO_MIN_MEMLOCK_BYTES
        } else {
            required_bytes
        };
        if self.soft_after.allows(needed) {
            Ok(())
        } else {
            Err(MemlockError {
                required_bytes,
                limit: self.soft_after,
            })
        }
    }
}

/// The RLIMIT_MEMLOCK soft and hard limits.
pub fn memlock_limits() -> io::Result<(Limit, Limit)> {
    let limit = get_memlock()?;
    Ok((
        Limit::from_raw(limit.rlim_cur),
        Limit::from_raw(limit.rlim_max),
    ))
}

/// Raises the RLIMIT_MEMLOCK soft limit to the hard limit, which needs no privilege.
///
/// Without CAP_IPC_LOCK, glommio's rings and registered buffers are charged to this per-user
/// limit, and the kernel frees a dead process's charge late, so a quick restart under a tight
/// limit can fail with ENOMEM. The largest soft limit allowed gives the most room.
pub fn raise_memlock_limit() -> io::Result<MemlockReport> {
    let mut limit = get_memlock()?;
    let soft_before = Limit::from_raw(limit.rlim_cur);
    if limit.rlim_cur != limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is a valid rlimit the call only reads.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(MemlockReport {
        soft_before,
        soft_after: Limit::from_raw(limit.rlim_cur),
        hard: Limit::from_raw(limit.rlim_max),
    })
}

fn get_memlock() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit the call writes into.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}

/// Raises the RLIMIT_NOFILE soft limit to the hard limit and returns both soft limits (before,
/// after). Every connection is a file descriptor, and the usual soft limit (1024) is far below
/// what a broker holds, while the hard limit (often 524288 under systemd) is not; Go's runtime
/// does the same at start-up.
pub fn raise_nofile_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit the call writes into.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur != limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is a valid rlimit the call only reads.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((before, limit.rlim_cur))
}

/// Whether this process holds CAP_IPC_LOCK (root usually does), read from
/// `/proc/self/status`. An unreadable file counts as no.
pub fn has_cap_ipc_lock() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .is_some_and(|status| effective_capability(&status, CAP_IPC_LOCK))
}

/// Whether the `CapEff:` line of a `/proc/PID/status` text has capability `bit`.
fn effective_capability(status: &str, bit: u32) -> bool {
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << bit) != 0)
}

/// `1536` → "1.5 KiB"; exact multiples without decimals ("128 KiB").
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if bytes >= size {
            return if bytes.is_multiple_of(size) {
                format!("{} {unit}", bytes / size)
            } else {
                format!("{:.1} {unit}", bytes as f64 / size as f64)
            };
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn membarrier_registration_is_harmless_to_repeat() {
        // Kernels without membarrier (or seccomp sandboxes) refuse; both outcomes are fine for
        // `main`, which only logs a failure. Repeating a registration must not change it.
        let first = register_membarrier().is_ok();
        assert_eq!(register_membarrier().is_ok(), first);
    }

    #[test]
    fn raising_brings_the_soft_limit_to_the_hard_limit() {
        let report = raise_memlock_limit().unwrap();
        assert_eq!(report.soft_after, report.hard);
        assert!(report.soft_before <= report.soft_after);
        assert_eq!(memlock_limits().unwrap(), (report.hard, report.hard));
    }

    #[test]
    fn raising_the_open_file_limit_reaches_the_hard_limit() {
        let (before, after) = raise_nofile_limit().unwrap();
        assert!(before <= after);
        assert_eq!(raise_nofile_limit().unwrap(), (after, after));
    }

    #[test]
    fn ensure_compares_with_the_limit_in_force() {
        let report = MemlockReport {
            soft_before: Limit::Bytes(64 << 10),
            soft_after: Limit::Bytes(8 << 20),
            hard: Limit::Bytes(8 << 20),
        };
        assert_eq!(report.ensure(8 << 20, false), Ok(()));
        let err = report.ensure(9 << 20, false).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("about 9 MiB"), "{text}");
        assert!(text.contains("allows 8 MiB"), "{text}");
        assert!(text.contains("CAP_IPC_LOCK"), "{text}");
        assert_eq!(report.ensure(9 << 20, true), Ok(()));
        let unlimited = MemlockReport {
            soft_after: Limit::Unlimited,
            ..report
        };
        assert_eq!(unlimited.ensure(u64::MAX, false), Ok(()));
    }

    #[test]
    fn capabilities_are_read_from_cap_eff() {
        let status = "Name:\tstarling\nCapPrm:\t0000000000000000\nCapEff:\t0000000000004000\n";
        assert!(effective_capability(status, CAP_IPC_LOCK));
        assert!(!effective_capability(status, 0));
        assert!(!effective_capability(
            "CapEff:\t0000000000000000\n",
            CAP_IPC_LOCK
        ));
        assert!(!effective_capability("no such line", CAP_IPC_LOCK));
        assert!(effective_capability(
            "CapEff:\t000001ffffffffff\n",
            CAP_IPC_LOCK
        ));
    }

    #[test]
    fn bytes_read_in_binary_units() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(128 << 10), "128 KiB");
        assert_eq!(human_bytes(936 << 10), "936 KiB");
        assert_eq!(human_bytes(1536 << 10), "1.5 MiB");
        assert_eq!(human_bytes(3 << 30), "3 GiB");
    }
}
