//! Validation and not-found errors, through the SDK and over raw HTTP.

use super::*;

#[tokio::test]
async fn validation_errors_surface_as_invalid_parameter_exceptions() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);

    // Missing required members: the SDK sends the request anyway.
    let msg = expect_err!(
        client.describe_organization().send().await,
        is_invalid_parameter_exception,
        400
    );
    assert!(
        msg.contains("at 'organizationId' failed to satisfy constraint: Member must not be null"),
        "{msg}"
    );
    let msg = expect_err!(
        client.describe_user().organization_id(ORG).send().await,
        is_invalid_parameter_exception,
        400
    );
    assert!(msg.contains("'userId'"), "{msg}");
    let msg = expect_err!(
        client
            .get_personal_access_token_metadata()
            .organization_id(ORG)
            .send()
            .await,
        is_invalid_parameter_exception,
        400
    );
    assert!(msg.contains("'personalAccessTokenId'"), "{msg}");
    let msg = expect_err!(
        client.list_personal_access_tokens().send().await,
        is_invalid_parameter_exception,
        400
    );
    assert!(msg.contains("'organizationId'"), "{msg}");

    // OrganizationId pattern (and length).
    for bad in [
        "m-XYZ",
        "m-0123456789ABCDEF0123456789ABCDEF",
        "x-0123456789abcdef0123456789abcdef",
        "m-0123456789abcdef0123456789abcdef0",
        "",
    ] {
        let msg = expect_err!(
            client.list_users().organization_id(bad).send().await,
            is_invalid_parameter_exception,
            400
        );
        assert!(msg.contains("at 'organizationId'"), "{bad}: {msg}");
    }
    let msg = expect_err!(
        client.list_users().organization_id("m-XYZ").send().await,
        is_invalid_parameter_exception,
        400
    );
    assert!(
        msg.contains("Member must satisfy regular expression pattern: ^m-[0-9a-f]{32}$"),
        "{msg}"
    );

    // MaxResults 1..=100.
    for bad in [0, 101, 1000, -1] {
        let msg = expect_err!(
            client
                .list_users()
                .organization_id(ORG)
                .max_results(bad)
                .send()
                .await,
            is_invalid_parameter_exception,
            400
        );
        assert!(msg.contains("at 'maxResults'"), "{bad}: {msg}");
        expect_err!(
            client.list_organizations().max_results(bad).send().await,
            is_invalid_parameter_exception,
            400
        );
        expect_err!(
            client
                .list_personal_access_tokens()
                .organization_id(ORG)
                .max_results(bad)
                .send()
                .await,
            is_invalid_parameter_exception,
            400
        );
    }
    for good in [1, 100] {
        client
            .list_users()
            .organization_id(ORG)
            .max_results(good)
            .send()
            .await
            .unwrap();
    }

    // NextToken length 1..=1024.
    for bad in [String::new(), "a".repeat(1025)] {
        let msg = expect_err!(
            client
                .list_personal_access_tokens()
                .organization_id(ORG)
                .next_token(&bad)
                .send()
                .await,
            is_invalid_parameter_exception,
            400
        );
        assert!(msg.contains("at 'nextToken'"), "{msg}");
    }

    // PersonalAccessTokenId: 1..=64 of [a-zA-Z0-9_-].
    for bad in ["bad token!", "pat/1", "pât", "a".repeat(65).as_str()] {
        let msg = expect_err!(
            client
                .get_personal_access_token_metadata()
                .organization_id(ORG)
                .personal_access_token_id(bad)
                .send()
                .await,
            is_invalid_parameter_exception,
            400
        );
        assert!(msg.contains("at 'personalAccessTokenId'"), "{bad}: {msg}");
        expect_err!(
            client
                .delete_personal_access_token()
                .organization_id(ORG)
                .personal_access_token_id(bad)
                .send()
                .await,
            is_invalid_parameter_exception,
            400
        );
    }
    // At the limit the format is fine; the token just does not exist.
    expect_err!(
        client
            .get_personal_access_token_metadata()
            .organization_id(ORG)
            .personal_access_token_id("a_-Z9".repeat(12) + "abcd")
            .send()
            .await,
        is_resource_not_found_exception,
        400
    );

    // UserId and filters.
    expect_err!(
        client
            .describe_user()
            .organization_id(ORG)
            .user_id("has space")
            .send()
            .await,
        is_invalid_parameter_exception,
        400
    );
    expect_err!(
        client
            .list_users()
            .organization_id(ORG)
            .filters(
                ListUsersFilters::builder()
                    .identity_provider_user_id_prefix("not-hex!")
                    .build()
            )
            .send()
            .await,
        is_invalid_parameter_exception,
        400
    );
    // Nothing was deleted by the refused deletions.
    assert!(server.sim.deleted().is_empty());
    assert_eq!(server.sim.world(), scenario_world());
}

#[tokio::test]
async fn missing_and_inactive_things_surface_as_their_sdk_variants() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);

    // Unknown organization, on every operation that takes one.
    let o = NO_SUCH_ORG;
    expect_err!(
        client
            .describe_organization()
            .organization_id(o)
            .send()
            .await,
        is_organization_not_found_exception,
        400
    );
    expect_err!(
        client.list_users().organization_id(o).send().await,
        is_organization_not_found_exception,
        400
    );
    expect_err!(
        client
            .describe_user()
            .organization_id(o)
            .user_id(ALICE)
            .send()
            .await,
        is_organization_not_found_exception,
        400
    );
    expect_err!(
        client
            .list_personal_access_tokens()
            .organization_id(o)
            .send()
            .await,
        is_organization_not_found_exception,
        400
    );
    expect_err!(
        client
            .get_personal_access_token_metadata()
            .organization_id(o)
            .personal_access_token_id("pat-alice-1")
            .send()
            .await,
        is_organization_not_found_exception,
        400
    );
    expect_err!(
        client
            .delete_personal_access_token()
            .organization_id(o)
            .personal_access_token_id("pat-alice-1")
            .send()
            .await,
        is_organization_not_found_exception,
        400
    );
    expect_err!(
        client
            .describe_identity_provider_configuration()
            .organization_id(o)
            .send()
            .await,
        is_organization_not_found_exception,
        400
    );

    // An organization that is not Active.
    let o = GONE;
    expect_err!(
        client.list_users().organization_id(o).send().await,
        is_organization_state_exception,
        400
    );
    expect_err!(
        client
            .describe_user()
            .organization_id(o)
            .user_id(ALICE)
            .send()
            .await,
        is_organization_state_exception,
        400
    );
    expect_err!(
        client
            .list_personal_access_tokens()
            .organization_id(o)
            .send()
            .await,
        is_organization_state_exception,
        400
    );
    expect_err!(
        client
            .get_personal_access_token_metadata()
            .organization_id(o)
            .personal_access_token_id("pat-alice-1")
            .send()
            .await,
        is_organization_state_exception,
        400
    );
    expect_err!(
        client
            .delete_personal_access_token()
            .organization_id(o)
            .personal_access_token_id("pat-alice-1")
            .send()
            .await,
        is_organization_state_exception,
        400
    );
    expect_err!(
        client
            .describe_identity_provider_configuration()
            .organization_id(o)
            .send()
            .await,
        is_organization_state_exception,
        400
    );

    // Unknown users, tokens and configurations.
    expect_err!(
        client
            .describe_user()
            .organization_id(ORG)
            .user_id("nobody")
            .send()
            .await,
        is_entity_not_found_exception,
        400
    );
    expect_err!(
        client
            .describe_user()
            .organization_id(ORG)
            .user_id(GHOST)
            .send()
            .await,
        is_entity_not_found_exception,
        400
    );
    expect_err!(
        client
            .list_personal_access_tokens()
            .organization_id(ORG)
            .user_id(GHOST)
            .send()
            .await,
        is_entity_not_found_exception,
        400
    );
    expect_err!(
        client
            .get_personal_access_token_metadata()
            .organization_id(ORG)
            .personal_access_token_id("pat-nope")
            .send()
            .await,
        is_resource_not_found_exception,
        400
    );
    expect_err!(
        client
            .describe_identity_provider_configuration()
            .organization_id(NOIDP)
            .send()
            .await,
        is_resource_not_found_exception,
        400
    );
}

#[tokio::test]
async fn unknown_targets_and_unsigned_requests_over_raw_http() {
    let server = start_scenario(SCENARIO).await;
    let body = json!({});

    // Signed, unknown target.
    for target in [
        "WorkMailService.CreateUser",
        "WorkMailService.listorganizations",
        "SomeOtherService.ListOrganizations",
        "",
    ] {
        let headers = dummy_signed("us-east-1", target, Utc::now());
        let r = raw(
            server.addr,
            "POST",
            "/",
            &headers,
            body.to_string().as_bytes(),
        )
        .await;
        r.assert_error(400, "UnknownOperationException");
    }
    // No target header at all.
    let headers: Vec<_> = dummy_signed("us-east-1", "", Utc::now())
        .into_iter()
        .filter(|(k, _)| k != "X-Amz-Target")
        .collect();
    let r = raw(server.addr, "POST", "/", &headers, b"{}").await;
    r.assert_error(400, "UnknownOperationException");

    // Unsigned: refused before anything else, whatever the target.
    let calls_before = server.sim.calls();
    for target in [
        "WorkMailService.ListOrganizations",
        "WorkMailService.CreateUser",
    ] {
        let headers = vec![
            (
                "Content-Type".to_owned(),
                "application/x-amz-json-1.1".to_owned(),
            ),
            ("X-Amz-Target".to_owned(), target.to_owned()),
        ];
        let r = raw(server.addr, "POST", "/", &headers, b"{}").await;
        r.assert_error(403, "UnrecognizedClientException");
    }
    // An Authorization header that is not SigV4 is no better.
    let headers = vec![
        (
            "X-Amz-Target".to_owned(),
            "WorkMailService.ListOrganizations".to_owned(),
        ),
        ("Authorization".to_owned(), "Bearer abc".to_owned()),
    ];
    let r = raw(server.addr, "POST", "/", &headers, b"{}").await;
    r.assert_error(403, "UnrecognizedClientException");
    let calls = server.sim.calls();
    assert_eq!(calls.refused, calls_before.refused + 3);
    assert_eq!(
        calls.count("ListOrganizations"),
        0,
        "refused calls are not served"
    );

    // The same request, signed, is served.
    let r = call(&server, "ListOrganizations", &json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json()["OrganizationSummaries"].as_array().unwrap().len(),
        4
    );
    assert_eq!(server.sim.calls().count("ListOrganizations"), 1);

    // The AWS JSON protocol is POST /.
    let headers = dummy_signed("us-east-1", "WorkMailService.ListOrganizations", Utc::now());
    let r = raw(server.addr, "GET", "/", &headers, b"").await;
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("UnknownOperationException")
    );
    assert!(r.status >= 400);
}

#[tokio::test]
async fn malformed_bodies_are_serialization_exceptions() {
    let server = start_scenario(SCENARIO).await;
    for body in [
        json!({"OrganizationId": ORG, "MaxResults": "10"}),
        json!({"OrganizationId": 7}),
        json!({"OrganizationId": ORG, "Filters": "State=ENABLED"}),
        json!([ORG]),
    ] {
        let r = call(&server, "ListUsers", &body).await;
        r.assert_error(400, "SerializationException");
    }
    let headers = dummy_signed("us-east-1", "WorkMailService.ListUsers", Utc::now());
    let r = raw(server.addr, "POST", "/", &headers, b"{\"OrganizationId\": ").await;
    r.assert_error(400, "SerializationException");
    // An empty body is an empty structure: here, a missing required member.
    let r = raw(server.addr, "POST", "/", &headers, b"").await;
    let msg = r.assert_error(400, "InvalidParameterException");
    assert!(msg.contains("'organizationId'"), "{msg}");
}
