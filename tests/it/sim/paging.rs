//! Pagination: many pages, stable under deletion, and refused forged tokens.

use super::*;

#[tokio::test]
async fn token_items_paginate_across_many_pages() {
    let world = big_world();
    let server = start_sim(world.clone(), SimConfig::default()).await;
    let client = sdk_client(&server);
    for org in active_orgs(&world) {
        server.sim.reset_calls();
        let items: Vec<PersonalAccessTokenSummary> = client
            .list_personal_access_tokens()
            .organization_id(&org.id)
            .max_results(7)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .unwrap();
        let ids = token_ids(&items);
        let want: Vec<String> = org.tokens.keys().cloned().collect();
        assert_eq!(want.len(), 257);
        assert_eq!(ids, want, "the whole set, in order");
        assert_unique(&ids);
        assert_eq!(
            server.sim.calls().count("ListPersonalAccessTokens"),
            37,
            "257 tokens in pages of 7, no empty trailing page"
        );
        for s in &items {
            let w = &org.tokens[s.personal_access_token_id().unwrap()];
            assert_eq!(s.user_id(), Some(w.user_id.as_str()));
            assert_eq!(opt_ms(s.expires_time()), Some(w.expires.timestamp_millis()));
        }

        // One user's tokens, two per page.
        let mut per_user: HashMap<&str, Vec<String>> = HashMap::new();
        for t in org.tokens.values() {
            per_user.entry(&t.user_id).or_default().push(t.id.clone());
        }
        let (user, want) = per_user
            .iter()
            .filter(|(u, _)| org.users.contains_key(**u))
            .max_by_key(|(u, v)| (v.len(), **u))
            .unwrap();
        assert!(want.len() >= 5, "the generator skews tokens to a few users");
        let items: Vec<PersonalAccessTokenSummary> = client
            .list_personal_access_tokens()
            .organization_id(&org.id)
            .user_id(*user)
            .max_results(2)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(&token_ids(&items), want);
    }
}

#[tokio::test]
async fn user_pages_and_organization_items_paginate() {
    let world = big_world();
    let server = start_sim(world.clone(), SimConfig::default()).await;
    let client = sdk_client(&server);
    let org = active_orgs(&world)[0];

    let pages: Vec<_> = client
        .list_users()
        .organization_id(&org.id)
        .max_results(9)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 14, "120 users in pages of 9");
    for (i, p) in pages.iter().enumerate() {
        let want = if i == 13 { 120 - 13 * 9 } else { 9 };
        assert_eq!(p.users().len(), want, "page {i}");
        assert_eq!(p.next_token().is_some(), i < 13);
    }
    let ids: Vec<String> = pages
        .iter()
        .flat_map(|p| p.users())
        .map(|u| u.id().unwrap().to_owned())
        .collect();
    assert_eq!(ids, org.users.keys().cloned().collect::<Vec<_>>());
    assert_unique(&ids);

    // A filtered listing pages through its own subset.
    let pages: Vec<_> = client
        .list_users()
        .organization_id(&org.id)
        .filters(
            ListUsersFilters::builder()
                .state(EntityState::Disabled)
                .build(),
        )
        .max_results(4)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .unwrap();
    let ids: Vec<String> = pages
        .iter()
        .flat_map(|p| p.users())
        .map(|u| u.id().unwrap().to_owned())
        .collect();
    let want: Vec<String> = org
        .users
        .values()
        .filter(|u| u.state == "DISABLED")
        .map(|u| u.id.clone())
        .collect();
    assert!(want.len() > 8, "several pages of disabled users");
    assert_eq!(ids, want);

    // Organizations, one per page.
    server.sim.reset_calls();
    let pages: Vec<_> = client
        .list_organizations()
        .max_results(1)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .unwrap();
    assert!(pages.iter().all(|p| p.organization_summaries().len() == 1));
    let ids: Vec<&str> = pages
        .iter()
        .flat_map(|p| p.organization_summaries())
        .map(|o| o.organization_id().unwrap())
        .collect();
    assert_eq!(
        ids,
        world.orgs.keys().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(ids.len(), 3);
    assert_eq!(server.sim.calls().count("ListOrganizations"), 3);
}

#[tokio::test]
async fn deleting_between_pages_neither_skips_nor_repeats() {
    let world = big_world();
    let server = start_sim(world.clone(), SimConfig::default()).await;
    let client = sdk_client(&server);
    let org = active_orgs(&world)[0];
    let all: Vec<String> = org.tokens.keys().cloned().collect();

    // The paginator fetches a page only when asked for it, so what happens between two
    // `next()` calls happens between two requests.
    let mut pages = client
        .list_personal_access_tokens()
        .organization_id(&org.id)
        .max_results(10)
        .into_paginator()
        .send();
    let first = pages.next().await.unwrap().unwrap();
    let mut seen = token_ids(first.personal_access_token_summaries());
    assert_eq!(seen, all[..10]);

    // Delete the token the cursor points after, one already seen, and one on page 3.
    for id in [&all[9], &all[0], &all[25]] {
        client
            .delete_personal_access_token()
            .organization_id(&org.id)
            .personal_access_token_id(id)
            .send()
            .await
            .unwrap();
    }
    // A token added behind the cursor is not listed; one added ahead of it is.
    let add = |id: &str| Mutation::AddToken {
        organization_id: org.id.clone(),
        token_id: id.to_owned(),
        user_id: org.users.keys().next().unwrap().clone(),
        name: "added mid-listing".into(),
        created: now(),
        last_used: None,
        expires: now() + chrono::Duration::days(30),
        scopes: vec!["IMAP".into()],
    };
    let behind = format!("pat-{}", "0".repeat(24));
    let ahead = format!("pat-{}", "f".repeat(24));
    assert!(behind < all[0] && ahead > all[all.len() - 1]);
    server.sim.mutate(add(&behind)).unwrap();
    server.sim.mutate(add(&ahead)).unwrap();

    while let Some(page) = pages.next().await {
        seen.extend(token_ids(page.unwrap().personal_access_token_summaries()));
    }
    let mut want: Vec<String> = all.iter().filter(|id| **id != all[25]).cloned().collect();
    want.push(ahead);
    assert_unique(&seen);
    assert_eq!(seen, want);
    assert_eq!(
        seen[10], all[10],
        "page 2 starts right after the deleted cursor"
    );
}

#[tokio::test]
async fn forged_tampered_and_foreign_next_tokens_are_refused() {
    let world = big_world();
    let server = start_sim(world.clone(), SimConfig::default()).await;
    let client = sdk_client(&server);
    let orgs = active_orgs(&world);
    let (a, b) = (&orgs[0].id, &orgs[1].id);

    let page = client
        .list_personal_access_tokens()
        .organization_id(a)
        .max_results(5)
        .send()
        .await
        .unwrap();
    let token = page.next_token().unwrap().to_owned();
    // The genuine token works, and works again (it is a cursor, not a one-time ticket).
    for _ in 0..2 {
        let next = client
            .list_personal_access_tokens()
            .organization_id(a)
            .max_results(5)
            .next_token(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            token_ids(next.personal_access_token_summaries()),
            orgs[0]
                .tokens
                .keys()
                .skip(5)
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
        );
    }
    let users_token = client
        .list_users()
        .organization_id(a)
        .max_results(5)
        .send()
        .await
        .unwrap()
        .next_token()
        .unwrap()
        .to_owned();

    let flip = |s: &str, at: usize| {
        let mut chars: Vec<char> = s.chars().collect();
        chars[at] = if chars[at] == '0' { '1' } else { '0' };
        chars.into_iter().collect::<String>()
    };
    let dot = token.find('.').unwrap();
    let forged = [
        "garbage".to_owned(),
        "deadbeef.00".to_owned(),
        flip(&token, 0),               // payload
        flip(&token, dot - 1),         // payload
        flip(&token, token.len() - 1), // MAC
        token[..token.len() - 2].to_owned(),
        token.replace('.', ""),
        users_token.clone(), // another operation's token
    ];
    for bad in &forged {
        let msg = expect_err!(
            client
                .list_personal_access_tokens()
                .organization_id(a)
                .max_results(5)
                .next_token(bad)
                .send()
                .await,
            is_invalid_parameter_exception,
            400
        );
        assert!(msg.contains("NextToken"), "{msg}");
    }
    // Bound to the organization and to the arguments of the listing.
    expect_err!(
        client
            .list_personal_access_tokens()
            .organization_id(b)
            .next_token(&token)
            .send()
            .await,
        is_invalid_parameter_exception,
        400
    );
    let user = orgs[0].tokens.values().next().unwrap().user_id.clone();
    expect_err!(
        client
            .list_personal_access_tokens()
            .organization_id(a)
            .user_id(user)
            .next_token(&token)
            .send()
            .await,
        is_invalid_parameter_exception,
        400
    );
    expect_err!(
        client
            .list_users()
            .organization_id(a)
            .next_token(&token)
            .send()
            .await,
        is_invalid_parameter_exception,
        400
    );
    expect_err!(
        client
            .list_users()
            .organization_id(a)
            .filters(ListUsersFilters::builder().username_prefix("a").build())
            .next_token(&users_token)
            .send()
            .await,
        is_invalid_parameter_exception,
        400
    );
    expect_err!(
        client.list_organizations().next_token(&token).send().await,
        is_invalid_parameter_exception,
        400
    );
    // The page size is not part of the binding: a client may change it between pages.
    client
        .list_users()
        .organization_id(a)
        .max_results(50)
        .next_token(&users_token)
        .send()
        .await
        .unwrap();
}
