//! SigV4: scope, clock skew and signatures.

use super::*;

fn emulator_credentials(secret: &str) -> SimConfig {
    SimConfig {
        credentials: HashMap::from([("AKIDEMULATOR".to_owned(), secret.to_owned())]),
        ..Default::default()
    }
}

#[tokio::test]
async fn configured_credentials_verify_the_sdk_signature() {
    let server = start_sim(scenario_world(), emulator_credentials("emulator-secret")).await;
    let client = sdk_client(&server);
    client.list_organizations().send().await.unwrap();
    client
        .describe_user()
        .organization_id(ORG)
        .user_id("alice@acme.example.com")
        .send()
        .await
        .unwrap();
    let users = client
        .list_users()
        .organization_id(ORG)
        .filters(
            ListUsersFilters::builder()
                .display_name_prefix("Alice Å")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        users.users().len(),
        1,
        "a UTF-8 body is signed and verified"
    );
    client
        .delete_personal_access_token()
        .organization_id(ORG)
        .personal_access_token_id("pat-bob-1")
        .send()
        .await
        .unwrap();
    assert_eq!(server.sim.calls().refused, 0);

    // Another secret for the same key: the signature does not match.
    let server = start_sim(scenario_world(), emulator_credentials("another-secret")).await;
    let client = sdk_client(&server);
    let err = client.list_organizations().send().await.unwrap_err();
    assert_eq!(
        status_code(&err),
        (403, "InvalidSignatureException".to_owned())
    );
    let calls = server.sim.calls();
    assert_eq!(calls.refused, 1, "not retried");
    assert_eq!(calls.total(), 0);

    // An access key the emulator does not know.
    let config = SimConfig {
        credentials: HashMap::from([("AKIDSOMEONEELSE".to_owned(), "x".to_owned())]),
        ..Default::default()
    };
    let server = start_sim(scenario_world(), config).await;
    let err = sdk_client(&server)
        .list_organizations()
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        status_code(&err),
        (403, "UnrecognizedClientException".to_owned())
    );
}

#[tokio::test]
async fn a_signature_for_another_region_is_refused() {
    let server = start_scenario(SCENARIO).await;
    let sdk = ClientFactory::static_sdk_config(&server.endpoint(), "eu-west-1");
    let client = Client::from_conf(aws_sdk_workmail::config::Builder::from(&sdk).build());
    let err = client.list_organizations().send().await.unwrap_err();
    assert_eq!(
        status_code(&err),
        (403, "InvalidSignatureException".to_owned())
    );
    let msg = err
        .as_service_error()
        .and_then(|e| e.message())
        .unwrap_or_default();
    assert!(msg.contains("us-east-1"), "{msg}");

    // An emulator for eu-west-1 takes it, and says so in its ARNs.
    let config = SimConfig {
        region: "eu-west-1".into(),
        ..Default::default()
    };
    let server = start_sim(scenario_world(), config).await;
    let client = sdk_client(&server);
    let d = client
        .describe_organization()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();
    assert!(d.arn().unwrap().starts_with("arn:aws:workmail:eu-west-1:"));
}

#[tokio::test]
async fn clock_skew_is_refused_then_corrected_by_the_sdk() {
    let server = start_sim(scenario_world(), emulator_credentials("emulator-secret")).await;
    server
        .sim
        .mutate(Mutation::SetClockSkew { seconds: 3600 })
        .unwrap();

    // Without retries, the skewed request is refused.
    let once = sdk_client_with(&server, RetryConfig::standard().with_max_attempts(1));
    let err = once.list_organizations().send().await.unwrap_err();
    assert_eq!(
        status_code(&err),
        (403, "InvalidSignatureException".to_owned())
    );
    let msg = err
        .as_service_error()
        .and_then(|e| e.message())
        .unwrap_or_default();
    assert!(msg.contains("Signature expired"), "{msg}");
    assert_eq!(server.sim.calls().refused, 1);

    // With retries, the SDK (aws-runtime's service clock skew interceptor) reads the
    // emulator's `Date` header off the refusal, sees more than 4 minutes of skew, classifies
    // InvalidSignatureException as retryable and signs the retry with the corrected clock.
    let client = isolated(&server, RetryConfig::standard().with_max_attempts(3));
    let out = client.list_organizations().send().await.unwrap();
    assert_eq!(out.organization_summaries().len(), 4);
    let calls = server.sim.calls();
    assert_eq!(calls.refused, 2, "{calls:?}");
    assert_eq!(calls.count("ListOrganizations"), 1);
    assert_eq!(calls.retries("ListOrganizations"), 1, "served on attempt 2");
    // The client keeps the skew it learnt: its next call is signed right the first time.
    client
        .describe_organization()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();
    let calls = server.sim.calls();
    assert_eq!(calls.refused, 2);
    assert_eq!(calls.retries("DescribeOrganization"), 0);

    // Skew within the 15 minutes SigV4 allows is no problem at all.
    server
        .sim
        .mutate(Mutation::SetClockSkew { seconds: -600 })
        .unwrap();
    let fresh = sdk_client_with(&server, RetryConfig::standard().with_max_attempts(1));
    fresh.list_organizations().send().await.unwrap();
}

#[tokio::test]
async fn hand_signed_requests_sign_the_host_port_and_the_body() {
    let server = start_sim(scenario_world(), emulator_credentials("emulator-secret")).await;
    let date = amz_date(Utc::now());
    let host = server.addr.to_string();
    let signer = Signer {
        access_key: "AKIDEMULATOR",
        secret: "emulator-secret",
        region: "us-east-1",
        host: &host,
        target: "WorkMailService.ListOrganizations",
        date: &date,
        content_sha256: None,
    };
    let body: &[u8] = br#"{"MaxResults":2}"#;
    let other: &[u8] = br#"{"MaxResults":3}"#;
    let send = |headers: Vec<(String, String)>, body: &'static [u8]| {
        let addr = server.addr;
        async move { raw(addr, "POST", "/", &headers, body).await }
    };
    let r = send(signer.headers(body), body).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json()["OrganizationSummaries"].as_array().unwrap().len(),
        2
    );

    // The same signature over another body.
    send(signer.headers(body), other)
        .await
        .assert_error(403, "InvalidSignatureException");
    // Signed for the host without its port.
    let no_port = Signer {
        host: "127.0.0.1",
        ..signer
    };
    send(no_port.headers(body), body)
        .await
        .assert_error(403, "InvalidSignatureException");
    // With the wrong secret.
    let wrong = Signer {
        secret: "guess",
        host: &host,
        ..no_port
    };
    send(wrong.headers(body), body)
        .await
        .assert_error(403, "InvalidSignatureException");
    // A signed x-amz-content-sha256 header is just a header: the payload hash is that of
    // the body received, so a header vouching for another body does not make it pass.
    let vouching = Signer {
        secret: "emulator-secret",
        content_sha256: Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body))),
        ..wrong
    };
    let r = send(vouching.headers(body), body).await;
    assert_eq!(r.status, 200, "{r:?}");
    send(vouching.headers(body), other)
        .await
        .assert_error(403, "InvalidSignatureException");
    assert_eq!(server.sim.calls().refused, 4);
}

#[tokio::test]
async fn dates_and_scopes_of_unverified_signatures_are_still_checked() {
    // No credentials configured: any key and signature, but the scope and date must hold.
    let server = start_scenario(SCENARIO).await;
    let target = "WorkMailService.ListOrganizations";
    let ok = dummy_signed(
        "us-east-1",
        target,
        Utc::now() - chrono::Duration::minutes(10),
    );
    let r = raw(server.addr, "POST", "/", &ok, b"{}").await;
    assert_eq!(r.status, 200, "ten minutes off is within SigV4's fifteen");

    let stale = dummy_signed(
        "us-east-1",
        target,
        Utc::now() - chrono::Duration::minutes(20),
    );
    let msg = raw(server.addr, "POST", "/", &stale, b"{}")
        .await
        .assert_error(403, "InvalidSignatureException");
    assert!(msg.contains("Signature expired"), "{msg}");

    let future = dummy_signed(
        "us-east-1",
        target,
        Utc::now() + chrono::Duration::minutes(20),
    );
    raw(server.addr, "POST", "/", &future, b"{}")
        .await
        .assert_error(403, "InvalidSignatureException");

    let region = dummy_signed("eu-west-1", target, Utc::now());
    raw(server.addr, "POST", "/", &region, b"{}")
        .await
        .assert_error(403, "InvalidSignatureException");

    let service: Vec<_> = dummy_signed("us-east-1", target, Utc::now())
        .into_iter()
        .map(|(k, v)| (k, v.replace("/workmail/", "/s3/")))
        .collect();
    raw(server.addr, "POST", "/", &service, b"{}")
        .await
        .assert_error(403, "InvalidSignatureException");

    let no_date: Vec<_> = dummy_signed("us-east-1", target, Utc::now())
        .into_iter()
        .filter(|(k, _)| k != "X-Amz-Date")
        .collect();
    raw(server.addr, "POST", "/", &no_date, b"{}")
        .await
        .assert_error(403, "IncompleteSignatureException");

    // A credential scope dated another day than X-Amz-Date.
    let mut other_day = dummy_signed("us-east-1", target, Utc::now());
    let yesterday = amz_date(Utc::now() - chrono::Duration::days(1));
    for (k, v) in &mut other_day {
        if k == "Authorization" {
            let today = &amz_date(Utc::now())[..8];
            *v = v.replace(&format!("/{today}/"), &format!("/{}/", &yesterday[..8]));
        }
    }
    raw(server.addr, "POST", "/", &other_day, b"{}")
        .await
        .assert_error(403, "InvalidSignatureException");
    assert_eq!(server.sim.calls().refused, 6);
}
