//! A single-threaded wake-up flag for one connection's writer: routing pushes bytes into the
//! connection's outbound queue and calls [`LocalNotify::notify`]; the writer task awaits
//! [`LocalNotify::notified`] and then drains the queue. Many notifications within one executor
//! tick cost one wake-up, which is what turns per-packet writes into one write per tick.
//!
//! Plain `std` (no executor types), `!Send` by design: it lives on one shard.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A wake-up flag with at most one waiter.
#[derive(Default)]
pub struct LocalNotify {
    pending: Cell<bool>,
    waiter: Cell<Option<Waker>>,
}

impl std::fmt::Debug for LocalNotify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNotify")
            .field("pending", &self.pending.get())
            .finish_non_exhaustive()
    }
}

impl LocalNotify {
    /// Marks work pending and wakes the waiter, if any.
    pub fn notify(&self) {
        self.pending.set(true);
        if let Some(waker) = self.waiter.take() {
            waker.wake();
        }
    }

    /// Resolves once [`Self::notify`] has been called since the last time it resolved.
    pub fn notified(&self) -> Notified<'_> {
        Notified { notify: self }
    }
}

/// The future of [`LocalNotify::notified`].
#[derive(Debug)]
pub struct Notified<'a> {
    notify: &'a LocalNotify,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.pending.replace(false) {
            return Poll::Ready(());
        }
        self.notify.waiter.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::Wake;

    use super::*;

    struct CountingWaker(std::sync::atomic::AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn many_notifications_make_one_wake_up_and_one_ready() {
        let counter = Arc::new(CountingWaker(Default::default()));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        let notify = LocalNotify::default();
        let mut waiting = Box::pin(notify.notified());
        assert_eq!(waiting.as_mut().poll(&mut cx), Poll::Pending);
        notify.notify();
        notify.notify();
        assert_eq!(counter.0.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(waiting.as_mut().poll(&mut cx), Poll::Ready(()));
        let mut again = Box::pin(notify.notified());
        assert_eq!(
            again.as_mut().poll(&mut cx),
            Poll::Pending,
            "the flag was consumed"
        );
    }
}
