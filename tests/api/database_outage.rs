//! The database going away under a running service, and coming back.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use draft_publisher::{
    app::App, domain::SystemClock, prepare_database, proto::v1 as pb, server::ServerSettings,
    store::PoolSettings,
};
use tonic::Code;

use crate::{
    helpers::*,
    support::pg_cluster::{PgCluster, StopMode},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_database_fails_fast_and_the_service_recovers_when_it_returns() {
    let cluster = PgCluster::start();
    let store = prepare_database(&cluster.url("draft_publisher"), &PoolSettings::default()).await.unwrap();
    let (addr, _shutdown, _server) =
        spawn_server(App::new(store, Arc::new(SystemClock)), ServerSettings::default()).await;
    let mut client = connect(addr).await;
    let org = new_id();
    let draft = client.create_draft(complete_draft_request(&org)).await.unwrap().into_inner().draft.unwrap();
    let get = pb::GetDraftRequest { organization_id: org.clone(), draft_id: draft.id.clone() };

    cluster.stop(StopMode::Fast);
    let started = Instant::now();
    let status = client.get_draft(get.clone()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");
    let status = client
        .publish_draft(pb::PublishDraftRequest {
            organization_id: org.clone(),
            draft_id: draft.id.clone(),
            publish_at: None,
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");

    cluster.start_again();
    let mut recovered = None;
    for _ in 0..500 {
        if let Ok(answer) = client.get_draft(get.clone()).await {
            recovered = answer.into_inner().draft;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(recovered.expect("served again without a restart").id, draft.id);
}
