//! The other injected faults: server errors, stalls, broken bodies, pagination bugs.

use super::*;

#[tokio::test]
async fn server_errors_are_retried_then_surface() {
    let server = start_scenario(SCENARIO).await;
    let client = isolated(&server, RetryConfig::standard().with_max_attempts(3));
    server.sim.set_op_faults(
        "DescribeOrganization",
        OpFaults {
            internal_error_rate: 1.0,
            ..Default::default()
        },
    );
    server.sim.set_op_faults(
        "ListOrganizations",
        OpFaults {
            unavailable_rate: 1.0,
            ..Default::default()
        },
    );
    let err = client
        .describe_organization()
        .organization_id(ORG)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_code(&err), (500, "InternalFailure".to_owned()));
    let err = client.list_organizations().send().await.unwrap_err();
    assert_eq!(status_code(&err), (503, "ServiceUnavailable".to_owned()));
    let calls = server.sim.calls();
    assert_eq!(calls.count("DescribeOrganization"), 3, "{calls:?}");
    assert_eq!(calls.retries("DescribeOrganization"), 2);
    assert_eq!(calls.count("ListOrganizations"), 3);
    assert_eq!(calls.retries("ListOrganizations"), 2);

    server.sim.set_faults(Faults::default());
    client
        .describe_organization()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();
    client.list_organizations().send().await.unwrap();
}

#[tokio::test]
async fn a_failing_page_fails_the_listing_and_can_be_resumed() {
    let world = big_world();
    let server = start_sim(world.clone(), SimConfig::default()).await;
    let org = active_orgs(&world)[0];
    let all: Vec<String> = org.tokens.keys().cloned().collect();
    server.sim.set_op_faults(
        "ListPersonalAccessTokens",
        OpFaults {
            fail_pages: vec![3],
            ..Default::default()
        },
    );
    let client = isolated(&server, RetryConfig::standard().with_max_attempts(3));
    let results: Vec<Result<PersonalAccessTokenSummary, _>> = client
        .list_personal_access_tokens()
        .organization_id(&org.id)
        .max_results(5)
        .into_paginator()
        .items()
        .send()
        .collect()
        .await;
    assert_eq!(results.len(), 11, "two good pages, then the error");
    let good: Vec<String> = results[..10]
        .iter()
        .map(|r| {
            r.as_ref()
                .unwrap()
                .personal_access_token_id()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(good, all[..10]);
    let err = results[10].as_ref().unwrap_err();
    assert_eq!(status_code(err), (500, "InternalFailure".to_owned()));
    let calls = server.sim.calls();
    assert_eq!(
        calls.count("ListPersonalAccessTokens"),
        2 + 3,
        "page 3 tried 3 times"
    );

    // Page by page: the token of page 2 still works once the fault is gone.
    let p1 = client
        .list_personal_access_tokens()
        .organization_id(&org.id)
        .max_results(5)
        .send()
        .await
        .unwrap();
    let p2 = client
        .list_personal_access_tokens()
        .organization_id(&org.id)
        .max_results(5)
        .set_next_token(p1.next_token().map(str::to_owned))
        .send()
        .await
        .unwrap();
    let p3 = || {
        client
            .list_personal_access_tokens()
            .organization_id(&org.id)
            .max_results(5)
            .set_next_token(p2.next_token().map(str::to_owned))
            .send()
    };
    assert_eq!(status_code(&p3().await.unwrap_err()).1, "InternalFailure");
    server.sim.set_faults(Faults::default());
    let p3 = p3().await.unwrap();
    assert_eq!(token_ids(p3.personal_access_token_summaries()), all[10..15]);
}

#[tokio::test]
async fn truncated_and_malformed_bodies_are_errors_not_panics() {
    let server = start_scenario(SCENARIO).await;
    let client = isolated(&server, RetryConfig::standard().with_max_attempts(3));
    server.sim.set_op_faults(
        "DescribeOrganization",
        OpFaults {
            truncated_rate: 1.0,
            ..Default::default()
        },
    );
    server.sim.set_op_faults(
        "ListPersonalAccessTokens",
        OpFaults {
            malformed_rate: 1.0,
            ..Default::default()
        },
    );
    let err = client
        .describe_organization()
        .organization_id(ORG)
        .send()
        .await
        .unwrap_err();
    // A 200 whose body does not parse: an error with no modeled code, not retried.
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(200));
    assert_eq!(status_code(&err).1, "", "{err:?}");
    let err = client
        .list_personal_access_tokens()
        .organization_id(ORG)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(200));
    let items: Vec<Result<PersonalAccessTokenSummary, _>> = client
        .list_personal_access_tokens()
        .organization_id(ORG)
        .into_paginator()
        .items()
        .send()
        .collect()
        .await;
    assert_eq!(items.len(), 1);
    assert!(items[0].is_err());
    let calls = server.sim.calls();
    assert_eq!(calls.count("DescribeOrganization"), 1, "{calls:?}");
    assert_eq!(calls.count("ListPersonalAccessTokens"), 2, "{calls:?}");

    // What went over the wire.
    let r = call(
        &server,
        "DescribeOrganization",
        &json!({"OrganizationId": ORG}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with('{') && serde_json::from_str::<Value>(&r.body).is_err());
    let r = call(
        &server,
        "ListPersonalAccessTokens",
        &json!({"OrganizationId": ORG}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(!r.body.starts_with('{'));
}

#[tokio::test]
async fn a_repeated_next_token_stops_the_sdk_paginator_silently() {
    let world = big_world();
    let server = start_sim(world.clone(), SimConfig::default()).await;
    let org = active_orgs(&world)[0];
    server.sim.set_op_faults(
        "ListPersonalAccessTokens",
        OpFaults {
            repeat_next_token: true,
            ..Default::default()
        },
    );
    let client = sdk_client(&server);
    // Page 1 answers a fresh token T; page 2 (sent T) answers T again. The SDK paginator
    // treats a repeated token as the end (`stop_on_duplicate_token`, on by default): the
    // listing ends after two pages, without an error — a short listing a caller cannot
    // tell from a complete one.
    let items: Vec<PersonalAccessTokenSummary> = client
        .list_personal_access_tokens()
        .organization_id(&org.id)
        .max_results(5)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    let all: Vec<String> = org.tokens.keys().cloned().collect();
    assert_eq!(token_ids(&items), all[..10]);
    assert!(items.len() < all.len());
    assert_eq!(server.sim.calls().count("ListPersonalAccessTokens"), 2);
}

#[tokio::test]
async fn access_denied_is_not_retried() {
    let server = start_scenario(SCENARIO).await;
    server.sim.set_op_faults(
        "ListPersonalAccessTokens",
        OpFaults {
            access_denied: true,
            ..Default::default()
        },
    );
    let client = isolated(&server, RetryConfig::standard().with_max_attempts(3));
    let err = client
        .list_personal_access_tokens()
        .organization_id(ORG)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_code(&err), (400, "AccessDeniedException".to_owned()));
    assert!(
        err.as_service_error()
            .and_then(|e| e.message())
            .unwrap_or_default()
            .contains("workmail:ListPersonalAccessTokens")
    );
    assert_eq!(server.sim.calls().count("ListPersonalAccessTokens"), 1);
    client
        .list_users()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn latency_is_added_and_a_stall_times_the_client_out() {
    let server = start_scenario(SCENARIO).await;
    server.sim.set_op_faults(
        "ListOrganizations",
        OpFaults {
            latency_ms: 150,
            ..Default::default()
        },
    );
    server.sim.set_op_faults(
        "DescribeOrganization",
        OpFaults {
            stall_rate: 1.0,
            stall_ms: Some(3_000),
            ..Default::default()
        },
    );
    let base = isolated(&server, RetryConfig::standard().with_max_attempts(1));
    let client = Client::from_conf(
        base.config()
            .to_builder()
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(300))
                    .build(),
            )
            .build(),
    );
    let started = Instant::now();
    client.list_organizations().send().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));

    let started = Instant::now();
    let err = client
        .describe_organization()
        .organization_id(ORG)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::TimeoutError(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(2_900));
}
