#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it got

use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::image::ImageId;
use crate::task::NewTask;

const IMAGE_MOVES: [ImageTransition; 7] = [
    ImageTransition::BeginUpload,
    ImageTransition::BeginStage,
    ImageTransition::BeginImport,
    ImageTransition::Activate,
    ImageTransition::Requeue,
    ImageTransition::Deactivate,
    ImageTransition::Reactivate,
];

fn t(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
}

fn data() -> StoredData {
    StoredData {
        size: 10,
        virtual_size: Some(20),
        checksum: "md5".into(),
        os_hash_algo: HashAlgo::Sha512,
        os_hash_value: "sha".into(),
        store: "local".into(),
    }
}

fn image_in(status: ImageStatus) -> Image {
    let mut image = Image::new_queued(
        ImageId::random(),
        Some(crate::identity::TenantId::from_trusted("acme")),
        t(0),
    );
    image.status = status;
    image.version = 7;
    image
}

fn apply(image: &Image, transition: ImageTransition, at: DateTime<Utc>) -> DomainResult<Image> {
    match transition {
        ImageTransition::BeginUpload => image.begin_upload(at),
        ImageTransition::BeginStage => image.begin_stage(at),
        ImageTransition::BeginImport => image.begin_import("task", &["local".into()], at),
        ImageTransition::Activate => image.activate(data(), at),
        ImageTransition::Requeue => image.requeue(at),
        ImageTransition::Deactivate => image.deactivate(at),
        ImageTransition::Reactivate => image.reactivate(at),
    }
}

#[test]
fn every_image_transition_is_allowed_exactly_where_the_table_says() {
    for from in ImageStatus::ALL {
        for transition in IMAGE_MOVES {
            let row = IMAGE_TRANSITIONS
                .iter()
                .find(|(f, t, _)| f == from && *t == transition);
            let outcome = apply(&image_in(*from), transition, t(5));
            match (row, outcome) {
                (Some((_, _, to)), Ok(next)) => {
                    assert_eq!(next.status, *to, "{from} {transition:?}");
                    assert_eq!(next.version, 8, "the version is bumped");
                    assert_eq!(next.updated_at, t(5));
                }
                (None, Err(DomainError::Conflict(message))) => {
                    assert!(message.contains(from.as_str()), "{message}");
                }
                (row, outcome) => panic!("{from} {transition:?}: table {row:?}, got {outcome:?}"),
            }
        }
    }
}

#[test]
fn activation_sets_the_data_fields_and_requeueing_clears_them() {
    let active = image_in(ImageStatus::Saving)
        .activate(data(), t(1))
        .unwrap();
    assert_eq!(
        (active.size, active.virtual_size, active.checksum.as_deref()),
        (Some(10), Some(20), Some("md5"))
    );
    assert_eq!(active.os_hash_algo.as_deref(), Some("sha512"));
    let mut saving = active.clone();
    saving.status = ImageStatus::Saving;
    let queued = saving.requeue(t(2)).unwrap();
    assert_eq!(
        (
            queued.size,
            queued.virtual_size,
            queued.checksum,
            queued.os_hash_algo,
            queued.os_hash_value
        ),
        (None, None, None, None, None)
    );
}

#[test]
fn an_import_holds_the_image_until_it_ends_and_says_how_it_ended() {
    let stores = ["a".to_owned(), "b".to_owned()];
    let importing = image_in(ImageStatus::Uploading)
        .begin_import("t1", &stores, t(1))
        .unwrap();
    assert_eq!(
        importing.properties.get(IMPORT_TASK).map(String::as_str),
        Some("t1")
    );
    assert_eq!(
        importing
            .properties
            .get(IMPORTING_TO_STORES)
            .map(String::as_str),
        Some("a,b")
    );
    let mut again = importing.clone();
    again.status = ImageStatus::Queued;
    let refused = again.begin_import("t2", &stores, t(2)).unwrap_err();
    assert!(refused.to_string().contains("active task t1"), "{refused}");

    let progressed = importing.import_progress(5, None, t(2));
    assert_eq!(
        progressed
            .properties
            .get(IMPORT_PROGRESS)
            .map(String::as_str),
        Some("5/")
    );
    let failed = progressed.fail_import(&stores[..1], t(3)).unwrap();
    assert_eq!(failed.status, ImageStatus::Queued);
    let listed = |image: &Image, key: &str| image.properties.get(key).cloned();
    assert_eq!(listed(&failed, FAILED_IMPORT).as_deref(), Some("a"));
    assert_eq!(listed(&failed, IMPORTING_TO_STORES).as_deref(), Some("b"));
    for key in [IMPORT_TASK, IMPORT_PROGRESS] {
        assert!(
            !failed.properties.contains_key(key),
            "{key} stays after failure"
        );
    }

    // Asking for a store again takes it off the failed list; the lists stay sorted.
    let retried = failed.begin_import("t3", &stores, t(4)).unwrap();
    assert_eq!(listed(&retried, FAILED_IMPORT).as_deref(), Some(""));
    assert_eq!(
        listed(&retried, IMPORTING_TO_STORES).as_deref(),
        Some("a,b")
    );
    let mut stored = data();
    stored.store = "b".into();
    let active = retried.activate_import(stored, t(5)).unwrap();
    assert_eq!(listed(&active, STORES).as_deref(), Some("b"));
    assert_eq!(listed(&active, IMPORTING_TO_STORES).as_deref(), Some("a"));
    assert!(active.is_held_by("t3"), "more stores may follow");
    let both = active.import_stored_in("a", t(6));
    assert_eq!(listed(&both, STORES).as_deref(), Some("a,b"));
    assert_eq!(listed(&both, IMPORTING_TO_STORES).as_deref(), Some(""));
    let ended = both.end_import(t(7));
    assert!(!ended.properties.contains_key(IMPORT_TASK));
    assert_eq!(listed(&ended, FAILED_IMPORT).as_deref(), Some(""));

    let one_left = ended.without_store("a", t(8));
    let copying = one_left.begin_copy("t4", &stores[..1], t(9)).unwrap();
    assert_eq!(copying.status, ImageStatus::Active);
    let partly = copying.import_failed_in("a", t(10));
    assert_eq!(listed(&partly, FAILED_IMPORT).as_deref(), Some("a"));
    let copy_failed = copying.fail_import(&stores[..1], t(10)).unwrap();
    assert_eq!(
        copy_failed.status,
        ImageStatus::Active,
        "a failed copy keeps the image"
    );
    assert_eq!(copy_failed.size, Some(10));
    assert_eq!(listed(&copy_failed, FAILED_IMPORT).as_deref(), Some("a"));
    assert_eq!(listed(&copy_failed, STORES).as_deref(), Some("b"));
}

#[test]
fn a_revision_keeps_the_status_and_bumps_the_version() {
    let image = image_in(ImageStatus::Active);
    let mut edited = image.clone();
    edited.name = Some("renamed".into());
    edited.status = ImageStatus::Queued;
    let next = image.revise(edited, t(3));
    assert_eq!(
        (next.status, next.version, next.updated_at),
        (ImageStatus::Active, 8, t(3))
    );
    assert_eq!(next.name.as_deref(), Some("renamed"));
}

fn task_in(status: TaskStatus, lease_until: Option<DateTime<Utc>>) -> Task {
    let export = json!({"type": "export", "input": {"image_uuid": "8e5c1c6e-0e2a-4d8b-9b64-0d6d2b4b2f10", "receiving_swift_container": "out"}});
    let new = NewTask::parse(export.as_object().expect("object")).expect("valid export");
    let mut task = Task::new_pending(new, crate::identity::TenantId::from_trusted("acme"), t(0));
    task.status = status;
    task.lease_until = lease_until;
    task.version = 3;
    task
}

#[test]
fn every_task_transition_is_allowed_exactly_where_the_table_says() {
    let lease = Duration::seconds(60);
    let ttl = Duration::hours(48);
    for from in TaskStatus::ALL {
        let task = task_in(*from, None);
        let attempts: [(TaskTransition, TaskStatus, DomainResult<Task>); 6] = [
            (
                TaskTransition::Claim,
                TaskStatus::Processing,
                task.claim(lease, t(10)),
            ),
            (
                TaskTransition::Renew,
                TaskStatus::Processing,
                task.renew(lease, t(10)),
            ),
            (
                TaskTransition::Release,
                TaskStatus::Processing,
                task.release(t(10)),
            ),
            (
                TaskTransition::Progress,
                TaskStatus::Processing,
                task.progressed(
                    crate::task::TaskProgress {
                        done: 5,
                        total: Some(10),
                        checkpoint: Some(4),
                    },
                    t(10),
                ),
            ),
            (
                TaskTransition::Finish,
                TaskStatus::Success,
                task.finish(Ok(json!({})), ttl, t(10)),
            ),
            (
                TaskTransition::Finish,
                TaskStatus::Failure,
                task.finish(Err("no".into()), ttl, t(10)),
            ),
        ];
        for (transition, to, outcome) in attempts {
            let allowed = TASK_TRANSITIONS
                .iter()
                .any(|(f, t, targets)| f == from && *t == transition && targets.contains(&to));
            match outcome {
                Ok(next) => {
                    assert!(allowed, "{from} {transition:?} → {to} was allowed");
                    assert_eq!((next.status, next.version, next.updated_at), (to, 4, t(10)));
                }
                Err(DomainError::Conflict(_)) => {
                    assert!(!allowed, "{from} {transition:?} → {to} refused")
                }
                Err(other) => panic!("{other}"),
            }
        }
    }
}

#[test]
fn a_claim_counts_the_attempt_and_holds_a_lease_another_worker_must_wait_for() {
    let lease = Duration::seconds(60);
    let held = task_in(TaskStatus::Pending, None)
        .claim(lease, t(0))
        .unwrap();
    assert_eq!((held.attempts, held.lease_until), (1, Some(t(60))));
    assert!(held.claim(lease, t(30)).is_err(), "the lease still holds");
    let taken_over = held.claim(lease, t(61)).unwrap();
    assert_eq!(
        (taken_over.attempts, taken_over.lease_until),
        (2, Some(t(121)))
    );
    assert_eq!(held.renew(lease, t(40)).unwrap().lease_until, Some(t(100)));
    assert_eq!(held.release(t(45)).unwrap().lease_until, Some(t(45)));
}

#[test]
fn only_a_checkpoint_further_than_any_before_forgives_earlier_interruptions() {
    let lease = Duration::seconds(60);
    let third = task_in(TaskStatus::Pending, None)
        .claim(lease, t(0))
        .and_then(|t1| t1.claim(lease, t(61)))
        .and_then(|t2| t2.claim(lease, t(122)))
        .unwrap();
    assert_eq!(third.attempts, 3);
    let at = |done, checkpoint| crate::task::TaskProgress {
        done,
        total: Some(100),
        checkpoint,
    };
    let moved = third.progressed(at(50, Some(40)), t(130)).unwrap();
    assert_eq!(moved.attempts, 1, "a first checkpoint");
    let again = moved
        .claim(lease, t(200))
        .and_then(|t4| t4.progressed(at(45, Some(40)), t(210)))
        .unwrap();
    assert_eq!(again.attempts, 2, "the same checkpoint proves nothing new");
    let no_checkpoint = again.progressed(at(60, None), t(220)).unwrap();
    assert_eq!(no_checkpoint.attempts, 2);
    let further = again.progressed(at(70, Some(64)), t(230)).unwrap();
    assert_eq!(further.attempts, 1);
}

#[test]
fn finishing_records_the_outcome_ends_the_lease_and_sets_the_expiry() {
    let held = task_in(TaskStatus::Processing, Some(t(60)));
    let done = held
        .finish(Ok(json!({"image_id": "x"})), Duration::hours(1), t(10))
        .unwrap();
    assert_eq!(
        (done.result, done.lease_until, done.expires_at),
        (Some(json!({"image_id": "x"})), None, Some(t(3610)))
    );
    let failed = held
        .finish(Err("the object is gone".into()), Duration::hours(1), t(10))
        .unwrap();
    assert_eq!(
        (failed.message.as_str(), failed.result),
        ("the object is gone", None)
    );
}
