//! The web-hook sink: each event POSTed as the web-hook document's JSON body.
//!
//! ```text
//! http_urls = ["http://127.0.0.1:5656/mqtt/webhook"]
//! http_timeout = "8s"
//! concurrency_limit = 128
//! ```
//!
//! The document's other keys are not this sink's: `worker_threads` is
//! [`RuntimeOptions::worker_threads`](super::RuntimeOptions), `queue_capacity` is
//! [`ExporterSettings::queue_capacity`](super::ExporterSettings), `retry_multiplier` and
//! `retry_max_elapsed_time` are its [`RetryPolicy`](super::RetryPolicy), and `rule.*` its
//! [`RuleSet`](super::RuleSet) (rules' `urls` are the items' destinations).
//!
//! - **Where**: each item goes to its rule's `urls` when it has them, else to `http_urls`;
//!   every URL gets its own request. Plain `http://` only for now (no TLS).
//! - **Shape**: one POST per item and URL, `Content-Type: application/json`, the body
//!   rendered by [`render_webhook`](super::render_webhook). With `batch = true`, one POST per
//!   URL per batch whose body is a JSON array of those bodies, in queue order.
//! - **How many at once**: at most `concurrency_limit` requests in flight (a semaphore), each
//!   given `http_timeout` for connecting, sending and reading the whole answer. The runtime
//!   hands this sink one batch at a time, so the limit applies within a batch: a
//!   `batch_events` of at least `concurrency_limit` lets it be reached.
//! - **What failed means**: a 2xx answer is delivered. A connection error, a timeout, a 5xx,
//!   408, 429 or any other non-2xx is worth retrying ([`SinkError::Retryable`]); any other 4xx
//!   says the receiver rejects the data itself, so retrying would fail the same way
//!   ([`SinkError::Permanent`]). When requests of one batch fail both ways, the batch is
//!   retried. Connections are pooled and reused (HTTP/1.1 keep-alive).
//! - **Delivery is at-least-once**: a retry sends the whole batch again, including the
//!   requests that had already succeeded, so a receiver may see an event twice. Likewise a
//!   batch rejected by one URL counts as rejected even where other URLs took it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::CONTENT_TYPE;
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::render_webhook::render;
use super::{ExportItem, Sink, SinkError, SinkFuture};

/// The web-hook exporter's settings (the config maps the document's keys to these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Where events go when their rule names no `urls` (`http_urls`).
    pub http_urls: Vec<String>,
    /// The longest one request may take, answer included (`http_timeout`).
    pub http_timeout: Duration,
    /// The most requests in flight at once (`concurrency_limit`).
    pub concurrency_limit: usize,
    /// One POST per URL per batch, with a JSON array body, instead of one per event.
    pub batch: bool,
}

impl Default for WebhookConfig {
    /// The document's values, without URLs.
    fn default() -> Self {
        Self {
            http_urls: Vec::new(),
            http_timeout: Duration::from_secs(8),
            concurrency_limit: 128,
            batch: false,
        }
    }
}

/// POSTs events to HTTP endpoints.
pub struct WebhookSink {
    config: WebhookConfig,
    client: Client<HttpConnector, Full<Bytes>>,
    in_flight: Arc<Semaphore>,
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSink")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One request to make.
struct Post {
    url: String,
    body: Bytes,
}

impl WebhookSink {
    /// A sink posting by `config`; fails naming the first URL it cannot use. Needs no runtime
    /// until it sends.
    pub fn new(config: WebhookConfig) -> Result<Self, String> {
        for url in &config.http_urls {
            Self::check_url(url)?;
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(config.concurrency_limit.max(1))
            .build(connector);
        let in_flight = Arc::new(Semaphore::new(config.concurrency_limit.max(1)));
        Ok(Self {
            config,
            client,
            in_flight,
        })
    }

    /// Whether `url` is one this sink can post to (an absolute `http://` URL). The config
    /// checks rules' `urls` with this too, so a typo fails at startup rather than per event.
    pub fn check_url(url: &str) -> Result<(), String> {
        let uri: Uri = url
            .parse()
            .map_err(|error| format!("web-hook URL {url:?} is not a URL: {error}"))?;
        match uri.scheme_str() {
            Some("http") if uri.authority().is_some() => Ok(()),
            Some("https") => Err(format!(
                "web-hook URL {url:?}: https is not supported yet (no TLS)"
            )),
            _ => Err(format!(
                "web-hook URL {url:?} must be an absolute http:// URL"
            )),
        }
    }

    /// The URLs one item goes to.
    fn urls_of<'a>(&'a self, item: &'a ExportItem) -> &'a [String] {
        item.destinations
            .as_deref()
            .unwrap_or(&self.config.http_urls)
    }

    /// One request per item and URL.
    fn posts_per_item(&self, batch: &[ExportItem]) -> Result<Vec<Post>, SinkError> {
        let mut posts = Vec::with_capacity(batch.len());
        for item in batch {
            let body = Bytes::from(body_of(item)?);
            for url in self.urls_of(item) {
                posts.push(Post {
                    url: url.clone(),
                    body: body.clone(),
                });
            }
        }
        Ok(posts)
    }

    /// One request per URL, its body the JSON array of that URL's items in order.
    fn posts_per_url(&self, batch: &[ExportItem]) -> Result<Vec<Post>, SinkError> {
        let mut arrays: Vec<(&str, Vec<u8>)> = Vec::new();
        for item in batch {
            let body = body_of(item)?;
            for url in self.urls_of(item) {
                let index = match arrays.iter().position(|(known, _)| *known == url) {
                    Some(index) => index,
                    None => {
                        arrays.push((url, vec![b'[']));
                        arrays.len() - 1
                    }
                };
                let array = &mut arrays[index].1;
                if array.len() > 1 {
                    array.push(b',');
                }
                array.extend_from_slice(&body);
            }
        }
        Ok(arrays
            .into_iter()
            .map(|(url, mut array)| {
                array.push(b']');
                Post {
                    url: url.to_string(),
                    body: Bytes::from(array),
                }
            })
            .collect())
    }

    /// Makes every request, at most `concurrency_limit` at once; the batch's verdict.
    async fn post_all(&self, posts: Vec<Post>) -> Result<(), SinkError> {
        let mut requests = JoinSet::new();
        for post in posts {
            let client = self.client.clone();
            let in_flight = Arc::clone(&self.in_flight);
            let timeout = self.config.http_timeout;
            requests.spawn(async move {
                let _permit = in_flight
                    .acquire_owned()
                    .await
                    .map_err(|_| SinkError::Retryable("web-hook sink closed".into()))?;
                post_once(&client, post, timeout).await
            });
        }
        let (mut retryable, mut permanent) = (None, None);
        while let Some(joined) = requests.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(SinkError::Retryable(reason))) => {
                    retryable.get_or_insert(reason);
                }
                Ok(Err(SinkError::Permanent(reason))) => {
                    permanent.get_or_insert(reason);
                }
                Err(error) => {
                    retryable.get_or_insert(format!("web-hook request task: {error}"));
                }
            }
        }
        match (retryable, permanent) {
            (Some(reason), _) => Err(SinkError::Retryable(reason)),
            (None, Some(reason)) => Err(SinkError::Permanent(reason)),
            (None, None) => Ok(()),
        }
    }
}

impl Sink for WebhookSink {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a mut self, batch: &'a [ExportItem]) -> SinkFuture<'a> {
        Box::pin(async move {
            let posts = if self.config.batch {
                self.posts_per_url(batch)?
            } else {
                self.posts_per_item(batch)?
            };
            self.post_all(posts).await
        })
    }
}

/// The JSON body of one item.
fn body_of(item: &ExportItem) -> Result<Vec<u8>, SinkError> {
    serde_json::to_vec(&render(item))
        .map_err(|error| SinkError::Permanent(format!("rendering a web-hook body: {error}")))
}

/// One POST, answer read to its end within `timeout`.
async fn post_once(
    client: &Client<HttpConnector, Full<Bytes>>,
    post: Post,
    timeout: Duration,
) -> Result<(), SinkError> {
    let url = post.url;
    let request = Request::post(url.as_str())
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(post.body))
        .map_err(|error| SinkError::Permanent(format!("{url}: {error}")))?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|error| SinkError::Retryable(format!("{url}: {}", error_chain(&error))))?;
        let status = response.status();
        // Read the answer to its end so the connection can carry the next request.
        let _ = response.into_body().collect().await;
        Ok::<_, SinkError>(status)
    };
    let status = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| SinkError::Retryable(format!("{url}: no answer within {timeout:?}")))??;
    classify(status).map_err(|retryable| {
        let reason = format!("{url}: HTTP {status}");
        if retryable {
            SinkError::Retryable(reason)
        } else {
            SinkError::Permanent(reason)
        }
    })
}

/// `Ok` for 2xx; otherwise whether trying again could help (see the module docs).
fn classify(status: StatusCode) -> Result<(), bool> {
    if status.is_success() {
        return Ok(());
    }
    let retryable = !status.is_client_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS;
    Err(retryable)
}

/// An error and its causes, `a: b: c` (the client's own message alone is only "client error").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_http_urls_are_accepted() {
        assert!(WebhookSink::check_url("http://127.0.0.1:5656/mqtt/webhook").is_ok());
        assert!(WebhookSink::check_url("http://hooks.example/x").is_ok());
        for bad in ["https://x/y", "/mqtt/webhook", "not a url", "ftp://x/"] {
            assert!(WebhookSink::check_url(bad).is_err(), "{bad}");
        }
        let config = WebhookConfig {
            http_urls: vec!["http://ok/".into(), "https://tls/".into()],
            ..WebhookConfig::default()
        };
        let error = WebhookSink::new(config).err().unwrap_or_default();
        assert!(error.contains("https://tls/"), "{error}");
    }

    #[test]
    fn client_errors_are_permanent_except_timeouts_and_rate_limits() {
        assert_eq!(classify(StatusCode::OK), Ok(()));
        assert_eq!(classify(StatusCode::NO_CONTENT), Ok(()));
        assert_eq!(classify(StatusCode::BAD_REQUEST), Err(false));
        assert_eq!(classify(StatusCode::NOT_FOUND), Err(false));
        assert_eq!(classify(StatusCode::REQUEST_TIMEOUT), Err(true));
        assert_eq!(classify(StatusCode::TOO_MANY_REQUESTS), Err(true));
        assert_eq!(classify(StatusCode::INTERNAL_SERVER_ERROR), Err(true));
        assert_eq!(classify(StatusCode::SERVICE_UNAVAILABLE), Err(true));
        assert_eq!(classify(StatusCode::MOVED_PERMANENTLY), Err(true));
    }
}
