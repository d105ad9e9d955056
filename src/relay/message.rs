//! One change as a NATS message: CloudEvents 1.0 in binary mode on NATS
//! headers, the serialized `EventChange` as payload, and the change id as
//! `Nats-Msg-Id` for JetStream's deduplication.
//!
//! In traces a batch is one `relay` span, with a producer span per message
//! from its send to its PubAck (subject and change id, never the payload).

use async_nats::{HeaderMap, jetstream};
use prost::Message as _;
use tracing::{Span, field::Empty};

use crate::{
    api::encode,
    domain::{ChangeId, EventChange},
};

/// The subject of a change: per organisation and kind, under the stream's.
pub fn subject(change: &EventChange) -> String {
    format!("draftpublisher.v1.events.{}.{}", change.event.organization_id, change.kind.name())
}

pub fn headers(change: &EventChange) -> HeaderMap {
    let id = change.id().to_string();
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", id.as_str());
    headers.insert("ce-specversion", "1.0");
    headers.insert("ce-id", id.as_str());
    headers.insert(
        "ce-source",
        format!("/draftpublisher/v1/organizations/{}", change.event.organization_id).as_str(),
    );
    headers.insert("ce-type", format!("draftpublisher.v1.event.{}", change.kind.name()).as_str());
    headers.insert("ce-time", change.change_time().to_string().as_str());
    headers.insert("ce-subject", change.event.id.to_string().as_str());
    headers.insert("Content-Type", "application/protobuf");
    headers
}

/// Publishes the changes in order, all in flight at once, and returns how
/// many of them, from the first, JetStream acknowledged (new or duplicate)
/// before the first failure, and that failure. Changes after a failure are
/// not counted as sent even if JetStream stored them: their resend is a
/// duplicate.
#[tracing::instrument(name = "relay", skip_all, fields(messaging.batch.message_count = changes.len()))]
pub async fn publish_in_order(
    jetstream: &jetstream::Context,
    changes: &[EventChange],
) -> (usize, Option<anyhow::Error>) {
    let mut pending = Vec::with_capacity(changes.len());
    let mut failure = None;
    for change in changes {
        let message = jetstream::message::PublishMessage::build()
            .headers(headers(change))
            .payload(encode::event_change(change.clone()).encode_to_vec().into());
        let subject = subject(change);
        let span = publish_span(&subject, change.id());
        match jetstream.send_publish(subject, message).await {
            Ok(ack) => pending.push((change.id(), ack, span)),
            Err(error) => {
                span.record("otel.status_code", "error");
                failure = Some(anyhow::Error::new(error).context(format!("publishing {}", change.id())));
                break;
            }
        }
    }
    let in_flight = pending.len();
    for (acknowledged, (id, ack, span)) in pending.into_iter().enumerate() {
        if let Err(error) = ack.await {
            span.record("otel.status_code", "error");
            return (acknowledged, Some(anyhow::Error::new(error).context(format!("acknowledging {id}"))));
        }
    }
    (in_flight, failure)
}

/// One message's span: it ends when dropped, after its PubAck. At DEBUG,
/// like the store's statement spans: traces take them (see
/// `telemetry::traces`), logs at INFO do not pay for them per message.
fn publish_span(subject: &str, id: ChangeId) -> Span {
    tracing::debug_span!(
        "publish",
        otel.name = "send draftpublisher.v1.events",
        otel.kind = "producer",
        otel.status_code = Empty,
        messaging.system = "nats",
        messaging.operation.type = "send",
        messaging.destination.name = subject,
        messaging.message.id = %id,
    )
}
