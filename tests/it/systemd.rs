//! The systemd side of `switchyard run`: the unit file passes
//! `systemd-analyze verify`, and the binary speaks the notify protocol to a
//! socket this test owns (READY=1 once listening, STATUS= lines, WATCHDOG=1
//! every half of `$WATCHDOG_USEC`, STOPPING=1 on SIGTERM, then exit 0).

use crate::common::{self, eventually};

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::{
    BIN, Binary, ConfigBuilder, REPO, ShopifyAccount, orders_create, post, shopify_signed, signal,
    warehouses,
};
use switchyard::sim::Simulator;
use switchyard_contract::Channel;

const WEBHOOK_SECRET: &str = "test-webhook-secret";

fn unit_text() -> String {
    std::fs::read_to_string(Path::new(REPO).join("systemd/switchyard.service")).unwrap()
}

fn systemd_analyze() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("systemd-analyze"))
        .find(|p| p.is_file())
}

#[test]
fn the_unit_has_what_the_daemon_relies_on() {
    let text = unit_text();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for want in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=30",
        "Restart=on-failure",
        "StateDirectory=switchyard",
        "ConfigurationDirectory=switchyard",
        "DynamicUser=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "SystemCallArchitectures=native",
        "CapabilityBoundingSet=",
        "UMask=0077",
        "LoadCredential=admin-token:/etc/switchyard/credentials/admin-token",
    ] {
        assert!(lines.contains(&want), "the unit lacks {want:?}");
    }
    // The stop timeout leaves room for the default shutdown deadline (20 s).
    let stop = lines
        .iter()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .expect("TimeoutStopSec=");
    let secs: u64 = stop.trim_end_matches('s').parse().unwrap();
    assert!(secs > 20, "TimeoutStopSec={stop}");
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let Some(tool) = systemd_analyze() else {
        // CI must run the check (.ci/run installs the tool and sets CI); a
        // developer machine without systemd skips it, saying so.
        assert!(
            std::env::var_os("CI").is_none_or(|v| v.is_empty()),
            "systemd-analyze is not installed, and CI is set: the unit was not verified \
             (apt-get install systemd)"
        );
        eprintln!(
            "SKIPPED: systemd-analyze is not installed (apt-get install systemd; .ci/run does)"
        );
        return;
    };
    // verify checks that ExecStart= names an executable: point it at the
    // binary under test instead of /usr/local/bin/switchyard.
    let text = unit_text();
    assert!(text.contains("ExecStart=/usr/local/bin/switchyard "));
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("switchyard.service");
    std::fs::write(
        &unit,
        text.replace(
            "ExecStart=/usr/local/bin/switchyard ",
            &format!("ExecStart={BIN} "),
        ),
    )
    .unwrap();
    let out = Command::new(tool)
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("switchyard.service"))
        .collect();
    assert!(ours.is_empty(), "systemd-analyze verify warns:\n{stderr}");
}

/// The daemon's config: one account against the simulator, the example rules.
fn config(dir: &Path, base_url: &str) -> ConfigBuilder {
    ConfigBuilder::new(dir)
        .shutdown_timeout("5s")
        .account(ShopifyAccount::new("shop-us", base_url).webhook_secret(WEBHOOK_SECRET))
}

/// Every datagram the daemon sent, with when it arrived.
fn receive_until(
    sock: &UnixDatagram,
    got: &mut Vec<(Instant, String)>,
    deadline: Instant,
    done: impl Fn(&[(Instant, String)]) -> bool,
) -> bool {
    let mut buf = [0u8; 4096];
    while !done(got) {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        sock.set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))
            .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => got.push((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            )),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("reading the notify socket: {e}"),
        }
    }
    true
}

fn has(got: &[(Instant, String)], line: &str) -> bool {
    got.iter().any(|(_, m)| m.lines().any(|l| l == line))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_notifies_ready_pings_the_watchdog_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let sim = Simulator::start(empty.path()).await.unwrap();
    let config = config(dir.path(), &sim.base_url(Channel::Shopify)).write();
    let socket_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket_path).unwrap();
    let mut daemon = Binary::spawn(&config, |c| {
        c.env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "400000")
            .env("RUST_LOG", "warn")
    });
    let pid = daemon.pid();

    let got = tokio::task::spawn_blocking(move || {
        let mut got = Vec::new();
        let ready = receive_until(
            &sock,
            &mut got,
            Instant::now() + Duration::from_secs(30),
            |g| has(g, "READY=1"),
        );
        assert!(ready, "no READY=1 within 30 s: {got:?}");
        // The address is in the status line that comes with READY=1.
        let ready_msg = &got.iter().find(|(_, m)| m.contains("READY=1")).unwrap().1;
        let addr = ready_msg
            .split("listening on ")
            .nth(1)
            .expect("the READY status names the address")
            .trim()
            .to_owned();
        let readyz = http1::get_status(&format!("http://{addr}/readyz"));
        assert_eq!(readyz, 200, "READY=1 came before the listener answered");

        // Two seconds of keep-alives.
        let window_start = Instant::now();
        receive_until(
            &sock,
            &mut got,
            window_start + Duration::from_secs(2),
            |_| false,
        );
        signal(pid, "TERM");
        let stopping = receive_until(
            &sock,
            &mut got,
            Instant::now() + Duration::from_secs(10),
            |g| has(g, "STOPPING=1"),
        );
        assert!(stopping, "no STOPPING=1 after SIGTERM: {got:?}");
        got.into_iter()
            .map(|(at, m)| {
                (
                    at.saturating_duration_since(window_start),
                    at >= window_start,
                    m,
                )
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let status = daemon
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("the daemon did not exit within 15 s of SIGTERM");
    assert_eq!(status.code(), Some(0));

    let messages: Vec<&str> = got.iter().map(|(_, _, m)| m.as_str()).collect();
    assert!(
        messages.iter().any(|m| m.starts_with("STATUS=starting")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("READY=1\nSTATUS=running: 1 account polling")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("STOPPING=1\nSTATUS=stopping")),
        "{messages:?}"
    );
    // Pings inside the window, before STOPPING=1.
    let stop_at = got
        .iter()
        .position(|(_, _, m)| m.starts_with("STOPPING=1"))
        .unwrap();
    let pings: Vec<Duration> = got[..stop_at]
        .iter()
        .filter(|(_, inside, m)| *inside && m == "WATCHDOG=1")
        .map(|(at, _, _)| *at)
        .collect();
    // Every 200 ms, so about ten in two seconds; the cadence itself is
    // tested on tokio's paused clock (`systemd`), not here on a
    // loaded machine's wall clock: here, that they keep coming.
    assert!(
        pings.len() >= 2,
        "{} keep-alives in 2 s (expected about 10): {pings:?}",
        pings.len()
    );
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!(
        "{} keep-alives in 2 s; gaps {gaps:?}; messages {messages:?}",
        pings.len()
    );
    let max_gap = gaps.iter().max().copied().unwrap_or_default();
    assert!(
        max_gap < Duration::from_millis(400),
        "a gap of {max_gap:?} between keep-alives would trip WATCHDOG_USEC=400000: {gaps:?}"
    );
    assert!(messages.iter().all(|m| !m.is_empty()), "empty notification");
    sim.stop().await;
}

mod http1 {
    /// A plain blocking GET over std (the test runs it on a blocking thread).
    pub fn get_status(url: &str) -> u16 {
        use std::io::{Read, Write};
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_once('/').map_or((rest, "/"), |(h, p)| (h, p));
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }
}

/// A destination that answers each delivery after `delay`, counting the
/// requests it received and the answers it sent.
async fn slow_destination(
    delay: Duration,
) -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (received, answered) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (r, a) = (received.clone(), answered.clone());
    let app = axum::Router::new().fallback(move || {
        let (r, a) = (r.clone(), a.clone());
        async move {
            r.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            a.fetch_add(1, Ordering::SeqCst);
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), received, answered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_outbox_call_in_flight_finish_then_exits_0() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let sim = Simulator::start(empty.path()).await.unwrap();
    let (dest, received, answered) = slow_destination(Duration::from_millis(1500)).await;
    let config = config(dir.path(), &sim.base_url(Channel::Shopify))
        .destinations(warehouses(&format!("{dest}/east"), &format!("{dest}/west")))
        .write();
    let mut daemon = Binary::spawn(&config, |c| c.env("RUST_LOG", "info"));
    let addr = daemon.addr().await;

    // A paid order: config/rules.toml routes it, the delivery starts.
    let mut order = orders_create();
    order["financial_status"] = "paid".into();
    let body = serde_json::to_vec(&order).unwrap();
    let headers = shopify_signed(
        &body,
        WEBHOOK_SECRET,
        [
            ("x-shopify-topic", "orders/create"),
            ("x-shopify-webhook-id", "wh-inflight"),
        ],
    );
    let url = format!("http://{addr}/webhooks/shop-us");
    let (status, _) = post(&reqwest::Client::new(), &url, &headers, body).await;
    assert_eq!(status, 200);
    eventually(
        "the delivery to start",
        Duration::from_secs(20),
        async || received.load(Ordering::SeqCst) > 0,
    )
    .await;

    // SIGTERM while the destination is still answering.
    assert_eq!(answered.load(Ordering::SeqCst), 0);
    let status = daemon
        .terminate(Duration::from_secs(15))
        .await
        .expect("no exit within 15 s of SIGTERM");
    let stderr = daemon.log();
    assert_eq!(status.code(), Some(0), "{stderr}");
    // Everything finished inside the 5 s shutdown deadline: nothing had to
    // be aborted or dropped (the daemon logs it when something is).
    for overrun in [
        "did not stop in time",
        "still open at the shutdown deadline",
    ] {
        assert!(!stderr.contains(overrun), "{stderr}");
    }
    assert_eq!(
        answered.load(Ordering::SeqCst),
        1,
        "the call was let finish"
    );
    assert_eq!(received.load(Ordering::SeqCst), 1);
    // It was recorded as delivered: nothing is pending for the destination.
    let store = switchyard::store::Store::open(
        &dir.path().join("state"),
        switchyard::store::StoreOptions::default(),
    )
    .unwrap();
    let pending: Vec<_> = store
        .outbox_list(false)
        .unwrap()
        .into_iter()
        .filter(|i| i.job.kind() == switchyard::outbox::JobKind::Deliver)
        .collect();
    assert!(pending.is_empty(), "{pending:?}");
    assert!(store.get_order("shop-us:5551234567").unwrap().is_some());
    drop(store);
    sim.stop().await;
}
