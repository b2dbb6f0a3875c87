//! What a shard keeps of one live connection: its outbound queue, the wake-up of its writer,
//! and how it is to close. Shared (`Rc`) between the shard engine, which fills the queue, and
//! the connection's writer task, which drains it.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::hooks::ClientInfo;

use crate::net::OutboundQueue;
use crate::protocol::ProtocolVersion;
use crate::session::Close;

use super::engine::ConnectOutcome;
use super::notify::LocalNotify;

/// One live connection as the shard sees it.
#[derive(Debug)]
pub struct ConnectionHandle {
    /// Bytes waiting for the socket.
    pub outbound: RefCell<OutboundQueue>,
    /// Wakes the writer.
    pub writer_wake: LocalNotify,
    close: Cell<Option<Close>>,
    /// How the CONNECT was answered, once it has been (it may wait for other shards).
    connect_outcome: Cell<Option<ConnectOutcome>>,
    /// Wakes the reader when the CONNECT is answered or a close is requested.
    pub reader_wake: LocalNotify,
    /// The peer's address, for the hooks and events.
    pub peer: Option<SocketAddr>,
    /// Who the client is, once the shard has read its CONNECT.
    client: RefCell<Option<Arc<ClientInfo>>>,
}

impl ConnectionHandle {
    /// A handle for a connection speaking `version` with an outbound budget in bytes.
    pub fn new(version: ProtocolVersion, budget_bytes: usize) -> Self {
        Self {
            outbound: RefCell::new(OutboundQueue::new(version, budget_bytes)),
            writer_wake: LocalNotify::default(),
            close: Cell::new(None),
            connect_outcome: Cell::new(None),
            reader_wake: LocalNotify::default(),
            peer: None,
            client: RefCell::new(None),
        }
    }

    /// The same handle, for a connection from `peer`.
    #[must_use]
    pub fn with_peer(mut self, peer: Option<SocketAddr>) -> Self {
        self.peer = peer;
        self
    }

    /// Records who the client is (the shard does, on CONNECT).
    pub fn set_client(&self, client: Arc<ClientInfo>) {
        *self.client.borrow_mut() = Some(client);
    }

    /// Who the client is, once known.
    pub fn client(&self) -> Option<Arc<ClientInfo>> {
        self.client.borrow().clone()
    }

    /// Records how the CONNECT was answered and wakes the reader waiting for it.
    pub fn set_connect_outcome(&self, outcome: ConnectOutcome) {
        self.connect_outcome.set(Some(outcome));
        self.reader_wake.notify();
    }

    /// How the CONNECT was answered, if it has been.
    pub fn connect_outcome(&self) -> Option<ConnectOutcome> {
        self.connect_outcome.get()
    }

    /// Asks the connection to close once its queue is written (the first reason wins).
    pub fn request_close(&self, close: Close) {
        if self.close.get().is_none() {
            self.close.set(Some(close));
        }
        self.writer_wake.notify();
        self.reader_wake.notify();
    }

    /// The close asked for, if any.
    pub fn close_requested(&self) -> Option<Close> {
        self.close.get()
    }
}
