//! Shards: `scan.shard` / `scan.total_shards` (or `--shard`/`--total-shards`) split the
//! organizations by a stable hash of their id; each process scans, exports and cleans only its
//! own.

use std::collections::BTreeSet;

use workmail_pat_monitor::config::shard_of;
use workmail_pat_monitor::sim::world::{GenSpec, generate};

use crate::errors::write_config;
use crate::support::*;

const ORGANIZATIONS: usize = 40;

#[tokio::test]
async fn every_organization_is_scanned_by_exactly_one_shard() {
    let world = generate(&GenSpec {
        seed: 11,
        organizations: ORGANIZATIONS,
        users_per_org: 2,
        tokens_per_org: Some(2),
        inactive_organization: false,
        now: now(),
    });
    let all: BTreeSet<String> = world.orgs.keys().cloned().collect();
    assert_eq!(all.len(), ORGANIZATIONS);
    let server = start_sim(world, Default::default()).await;
    for total in 1..=5u32 {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for shard in 0..total {
            let (out, _) = once(
                &server,
                config(&format!(
                    "[scan]\nshard = {shard}\ntotal_shards = {total}\n[discovery]\nregions = [\"us-east-1\"]\n"
                )),
            )
            .await;
            let mine: BTreeSet<String> = out
                .scans
                .iter()
                .map(|(org, r)| {
                    assert!(
                        r.is_ok(),
                        "{total} shards, shard {shard}: {} failed",
                        org.id
                    );
                    org.id.clone()
                })
                .collect();
            for id in &mine {
                assert_eq!(
                    shard_of(id, total),
                    shard,
                    "{id} scanned by the wrong shard"
                );
                assert!(
                    seen.insert(id.clone()),
                    "{total} shards: {id} scanned by two of them"
                );
            }
            // Exported: its own organizations only, and which shard it is.
            let text = out.ctx.metrics.render(&out.ctx.shared);
            for id in &all {
                let exported = text.contains(&format!("organization_id=\"{id}\""));
                assert_eq!(
                    exported,
                    mine.contains(id),
                    "{total} shards, shard {shard}: {id} exported: {exported}"
                );
            }
            assert_eq!(
                sample(
                    &text,
                    "workmail_pat_shard_info",
                    &[
                        &format!("shard=\"{shard}\""),
                        &format!("total_shards=\"{total}\"")
                    ]
                ),
                Some(1.0),
                "no shard info in:\n{text}"
            );
        }
        assert_eq!(seen, all, "{total} shards: organizations no shard scanned");
    }
}

#[tokio::test]
async fn a_shard_outside_the_total_is_refused_naming_the_key_or_the_flags() {
    let e = workmail_pat_monitor::config::Config::parse(
        "[scan]\nshard = 3\ntotal_shards = 3\n[discovery]\nregions = [\"us-east-1\"]\n",
        "shards.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("shards.toml: scan.shard: shard 3 must be below total_shards (3"),
        "{e}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), "[discovery]\nregions = [\"us-east-1\"]\n");
    for (args, needle) in [
        (
            &["--shard", "2", "--total-shards", "2"][..],
            "--shard 2 --total-shards 2: shard 2 must be below total_shards (2",
        ),
        (&["--shard", "1"][..], "--total-shards"),
    ] {
        let out = output_of(
            "once with bad shard flags",
            tokio::process::Command::new(env!("CARGO_BIN_EXE_workmail-pat-monitor"))
                .env_clear()
                .args(["once", "--config"])
                .arg(&file)
                .args(args),
        )
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: no {needle:?} in {stderr}"
        );
    }
}
