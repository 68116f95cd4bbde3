//! Configuration reload: `POST /-/reload` (with `server.enable_lifecycle`, behind the web
//! configuration's auth) and `SIGHUP` re-read the file; a valid one is applied keeping the
//! organizations that stay, an invalid one is refused and the old one stays, settings that
//! need a restart are reported.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use workmail_pat_monitor::app::{Daemon, Loader, Options};
use workmail_pat_monitor::config::Config;
use workmail_pat_monitor::webconfig::LiveWebConfig;

use crate::monitor::{BASIC, CORP, LABS};
use crate::support::*;

const ALICE: &str = "11111111-1111-1111-1111-111111111111";

/// A configuration of the organizations given (`(id, alias)`), with a long scan interval so
/// that only a reload makes anything happen.
fn text(listen: &str, lifecycle: bool, windows: &str, orgs: &[(&str, &str)]) -> String {
    let mut t = format!(
        "[server]\nlisten = \"{listen}\"\nenable_lifecycle = {lifecycle}\n\
         [scan]\ninterval = \"1h\"\nowner_lookup = \"describe\"\n\
         [metrics]\nexpiry_windows = [{windows}]\n"
    );
    for (id, alias) in orgs {
        t.push_str(&format!(
            "[[organizations]]\nid = \"{id}\"\nalias = \"{alias}\"\nregion = \"us-east-1\"\n"
        ));
    }
    t
}

fn loader(path: &Path) -> Loader {
    let path = path.to_owned();
    Arc::new(move || Config::load(&path).map_err(|e| e.to_string()))
}

async fn start(
    path: &Path,
    web: Option<Arc<LiveWebConfig>>,
) -> (workmail_pat_monitor::sim::SimServer, Daemon) {
    let server = start_scenario(BASIC).await;
    let (opts, _clock) = options();
    let opts = Options {
        loader: Some(loader(path)),
        web,
        ..opts
    };
    let config = Config::load(path).unwrap();
    let daemon = Daemon::start(config, source(&server), opts).await.unwrap();
    wait_ready(daemon.addr).await;
    (server, daemon)
}

async fn post(daemon: &Daemon, headers: &[(&str, &str)]) -> Reply {
    request(&daemon.addr.to_string(), "POST", "/-/reload", headers, b"").await
}

async fn scrape(daemon: &Daemon) -> String {
    http_get(&format!("http://{}/metrics", daemon.addr)).await.1
}

fn exported(text: &str, org: &str) -> bool {
    text.contains(&format!("organization_id=\"{org}\""))
}

#[tokio::test]
async fn post_reload_applies_a_valid_file_keeps_what_stays_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let listen = "127.0.0.1:0";
    std::fs::write(&path, text(listen, true, "\"7d\"", &[(CORP, "corp")])).unwrap();
    let (server, daemon) = start(&path, None).await;
    let ctx = daemon.ctx.clone();
    let kept = ctx.shared.org(CORP).unwrap().inventory.unwrap();
    assert!(
        ctx.cache.get(CORP, ALICE).is_some(),
        "the scan cached alice"
    );
    let before = scrape(&daemon).await;
    assert!(!exported(&before, LABS));
    assert_eq!(
        sample(&before, "workmail_pat_config_last_reload_successful", &[]),
        Some(1.0)
    );
    let started = sample(
        &before,
        "workmail_pat_config_last_reload_success_timestamp_seconds",
        &[],
    )
    .unwrap();
    assert_eq!(started, now().timestamp() as f64, "the start counts");

    // A valid file: one more organization, other expiry windows.
    std::fs::write(
        &path,
        text(
            listen,
            true,
            "\"1d\", \"30d\"",
            &[(CORP, "corp"), (LABS, "labs")],
        ),
    )
    .unwrap();
    let r = post(&daemon, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "configuration reloaded\n");
    wait_for_state("labs to be scanned after the reload", &ctx.shared, |s| {
        s.org(LABS).is_some_and(|o| o.up)
    })
    .await;
    let corp = ctx.shared.org(CORP).unwrap();
    assert!(
        Arc::ptr_eq(&kept, corp.inventory.as_ref().unwrap()),
        "corp's inventory is kept, not scanned again"
    );
    assert!(
        ctx.cache.get(CORP, ALICE).is_some(),
        "corp's owners stay cached"
    );
    let after = {
        let mut text = String::new();
        wait_for_async("/metrics to show labs's scan", DEADLINE, async || {
            text = scrape(&daemon).await;
            sample(
                &text,
                "workmail_pat_tokens_expiring",
                &[&format!("organization_id=\"{LABS}\""), "within=\"30d\""],
            )
            .is_some()
        })
        .await;
        text
    };
    // Corp's kept inventory is measured under the new windows (as the scenario's monitor
    // test counts them for a fresh scan).
    for (within, want) in [("1d", 1.0), ("30d", 3.0)] {
        let got = sample(
            &after,
            "workmail_pat_tokens_expiring",
            &[
                &format!("organization_id=\"{CORP}\""),
                &format!("within=\"{within}\""),
            ],
        );
        assert_eq!(got, Some(want), "corp, within {within}");
    }
    assert!(
        !after.contains("within=\"7d\""),
        "the old window is gone: {after}"
    );
    assert_eq!(
        sample(&after, "workmail_pat_config_last_reload_successful", &[]),
        Some(1.0)
    );

    // A file that does not load: refused, named, and the configuration in force stays.
    std::fs::write(&path, "[scan]\ninterval = \"soon\"\n").unwrap();
    let r = post(&daemon, &[]).await;
    assert_eq!(r.status, 500);
    let body = r.text();
    assert!(
        body.contains("previous configuration stays in force")
            && body.contains(&path.display().to_string())
            && body.contains("scan.interval"),
        "{body}"
    );
    let refused = scrape(&daemon).await;
    assert_eq!(
        sample(&refused, "workmail_pat_config_last_reload_successful", &[]),
        Some(0.0)
    );
    assert!(exported(&refused, LABS), "the old configuration stays");
    assert_eq!(ctx.config().organizations.len(), 2);
    assert_eq!(ctx.config().metrics.expiry_windows.len(), 2);

    // Labs dropped, a new listen address (needs a restart) and the lifecycle API turned off.
    std::fs::write(
        &path,
        text("127.0.0.1:1", false, "\"7d\"", &[(CORP, "corp")]),
    )
    .unwrap();
    let r = post(&daemon, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.text(),
        "configuration reloaded\nserver.listen: changed, but needs a restart; the old value stays in force\n"
    );
    let mut dropped = String::new();
    wait_for_async("labs to leave /metrics", DEADLINE, async || {
        dropped = scrape(&daemon).await;
        !exported(&dropped, LABS)
    })
    .await;
    assert!(exported(&dropped, CORP));
    assert_eq!(
        sample(&dropped, "workmail_pat_config_restart_required", &[]),
        Some(1.0)
    );
    assert_eq!(
        ctx.config().server.listen.to_string(),
        "127.0.0.1:0",
        "the listener in force is the one bound"
    );
    assert!(ctx.cache.get(LABS, ALICE).is_none());
    // Now disabled: refused as Prometheus refuses it, nothing re-read.
    std::fs::write(
        &path,
        text(listen, true, "\"7d\"", &[(CORP, "corp"), (LABS, "labs")]),
    )
    .unwrap();
    let r = post(&daemon, &[]).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(ctx.config().organizations.len(), 1);
    let (status, _) = http_get(&format!("http://{}/-/reload", daemon.addr)).await;
    assert_eq!(status, 405, "GET does not reload");
    daemon.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn post_reload_is_behind_the_web_configurations_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        text("127.0.0.1:0", true, "\"7d\"", &[(CORP, "corp")]),
    )
    .unwrap();
    let web_path = dir.path().join("web.yml");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(&web_path, format!("basic_auth_users:\n  admin: '{hash}'\n")).unwrap();
    let web = Arc::new(LiveWebConfig::load(&web_path).unwrap());
    let server = start_scenario(BASIC).await;
    let (opts, _clock) = options();
    let opts = Options {
        loader: Some(loader(&path)),
        web: Some(web),
        ..opts
    };
    let daemon = Daemon::start(Config::load(&path).unwrap(), source(&server), opts)
        .await
        .unwrap();
    std::fs::write(
        &path,
        text(
            "127.0.0.1:0",
            true,
            "\"7d\"",
            &[(CORP, "corp"), (LABS, "labs")],
        ),
    )
    .unwrap();
    let r = post(&daemon, &[]).await;
    assert_eq!(r.status, 401);
    let r = post(&daemon, &[("Authorization", "Basic YWRtaW46Z3Vlc3M=")]).await; // admin:guess
    assert_eq!(r.status, 401);
    assert_eq!(daemon.ctx.config().organizations.len(), 1, "not reloaded");
    let r = post(&daemon, &[("Authorization", "Basic YWRtaW46czNjcmV0")]).await; // admin:s3cret
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(daemon.ctx.config().organizations.len(), 2);
    daemon.stop().await;
    server.stop().await;
}

fn hup(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -HUP {pid}");
}

async fn scrape_addr(addr: std::net::SocketAddr) -> String {
    http_get(&format!("http://{addr}/metrics")).await.1
}

#[tokio::test]
async fn sighup_reloads_the_file_and_a_bad_one_is_refused_with_the_old_one_kept() {
    let server = start_scenario(BASIC).await;
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("config.toml");
    let addr = free_addr();
    // The lifecycle API stays off: the signal does not need it.
    std::fs::write(
        &path,
        text(&addr.to_string(), false, "\"7d\"", &[(CORP, "corp")]),
    )
    .unwrap();
    let child = bin_against(&server)
        .arg("run")
        .arg("--config")
        .arg(&path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    wait_ready(addr).await;
    assert!(!exported(&scrape_addr(addr).await, LABS));

    std::fs::write(
        &path,
        text(
            &addr.to_string(),
            false,
            "\"7d\"",
            &[(CORP, "corp"), (LABS, "labs")],
        ),
    )
    .unwrap();
    hup(pid);
    wait_for_async("labs in /metrics after SIGHUP", DEADLINE, async || {
        exported(&scrape_addr(addr).await, LABS)
    })
    .await;
    let text_after = scrape_addr(addr).await;
    assert_eq!(
        sample(
            &text_after,
            "workmail_pat_config_last_reload_successful",
            &[]
        ),
        Some(1.0)
    );

    std::fs::write(&path, "[server]\nlisten = 17\n").unwrap();
    hup(pid);
    let mut refused = String::new();
    wait_for_async("the refused reload in /metrics", DEADLINE, async || {
        refused = scrape_addr(addr).await;
        sample(&refused, "workmail_pat_config_last_reload_successful", &[]) == Some(0.0)
    })
    .await;
    assert!(exported(&refused, LABS), "the old configuration stays");
    assert!(exported(&refused, CORP));

    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = within(
        "the daemon to exit on SIGTERM",
        DEADLINE,
        child.wait_with_output(),
    )
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("configuration reload refused")
            && stderr.contains(&path.display().to_string())
            && stderr.contains("listen = 17"),
        "the refusal is logged with the file and line: {stderr}"
    );
}

#[tokio::test]
async fn a_reload_that_adds_a_cleanup_rule_starts_cleanup_runs_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let ledger = dir.path().join("ledger.jsonl");
    let base = text("127.0.0.1:0", true, "\"7d\"", &[(CORP, "corp")]);
    let cleanup = |mode: &str| format!("[cleanup]\nmode = \"{mode}\"\naudit_log = {ledger:?}\n");
    std::fs::write(&path, format!("{base}{}", cleanup("off"))).unwrap();
    let (server, daemon) = start(&path, None).await;
    assert!(daemon.ctx.shared.org(CORP).unwrap().cleanup.is_none());
    assert!(daemon.ctx.shared.org(CORP).unwrap().plan.is_none());
    std::fs::write(
        &path,
        format!(
            "{base}{}exclude_tokens = [\"break-glass*\"]\nmax_deletions_percent = 100\n\
             [[cleanup.rules]]\nname = \"unused-90d\"\nunused_for = \"90d\"\n",
            cleanup("dry-run")
        ),
    )
    .unwrap();
    let r = post(&daemon, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The kept inventory is planned under the new rule at once, and the cleanup loop runs it.
    assert!(daemon.ctx.shared.org(CORP).unwrap().plan.is_some());
    wait_for_state(
        "a cleanup run under the new rule",
        &daemon.ctx.shared,
        |s| s.org(CORP).is_some_and(|o| o.cleanup.is_some()),
    )
    .await;
    let run = daemon.ctx.shared.org(CORP).unwrap().cleanup.unwrap();
    assert!(
        run.actions
            .iter()
            .any(|a| a.rule == "unused-90d" && a.action.as_str() == "would_delete"),
        "{:?}",
        run.actions
    );
    assert!(server.sim.deleted().is_empty(), "dry-run deletes nothing");
    let audited = std::fs::read_to_string(&ledger).unwrap();
    assert!(audited.contains("would_delete"), "{audited}");
    daemon.stop().await;
    server.stop().await;
}
