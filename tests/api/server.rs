//! The server around the service: reflection, health, limits, outages and
//! graceful shutdown.

use std::time::{Duration, Instant};

use draft_publisher::proto::v1 as pb;
use tokio_stream::StreamExt;
use tonic::Code;

use crate::support::{
    health::{NAMES, SERVICE, ServingStatus, health_status, until_health},
    net::connection_refused,
    *,
};

/// Longest the first database probe may take on a loaded machine.
const START_UP: Duration = Duration::from_secs(10);

/// What a Watch that had seen SERVING streamed after shutdown began, until
/// it ended: NOT_SERVING (reported again, perhaps, as the probe stops), and
/// never SERVING.
#[track_caller]
fn assert_turned_not_serving_for_good(statuses: &[ServingStatus]) {
    assert!(!statuses.is_empty(), "the Watch ended without NOT_SERVING");
    assert!(statuses.iter().all(|s| *s == ServingStatus::NotServing), "{statuses:?}");
}

#[tokio::test]
async fn reflection_lists_the_services_in_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};
    let app = TestApp::spawn().await;

    let mut client = v1::server_reflection_client::ServerReflectionClient::new(app.channel().await);
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

    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(app.channel().await);
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
    let app = TestApp::spawn().await;

    until_health(app.addr, ServingStatus::Serving, START_UP).await;
}

#[tokio::test]
async fn unreachable_database_is_unavailable_fast_and_not_serving() {
    let app = TestApp::builder()
        .unreachable_database()
        .pool(|pool| pool.acquire_timeout = Duration::from_secs(2))
        .spawn()
        .await;

    let started = Instant::now();
    let status = app.get_draft(get_draft_request(&new_id(), &new_id())).await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");
    for name in NAMES {
        assert_eq!(health_status(app.addr, name).await, ServingStatus::NotServing, "{name:?}");
    }
}

#[tokio::test]
async fn oversized_message_is_rejected_and_the_server_keeps_serving() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let request =
        pb::CreateDraftRequest { description: "x".repeat(5 * 1024 * 1024), ..complete_draft_request(&org) };

    let status = app.create_draft(request).await.unwrap_err();

    assert_error(&status, Code::ResourceExhausted, "MESSAGE_TOO_LARGE");
    assert_eq!(app.count("SELECT count(*) FROM drafts").await, 0);
    // On the same connection.
    app.complete_draft(&org).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_from_serving_to_not_serving_when_shutdown_begins_and_calls_in_flight_finish() {
    let mut app = TestApp::spawn().await;
    let draft = app.complete_draft(&new_id()).await;
    let mut watch = app.watch_health(SERVICE).await;
    watch.until(ServingStatus::Serving, START_UP).await;
    // Hold the draft's row so that a publish stays in flight.
    let holder = app.hold_draft(&draft.id).await;
    let in_flight = app.publish_in_background(&draft);
    app.until_calls_wait_on_locks(1).await;

    app.begin_shutdown();

    assert_turned_not_serving_for_good(&watch.until_ended(Duration::from_secs(30)).await);
    holder.commit().await.unwrap();
    let answer = in_flight.await.unwrap().expect("the call in flight finishes OK");
    assert!(!answer.already_published);
    app.stopped().await.expect("serve returns Ok");
    assert!(connection_refused(app.addr).await, "no new connections after shutdown");
    assert_eq!(app.count("SELECT count(*) FROM events").await, 1);
}

#[tokio::test]
async fn open_health_watches_end_at_shutdown_instead_of_holding_it_for_the_grace_period() {
    let mut app = TestApp::builder().shutdown_grace(Duration::from_secs(600)).spawn().await;
    let mut watch = app.watch_health(SERVICE).await;
    watch.until(ServingStatus::Serving, START_UP).await;

    app.begin_shutdown();
    let after_shutdown = watch.until_ended(Duration::from_secs(30)).await;

    assert_turned_not_serving_for_good(&after_shutdown);
    app.stopped().await.expect("serve returns Ok long before the grace period");
}

/// `draft-publisher health-check`, as probes and scripts run it: exit 0 and
/// SERVING from a serving server, non-zero from one whose database is gone
/// and from an address nothing listens on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_check_command_exits_zero_only_for_a_serving_server() {
    let serving = TestApp::spawn().await;
    until_health(serving.addr, ServingStatus::Serving, START_UP).await;
    let down = TestApp::builder().unreachable_database().spawn().await;
    let check = |addr: String| {
        tokio::task::spawn_blocking(move || {
            binary::command("").args(["health-check", "--addr", &addr]).output().expect("health-check runs")
        })
    };

    let ok = check(serving.addr.to_string()).await.unwrap();
    let not_serving = check(down.addr.to_string()).await.unwrap();
    let nobody = check(format!("127.0.0.1:{}", free_port())).await.unwrap();

    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "SERVING");
    assert_eq!(not_serving.status.code(), Some(1), "{not_serving:?}");
    assert_eq!(String::from_utf8_lossy(&not_serving.stdout).trim(), "NOT_SERVING");
    assert_eq!(nobody.status.code(), Some(1), "{nobody:?}");
}
