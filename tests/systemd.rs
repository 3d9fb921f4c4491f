//! The systemd side of `switchyard run`: the unit file passes
//! `systemd-analyze verify`, and the binary speaks the notify protocol to a
//! socket this test owns (READY=1 once listening, STATUS= lines, WATCHDOG=1
//! every half of `$WATCHDOG_USEC`, STOPPING=1 on SIGTERM, then exit 0).

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchyard::sim::Simulator;
use switchyard_contract::Channel;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const REPO: &str = env!("CARGO_MANIFEST_DIR");

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

fn write_config(dir: &Path, base_url: &str) -> PathBuf {
    let path = dir.join("switchyard.toml");
    std::fs::write(
        &path,
        format!(
            r#"[daemon]
state_dir = "{state}"
listen = "127.0.0.1:0"
rules = "{REPO}/config/rules.toml"
shutdown_timeout = "5s"

[[account]]
id = "shop-us"
channel = "shopify"
base_url = "{base_url}"
poll_interval = "1h"
webhooks = true
access_token = "test-token"
webhook_secret = "test-webhook-secret"

[[destination]]
id = "east-wh"
kind = "webhook"
url = "http://127.0.0.1:9/east"
secret = "test-secret-east"

[[destination]]
id = "west-3pl"
kind = "webhook"
url = "http://127.0.0.1:9/west"
secret = "test-secret-west"
"#,
            state = dir.join("state").display(),
        ),
    )
    .unwrap();
    path
}

/// Kills the child if the test fails before it exits.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
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
    let config = write_config(dir.path(), &sim.base_url(Channel::Shopify));
    let socket_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket_path).unwrap();
    let child = Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "run"])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(child);
    let pid = daemon.0.id().to_string();

    let (got, status) = tokio::task::spawn_blocking(move || {
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
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let stopping = receive_until(
            &sock,
            &mut got,
            Instant::now() + Duration::from_secs(10),
            |g| has(g, "STOPPING=1"),
        );
        assert!(stopping, "no STOPPING=1 after SIGTERM: {got:?}");
        let status = wait_exit(&mut daemon.0, Duration::from_secs(15));
        (
            got.into_iter()
                .map(|(at, m)| {
                    (
                        at.saturating_duration_since(window_start),
                        at >= window_start,
                        m,
                    )
                })
                .collect::<Vec<_>>(),
            status,
        )
    })
    .await
    .unwrap();
    let status = status.expect("the daemon did not exit within 15 s of SIGTERM");
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
    // Every 200 ms: about ten in two seconds.
    assert!(
        (7..=13).contains(&pings.len()),
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
    let config = write_config(dir.path(), &sim.base_url(Channel::Shopify));
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("http://127.0.0.1:9", &dest);
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("stderr.log");
    let child = Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "run"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(rest) = text
            .lines()
            .find(|l| l.contains("switchyard started"))
            .and_then(|l| l.split("addr=").nth(1))
        {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no start:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // A paid order: config/rules.toml routes it, the delivery starts.
    let fixture =
        Path::new(REPO).join("fixtures/shopify/webhooks-orders/webhooks/01-orders-create.json");
    let mut order: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    order["financial_status"] = "paid".into();
    let body = serde_json::to_vec(&order).unwrap();
    let signature = switchyard_shopify::webhook::sign(
        &body,
        &switchyard_contract::Secret::new("test-webhook-secret"),
    );
    let resp = ::reqwest::Client::new()
        .post(format!("http://{addr}/webhooks/shop-us"))
        .header("x-shopify-topic", "orders/create")
        .header("x-shopify-webhook-id", "wh-inflight")
        .header("x-shopify-hmac-sha256", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while received.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the delivery never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // SIGTERM while the destination is still answering.
    assert_eq!(answered.load(Ordering::SeqCst), 0);
    let term_at = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &daemon.0.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || {
        let s = wait_exit(&mut daemon.0, Duration::from_secs(15));
        (s, daemon)
    })
    .await
    .unwrap()
    .0
    .expect("no exit within 15 s of SIGTERM");
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        term_at.elapsed() < Duration::from_secs(5),
        "the 5 s shutdown deadline was not kept"
    );
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
        .filter(|i| i.kind == "deliver")
        .collect();
    assert!(pending.is_empty(), "{pending:?}");
    assert!(store.get_order("shop-us:5551234567").unwrap().is_some());
    drop(store);
    sim.stop().await;
}
