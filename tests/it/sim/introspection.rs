//! The `/_sim/` routes.

use super::*;

#[tokio::test]
async fn introspection_over_http() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);
    client.list_organizations().send().await.unwrap();
    client.list_organizations().send().await.unwrap();
    client
        .describe_user()
        .organization_id(ORG)
        .user_id(ALICE)
        .send()
        .await
        .unwrap();
    let unsigned = raw(server.addr, "POST", "/", &[], b"{}").await;
    assert_eq!(unsigned.status, 403);

    let r = get(&server, "/_sim/calls").await;
    assert_eq!(r.status, 200);
    let calls = r.json();
    assert_eq!(calls["by_operation"]["ListOrganizations"], 2, "{calls}");
    assert_eq!(calls["by_operation"]["DescribeUser"], 1, "{calls}");
    assert_eq!(calls["by_attempt"]["ListOrganizations"]["1"], 2, "{calls}");
    assert_eq!(calls["refused"], 1, "{calls}");
    assert_eq!(
        serde_json::from_value::<workmail_pat_monitor::sim::Calls>(calls).unwrap(),
        server.sim.calls()
    );
    assert_eq!(
        raw(server.addr, "DELETE", "/_sim/calls", &[], b"")
            .await
            .status,
        200
    );
    assert_eq!(
        get(&server, "/_sim/calls").await.json()["by_operation"],
        json!({})
    );

    // Deleted tokens.
    assert_eq!(get(&server, "/_sim/deleted").await.json(), json!([]));
    client
        .delete_personal_access_token()
        .organization_id(ORG)
        .personal_access_token_id("pat-ghost-1")
        .send()
        .await
        .unwrap();
    let deleted = get(&server, "/_sim/deleted").await.json();
    assert_eq!(deleted.as_array().unwrap().len(), 1, "{deleted}");
    assert_eq!(deleted[0]["organization_id"], ORG);
    assert_eq!(deleted[0]["token_id"], "pat-ghost-1");
    assert_eq!(deleted[0]["user_id"], GHOST);
    let at = t(deleted[0]["at"].as_str().unwrap());
    assert!((Utc::now() - at).num_seconds().abs() < 60, "{at}");

    // Faults, set at run time.
    let faults = json!({"operations": {"ListUsers": {"access_denied": true}}});
    let r = send_json(&server, "PUT", "/_sim/faults", &faults).await;
    assert_eq!(r.status, 200, "{r:?}");
    let err = client
        .list_users()
        .organization_id(ORG)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_code(&err).1, "AccessDeniedException");
    let got = get(&server, "/_sim/faults").await.json();
    assert_eq!(got["operations"]["ListUsers"]["access_denied"], true);
    assert!(server.sim.faults().for_op("ListUsers").access_denied);
    let r = send_json(&server, "PUT", "/_sim/faults", &json!({"bogus": 1})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("invalid faults")
    );
    assert!(
        server.sim.faults().for_op("ListUsers").access_denied,
        "unchanged"
    );
    let r = send_json(&server, "PUT", "/_sim/faults", &json!({})).await;
    assert_eq!(r.status, 200);
    client
        .list_users()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();

    // The world summary.
    let w = get(&server, "/_sim/world").await.json();
    assert_eq!(w["region"], "us-east-1");
    let orgs = w["organizations"].as_array().unwrap();
    assert_eq!(orgs.len(), 4);
    assert_eq!(orgs[0]["id"], ORG);
    assert_eq!(orgs[0]["tokens"], 3);
    assert_eq!(orgs[0]["pat_status"], "ACTIVE");

    // Paths and methods that do not exist.
    assert_eq!(get(&server, "/_sim/nothing").await.status, 404);
    assert_eq!(
        raw(server.addr, "POST", "/_sim/calls", &[], b"")
            .await
            .status,
        405
    );
    assert_eq!(
        raw(server.addr, "GET", "/_sim/mutate", &[], b"")
            .await
            .status,
        405
    );
}

#[tokio::test]
async fn mutations_over_http_are_seen_by_the_sdk() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);
    let mutate = |m: Value| {
        let server = &server;
        async move { send_json(server, "POST", "/_sim/mutate", &m).await }
    };
    let metadata = |id: &'static str| {
        let client = client.clone();
        async move {
            client
                .get_personal_access_token_metadata()
                .organization_id(ORG)
                .personal_access_token_id(id)
                .send()
                .await
        }
    };

    // mark_used, at a given time and at the emulator's clock.
    let r = mutate(json!({"action": "mark_used", "organization_id": ORG,
        "token_id": "pat-alice-2", "at": "2026-11-01T11:00:00.250Z"}))
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let m = metadata("pat-alice-2").await.unwrap();
    assert_eq!(
        opt_ms(m.date_last_used()),
        Some(t("2026-11-01T11:00:00.250Z").timestamp_millis())
    );
    let r = mutate(json!({"action": "mark_used", "organization_id": ORG, "token_id": "pat-bob-1"}))
        .await;
    assert_eq!(r.status, 200);
    let used = metadata("pat-bob-1").await.unwrap();
    let used = ms(used.date_last_used().unwrap());
    assert!((Utc::now().timestamp_millis() - used).abs() < 60_000);

    // set_user_state, both ways.
    let r = mutate(json!({"action": "set_user_state", "organization_id": ORG,
        "user_id": DAVE, "state": "DISABLED"}))
    .await;
    assert_eq!(r.status, 200);
    let dave = client
        .describe_user()
        .organization_id(ORG)
        .user_id(DAVE)
        .send()
        .await
        .unwrap();
    assert_eq!(dave.state(), Some(&EntityState::Disabled));
    assert!(dave.disabled_date().is_some());
    mutate(json!({"action": "set_user_state", "organization_id": ORG,
        "user_id": DAVE, "state": "ENABLED"}))
    .await;
    let dave = client
        .describe_user()
        .organization_id(ORG)
        .user_id(DAVE)
        .send()
        .await
        .unwrap();
    assert_eq!(dave.state(), Some(&EntityState::Enabled));
    assert_eq!(dave.disabled_date(), None);

    // add_token.
    let r = mutate(json!({"action": "add_token", "organization_id": ORG,
        "token_id": "pat-dave-1", "user_id": DAVE, "name": "Évolution (maison)",
        "created": "2026-10-01T00:00:00Z", "expires": "2027-10-01T00:00:00.125Z",
        "scopes": ["IMAP", "EWS.Mail.Read"]}))
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let m = metadata("pat-dave-1").await.unwrap();
    assert_eq!(m.user_id(), Some(DAVE));
    assert_eq!(m.name(), Some("Évolution (maison)"));
    assert_eq!(m.date_last_used(), None);
    assert_eq!(
        opt_ms(m.expires_time()),
        Some(t("2027-10-01T00:00:00.125Z").timestamp_millis())
    );
    let daves = client
        .list_personal_access_tokens()
        .organization_id(ORG)
        .user_id(DAVE)
        .send()
        .await
        .unwrap();
    assert_eq!(
        token_ids(daves.personal_access_token_summaries()),
        ["pat-dave-1"]
    );

    // Refused mutations.
    let r =
        mutate(json!({"action": "mark_used", "organization_id": ORG, "token_id": "nope"})).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("nope"));
    let r = mutate(json!({"action": "explode"})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("invalid mutation")
    );

    // From the library: a token removed behind the API's back, an organization leaving
    // the Active state mid-scan.
    server
        .sim
        .mutate(Mutation::RemoveToken {
            organization_id: ORG.into(),
            token_id: "pat-dave-1".into(),
        })
        .unwrap();
    expect_err!(
        metadata("pat-dave-1").await,
        is_resource_not_found_exception,
        400
    );
    assert!(
        server.sim.deleted().is_empty(),
        "not deleted through the API"
    );
    server
        .sim
        .mutate(Mutation::SetExpiry {
            organization_id: ORG.into(),
            token_id: "pat-alice-1".into(),
            expires: now() + chrono::Duration::days(400),
        })
        .unwrap();
    let m = metadata("pat-alice-1").await.unwrap();
    assert_eq!(
        opt_ms(m.expires_time()),
        Some((now() + chrono::Duration::days(400)).timestamp_millis())
    );
    server
        .sim
        .mutate(Mutation::SetOrganizationState {
            organization_id: ORG.into(),
            state: "Deleting".into(),
        })
        .unwrap();
    expect_err!(
        client.list_users().organization_id(ORG).send().await,
        is_organization_state_exception,
        400
    );
}
