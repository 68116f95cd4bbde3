//! Every operation's happy path, through the real SDK.

use super::*;

#[tokio::test]
async fn lists_and_describes_organizations() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);
    let world = server.sim.world();

    let out = client.list_organizations().send().await.unwrap();
    assert!(out.next_token().is_none());
    let got: Vec<(String, String, String, String)> = out
        .organization_summaries()
        .iter()
        .map(|o| {
            (
                o.organization_id().unwrap().to_owned(),
                o.alias().unwrap().to_owned(),
                o.default_mail_domain().unwrap().to_owned(),
                o.state().unwrap().to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String, String, String)> = world
        .orgs
        .values()
        .map(|o| {
            (
                o.id.clone(),
                o.alias.clone(),
                o.default_mail_domain.clone(),
                o.state.clone(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(got.len(), 4);
    assert_eq!(got[0].1, "acme");
    assert_eq!(got[0].2, "acme.example.com");

    // Every organization can be described, including one that is not Active.
    for o in world.orgs.values() {
        let d = client
            .describe_organization()
            .organization_id(&o.id)
            .send()
            .await
            .unwrap();
        assert_eq!(d.organization_id(), Some(o.id.as_str()));
        assert_eq!(d.alias(), Some(o.alias.as_str()));
        assert_eq!(d.state(), Some(o.state.as_str()));
        assert_eq!(
            d.default_mail_domain(),
            Some(o.default_mail_domain.as_str())
        );
        assert_eq!(d.directory_type(), Some("WorkMailDirectory"));
        assert!(d.directory_id().unwrap().starts_with("d-"));
        assert_eq!(
            d.arn(),
            Some(
                format!(
                    "arn:aws:workmail:us-east-1:123456789012:organization/{}",
                    o.id
                )
                .as_str()
            )
        );
        assert_eq!(
            opt_ms(d.completed_date()),
            Some(o.completed.timestamp_millis())
        );
        assert_eq!(
            o.completed,
            now() - chrono::Duration::days(800),
            "scenario organizations complete 800 days before now"
        );
    }
    let gone = client
        .describe_organization()
        .organization_id(GONE)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.state(), Some("Deleted"));
}

async fn user_ids(client: &Client, filters: Option<ListUsersFilters>) -> Vec<String> {
    let out = client
        .list_users()
        .organization_id(ORG)
        .set_filters(filters)
        .send()
        .await
        .unwrap();
    assert!(out.next_token().is_none());
    out.users()
        .iter()
        .map(|u| u.id().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn lists_users_with_each_filter() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);
    let f = ListUsersFilters::builder;

    assert_eq!(user_ids(&client, None).await, [ALICE, BOB, CAROL, DAVE]);
    let cases: Vec<(ListUsersFilters, Vec<&str>)> = vec![
        (f().username_prefix("b").build(), vec![BOB]),
        (
            f().username_prefix("").build(),
            vec![ALICE, BOB, CAROL, DAVE],
        ),
        (f().username_prefix("zed").build(), vec![]),
        (f().display_name_prefix("Alice Å").build(), vec![ALICE]),
        (f().display_name_prefix("Bob <b>").build(), vec![BOB]),
        (f().primary_email_prefix("dave@").build(), vec![DAVE]),
        // Carol has no email: no prefix matches her, not even the empty one.
        (f().primary_email_prefix("").build(), vec![ALICE, BOB, DAVE]),
        (f().state(EntityState::Enabled).build(), vec![ALICE, DAVE]),
        (f().state(EntityState::Disabled).build(), vec![BOB]),
        (f().state(EntityState::Deleted).build(), vec![CAROL]),
        (
            f().identity_provider_user_id_prefix("90676d0a-1111")
                .build(),
            vec![ALICE],
        ),
        (
            f().identity_provider_user_id_prefix("90676D0A").build(),
            vec![],
        ),
        (
            f().identity_provider_user_id_prefix("90676d0a").build(),
            vec![ALICE, DAVE],
        ),
    ];
    for (filters, want) in cases {
        assert_eq!(
            user_ids(&client, Some(filters.clone())).await,
            want,
            "{filters:?}"
        );
    }

    // One filter per request.
    let two = f().username_prefix("a").state(EntityState::Enabled).build();
    let msg = expect_err!(
        client
            .list_users()
            .organization_id(ORG)
            .filters(two)
            .send()
            .await,
        is_invalid_parameter_exception,
        400
    );
    assert!(msg.contains("one filter"), "{msg}");

    // The fields of each user, against the world.
    let out = client
        .list_users()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();
    let world = server.sim.world();
    let org = &world.orgs[ORG];
    for u in out.users() {
        let w = &org.users[u.id().unwrap()];
        assert_eq!(u.name(), Some(w.name.as_str()));
        assert_eq!(u.email(), w.email.as_deref());
        assert_eq!(u.display_name(), w.display_name.as_deref());
        assert_eq!(u.state().map(EntityState::as_str), Some(w.state.as_str()));
        assert_eq!(u.user_role().map(|r| r.as_str()), Some("USER"));
        assert_eq!(
            opt_ms(u.enabled_date()),
            w.enabled_date.map(|d| d.timestamp_millis())
        );
        assert_eq!(
            opt_ms(u.disabled_date()),
            w.disabled_date.map(|d| d.timestamp_millis())
        );
        assert_eq!(
            u.identity_provider_user_id(),
            w.identity_provider_user_id.as_deref()
        );
    }
    let alice = &out.users()[0];
    assert_eq!(
        opt_ms(alice.enabled_date()),
        Some(t("2025-01-02T03:04:05.678Z").timestamp_millis())
    );
    assert!(alice.identity_provider_identity_store_id().is_some());
    assert_eq!(out.users()[2].email(), None);
}

#[tokio::test]
async fn describes_users_by_id_name_and_email() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);
    for key in [ALICE, "alice", "alice@acme.example.com"] {
        let u = client
            .describe_user()
            .organization_id(ORG)
            .user_id(key)
            .send()
            .await
            .unwrap();
        assert_eq!(u.user_id(), Some(ALICE), "by {key}");
        assert_eq!(u.name(), Some("alice"));
        assert_eq!(u.email(), Some("alice@acme.example.com"));
        assert_eq!(u.display_name(), Some("Alice Ångström"));
        assert_eq!(u.state(), Some(&EntityState::Enabled));
        assert_eq!(u.user_role().map(|r| r.as_str()), Some("USER"));
        assert_eq!(
            opt_ms(u.enabled_date()),
            Some(t("2025-01-02T03:04:05.678Z").timestamp_millis())
        );
        assert_eq!(u.disabled_date(), None);
        assert_eq!(
            u.identity_provider_user_id(),
            Some("90676d0a-1111-2222-3333-444455556666")
        );
    }
    let bob = client
        .describe_user()
        .organization_id(ORG)
        .user_id("bob@acme.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(bob.user_id(), Some(BOB));
    assert_eq!(bob.state(), Some(&EntityState::Disabled));
    assert_eq!(
        opt_ms(bob.disabled_date()),
        Some((now() - chrono::Duration::days(10)).timestamp_millis())
    );
    assert_eq!(bob.display_name(), Some("Bob <b>Builder</b>"));
    let carol = client
        .describe_user()
        .organization_id(ORG)
        .user_id("carol")
        .send()
        .await
        .unwrap();
    assert_eq!(carol.user_id(), Some(CAROL));
    assert_eq!(carol.state(), Some(&EntityState::Deleted));
    assert_eq!(carol.email(), None);
    assert_eq!(carol.identity_provider_user_id(), None);
}

#[tokio::test]
async fn lists_tokens_of_the_organization_and_of_one_user() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);
    let world = server.sim.world();
    let org = &world.orgs[ORG];

    let out = client
        .list_personal_access_tokens()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();
    assert!(out.next_token().is_none());
    let items = out.personal_access_token_summaries();
    assert_eq!(
        token_ids(items),
        ["pat-alice-1", "pat-alice-2", "pat-bob-1", "pat-ghost-1"]
    );
    for s in items {
        let w = &org.tokens[s.personal_access_token_id().unwrap()];
        assert_eq!(s.user_id(), Some(w.user_id.as_str()));
        assert_eq!(s.name(), Some(w.name.as_str()));
        assert_eq!(opt_ms(s.date_created()), Some(w.created.timestamp_millis()));
        assert_eq!(
            opt_ms(s.date_last_used()),
            w.last_used.map(|d| d.timestamp_millis())
        );
        assert_eq!(opt_ms(s.expires_time()), Some(w.expires.timestamp_millis()));
        assert_eq!(s.scopes(), w.scopes.as_slice());
    }
    assert_eq!(items[1].name(), Some("iPhone Mail 📱"));
    assert_eq!(items[1].date_last_used(), None);
    assert_eq!(items[2].scopes(), ["IMAP"], "the scenario's default scope");
    assert_eq!(items[3].user_id(), Some(GHOST));

    let by_user = |user: &'static str| {
        let client = client.clone();
        async move {
            let out = client
                .list_personal_access_tokens()
                .organization_id(ORG)
                .user_id(user)
                .send()
                .await
                .unwrap();
            assert!(out.next_token().is_none());
            token_ids(out.personal_access_token_summaries())
        }
    };
    assert_eq!(by_user(ALICE).await, ["pat-alice-1", "pat-alice-2"]);
    assert_eq!(by_user(BOB).await, ["pat-bob-1"]);
    assert!(by_user(DAVE).await.is_empty());
}

#[tokio::test]
async fn gets_token_metadata_with_fractional_timestamps() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);
    let m = client
        .get_personal_access_token_metadata()
        .organization_id(ORG)
        .personal_access_token_id("pat-alice-1")
        .send()
        .await
        .unwrap();
    assert_eq!(m.personal_access_token_id(), Some("pat-alice-1"));
    assert_eq!(m.user_id(), Some(ALICE));
    assert_eq!(m.name(), Some("Thunderbird on laptop"));
    assert_eq!(m.scopes(), ["IMAP", "SMTP"]);
    assert_eq!(
        opt_ms(m.date_created()),
        Some(t("2026-03-04T05:06:07.891Z").timestamp_millis())
    );
    assert_eq!(
        opt_ms(m.date_last_used()),
        Some(t("2026-10-31T23:59:59.5Z").timestamp_millis())
    );
    assert_eq!(
        opt_ms(m.expires_time()),
        Some(t("2027-03-04T05:06:07.891Z").timestamp_millis())
    );

    // On the wire: epoch seconds with a fraction only where there is one.
    let r = call(
        &server,
        "GetPersonalAccessTokenMetadata",
        &json!({"OrganizationId": ORG, "PersonalAccessTokenId": "pat-alice-1"}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-amz-json-1.1"));
    let body = r.json();
    assert_eq!(body["DateCreated"].as_f64(), Some(1_772_600_767.891));
    assert_eq!(body["DateLastUsed"].as_f64(), Some(1_793_491_199.5));
    let r = call(
        &server,
        "GetPersonalAccessTokenMetadata",
        &json!({"OrganizationId": ORG, "PersonalAccessTokenId": "pat-bob-1"}),
    )
    .await;
    let body = r.json();
    assert!(body["ExpiresTime"].is_u64(), "{body}");
    assert!(body.get("DateLastUsed").is_some());
    let r = call(
        &server,
        "GetPersonalAccessTokenMetadata",
        &json!({"OrganizationId": ORG, "PersonalAccessTokenId": "pat-alice-2"}),
    )
    .await;
    assert!(
        r.json().get("DateLastUsed").is_none(),
        "never used: no member"
    );
}

#[tokio::test]
async fn deletes_tokens_with_an_empty_answer_idempotently() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);
    client
        .delete_personal_access_token()
        .organization_id(ORG)
        .personal_access_token_id("pat-bob-1")
        .send()
        .await
        .unwrap();
    expect_err!(
        client
            .get_personal_access_token_metadata()
            .organization_id(ORG)
            .personal_access_token_id("pat-bob-1")
            .send()
            .await,
        is_resource_not_found_exception,
        400
    );
    // Deleting again succeeds, and so does deleting a token that never existed.
    client
        .delete_personal_access_token()
        .organization_id(ORG)
        .personal_access_token_id("pat-bob-1")
        .send()
        .await
        .unwrap();
    let r = call(
        &server,
        "DeletePersonalAccessToken",
        &json!({"OrganizationId": ORG, "PersonalAccessTokenId": "pat-never-was"}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), json!({}), "the output shape has no members");
    assert!(r.header("x-amzn-requestid").is_some());

    let deleted = server.sim.deleted();
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0].organization_id, ORG);
    assert_eq!(deleted[0].token_id, "pat-bob-1");
    assert_eq!(deleted[0].user_id, BOB);
    let left = client
        .list_personal_access_tokens()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();
    assert_eq!(
        token_ids(left.personal_access_token_summaries()),
        ["pat-alice-1", "pat-alice-2", "pat-ghost-1"]
    );
    assert_eq!(server.sim.calls().count("DeletePersonalAccessToken"), 3);
}

#[tokio::test]
async fn describes_identity_provider_configurations() {
    let server = start_scenario(SCENARIO).await;
    let client = sdk_client(&server);
    let c = client
        .describe_identity_provider_configuration()
        .organization_id(ORG)
        .send()
        .await
        .unwrap();
    assert_eq!(
        c.authentication_mode().map(|m| m.as_str()),
        Some("IDENTITY_PROVIDER_AND_DIRECTORY")
    );
    let pat = c.personal_access_token_configuration().unwrap();
    assert_eq!(pat.status().as_str(), "ACTIVE");
    assert_eq!(pat.lifetime_in_days(), Some(365));
    let ic = c.identity_center_configuration().unwrap();
    assert!(
        ic.instance_arn()
            .starts_with("arn:aws:sso:::instance/ssoins-")
    );
    assert!(
        ic.application_arn()
            .starts_with("arn:aws:sso::123456789012:application/")
    );

    let off = client
        .describe_identity_provider_configuration()
        .organization_id(PATOFF)
        .send()
        .await
        .unwrap();
    assert_eq!(
        off.authentication_mode().map(|m| m.as_str()),
        Some("IDENTITY_PROVIDER_ONLY")
    );
    let pat = off.personal_access_token_configuration().unwrap();
    assert_eq!(pat.status().as_str(), "INACTIVE");
    assert_eq!(pat.lifetime_in_days(), None);

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
