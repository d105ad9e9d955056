//! The server around the service: reflection, health, limits, outages and
//! graceful shutdown.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use draft_publisher::{App, PoolSettings, Store, SystemClock, proto::v1 as pb, server::ServerSettings};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::*;

const SERVICE: &str = "draftpublisher.v1.DraftPublisher";

/// Polls health until it reports `wanted`, for at most `within`.
async fn until_health(addr: std::net::SocketAddr, wanted: ServingStatus, within: Duration) -> Duration {
    let started = Instant::now();
    while started.elapsed() < within {
        if health_status(addr, SERVICE).await == wanted && health_status(addr, "").await == wanted {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("health did not become {wanted:?} within {within:?}");
}

#[tokio::test]
async fn reflection_lists_the_services_in_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};
    let app = spawn_app().await;

    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel(app.addr).await);
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut answers =
        client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answers.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list")
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&SERVICE.to_owned()), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health".to_owned()), "{names:?}");

    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel(app.addr).await);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
            SERVICE.to_owned(),
        )),
    };
    let mut answers =
        client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let response = answers.next().await.unwrap().unwrap().message_response;
    assert!(
        matches!(response, Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()),
        "{response:?}"
    );
}

#[tokio::test]
async fn health_is_serving_while_the_database_answers() {
    let app = spawn_app().await;

    until_health(app.addr, ServingStatus::Serving, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn unreachable_database_is_unavailable_fast_and_not_serving() {
    // A server whose database does not exist at all: nothing listens on port 1.
    let settings = PoolSettings { acquire_timeout: Duration::from_secs(2), ..PoolSettings::default() };
    let store = Store::connect_lazy("postgres://postgres@127.0.0.1:1/none", &settings).unwrap();
    let app = App::new(store.clone(), Arc::new(SystemClock));
    let (addr, _shutdown, _server) = spawn_server(app, store, ServerSettings::default()).await;
    let mut client = connect(addr).await;

    let started = Instant::now();
    let status = client
        .get_draft(pb::GetDraftRequest { organization_id: new_id(), draft_id: new_id() })
        .await
        .unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");
    assert_eq!(health_status(addr, SERVICE).await, ServingStatus::NotServing);
    assert_eq!(health_status(addr, "").await, ServingStatus::NotServing);
}

#[tokio::test]
async fn oversized_message_is_rejected_and_the_server_keeps_serving() {
    let app = spawn_app().await;
    let org = new_id();
    let request =
        pb::CreateDraftRequest { description: "x".repeat(5 * 1024 * 1024), ..complete_draft_request(&org) };

    let status = app.client.clone().create_draft(request).await.unwrap_err();

    assert!(matches!(status.code(), Code::ResourceExhausted | Code::OutOfRange), "{status:?}");
    assert_eq!(app.count("SELECT count(*) FROM drafts").await, 0);
    app.complete_draft(&org).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_finish_after_the_shutdown_signal() {
    let mut app = spawn_app().await;
    let draft = app.complete_draft(&new_id()).await;
    let mut watch = HealthClient::new(channel(app.addr).await)
        .watch(HealthCheckRequest { service: SERVICE.to_owned() })
        .await
        .unwrap()
        .into_inner();
    until_health(app.addr, ServingStatus::Serving, Duration::from_secs(5)).await;

    // Hold the draft's row so that a publish stays in flight.
    let blocker = app.hold_draft(&draft.id).await;
    let in_flight = app.publish_in_background(&draft);
    app.until_a_call_waits_on_a_lock().await;

    app.begin_shutdown();
    // Health turns NOT_SERVING as soon as shutdown begins.
    loop {
        let status = watch.next().await.expect("watch stream open").unwrap().status();
        if status == ServingStatus::NotServing {
            break;
        }
    }
    drop(watch);
    blocker.commit().await.unwrap();

    let answer = in_flight.await.unwrap().expect("the call in flight finishes OK");
    assert!(!answer.already_published);
    app.stopped().await.expect("serve returns Ok");
    assert!(channel_refused(app.addr).await, "no new connections after shutdown");
    assert_eq!(app.count("SELECT count(*) FROM events").await, 1);
}

#[tokio::test]
async fn open_health_watches_end_at_shutdown_instead_of_holding_it_for_the_grace_period() {
    let settings = ServerSettings { shutdown_grace: Duration::from_secs(600), ..ServerSettings::default() };
    let mut app = spawn_app_with(settings).await;
    let mut watch = HealthClient::new(channel(app.addr).await)
        .watch(HealthCheckRequest { service: SERVICE.to_owned() })
        .await
        .unwrap()
        .into_inner();
    watch.next().await.expect("the current status").unwrap();

    app.begin_shutdown();
    let mut last = None;
    let streamed = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(answer) = watch.next().await {
            last = Some(answer.expect("the stream ends cleanly").status());
        }
    });

    streamed.await.expect("the Watch stream ended at shutdown");
    assert_eq!(last, Some(ServingStatus::NotServing));
    app.stopped().await.expect("serve returns Ok long before the grace period");
}

async fn channel_refused(addr: std::net::SocketAddr) -> bool {
    tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.is_err()
}
