//! Throttling: the token bucket, `x-amz-retry-after`, and the SDK's retries.

use super::*;

#[tokio::test]
async fn throttling_is_retried_by_the_sdk_after_the_retry_after_delay() {
    let server = start_scenario(SCENARIO).await;
    // One call per 200 ms, no burst: back-to-back calls are throttled, and a retry after
    // the 250 ms the emulator asks for finds a fresh token.
    server.sim.set_op_faults(
        "ListUsers",
        OpFaults {
            throttle_rate: Some(5.0),
            throttle_burst: Some(1.0),
            retry_after_ms: Some(250),
            ..Default::default()
        },
    );
    let client = isolated(&server, RetryConfig::standard().with_max_attempts(4));
    let started = Instant::now();
    for _ in 0..4 {
        let out = client
            .list_users()
            .organization_id(ORG)
            .send()
            .await
            .unwrap();
        assert_eq!(out.users().len(), 4);
    }
    let elapsed = started.elapsed();
    let calls = server.sim.calls();
    let retries = calls.retries("ListUsers");
    assert!(retries > 0, "{calls:?}");
    assert_eq!(calls.count("ListUsers"), 4 + retries, "{calls:?}");
    assert!(
        elapsed >= Duration::from_millis(250) * retries as u32,
        "the SDK honoured x-amz-retry-after: {elapsed:?} for {retries} retries"
    );
    // Other operations are not throttled.
    client
        .describe_organization()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();
    assert_eq!(server.sim.calls().retries("DescribeOrganization"), 0);
}

#[tokio::test]
async fn throttling_surfaces_when_the_sdk_may_not_retry() {
    let server = start_scenario(SCENARIO).await;
    server.sim.set_op_faults(
        "*",
        OpFaults {
            throttle_rate: Some(0.01),
            throttle_burst: Some(1.0),
            retry_after_ms: Some(250),
            ..Default::default()
        },
    );
    let client = isolated(&server, RetryConfig::standard().with_max_attempts(1));
    client.list_organizations().send().await.unwrap();
    let err = client.list_organizations().send().await.unwrap_err();
    assert_eq!(status_code(&err), (400, "ThrottlingException".to_owned()));
    assert_eq!(
        err.raw_response()
            .and_then(|r| r.headers().get("x-amz-retry-after")),
        Some("250")
    );
    let calls = server.sim.calls();
    assert_eq!(calls.count("ListOrganizations"), 2);
    assert_eq!(calls.retries("ListOrganizations"), 0);
    // The default applies to every operation, each with a bucket of its own.
    client
        .describe_organization()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();
    let err = client
        .describe_organization()
        .organization_id(ORG)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_code(&err).1, "ThrottlingException");
}
