//! Where the exporter threads run and at what priority: away from the shards' CPUs when the
//! process has others, and below the shards' priority, so that on a broker whose CPUs are all
//! busy the exporters take what the shards leave and their queues overflow (by policy,
//! counted) rather than the shards slowing down.
//!
//! Linux applies affinity and nice values per thread, so each exporter thread sets its own as
//! it starts; the shards keep theirs. Under CFS a thread at nice 10 weighs 110 against a
//! nice-0 thread's 1024: on a CPU a shard keeps busy it gets about a tenth, and on an idle CPU
//! all of it. Pinning the exporters to the CPUs no shard uses keeps them from preempting a
//! shard at all (and from cooling its caches); when the shards use every CPU there is nowhere
//! else to go and they are not pinned.

use crate::config::CpuId;

/// How an exporter thread is placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadPlacement {
    /// Its nice value.
    pub nice: i32,
    /// The CPUs it may run on; empty leaves the process's mask.
    pub cpus: Vec<CpuId>,
}

impl Default for ThreadPlacement {
    /// Nice 10, not pinned.
    fn default() -> Self {
        Self {
            nice: 10,
            cpus: Vec::new(),
        }
    }
}

impl ThreadPlacement {
    /// Applies both to the calling thread; a refusal is logged, not fatal (exporting still
    /// works, only less politely).
    pub fn apply_to_current_thread(&self) {
        set_current_thread_nice(self.nice);
        if !self.cpus.is_empty() {
            if let Err(error) = pin_current_thread(&self.cpus) {
                let cpus = CpuId::list(&self.cpus);
                tracing::warn!(%cpus, %error,
                    "cannot pin the exporter thread; it runs on any CPU of the process");
            }
        }
    }
}

/// The CPUs of `available` that no shard is pinned to: where exporter threads should run.
/// Empty when the shards have them all.
pub fn cpus_left_by_shards(available: &[CpuId], shard_cpus: &[CpuId]) -> Vec<CpuId> {
    available
        .iter()
        .copied()
        .filter(|cpu| !shard_cpus.contains(cpu))
        .collect()
}

/// Restricts the calling thread to `cpus`.
pub fn pin_current_thread(cpus: &[CpuId]) -> std::io::Result<()> {
    // SAFETY: `cpu_set_t` is a plain bit array, for which all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for cpu in cpus {
        // SAFETY: a `CpuId` is below CPU_SETSIZE, the number of bits in `set`.
        unsafe { libc::CPU_SET(cpu.get(), &mut set) };
    }
    // SAFETY: pid 0 is the calling thread; the size and pointer describe `set`.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the calling thread's nice value. Raising priority (a value below the process's)
/// needs `CAP_SYS_NICE`; when that is refused the thread keeps running at its priority and a
/// warning says so, since exporting still works.
pub fn set_current_thread_nice(nice: i32) {
    // SAFETY: gettid has no preconditions and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    let Ok(tid) = libc::id_t::try_from(tid) else {
        return;
    };
    // SAFETY: setpriority only reads its arguments; PRIO_PROCESS with a thread id changes
    // that one thread on Linux.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) };
    if result != 0 {
        let error = std::io::Error::last_os_error();
        tracing::warn!(nice, %error, "cannot set the exporter thread's nice value; it runs at the process's priority");
    }
}

/// The calling thread's nice value (for tests and logs).
pub fn current_thread_nice() -> std::io::Result<i32> {
    // SAFETY: as in `set_current_thread_nice`.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    let tid = libc::id_t::try_from(tid).map_err(|_| std::io::Error::other("bad thread id"))?;
    // getpriority may legitimately return -1, so errno is cleared first and read after.
    // SAFETY: __errno_location returns this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: getpriority only reads its arguments.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
    let error = std::io::Error::last_os_error();
    if nice == -1 && error.raw_os_error() != Some(0) {
        return Err(error);
    }
    Ok(nice)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn cpus(ids: &[usize]) -> Vec<CpuId> {
        ids.iter().map(|&id| CpuId::new(id).unwrap()).collect()
    }

    #[test]
    fn exporters_go_where_no_shard_is_and_nowhere_when_shards_have_every_cpu() {
        assert_eq!(
            cpus_left_by_shards(&cpus(&[0, 1, 2, 3]), &cpus(&[0, 2])),
            cpus(&[1, 3])
        );
        assert!(cpus_left_by_shards(&cpus(&[0, 1]), &cpus(&[0, 1])).is_empty());
    }

    #[test]
    fn a_thread_pins_itself_and_no_other() {
        // `available_cpus` reads the calling thread's mask.
        let current_thread_cpus = crate::config::available_cpus;
        let before = current_thread_cpus().unwrap();
        let first = before[0];
        let inside = std::thread::spawn(move || {
            ThreadPlacement {
                nice: current_thread_nice().unwrap(),
                cpus: vec![first],
            }
            .apply_to_current_thread();
            current_thread_cpus().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(inside, [first]);
        assert_eq!(current_thread_cpus().unwrap(), before, "only that thread");
    }

    #[test]
    fn a_thread_lowers_its_own_priority_and_no_other() {
        let before = current_thread_nice().unwrap();
        let target = (before + 5).min(19);
        let inside = std::thread::spawn(move || {
            set_current_thread_nice(target);
            current_thread_nice().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(inside, target);
        assert_eq!(current_thread_nice().unwrap(), before, "only that thread");
    }
}
