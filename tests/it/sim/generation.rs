//! The seeded generator: the same seed gives the same world.

use super::*;

#[tokio::test]
async fn the_same_seed_makes_the_same_world() {
    let a = world::generate(&GenSpec::new(7, now()));
    let b = world::generate(&GenSpec::new(7, now()));
    let c = world::generate(&GenSpec::new(8, now()));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let ids = |w: &World| -> BTreeSet<String> {
        w.orgs
            .values()
            .flat_map(|o| o.tokens.keys().cloned())
            .collect()
    };
    assert!(
        ids(&a).is_disjoint(&ids(&c)),
        "a different seed, different tokens"
    );
    assert!(
        a.orgs
            .keys()
            .collect::<BTreeSet<_>>()
            .is_disjoint(&c.orgs.keys().collect()),
        "and different organizations"
    );

    // Two emulators from the same seed answer the SDK identically.
    let mut listings = Vec::new();
    for w in [a.clone(), b] {
        let server = start_sim(w, SimConfig::default()).await;
        let client = sdk_client(&server);
        let mut all = Vec::new();
        for org in active_orgs(&a) {
            let items: Vec<PersonalAccessTokenSummary> = client
                .list_personal_access_tokens()
                .organization_id(&org.id)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .unwrap();
            all.extend(items);
        }
        listings.push(all);
    }
    assert!(!listings[0].is_empty());
    assert_eq!(listings[0], listings[1]);
}

/// Checks every category issue 2 asks of the generator, against `now`.
fn assert_covers_every_category(w: &World, now: DateTime<Utc>) {
    let day = chrono::Duration::days(1);
    let not_active: Vec<&Org> = w.orgs.values().filter(|o| o.state != "Active").collect();
    assert_eq!(not_active.len(), 1, "one organization not Active");
    let active = active_orgs(w);
    let pat = |o: &Org| o.identity_provider.as_ref().map(|p| p.pat_status.clone());
    let statuses: BTreeSet<Option<String>> = active.iter().map(|o| pat(o)).collect();
    assert!(statuses.contains(&Some("ACTIVE".into())), "{statuses:?}");
    assert!(statuses.contains(&Some("INACTIVE".into())), "{statuses:?}");
    assert!(
        statuses.contains(&None),
        "an organization without configuration"
    );

    let users: Vec<_> = active.iter().flat_map(|o| o.users.values()).collect();
    for state in ["ENABLED", "DISABLED", "DELETED"] {
        assert!(users.iter().any(|u| u.state == state), "users {state}");
    }
    for u in &users {
        assert_eq!(u.disabled_date.is_some(), u.state != "ENABLED", "{u:?}");
    }
    let tokens: Vec<_> = active
        .iter()
        .flat_map(|o| o.tokens.values().map(move |t| (o, t)))
        .collect();
    assert!(
        tokens
            .iter()
            .any(|(o, t)| !o.users.contains_key(&t.user_id)),
        "owners missing from the directory"
    );
    let expiring = |lo: chrono::Duration, hi: chrono::Duration| {
        tokens
            .iter()
            .any(|(_, t)| t.expires - now >= lo && t.expires - now < hi)
    };
    let far = chrono::Duration::days(100_000);
    assert!(expiring(-far, chrono::Duration::zero()), "expired");
    assert!(
        expiring(chrono::Duration::zero(), day),
        "expiring within a day"
    );
    assert!(expiring(day, day * 7), "within a week");
    assert!(expiring(day * 7, day * 30), "within a month");
    assert!(expiring(day * 31, far), "long-lived");
    assert!(
        tokens.iter().any(|(_, t)| t.last_used.is_none()),
        "never used"
    );
    let idle = |lo: i64, hi: i64| {
        tokens.iter().any(|(_, t)| {
            t.last_used
                .is_some_and(|u| now - u >= day * lo as i32 && now - u < day * hi as i32)
        })
    };
    assert!(idle(0, 1), "used today");
    assert!(idle(30, 90), "unused 30 days");
    assert!(idle(90, 180), "unused 90 days");
    assert!(idle(180, 100_000), "unused 180+ days");
    for (_, t) in &tokens {
        assert!((1..=10).contains(&t.scopes.len()), "{t:?}");
        assert!(t.created <= now && t.created < t.expires, "{t:?}");
        if let Some(u) = t.last_used {
            assert!(u >= t.created && u <= now, "{t:?}");
        }
    }
    assert!(
        tokens.iter().any(|(_, t)| t.name.contains(' ')),
        "names with spaces"
    );
    assert!(
        tokens.iter().any(|(_, t)| !t.name.is_ascii()),
        "unicode names"
    );
    assert!(tokens.iter().any(|(_, t)| t.scopes.len() == 1));
    assert!(tokens.iter().any(|(_, t)| t.scopes.len() >= 5));
}

#[tokio::test]
async fn generated_worlds_cover_every_category() {
    let specs = [
        GenSpec::new(7, now()),
        GenSpec {
            users_per_org: 200,
            ..GenSpec::new(7, now())
        },
        GenSpec {
            users_per_org: 20,
            ..GenSpec::new(12345, now())
        },
    ];
    for spec in &specs {
        assert_covers_every_category(&world::generate(spec), spec.now);
    }

    // As the SDK sees it: the configurations and the organization that is not Active.
    let w = world::generate(&specs[0]);
    let server = start_sim(w.clone(), SimConfig::default()).await;
    let client = sdk_client(&server);
    for org in w.orgs.values() {
        let r = client
            .describe_identity_provider_configuration()
            .organization_id(&org.id)
            .send()
            .await;
        match (&org.state[..], &org.identity_provider) {
            ("Active", Some(p)) => {
                let c = r.unwrap();
                let got = c.personal_access_token_configuration().unwrap();
                assert_eq!(got.status().as_str(), p.pat_status);
            }
            ("Active", None) => {
                expect_err!(r, is_resource_not_found_exception, 400);
            }
            _ => {
                expect_err!(r, is_organization_state_exception, 400);
            }
        }
    }
}

#[tokio::test]
async fn generated_times_follow_now() {
    let shift = chrono::Duration::days(10) + chrono::Duration::seconds(17);
    let a = world::generate(&GenSpec::new(3, now()));
    let b = world::generate(&GenSpec::new(3, now() + shift));
    assert_eq!(a.orgs.len(), b.orgs.len());
    for (oa, ob) in a.orgs.values().zip(b.orgs.values()) {
        assert_eq!(oa.id, ob.id);
        assert_eq!(ob.completed - oa.completed, shift);
        for (ua, ub) in oa.users.values().zip(ob.users.values()) {
            assert_eq!(ua.id, ub.id);
            assert_eq!(
                ub.enabled_date.zip(ua.enabled_date).map(|(b, a)| b - a),
                Some(shift)
            );
            assert_eq!(ub.disabled_date.map(|d| d - shift), ua.disabled_date);
        }
        for (ta, tb) in oa.tokens.values().zip(ob.tokens.values()) {
            assert_eq!(ta.id, tb.id);
            assert_eq!(tb.created - ta.created, shift);
            assert_eq!(tb.expires - ta.expires, shift);
            assert_eq!(tb.last_used.map(|d| d - shift), ta.last_used);
        }
    }
    assert_covers_every_category(&b, now() + shift);
}
