//! Starting the shards: one glommio `LocalExecutor` per shard, on a thread of its own pinned to
//! the shard's CPU, configured from `[tuning]`.
//!
//! [`spawn_shards`] runs on the caller's thread (`main`) and returns only when every shard is up
//! or one of them could not start. It starts them all or none: glommio 0.9 reports a failed
//! executor (locked-memory limit, io_uring set-up) only when its thread is joined, so each shard
//! acknowledges that its executor exists and then waits until every other shard has done the
//! same before it runs the caller's future. A shard that dies first is joined for its error,
//! which becomes a [`ShardStartError`] saying what to change; the shards already up are told to
//! give up and are joined too. Nothing here waits without a deadline during start-up, and
//! nothing here decides when shards stop: that is the caller's future's business.

use std::any::Any;
use std::future::Future;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use glommio::{
    BuilderErrorKind, ExecutorJoinHandle, GlommioError, LocalExecutorBuilder, Placement,
    PoolPlacement, ReactorErrorKind,
};

use crate::config::{available_cpus, CpuId, TuningConfig};
use crate::topic::{ShardId, MAX_SHARDS};

/// How glommio 0.9's panic begins when `io_uring_get_probe` fails. It probes once per process,
/// from the first ring it creates, and the failure is as likely ENOMEM or EPERM as an old kernel.
const GLOMMIO_PROBE_PANIC: &str = "Failed to register a probe.";

/// How long [`spawn_shards`] waits for every shard to report that its executor exists.
/// Creating an executor takes milliseconds; this only bounds a shard stuck in the kernel.
pub const SHARD_START_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a shard could not start, or how it ended badly. Each message names the shard and its CPU
/// and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum ShardStartError {
    /// No CPUs were given, so there would be no shard.
    #[error("no shards to start: the list of shard CPUs is empty")]
    NoShards,
    /// More shards than a [`ShardId`] can name.
    #[error("{requested} shards were asked for, but the broker runs at most {max}; lower tuning.shards or list fewer tuning.cpus")]
    TooManyShards {
        /// Shards asked for.
        requested: usize,
        /// [`MAX_SHARDS`].
        max: usize,
    },
    /// The process's CPU affinity mask could not be read.
    #[error("cannot read this process's CPU affinity mask: {0}")]
    Affinity(#[source] std::io::Error),
    /// A shard's CPU is outside the process's affinity mask, so it cannot be pinned there.
    #[error("{shard} on CPU {cpu} could not start: CPU {cpu} is not in this process's CPU affinity mask ({available}); taskset, cgroup cpusets and systemd's CPUAffinity= decide which CPUs the broker may use")]
    CpuUnavailable {
        /// The shard.
        shard: ShardId,
        /// Its CPU.
        cpu: CpuId,
        /// The CPUs the process may use, as a list such as `0-3, 6`.
        available: String,
    },
    /// The RLIMIT_MEMLOCK soft limit is below glommio's floor. glommio checks the limit itself,
    /// so CAP_IPC_LOCK does not help here; only a higher soft limit does.
    #[error("{shard} on CPU {cpu} could not start: the locked-memory limit (RLIMIT_MEMLOCK soft limit) is {have} bytes, glommio needs at least {need} bytes; raise it (ulimit -l, LimitMEMLOCK= in a systemd unit, memlock in /etc/security/limits.conf; with tuning.raise_memlock on, the broker lifts the soft limit to the hard one); CAP_IPC_LOCK does not help, glommio checks the limit itself")]
    MemLockLimit {
        /// The shard.
        shard: ShardId,
        /// Its CPU.
        cpu: CpuId,
        /// The soft limit in force, in bytes.
        have: u64,
        /// glommio's floor, in bytes.
        need: u64,
    },
    /// The kernel refused memory for the shard's io_uring rings (ENOMEM).
    #[error("{shard} on CPU {cpu} could not start: the kernel refused memory for its io_uring rings (ENOMEM); without CAP_IPC_LOCK they count against RLIMIT_MEMLOCK, whose charge for a process that just exited is freed late: raise the limit (ulimit -l, LimitMEMLOCK=), run with CAP_IPC_LOCK, or lower tuning.ring_depth, tuning.io_memory_bytes or tuning.shards")]
    RingMemory {
        /// The shard.
        shard: ShardId,
        /// Its CPU.
        cpu: CpuId,
    },
    /// io_uring is not available to this process (EPERM or ENOSYS).
    #[error("{shard} on CPU {cpu} could not start: io_uring is not available to this process ({reason}); the sysctl kernel.io_uring_disabled or a seccomp profile (Docker's default one blocks io_uring) forbids it, or the kernel lacks it")]
    IoUringUnavailable {
        /// The shard.
        shard: ShardId,
        /// Its CPU.
        cpu: CpuId,
        /// The error the kernel gave.
        reason: std::io::Error,
    },
    /// glommio could not create the small io_uring it probes the kernel with, and panicked.
    #[error("{shard} on CPU {cpu} could not start: glommio could not create an io_uring to probe the kernel with; it blames a kernel older than 5.8, but on newer kernels the cause is the locked-memory limit or a ban on io_uring: raise RLIMIT_MEMLOCK (ulimit -l, LimitMEMLOCK=) or run with CAP_IPC_LOCK, and check the sysctl kernel.io_uring_disabled and any seccomp profile")]
    IoUringProbe {
        /// The shard.
        shard: ShardId,
        /// Its CPU.
        cpu: CpuId,
    },
    /// Any other failure to create the shard's executor or thread.
    #[error("{shard} on CPU {cpu} could not start: {message}")]
    Executor {
        /// The shard.
        shard: ShardId,
        /// Its CPU.
        cpu: CpuId,
        /// glommio's description.
        message: String,
    },
    /// The shard neither started nor failed within [`SHARD_START_TIMEOUT`].
    #[error("{shard} on CPU {cpu} did not start within {timeout:?}")]
    StartTimeout {
        /// The shard.
        shard: ShardId,
        /// Its CPU.
        cpu: CpuId,
        /// How long it was given.
        timeout: Duration,
    },
    /// The shard's thread panicked (reported by [`ShardHandles::join`]).
    #[error("{shard} on CPU {cpu} panicked: {message}")]
    Panicked {
        /// The shard.
        shard: ShardId,
        /// Its CPU.
        cpu: CpuId,
        /// The panic message, when it was a string.
        message: String,
    },
}

impl ShardStartError {
    /// Turns glommio's error for the executor of `shard` into one that says what to change.
    fn from_glommio(shard: ShardId, cpu: CpuId, error: GlommioError<()>) -> Self {
        match error {
            GlommioError::ReactorError(ReactorErrorKind::MemLockLimit(have, need)) => {
                Self::MemLockLimit {
                    shard,
                    cpu,
                    have,
                    need,
                }
            }
            GlommioError::BuilderError(BuilderErrorKind::ThreadPanic(payload)) => {
                let message = panic_message(payload.as_ref());
                if message.starts_with(GLOMMIO_PROBE_PANIC) {
                    Self::IoUringProbe { shard, cpu }
                } else {
                    Self::Panicked {
                        shard,
                        cpu,
                        message,
                    }
                }
            }
            GlommioError::IoError(error) => match error.raw_os_error() {
                None => match memlock_limit(&error) {
                    Some((have, need)) => Self::MemLockLimit {
                        shard,
                        cpu,
                        have,
                        need,
                    },
                    None => Self::Executor {
                        shard,
                        cpu,
                        message: error.to_string(),
                    },
                },
                // Ring set-up is where executor creation allocates locked memory; the other
                // allocations (an eventfd, a thread) fail with ENOMEM only when the whole
                // machine is out of memory.
                Some(libc::ENOMEM) => Self::RingMemory { shard, cpu },
                Some(libc::EPERM | libc::ENOSYS) => Self::IoUringUnavailable {
                    shard,
                    cpu,
                    reason: error,
                },
                _ => Self::Executor {
                    shard,
                    cpu,
                    message: error.to_string(),
                },
            },
            other => Self::Executor {
                shard,
                cpu,
                message: other.to_string(),
            },
        }
    }
}

/// The limits in glommio's memlock refusal once it has passed through `io::Error`.
///
/// glommio 0.9's reactor returns `io::Result`, so by the time `MemLockLimit(have, need)` reaches
/// `join()` it is an `io::Error` whose only trace of the variant is its text,
/// `MemLockLimit(65536/524288)`.
fn memlock_limit(error: &std::io::Error) -> Option<(u64, u64)> {
    let text = error.to_string();
    let (have, need) = text
        .strip_prefix("MemLockLimit(")?
        .strip_suffix(')')?
        .split_once('/')?;
    Some((have.parse().ok()?, need.parse().ok()?))
}

/// The panic payload as text: `panic!` makes a `&str` or a `String`.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// The running shards, in shard order. Dropping this detaches their threads; [`join`] waits
/// for them.
///
/// [`join`]: ShardHandles::join
#[derive(Debug)]
pub struct ShardHandles {
    shards: Vec<RunningShard>,
}

#[derive(Debug)]
struct RunningShard {
    id: ShardId,
    cpu: CpuId,
    handle: ExecutorJoinHandle<()>,
}

impl ShardHandles {
    /// Number of shards.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Whether there are no shards (never, for handles from [`spawn_shards`]).
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// Waits until every shard's future has returned, in shard order, and reports the first
    /// shard (by index) that panicked. Blocks until every shard ends: making the futures end,
    /// for instance on a shutdown signal the caller passed into them, is the caller's job.
    pub fn join(self) -> Result<(), ShardStartError> {
        let mut first_failure = None;
        for shard in self.shards {
            if let Err(error) = shard.handle.join() {
                let error = ShardStartError::from_glommio(shard.id, shard.cpu, error);
                first_failure.get_or_insert(error);
            }
        }
        first_failure.map_or(Ok(()), Err)
    }
}

/// Starts one shard per entry of `cpus` (shard `i` pinned to `cpus[i]`; a CPU may repeat) and
/// runs `start(shard)` on each once all of them are up.
///
/// Each shard is a thread named `shard-{i}-{n}` (glommio appends its executor number) running a
/// glommio `LocalExecutor` with
/// `Placement::Fixed(cpu)` and the ring depth, io memory, preemption timer and spin-before-park
/// of `tuning`. `start` runs inside that executor; its future may hold `!Send` state.
///
/// Returns once every shard's executor exists, with `start` running on all of them, or with the
/// first shard that failed. On failure no `start` future has run: the shards that were up are
/// told to stop and are joined, and only a shard still starting after
/// [`SHARD_START_TIMEOUT`] is left to end on its own.
pub fn spawn_shards<F, Fut>(
    cpus: &[CpuId],
    tuning: &TuningConfig,
    start: F,
) -> Result<ShardHandles, ShardStartError>
where
    F: Fn(ShardId) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let ids = check_cpus(cpus)?;
    let deadline = Instant::now() + SHARD_START_TIMEOUT;
    let (events_tx, events) = mpsc::channel();
    let mut starting = Starting {
        shards: Vec::with_capacity(cpus.len()),
        go: Vec::with_capacity(cpus.len()),
        events,
        deadline,
    };
    for (&id, &cpu) in ids.iter().zip(cpus) {
        let (go_tx, go_rx) = mpsc::channel();
        let ack = StartAck {
            index: id.index(),
            events: events_tx.clone(),
            go: Some(go_rx),
        };
        let start = start.clone();
        match executor_builder(id, cpu, tuning).spawn(move || run_shard(ack, id, start)) {
            Ok(handle) => {
                starting.shards.push(Pending {
                    id,
                    cpu,
                    handle: Some(handle),
                    state: State::Starting,
                });
                starting.go.push(go_tx);
            }
            Err(error) => {
                starting.abort();
                return Err(ShardStartError::from_glommio(id, cpu, error));
            }
        }
    }
    // Only the shards' acknowledgements hold senders now, so a closed channel means every shard
    // has reported.
    drop(events_tx);
    starting.wait()
}

/// The shard ids of `cpus`, after checking that there is at least one, that each has an id and
/// that each CPU is one this process may run on.
fn check_cpus(cpus: &[CpuId]) -> Result<Vec<ShardId>, ShardStartError> {
    if cpus.is_empty() {
        return Err(ShardStartError::NoShards);
    }
    let too_many = || ShardStartError::TooManyShards {
        requested: cpus.len(),
        max: MAX_SHARDS,
    };
    let ids = (0..cpus.len())
        .map(|index| ShardId::new(index).ok_or_else(too_many))
        .collect::<Result<Vec<_>, _>>()?;
    // glommio checks only that the CPU is online, then pins the shard there even outside the
    // mask `taskset` or systemd's CPUAffinity= set (only a cgroup cpuset refuses, later, on the
    // shard's thread). The mask is the operator's choice, as in `TuningConfig::shard_cpus`.
    let available = available_cpus().map_err(ShardStartError::Affinity)?;
    for (&shard, &cpu) in ids.iter().zip(cpus) {
        if !available.contains(&cpu) {
            return Err(ShardStartError::CpuUnavailable {
                shard,
                cpu,
                available: CpuId::list(&available),
            });
        }
    }
    Ok(ids)
}

fn executor_builder(id: ShardId, cpu: CpuId, tuning: &TuningConfig) -> LocalExecutorBuilder {
    let builder = LocalExecutorBuilder::new(Placement::Fixed(cpu.get()))
        .name(&format!("shard-{}", id.index()))
        // The blocking pool (argon2 and bcrypt checks of first logins) runs on any CPU, not
        // the shard's: glommio would pin it beside the shard, which only moves the stall.
        .blocking_thread_pool_placement(PoolPlacement::Unbound(1))
        // Validation keeps the depth a power of two of at least 8; glommio panics on 0, which
        // only a hand-built `TuningConfig` could hold: it gets depth 1 instead.
        .ring_depth(tuning.ring_depth.max(1))
        .io_memory(tuning.io_memory_bytes)
        .preempt_timer(tuning.preempt_timer);
    match tuning.spin_before_park {
        Some(spin) => builder.spin_before_park(spin),
        None => builder,
    }
}

/// The body of every shard: acknowledge, wait for the word, run the caller's future.
async fn run_shard<F, Fut>(ack: StartAck, id: ShardId, start: F)
where
    F: Fn(ShardId) -> Fut,
    Fut: Future<Output = ()>,
{
    if ack.started() {
        start(id).await;
    }
}

/// What a shard tells [`spawn_shards`] during start-up, with its index.
#[derive(Debug)]
enum StartEvent {
    /// The executor exists; the shard now waits for the word to go.
    Started(usize),
    /// The shard's thread ended, or never began, before its executor existed.
    Ended(usize),
}

/// A shard's side of start-up. It travels into the shard's thread inside the closure glommio
/// calls once the executor exists; if glommio fails before that, the closure and this with it
/// are dropped, and the drop reports [`StartEvent::Ended`].
#[derive(Debug)]
struct StartAck {
    index: usize,
    events: Sender<StartEvent>,
    /// `Some` until [`StartAck::started`] takes it.
    go: Option<Receiver<()>>,
}

impl StartAck {
    /// Reports that the executor exists, then waits for the word: true to go on, false when
    /// start-up was abandoned (the sender is dropped).
    ///
    /// Blocking the executor's thread here is harmless: nothing has been spawned on it yet, and
    /// the wait ends when `spawn_shards` returns, which is bounded by its deadline.
    fn started(mut self) -> bool {
        let Some(go) = self.go.take() else {
            return false;
        };
        // A send error means `spawn_shards` gave up listening, and `go` then reports it too.
        let _ = self.events.send(StartEvent::Started(self.index));
        go.recv().is_ok()
    }
}

impl Drop for StartAck {
    fn drop(&mut self) {
        if self.go.is_some() {
            // Nobody listening means start-up is already over; nothing to tell.
            let _ = self.events.send(StartEvent::Ended(self.index));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Starting,
    Started,
    Ended,
}

#[derive(Debug)]
struct Pending {
    id: ShardId,
    cpu: CpuId,
    /// `None` once joined.
    handle: Option<ExecutorJoinHandle<()>>,
    state: State,
}

impl Pending {
    /// The error of a shard that ended before starting, from its thread.
    fn failure(&mut self) -> ShardStartError {
        let ended_early = || ShardStartError::Executor {
            shard: self.id,
            cpu: self.cpu,
            message: "its thread ended before its executor started".to_owned(),
        };
        match self.handle.take().map(ExecutorJoinHandle::join) {
            Some(Err(error)) => ShardStartError::from_glommio(self.id, self.cpu, error),
            Some(Ok(())) | None => ended_early(),
        }
    }
}

/// Shards spawned and not yet told to go.
#[derive(Debug)]
struct Starting {
    shards: Vec<Pending>,
    /// One per spawned shard; sending says go, dropping says give up.
    go: Vec<Sender<()>>,
    events: Receiver<StartEvent>,
    deadline: Instant,
}

impl Starting {
    /// Waits for every shard to start, then tells them all to go.
    fn wait(mut self) -> Result<ShardHandles, ShardStartError> {
        let mut started = 0;
        while started < self.shards.len() {
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            let failure = match self.events.recv_timeout(remaining) {
                Ok(StartEvent::Started(index)) => {
                    if let Some(shard) = self.shards.get_mut(index) {
                        shard.state = State::Started;
                        started += 1;
                    }
                    continue;
                }
                Ok(StartEvent::Ended(index)) => self.shards.get_mut(index).map(|shard| {
                    shard.state = State::Ended;
                    shard.failure()
                }),
                // Every acknowledgement reports before it goes, so a closed channel with shards
                // still starting cannot happen; treat it as the first of them having failed.
                Err(RecvTimeoutError::Disconnected) => self
                    .shards
                    .iter_mut()
                    .find(|shard| shard.state == State::Starting)
                    .map(|shard| {
                        shard.state = State::Ended;
                        shard.failure()
                    }),
                Err(RecvTimeoutError::Timeout) => self
                    .shards
                    .iter()
                    .find(|shard| shard.state == State::Starting)
                    .map(|shard| ShardStartError::StartTimeout {
                        shard: shard.id,
                        cpu: shard.cpu,
                        timeout: SHARD_START_TIMEOUT,
                    }),
            };
            if let Some(error) = failure {
                self.abort();
                return Err(error);
            }
        }
        for go in &self.go {
            // Every shard is blocked waiting for this, so its receiver is alive.
            let _ = go.send(());
        }
        let shards = self
            .shards
            .into_iter()
            .filter_map(|shard| {
                let handle = shard.handle?;
                Some(RunningShard {
                    id: shard.id,
                    cpu: shard.cpu,
                    handle,
                })
            })
            .collect();
        Ok(ShardHandles { shards })
    }

    /// Gives up: tells every shard not to run its future and joins those that reported before
    /// the deadline. A shard that started ends as soon as it sees the word; one still starting
    /// after the deadline is left to end on its own rather than block the caller.
    fn abort(mut self) {
        self.go.clear();
        while self.shards.iter().any(|s| s.state == State::Starting) {
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(remaining) {
                Ok(StartEvent::Started(index)) => self.set_state(index, State::Started),
                Ok(StartEvent::Ended(index)) => self.set_state(index, State::Ended),
                Err(_) => break,
            }
        }
        for shard in self.shards {
            if shard.state != State::Starting {
                if let Some(handle) = shard.handle {
                    // The error that stopped start-up is already chosen; later ones are its
                    // consequences.
                    let _ = handle.join();
                }
            }
        }
    }

    fn set_state(&mut self, index: usize, state: State) {
        if let Some(shard) = self.shards.get_mut(index) {
            shard.state = state;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io;

    use super::*;

    fn shard(index: usize) -> ShardId {
        ShardId::new(index).unwrap()
    }

    fn cpu(id: usize) -> CpuId {
        CpuId::new(id).unwrap()
    }

    /// The refusal as `join()` returns it: glommio's reactor turns it into an `io::Error`.
    fn memlock_refusal(have: u64, need: u64) -> GlommioError<()> {
        let refusal = GlommioError::<()>::ReactorError(ReactorErrorKind::MemLockLimit(have, need));
        GlommioError::IoError(io::Error::from(refusal))
    }

    #[test]
    fn memlock_errors_name_the_limit_and_the_fix() {
        let error = ShardStartError::from_glommio(shard(2), cpu(5), memlock_refusal(65536, 524288));
        assert!(matches!(
            error,
            ShardStartError::MemLockLimit {
                have: 65536,
                need: 524288,
                ..
            }
        ));
        let text = error.to_string();
        assert!(text.starts_with("shard 2 on CPU 5 could not start: the locked-memory limit (RLIMIT_MEMLOCK soft limit) is 65536 bytes, glommio needs at least 524288 bytes;"), "{text}");
        assert!(text.contains("ulimit -l"), "{text}");
        assert!(text.contains("LimitMEMLOCK="), "{text}");
        // Unconverted, as glommio's reactor itself makes it.
        let error = GlommioError::ReactorError(ReactorErrorKind::MemLockLimit(0, 524288));
        assert!(matches!(
            ShardStartError::from_glommio(shard(0), cpu(0), error),
            ShardStartError::MemLockLimit { have: 0, .. }
        ));
        // Other text without an errno stays glommio's.
        let error = GlommioError::IoError(io::Error::other("MemLockLimit(x/1)"));
        assert!(matches!(
            ShardStartError::from_glommio(shard(0), cpu(0), error),
            ShardStartError::Executor { .. }
        ));
    }

    #[test]
    fn ring_allocation_failures_say_what_to_lower() {
        let error = GlommioError::IoError(io::Error::from_raw_os_error(libc::ENOMEM));
        let error = ShardStartError::from_glommio(shard(0), cpu(1), error);
        assert!(matches!(error, ShardStartError::RingMemory { .. }));
        let text = error.to_string();
        assert!(
            text.starts_with("shard 0 on CPU 1 could not start:"),
            "{text}"
        );
        assert!(text.contains("CAP_IPC_LOCK"), "{text}");
        assert!(text.contains("tuning.io_memory_bytes"), "{text}");
    }

    #[test]
    fn a_forbidden_io_uring_is_named() {
        let error = GlommioError::IoError(io::Error::from_raw_os_error(libc::EPERM));
        let error = ShardStartError::from_glommio(shard(0), cpu(0), error);
        assert!(matches!(error, ShardStartError::IoUringUnavailable { .. }));
        assert!(error.to_string().contains("seccomp"), "{error}");
    }

    #[test]
    fn a_failed_probe_is_not_blamed_on_the_kernel_alone() {
        // glommio's words when its first io_uring fails, as seen here under a tight
        // RLIMIT_MEMLOCK (io_uring_setup gave ENOMEM).
        let payload: Box<dyn Any + Send> = Box::new(
            "Failed to register a probe. The most likely reason is that your kernel witnessed \
             Romulus killing Remus (too old!! kernel should be at least 5.8)",
        );
        let error = GlommioError::BuilderError(BuilderErrorKind::ThreadPanic(payload));
        let error = ShardStartError::from_glommio(shard(0), cpu(0), error);
        assert!(matches!(error, ShardStartError::IoUringProbe { .. }));
        let text = error.to_string();
        assert!(text.contains("RLIMIT_MEMLOCK"), "{text}");
        assert!(text.contains("kernel.io_uring_disabled"), "{text}");
    }

    #[test]
    fn other_errors_keep_glommio_s_words() {
        let error = GlommioError::BuilderError(BuilderErrorKind::NonExistentCpus { cpu: 7 });
        let text = ShardStartError::from_glommio(shard(1), cpu(7), error).to_string();
        assert_eq!(
            text,
            "shard 1 on CPU 7 could not start: Executor builder error: CPU 7 doesn't exist on the \
             host"
        );
    }

    #[test]
    fn panics_keep_their_message() {
        let payload: Box<dyn Any + Send> = Box::new("boom");
        let error = GlommioError::BuilderError(BuilderErrorKind::ThreadPanic(payload));
        let text = ShardStartError::from_glommio(shard(3), cpu(0), error).to_string();
        assert_eq!(text, "shard 3 on CPU 0 panicked: boom");
        let payload: Box<dyn Any + Send> = Box::new(String::from("formatted 7"));
        assert_eq!(panic_message(payload.as_ref()), "formatted 7");
        let payload: Box<dyn Any + Send> = Box::new(7_u32);
        assert_eq!(panic_message(payload.as_ref()), "a panic without a message");
    }

    #[test]
    fn cpu_lists_are_checked_before_any_thread_exists() {
        assert!(matches!(check_cpus(&[]), Err(ShardStartError::NoShards)));
        let many = vec![cpu(0); MAX_SHARDS + 1];
        assert!(matches!(
            check_cpus(&many),
            Err(ShardStartError::TooManyShards { requested, max: MAX_SHARDS })
                if requested == MAX_SHARDS + 1
        ));
    }
}
