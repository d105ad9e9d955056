//! NATS JetStream for the relay's tests: a private `nats-server -js` on a
//! free port with a temporary store (stopped and deleted when dropped), which
//! tests may stop and start again; and the stream's messages as a consumer
//! reads them.

use std::{
    collections::HashMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use async_nats::jetstream::{self, consumer};
use draft_publisher::proto::v1 as pb;
use futures::StreamExt;
use prost::Message as _;

use crate::support::{
    net::free_port,
    wait::{until, until_some},
};

/// The stream and subjects of the contract.
pub const STREAM: &str = "DRAFTPUBLISHER_EVENTS";

pub struct NatsServer {
    pub url: String,
    port: u16,
    store: tempfile::TempDir,
    process: Option<Child>,
}

fn binary() -> PathBuf {
    ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from("nats-server"))
}

impl NatsServer {
    /// Starts a JetStream-enabled server and waits until it accepts connections.
    pub async fn start() -> Self {
        let store = tempfile::Builder::new().prefix("draft-publisher-nats-").tempdir().unwrap();
        let port = free_port();
        let mut server = Self { url: format!("nats://127.0.0.1:{port}"), port, store, process: None };
        server.start_again().await;
        server
    }

    /// Starts the server again on the same port and store.
    pub async fn start_again(&mut self) {
        assert!(self.process.is_none(), "already running");
        let process = Command::new(binary())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (scripts/provision.sh installs it)");
        self.process = Some(process);
        let addr = format!("127.0.0.1:{}", self.port);
        until("nats-server accepting connections", Duration::from_secs(10), || async {
            tokio::net::TcpStream::connect(&addr).await.is_ok()
        })
        .await;
    }

    /// Stops the server (SIGKILL: nothing is flushed beyond what JetStream
    /// already synced) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// A JetStream context on this server.
    pub async fn jetstream(&self) -> jetstream::Context {
        let client = async_nats::connect(self.url.as_str()).await.expect("connect to NATS");
        jetstream::new(client)
    }

    /// Every message of the organisation in the stream, in stream order.
    pub async fn messages(&self, organization_id: &str) -> Vec<StreamMessage> {
        let jetstream = self.jetstream().await;
        let Ok(stream) = jetstream.get_stream(STREAM).await else {
            return Vec::new();
        };
        let config = consumer::pull::Config {
            filter_subject: format!("draftpublisher.v1.events.{organization_id}.>"),
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        };
        let consumer = stream.create_consumer(config).await.expect("an ephemeral consumer");
        let mut messages = Vec::new();
        loop {
            let mut batch = consumer
                .fetch()
                .max_messages(1_000)
                .expires(Duration::from_millis(300))
                .messages()
                .await
                .expect("a fetch");
            let before = messages.len();
            while let Some(message) = batch.next().await {
                messages.push(StreamMessage::from(message.expect("a message")));
            }
            if messages.len() == before {
                return messages;
            }
        }
    }

    /// The organisation's messages once there are at least `count`.
    pub async fn until_messages(&self, organization_id: &str, count: usize) -> Vec<StreamMessage> {
        until_some(&format!("{count} message(s) in the stream"), Duration::from_secs(20), || async {
            let messages = self.messages(organization_id).await;
            (messages.len() >= count).then_some(messages)
        })
        .await
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A message as a consumer decodes it: subject, headers and payload.
#[derive(Debug, Clone)]
pub struct StreamMessage {
    pub subject: String,
    pub headers: HashMap<String, String>,
    pub change: pb::EventChange,
}

impl From<jetstream::Message> for StreamMessage {
    fn from(message: jetstream::Message) -> Self {
        let headers = message
            .headers
            .iter()
            .flat_map(|headers| headers.iter())
            .map(|(name, values)| {
                (name.to_string(), values.first().map(|v| v.to_string()).unwrap_or_default())
            })
            .collect();
        let change = pb::EventChange::decode(message.payload.as_ref()).expect("an EventChange payload");
        Self { subject: message.subject.to_string(), headers, change }
    }
}
