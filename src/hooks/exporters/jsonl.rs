//! The JSON-lines sink: one web-hook body per line, to a file or to standard output.
//!
//! For audit logs and for feeding log shippers: `path = "/var/log/starling/events.jsonl"`
//! appends to that file (created if absent), `path = "-"` writes to standard output. Each line
//! is exactly the web-hook body of the event ([`render_webhook`](super::render_webhook)), under
//! its rule's action name. The batch is written and flushed at once; an I/O error (a full
//! disk, a closed pipe) is worth retrying, and since part of the batch may already be written,
//! a retry can repeat lines: delivery is at-least-once.
//!
//! The writes run on tokio's blocking pool: a file on a slow disk or a stdout pipe nobody
//! reads stalls this exporter only, never the drain loop or the other exporters. The file is
//! opened once; a log rotator must copy and truncate rather than move it.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use super::render_webhook::render;
use super::{ExportItem, Sink, SinkError, SinkFuture};

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonLinesConfig {
    /// A file to append to, or `-` for standard output.
    pub path: PathBuf,
}

/// Writes events as JSON lines.
pub struct JsonLinesSink {
    path: PathBuf,
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl fmt::Debug for JsonLinesSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLinesSink")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl JsonLinesSink {
    /// Opens the file for appending (creating it), or takes standard output for `-`.
    pub fn open(config: &JsonLinesConfig) -> io::Result<Self> {
        let out: Box<dyn Write + Send> = if config.path.as_os_str() == "-" {
            Box::new(io::stdout())
        } else {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&config.path)?;
            Box::new(BufWriter::new(file))
        };
        Ok(Self {
            path: config.path.clone(),
            out: Arc::new(Mutex::new(out)),
        })
    }

    /// The batch as lines.
    fn lines(batch: &[ExportItem]) -> Result<Vec<u8>, SinkError> {
        let mut lines = Vec::with_capacity(batch.len() * 256);
        for item in batch {
            serde_json::to_writer(&mut lines, &render(item))
                .map_err(|error| SinkError::Permanent(format!("rendering a JSON line: {error}")))?;
            lines.push(b'\n');
        }
        Ok(lines)
    }
}

impl Sink for JsonLinesSink {
    fn kind(&self) -> &'static str {
        "jsonl"
    }

    fn send<'a>(&'a mut self, batch: &'a [ExportItem]) -> SinkFuture<'a> {
        Box::pin(async move {
            let lines = Self::lines(batch)?;
            let out = Arc::clone(&self.out);
            let written = tokio::task::spawn_blocking(move || {
                // A writer poisoned by a panic mid-write is still a writer; carry on with it.
                let mut out = out.lock().unwrap_or_else(PoisonError::into_inner);
                out.write_all(&lines)?;
                out.flush()
            })
            .await;
            let path = self.path.display();
            match written {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(SinkError::Retryable(format!("writing {path}: {error}"))),
                Err(error) => Err(SinkError::Retryable(format!("writing {path}: {error}"))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;
    use crate::hooks::event::{ClientInfo, Event, EventDetail, EventKind, MessageFacts};
    use crate::protocol::{ClientId, QoS, TopicName};
    use crate::session::Message;

    fn item(kind: EventKind, at_ns: u64, detail: EventDetail) -> ExportItem {
        let client = Arc::new(ClientInfo {
            node: 1,
            shard: 0,
            client_id: ClientId::new("line-client").unwrap(),
            username: None,
            address: Some("127.0.0.1:4000".parse().unwrap()),
            protocol: 4,
            keep_alive_secs: 10,
            clean_start: true,
        });
        ExportItem {
            event: Arc::new(Event {
                kind,
                at_ns,
                client,
                detail,
            }),
            action: Arc::from(kind.name()),
            destinations: None,
        }
    }

    fn publish(at_ns: u64) -> ExportItem {
        let message = Arc::new(Message {
            topic: TopicName::new("a/b").unwrap(),
            payload: bytes::Bytes::from_static(b"\x00\x01line\n"),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Default::default(),
            expires_at: None,
            origin: ClientId::new("line-client").unwrap(),
            publisher: None,
            received_at_ns: 0,
        });
        let first = item(EventKind::ClientConnected, at_ns, EventDetail::None);
        let facts = MessageFacts {
            message,
            publisher: Arc::clone(&first.event.client),
            published_at_ns: at_ns,
            qos: QoS::AtMostOnce,
            packet_id: None,
            dup: false,
            dropped: None,
        };
        item(
            EventKind::MessagePublish,
            at_ns,
            EventDetail::Message(facts),
        )
    }

    #[tokio::test]
    async fn every_line_is_one_webhook_body_and_files_are_appended() {
        let dir = std::env::temp_dir().join(format!("starling-jsonl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let _ = std::fs::remove_file(&path);
        let config = JsonLinesConfig { path: path.clone() };

        let mut sink = JsonLinesSink::open(&config).unwrap();
        let batch = vec![
            item(EventKind::ClientConnected, 5_000_000, EventDetail::None),
            publish(6_000_000),
        ];
        sink.send(&batch).await.unwrap();
        drop(sink);
        // A second sink on the same file appends rather than truncating.
        let mut sink = JsonLinesSink::open(&config).unwrap();
        sink.send(&[publish(7_000_000)]).await.unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["action"], "client_connected");
        assert_eq!(lines[0]["connected_at"], 5);
        assert_eq!(lines[0]["clean_session"], true);
        assert_eq!(lines[1]["action"], "message_publish");
        assert_eq!(lines[1]["payload"], "AAFsaW5lCg==");
        assert_eq!(lines[1]["packet_id"], "");
        assert_eq!(lines[2]["ts"], 7);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unopenable_path_fails_at_open() {
        let config = JsonLinesConfig {
            path: PathBuf::from("/nonexistent-starling-dir/x/events.jsonl"),
        };
        assert!(JsonLinesSink::open(&config).is_err());
    }
}
