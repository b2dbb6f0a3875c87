//! The life of one connection as a tokio task: wait for its place in the connect schedule,
//! set up (connect, CONNACK, SUBSCRIBE, SUBACK), report ready, then run its role until the
//! run stops. Everything it learns that the runner must know travels as an [`Event`].
//!
//! A task never decides the fate of the run; it reports and ends. The runner aborts tasks that
//! are still waiting when setup fails.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use starling::protocol::QoS;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::client::{ClientOptions, Connection, Handshake, SetupError};
use crate::driver::{drive, Dropped, Idle};
use crate::plan::{ConnectionPlan, Job};
use crate::publisher::Publisher;
use crate::stats::{Phase, RunShared};
use crate::subscriber::Subscriber;

/// What a task tells the runner.
#[derive(Debug)]
pub enum Event {
    /// Set up and waiting for the run to start.
    Ready {
        /// How long each step took.
        handshake: Handshake,
    },
    /// Setup failed; the run cannot go on.
    SetupFailed {
        /// Client id.
        client_id: String,
        /// What went wrong.
        error: String,
    },
    /// The connection ended before the run told it to.
    Dropped {
        /// Client id.
        client_id: String,
        /// The phase it ended in.
        phase: Phase,
        /// Why.
        reason: String,
    },
}

/// What every task of a run shares.
#[derive(Debug)]
pub struct TaskContext {
    /// The one address the run talks to.
    pub addr: SocketAddr,
    /// CONNECT settings.
    pub options: ClientOptions,
    /// Shared counters and trackers.
    pub shared: Arc<RunShared>,
    /// The run's phase.
    pub phase: watch::Receiver<Phase>,
    /// Where events go.
    pub events: mpsc::UnboundedSender<Event>,
    /// Bounds the handshakes in progress at once.
    pub handshakes: Arc<Semaphore>,
    /// QoS of each block's subscriptions.
    pub block_qos: Vec<QoS>,
}

/// Runs one connection from its scheduled start to the end of the run.
pub async fn run_connection(
    context: Arc<TaskContext>,
    plan: ConnectionPlan,
    start_at: Option<Instant>,
) {
    if let Some(at) = start_at {
        tokio::time::sleep_until(at.into()).await;
    }
    let connection = match setup(&context, &plan).await {
        Ok((connection, handshake)) => {
            context.shared.blocks[plan.block].counters.open.add(1);
            // A send fails only when the runner has gone; then nobody needs the event.
            let _ = context.events.send(Event::Ready { handshake });
            connection
        }
        Err(error) => {
            let _ = context.events.send(Event::SetupFailed {
                client_id: plan.client_id.clone(),
                error: error.to_string(),
            });
            return;
        }
    };
    let shared = Arc::clone(&context.shared);
    let codec = connection.codec;
    let phase = context.phase.clone();
    let result = match plan.job {
        Job::Publisher(mut spec) => {
            let id = spec.id as usize;
            spec.window = spec.window.min(connection.limits.receive_maximum).max(1);
            let mut role = Publisher::new(spec, codec, Arc::clone(&shared));
            let result = drive(connection, &mut role, phase).await;
            // Whatever happened, this publisher sends nothing more: the drain need not wait.
            shared.publishers[id].stopped.store(true, Ordering::Release);
            result
        }
        Job::Subscriber { tracker, .. } => {
            let mut role = Subscriber::new(codec, Arc::clone(&shared), plan.block, tracker);
            drive(connection, &mut role, phase).await
        }
        Job::Idle => drive(connection, &mut Idle, phase).await,
    };
    shared.blocks[plan.block].counters.open.sub(1);
    if let Err(Dropped(reason)) = result {
        let phase = *context.phase.borrow();
        let _ = context.events.send(Event::Dropped {
            client_id: plan.client_id,
            phase,
            reason,
        });
    }
}

async fn setup(
    context: &TaskContext,
    plan: &ConnectionPlan,
) -> Result<(Connection, Handshake), SetupError> {
    // The permit is held for the handshake only; a closed semaphore cannot happen because the
    // runner never closes it, but treat it as a cancelled setup rather than panic.
    let _permit = context
        .handshakes
        .acquire()
        .await
        .map_err(|_| SetupError::Closed("setup cancelled".into()))?;
    let (mut connection, mut handshake) =
        Connection::open(context.addr, &context.options, &plan.client_id).await?;
    let qos = context.block_qos[plan.block];
    if qos > connection.limits.maximum_qos {
        return Err(SetupError::Protocol(format!(
            "broker supports QoS {} at most; the scenario asks for QoS {}",
            connection.limits.maximum_qos.as_u8(),
            qos.as_u8()
        )));
    }
    if let Job::Subscriber { filter, .. } = &plan.job {
        let suback = connection
            .subscribe(filter, qos, context.options.timeout)
            .await?;
        handshake.suback = Some(suback);
    }
    Ok((connection, handshake))
}

/// When connection `slot` of a block with `rate` connections per second should start.
pub fn scheduled_start(origin: Instant, rate: Option<f64>, slot: u32) -> Option<Instant> {
    let rate = rate?;
    Some(origin + Duration::from_secs_f64(f64::from(slot) / rate))
}
