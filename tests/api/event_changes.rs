//! ListEventChanges and WatchEventChanges: every publication reaches the
//! feed exactly once, in one order, with cursors that resume anywhere.

use std::time::Duration;

use draft_publisher::proto::v1 as pb;
use tonic::Code;

use crate::support::{locks::until_waiting_on_locks, metrics, *};

const HOUR: Duration = Duration::from_secs(3600);

fn ids(changes: &[pb::EventChange]) -> Vec<&str> {
    changes.iter().map(|c| c.id.as_str()).collect()
}

#[tokio::test]
async fn an_immediate_publish_writes_one_published_change() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let draft = app.complete_draft(&org).await;

    let published = app.publish(&org, &draft.id).await.unwrap();

    let changes = app.until_changes(&org, 1).await;
    assert_eq!(ids(&changes), [format!("{}.published", published.event_id)]);
    let change = &changes[0];
    assert_eq!(change.r#type(), pb::EventChangeType::Published);
    let event = change.event.as_ref().unwrap();
    assert_eq!(event.id, published.event_id);
    assert_eq!(event.status(), pb::EventStatus::Published);
    assert_eq!(change.change_time, event.publish_time);
    assert!(!change.cursor.is_empty());
}

#[tokio::test]
async fn a_scheduled_publish_is_announced_then_released_at_its_time_not_before() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let draft = app.complete_draft(&org).await;
    let publish_at = ts(app.now().unix_seconds() + 3600);
    let mut watcher = app.watch(&org, "").await;

    let published = app.publish_draft(draft.publish_at_request(Some(publish_at))).await.unwrap();

    let scheduled = watcher.take(1).await.remove(0);
    assert_eq!(scheduled.id, format!("{}.scheduled", published.event_id));
    assert_eq!(scheduled.r#type(), pb::EventChangeType::Scheduled);
    let event = scheduled.event.as_ref().unwrap();
    assert_eq!(event.status(), pb::EventStatus::Scheduled);
    assert_eq!(scheduled.change_time, event.create_time);
    // Not before its time: the sequencer polls twice a second, so a second
    // of quiet would have shown an early release.
    assert!(watcher.is_quiet_for(Duration::from_secs(1)).await, "PUBLISHED released early");
    assert_eq!(app.changes_after(&org, "").await.len(), 1);

    app.clock.advance(HOUR);

    let live = watcher.take(1).await.remove(0);
    assert_eq!(live.id, format!("{}.published", published.event_id));
    assert_eq!(live.event.as_ref().unwrap().status(), pb::EventStatus::Published);
    assert_eq!(live.change_time, Some(publish_at));
    assert_eq!(ids(&app.changes_after(&org, "").await), [scheduled.id.as_str(), live.id.as_str()]);
}

#[tokio::test]
async fn repeated_publishes_write_no_second_change() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let draft = app.complete_draft(&org).await;
    let first = app.publish(&org, &draft.id).await.unwrap();
    let calls: Vec<_> = (0..8).map(|_| app.publish(&org, &draft.id)).collect();
    for answer in futures::future::join_all(calls).await {
        assert_eq!(answer.unwrap().event_id, first.event_id);
    }

    let changes = app.until_changes(&org, 1).await;

    assert_eq!(ids(&changes), [format!("{}.published", first.event_id)]);
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM event_changes").fetch_one(&app.db).await.unwrap();
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn pages_follow_the_cursor_and_next_cursor_is_stable_at_the_end() {
    let app = TestApp::spawn().await;
    let org = new_id();
    for _ in 0..5 {
        let draft = app.complete_draft(&org).await;
        app.publish(&org, &draft.id).await.unwrap();
    }
    let all = app.until_changes(&org, 5).await;

    let mut cursor = String::new();
    let mut paged = Vec::new();
    for _ in 0..5 {
        let page = app.list_event_changes(list_changes_request(&org, &cursor, 2)).await.unwrap();
        if page.changes.is_empty() {
            assert_eq!(page.next_cursor, cursor, "an empty page returns the cursor it was given");
            break;
        }
        assert_eq!(page.next_cursor, page.changes.last().unwrap().cursor);
        cursor = page.next_cursor;
        paged.extend(page.changes);
    }

    assert_eq!(paged, all);
    let resumed = app.changes_after(&org, &all[2].cursor).await;
    assert_eq!(resumed, all[3..]);
}

#[tokio::test]
async fn each_organisation_sees_only_its_own_changes() {
    let app = TestApp::spawn().await;
    let (mine, theirs) = (new_id(), new_id());
    let draft = app.complete_draft(&theirs).await;
    app.publish(&theirs, &draft.id).await.unwrap();
    let draft = app.complete_draft(&mine).await;
    let published = app.publish(&mine, &draft.id).await.unwrap();

    let changes = app.until_changes(&mine, 1).await;

    assert_eq!(ids(&changes), [format!("{}.published", published.event_id)]);
    assert_eq!(app.until_changes(&theirs, 1).await.len(), 1);
}

#[tokio::test]
async fn bad_foreign_and_tampered_cursors_and_negative_page_sizes_are_invalid() {
    let app = TestApp::spawn().await;
    let (org, other) = (new_id(), new_id());
    let draft = app.complete_draft(&other).await;
    app.publish(&other, &draft.id).await.unwrap();
    let foreign = app.until_changes(&other, 1).await.remove(0).cursor;
    let mut tampered = foreign.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();

    for cursor in ["not a cursor", foreign.as_str(), tampered.as_str()] {
        let listed = app.list_event_changes(list_changes_request(&org, cursor, 0)).await.unwrap_err();
        let details = assert_error(&listed, Code::InvalidArgument, "INVALID_CURSOR");
        assert_eq!(details.bad_request().unwrap().field_violations[0].field, "after_cursor");
        let watched = app.watch_event_changes(&org, cursor).await.unwrap_err();
        assert_error(&watched, Code::InvalidArgument, "INVALID_CURSOR");
    }
    let negative = app.list_event_changes(list_changes_request(&org, "", -1)).await.unwrap_err();
    assert_invalid_field(&negative, "page_size");
    let malformed = app.watch_event_changes("not-a-uuid", "").await.unwrap_err();
    assert_invalid_field(&malformed, "organization_id");
}

#[tokio::test]
async fn page_size_zero_means_100_and_over_1000_means_1000() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let rows: Vec<_> = (0..101).map(|_| uuid::Uuid::now_v7()).collect();
    insert_published_events(&app, &org, &rows).await;
    app.until_changes(&org, 101).await;

    let default = app.list_event_changes(list_changes_request(&org, "", 0)).await.unwrap();
    let capped = app.list_event_changes(list_changes_request(&org, "", i32::MAX)).await.unwrap();

    assert_eq!(default.changes.len(), 100);
    assert_eq!(capped.changes.len(), 101);
}

/// Publishes events behind the service's back, as many as a test needs
/// quickly: the same rows the publish statement writes.
async fn insert_published_events(app: &TestApp, org: &str, drafts: &[uuid::Uuid]) {
    let org: uuid::Uuid = org.parse().unwrap();
    sqlx::query(
        r#"
        WITH d AS (
            INSERT INTO drafts (id, organization_id, title, starts_at, ends_at, status, event_id,
                                create_time, update_time, publish_time)
            SELECT id, $2, 't', now(), now() + interval '1 hour', 'published', id, now(), now(), now()
            FROM unnest($1::uuid[]) AS id
            RETURNING id
        ), e AS (
            INSERT INTO events (id, organization_id, draft_id, title, description, location,
                                starts_at, ends_at, publish_time, create_time)
            SELECT id, $2, id, 't', '', '', now(), now() + interval '1 hour', now(), now() FROM d
            RETURNING id
        )
        INSERT INTO event_changes (event_id, kind, organization_id, change_time)
        SELECT id, 2, $2, now() FROM e
        "#,
    )
    .bind(drafts)
    .bind(org)
    .execute(&app.db)
    .await
    .expect("events inserted");
}

/// The classic outbox bug, played deterministically: A's publish takes its
/// change row first but commits last. A reader that has read B must still
/// get A, after B, exactly once.
#[tokio::test]
async fn a_change_committed_late_is_never_skipped_by_a_cursor() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let (a, b) = (app.complete_draft(&org).await, app.complete_draft(&org).await);
    let mut watcher = app.watch(&org, "").await;

    // A inserts its event and changes, then waits on the draft row the test holds.
    let holder = app.hold_draft(&a.id).await;
    let publish_a = app.publish_in_background(&a);
    until_waiting_on_locks(&app.db, 1).await;
    let unpositioned: i64 =
        sqlx::query_scalar("SELECT count(*) FROM event_changes").fetch_one(&app.db).await.unwrap();
    assert_eq!(unpositioned, 0, "A's change rows are not visible before A commits");
    let b_event = app.publish(&org, &b.id).await.unwrap().event_id;
    let first = watcher.take(1).await;
    assert_eq!(ids(&first), [format!("{b_event}.published")]);
    let after_b = app.list_event_changes(list_changes_request(&org, "", 0)).await.unwrap().next_cursor;

    holder.rollback().await.unwrap();
    let a_event = publish_a.await.unwrap().unwrap().event_id;

    let second = watcher.take(1).await;
    assert_eq!(ids(&second), [format!("{a_event}.published")]);
    assert_eq!(ids(&app.changes_after(&org, &after_b).await), [format!("{a_event}.published")]);
    assert_eq!(ids(&app.changes_after(&org, "").await), [ids(&first)[0], ids(&second)[0]]);
}

#[tokio::test]
async fn a_watch_ends_unavailable_at_shutdown_and_resumes_on_a_replica_without_loss() {
    let mut app = TestApp::spawn().await;
    let replica = app.spawn_replica().await;
    let org = new_id();
    let first = app.complete_draft(&org).await;
    app.publish(&org, &first.id).await.unwrap();
    let mut watcher = app.watch(&org, "").await;
    let seen = watcher.take(1).await.remove(0);

    app.begin_shutdown();
    match watcher.next_within(DELIVERY_WITHIN).await {
        Some(Err(status)) => {
            assert_error(&status, Code::Unavailable, "SHUTTING_DOWN");
        }
        other => panic!("expected UNAVAILABLE at shutdown, got {other:?}"),
    }
    app.stopped().await.unwrap();

    let on_replica = TestClient::connect(replica.addr).await;
    let second = on_replica.complete_draft(&org).await;
    let published = on_replica.publish(&org, &second.id).await.unwrap();
    let mut resumed = on_replica.watch(&org, &seen.cursor).await;
    let next = resumed.take(1).await;
    assert_eq!(ids(&next), [format!("{}.published", published.event_id)]);
}

#[tokio::test]
async fn watchers_on_every_replica_see_every_change_once_in_the_same_order() {
    let app = TestApp::spawn().await;
    let replica = app.spawn_replica().await;
    let on_replica = TestClient::connect(replica.addr).await;
    let org = new_id();
    let mut here = app.watch(&org, "").await;
    let mut there = on_replica.watch(&org, "").await;
    let clients = [app.client(), on_replica.clone()];

    let mut publishers = Vec::new();
    for n in 0..16 {
        let (client, org) = (clients[n % 2].clone(), org.clone());
        publishers.push(tokio::spawn(async move {
            let mut events = Vec::new();
            for _ in 0..6 {
                let draft = client.complete_draft(&org).await;
                let (a, b) = tokio::join!(client.publish(&org, &draft.id), client.publish(&org, &draft.id));
                assert_eq!(a.as_ref().unwrap().event_id, b.unwrap().event_id);
                events.push(a.unwrap().event_id);
            }
            events
        }));
    }
    let mut expected = Vec::new();
    for publisher in publishers {
        expected.extend(publisher.await.unwrap());
    }

    let seen_here = here.take(expected.len()).await;
    let seen_there = there.take(expected.len()).await;
    assert_eq!(seen_here, seen_there, "one order on every replica");
    let mut delivered: Vec<_> = ids(&seen_here).into_iter().map(str::to_owned).collect();
    delivered.sort();
    let mut wanted: Vec<_> = expected.iter().map(|e| format!("{e}.published")).collect();
    wanted.sort();
    assert_eq!(delivered, wanted, "every change exactly once");
    assert!(here.is_quiet_for(Duration::from_millis(300)).await, "no change twice");
    assert_eq!(app.changes_after(&org, "").await, seen_here, "List and Watch agree");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_watch_streams_cancelled_mid_flight_leave_nothing_behind() {
    let app = TestApp::spawn().await;
    let org = new_id();
    let backlog: Vec<_> = (0..300).map(|_| uuid::Uuid::now_v7()).collect();
    insert_published_events(&app, &org, &backlog).await;
    app.until_changes(&org, backlog.len()).await;
    let mut connections = Vec::new();
    for _ in 0..10 {
        connections.push(app.connect().await);
    }

    // Each stream reads part of the backlog (or none of it) and is dropped
    // with the rest in flight.
    let mut streams = Vec::new();
    for n in 0..300 {
        let mut watcher = connections[n % connections.len()].watch(&org, "").await;
        watcher.take(n % 3).await;
        streams.push(watcher);
    }
    let open = |count: f64| {
        let addr = app.metrics_addr;
        async move { metrics::metric_value(addr, "draftpublisher_watch_streams", &[]).await == Some(count) }
    };
    until("300 Watch streams open", DELIVERY_WITHIN, || open(300.0)).await;
    drop(streams);

    until("every Watch stream's task gone", DELIVERY_WITHIN, || open(0.0)).await;
    until("every pooled connection back", DELIVERY_WITHIN, || async {
        metrics::metric_value(app.metrics_addr, "draftpublisher_db_pool_connections", &[("state", "in_use")])
            .await
            == Some(0.0)
    })
    .await;
    let mut watcher = app.watch(&org, "").await;
    assert_eq!(watcher.take(backlog.len()).await.len(), backlog.len(), "the feed still serves");
}
