//! Deleting instances, and the change feed that records creates and deletes.

use super::*;

/// Upstream: DeleteTests.GivenMultipleInstancesInSeries_WhenDeletingInstance_TheServerShouldReturnNoContentAndOnlyTargetInstanceIsDeleted
/// and GivenAnExistingInstance_WhenDeletingInstanceSecondTime_TheServerShouldReturnNotFound.
#[tokio::test]
async fn deleting_one_instance_leaves_its_siblings() {
    let az = Azure::start().await;
    let (st, se, sop1) = ids();
    let sop2 = uid();
    let a = az
        .store(
            "v1",
            "studies",
            &[
                instance(&st, &se, &sop1, &[]),
                instance(&st, &se, &sop2, &[]),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let one = az.url("v1", &format!("studies/{st}/series/{se}/instances/{sop1}"));
    assert_eq!(az.send(az.http.delete(&one)).await.status, 204);
    assert_eq!(az.send(az.http.delete(&one)).await.status, 404);
    let a = az
        .get_json(
            "v1",
            &format!("studies/{st}/series/{se}/instances/{sop2}/metadata"),
        )
        .await;
    assert_eq!(a.status, 200);
    let a = az
        .get_json(
            "v1",
            &format!("studies/{st}/series/{se}/instances/{sop1}/metadata"),
        )
        .await;
    assert_eq!(a.status, 404);
}

/// Upstream: DeleteTests.GivenABadStudyInstanceUid_WhenDeleting_TheServerShouldReturnBackRequest,
/// GivenABadSeriesInstanceUid_… and GivenABadSopInstanceUid_… (their InlineData).
#[tokio::test]
async fn deleting_by_a_bad_uid_is_400() {
    let az = Azure::start().await;
    for path in [
        "studies/notAStudyInstanceUid",
        "studies/notAStudyInstanceUid/series/notASeriesInstanceUid",
        "studies/2.25.106797093114774953545959916858814568441/series/notASeriesInstanceUid",
        "studies/notAStudyInstanceUid/series/notASeriesInstanceUid/instances/notASopInstanceUid",
        "studies/2.25.106797093114774953545959916858814568441/series/2.25.106797093114774953545959916858814568442/instances/notASopInstanceUid",
    ] {
        let a = az.send(az.http.delete(az.url("v1", path))).await;
        assert_eq!(a.status, 400, "{path}: {}", a.text);
    }
}

/// Upstream: ChangeFeedTests.GivenADeletedAndReplacedInstance_WhenRetrievingChangeFeed_ThenTheExpectedInstanceAreReturned
/// — create, delete, create again: `latest` says Create/Current (with metadata), Delete/Deleted (without),
/// Create/Current; the whole feed then says Replaced, Replaced, Current.
#[tokio::test]
async fn change_feed_after_create_delete_create() {
    let az = Azure::start().await;
    let (st, se, sop) = ids();
    let f = instance(&st, &se, &sop, &[]);
    let latest = |action: &'static str, state: &'static str| {
        let az = &az;
        let sop = &sop;
        async move {
            let a = az
                .send(az.http.get(az.url("v2", "changefeed/latest")))
                .await;
            assert_eq!(a.status, 200, "{}", a.text);
            let e = a.json();
            assert_eq!(e["sopInstanceUid"], sop.as_str(), "{e}");
            assert_eq!(
                (e["action"].as_str(), e["state"].as_str()),
                (Some(action), Some(state)),
                "{e}"
            );
            assert_eq!(e.get("metadata").is_some(), state != "Deleted", "{e}");
        }
    };
    assert_eq!(
        az.store("v2", "studies", std::slice::from_ref(&f))
            .await
            .status,
        200
    );
    latest("Create", "Current").await;
    let path = az.url("v2", &format!("studies/{st}/series/{se}/instances/{sop}"));
    assert_eq!(az.send(az.http.delete(&path)).await.status, 204);
    latest("Delete", "Deleted").await;
    assert_eq!(az.store("v2", "studies", &[f]).await.status, 200);
    latest("Create", "Current").await;
    let a = az.send(az.http.get(az.url("v2", "changefeed"))).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let feed = a.json();
    let states: Vec<&str> = feed
        .as_array()
        .expect("array")
        .iter()
        .filter(|e| e["sopInstanceUid"] == sop.as_str())
        .filter_map(|e| e["state"].as_str())
        .collect();
    assert_eq!(states, ["Replaced", "Replaced", "Current"], "{feed}");
}

/// Upstream: ChangeFeedTests.GivenAnInvalidParameter_WhenRetrievingChangeFeed_ThenBadRequestReturned,
/// GivenAnInvalidV1Limit_…, GivenAnInvalidV2Limit_… and GivenAnInvalidParameter_WhenRetrievingChangeFeedLatest_…
#[tokio::test]
async fn change_feed_refuses_bad_parameters() {
    let az = Azure::start().await;
    for (limit, offset, include) in [
        ("-1", "0", "true"),
        ("0", "0", "true"),
        ("blah", "0", "true"),
        ("1", "-1", "true"),
        ("1", "92233720368547758070", "true"),
        ("1", "blah", "true"),
        ("1", "0", "0"),
        ("1", "0", "true-ish"),
        ("1", "0", "boolean"),
    ] {
        let q = format!("changefeed?limit={limit}&offset={offset}&includeMetadata={include}");
        let a = az.send(az.http.get(az.url("v2", &q))).await;
        assert_eq!(a.status, 400, "{q}: {}", a.text);
    }
    for (version, q) in [
        ("v1", "changefeed?limit=101"),
        ("v2", "changefeed?limit=201"),
        ("v2", "changefeed/latest?includeMetadata=asdf"),
    ] {
        let a = az.send(az.http.get(az.url(version, q))).await;
        assert_eq!(a.status, 400, "{version} {q}: {}", a.text);
    }
}
