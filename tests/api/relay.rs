//! The NATS JetStream relay: every change reaches the stream exactly once,
//! as a CloudEvent, in feed order per organisation, whatever fails.

use std::time::Duration;

use draft_publisher::proto::v1 as pb;

use crate::support::{
    health::{ServingStatus, health_status},
    metrics::metric_value,
    nats::{self, NatsServer},
    *,
};

const HOUR: Duration = Duration::from_secs(3600);

fn ids(messages: &[nats::StreamMessage]) -> Vec<String> {
    messages.iter().map(|m| m.headers["Nats-Msg-Id"].clone()).collect()
}

async fn until_all_sent(app: &TestApp) {
    until("every change recorded as sent", Duration::from_secs(20), || async {
        unsent_changes(&app.db).await == 0
    })
    .await;
}

#[tokio::test]
async fn every_change_reaches_the_stream_once_as_a_cloudevent() {
    let nats = NatsServer::start().await;
    let app = TestApp::builder().relay_to(&nats.url).spawn().await;
    let org = new_id();
    let now_draft = app.complete_draft(&org).await;
    app.publish(&org, &now_draft.id).await.unwrap();
    let later_draft = app.complete_draft(&org).await;
    let publish_at = ts(app.now().unix_seconds() + 3600);
    app.publish_draft(later_draft.publish_at_request(Some(publish_at))).await.unwrap();
    app.until_changes(&org, 2).await;
    app.clock.advance(HOUR);

    let feed = app.until_changes(&org, 3).await;
    let messages = nats.until_messages(&org, 3).await;

    assert_eq!(
        messages.iter().map(|m| m.change.clone()).collect::<Vec<_>>(),
        feed,
        "feed order, same payload"
    );
    for (message, change) in messages.iter().zip(&feed) {
        let event = change.event.as_ref().unwrap();
        let kind = if change.r#type() == pb::EventChangeType::Scheduled { "scheduled" } else { "published" };
        assert_eq!(message.subject, format!("draftpublisher.v1.events.{org}.{kind}"));
        let h = &message.headers;
        assert_eq!(h["Nats-Msg-Id"], change.id);
        assert_eq!(h["ce-id"], change.id);
        assert_eq!(h["ce-specversion"], "1.0");
        assert_eq!(h["ce-source"], format!("/draftpublisher/v1/organizations/{org}"));
        assert_eq!(h["ce-type"], format!("draftpublisher.v1.event.{kind}"));
        assert_eq!(h["ce-subject"], event.id);
        assert_eq!(h["Content-Type"], "application/protobuf");
        let time = change.change_time.unwrap();
        let parsed =
            time::OffsetDateTime::parse(&h["ce-time"], &time::format_description::well_known::Rfc3339)
                .expect("ce-time is RFC 3339");
        assert_eq!(
            parsed.unix_timestamp_nanos(),
            i128::from(time.seconds) * 1_000_000_000 + i128::from(time.nanos)
        );
    }
    until_all_sent(&app).await;
    assert_eq!(
        metric_value(app.metrics_addr, "draftpublisher_event_changes_sent_total", &[]).await,
        Some(3.0)
    );
    assert_eq!(
        metric_value(app.metrics_addr, "draftpublisher_event_changes_written_total", &[]).await,
        Some(3.0)
    );
}

/// A relay that crashed after JetStream's PubAck and before marking the
/// change sent leaves it unmarked: the state this test puts the row back
/// into. The resend carries the same Nats-Msg-Id and is acknowledged as a
/// duplicate: still one message per change.
#[tokio::test]
async fn a_resend_after_a_crash_before_marking_is_a_duplicate() {
    let nats = NatsServer::start().await;
    let app = TestApp::builder().relay_to(&nats.url).spawn().await;
    let org = new_id();
    for _ in 0..3 {
        let draft = app.complete_draft(&org).await;
        app.publish(&org, &draft.id).await.unwrap();
    }
    nats.until_messages(&org, 3).await;
    until_all_sent(&app).await;

    // As if the relay died after the PubAcks, before recording them.
    sqlx::query("UPDATE relay_progress SET position = 0").execute(&app.db).await.unwrap();
    until_all_sent(&app).await;

    let messages = nats.messages(&org).await;
    assert_eq!(messages.len(), 3, "{:?}", ids(&messages));
    assert_eq!(
        metric_value(app.metrics_addr, "draftpublisher_event_changes_sent_total", &[]).await,
        Some(6.0)
    );
}

#[tokio::test]
async fn publishes_go_on_while_nats_is_down_and_delivery_resumes_by_itself() {
    let mut nats = NatsServer::start().await;
    let app = TestApp::builder().relay_to(&nats.url).spawn().await;
    let org = new_id();
    let first = app.complete_draft(&org).await;
    app.publish(&org, &first.id).await.unwrap();
    nats.until_messages(&org, 1).await;

    nats.stop();
    let mut published = Vec::new();
    for _ in 0..5 {
        let draft = app.complete_draft(&org).await;
        published.push(app.publish(&org, &draft.id).await.expect("publish works without NATS").event_id);
    }
    assert_eq!(health_status(app.addr, "").await, ServingStatus::Serving);
    until("the relay reports errors and a backlog", Duration::from_secs(20), || async {
        let errors = metric_value(app.metrics_addr, "draftpublisher_relay_errors_total", &[]).await;
        let age =
            metric_value(app.metrics_addr, "draftpublisher_event_changes_oldest_unsent_seconds", &[]).await;
        errors.unwrap_or(0.0) > 0.0 && age.unwrap_or(0.0) > 0.0
    })
    .await;
    assert_eq!(unsent_changes(&app.db).await, 5);

    nats.start_again().await;

    let messages = nats.until_messages(&org, 6).await;
    until_all_sent(&app).await;
    let delivered = ids(&messages);
    assert_eq!(delivered.len(), 6, "{delivered:?}");
    for event_id in published {
        assert!(delivered.contains(&format!("{event_id}.published")));
    }
    until("the backlog gauge back at 0", Duration::from_secs(20), || async {
        metric_value(app.metrics_addr, "draftpublisher_event_changes_oldest_unsent_seconds", &[]).await
            == Some(0.0)
    })
    .await;
}

#[tokio::test]
async fn replicas_relaying_together_send_each_change_once_in_feed_order() {
    let nats = NatsServer::start().await;
    let app = TestApp::builder().relay_to(&nats.url).spawn().await;
    let replica = app.spawn_relaying_replica(&nats.url).await;
    let on_replica = TestClient::connect(replica.addr).await;
    let org = new_id();
    let clients = [app.client(), on_replica];

    let mut publishers = Vec::new();
    for n in 0..16 {
        let (client, org) = (clients[n % 2].clone(), org.clone());
        publishers.push(tokio::spawn(async move {
            for _ in 0..5 {
                let draft = client.complete_draft(&org).await;
                client.publish(&org, &draft.id).await.unwrap();
            }
        }));
    }
    for publisher in publishers {
        publisher.await.unwrap();
    }

    let feed = app.until_changes(&org, 80).await;
    let messages = nats.until_messages(&org, 80).await;
    until_all_sent(&app).await;
    let messages_again = nats.messages(&org).await;
    assert_eq!(messages_again.len(), 80, "one message per change");
    let feed_ids: Vec<String> = feed.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids(&messages), feed_ids, "the stream in feed order");
}
