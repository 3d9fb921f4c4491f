//! systemd integration without a crate: the `sd_notify` datagrams
//! (`READY=1`, `STATUS=`, `WATCHDOG=1`, `STOPPING=1`) and the worker
//! heartbeats that decide whether the watchdog is fed.
//!
//! # Notifications
//!
//! [`Notifier::from_env`] reads `$NOTIFY_SOCKET` (a path, or `@name` for the
//! abstract namespace) and `$WATCHDOG_USEC` (ignored when `$WATCHDOG_PID`
//! names another process). Without `$NOTIFY_SOCKET` every call is a no-op.
//! Each message is one datagram, sent without blocking: a full socket drops
//! the message (logged at debug) rather than stall the daemon.
//!
//! # Watchdog
//!
//! Being scheduled is not being alive: a poll loop stuck on a call that never
//! returns, or an outbox worker wedged on a lock, must stop the keep-alives
//! so that systemd restarts the daemon. So every long-lived worker (each
//! account's poll loop, each outbox worker) holds a [`Heartbeat`] and
//! declares, whenever it moves on, how long it may take until its next beat:
//!
//! - [`Heartbeat::beat`] — "alive, next beat within three ticks";
//! - [`Heartbeat::busy`] — "starting a step bounded by this budget" (a poll
//!   page: the HTTP client's timeouts; an outbound call: its call timeout);
//! - [`Heartbeat::pause`] — sleeps, beating every tick, so a worker waiting
//!   for its next poll or a retry time stays alive however long the wait.
//!
//! The [`watchdog`] task wakes every half of `$WATCHDOG_USEC` and sends
//! `WATCHDOG=1` only if no registered heartbeat is past its deadline. A
//! worker whose step overruns its budget is *stalled*: the pings stop (and
//! `STATUS=` and the log name the worker), systemd's `WatchdogSec=` expires,
//! and `Restart=on-failure` starts a fresh daemon. A worker that ends by
//! panicking counts as stalled for good; one that returns (shutdown, `once`
//! runs) or is aborted leaves the set. If the async runtime itself is wedged,
//! the watchdog task does not run and no ping goes out either.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

/// Talks to the service manager; a no-op when not started by one.
#[derive(Debug, Default)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    /// `$WATCHDOG_USEC`, when the watchdog is on for this process.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Does nothing.
    pub fn disabled() -> Notifier {
        Notifier::default()
    }

    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`.
    pub fn from_env() -> Notifier {
        Notifier::from_vars(
            std::env::var_os("NOTIFY_SOCKET"),
            std::env::var("WATCHDOG_USEC").ok(),
            std::env::var("WATCHDOG_PID").ok(),
        )
    }

    /// From the values of those three variables.
    pub fn from_vars(
        socket: Option<OsString>,
        watchdog_usec: Option<String>,
        watchdog_pid: Option<String>,
    ) -> Notifier {
        let watchdog = watchdog_usec
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&us| us > 0)
            .filter(|_| {
                watchdog_pid
                    .and_then(|p| p.trim().parse::<u32>().ok())
                    .is_none_or(|pid| pid == std::process::id())
            })
            .map(Duration::from_micros);
        let target = socket
            .filter(|s| !s.is_empty())
            .and_then(|s| match connect(&s) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(socket = ?s, error = %e, "NOTIFY_SOCKET is not usable; systemd will not hear from this process");
                    None
                }
            });
        Notifier { target, watchdog }
    }

    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`. None when
    /// the watchdog is off or there is nobody to tell.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.target.as_ref()?;
        self.watchdog.map(|d| d / 2)
    }

    /// Sends one message (`KEY=VALUE` lines). Failures are logged, never fatal.
    pub fn send(&self, message: &str) {
        let Some((socket, addr)) = &self.target else {
            return;
        };
        if let Err(e) = socket.send_to_addr(message.as_bytes(), addr) {
            if e.kind() == ErrorKind::WouldBlock {
                tracing::debug!("the notify socket is full; message dropped");
            } else {
                tracing::debug!(error = %e, "sending to NOTIFY_SOCKET failed");
            }
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// `STATUS=`: what the daemon is doing, as `systemctl status` shows it.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// `STOPPING=1` with a status line.
    pub fn stopping(&self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

fn connect(socket: &OsString) -> std::io::Result<(UnixDatagram, SocketAddr)> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = socket.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => abstract_addr(name)?,
        None => SocketAddr::from_pathname(std::path::Path::new(socket))?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    Ok((sock, addr))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8]) -> std::io::Result<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_addr(_name: &[u8]) -> std::io::Result<SocketAddr> {
    Err(std::io::Error::new(
        ErrorKind::Unsupported,
        "abstract socket addresses exist on Linux only",
    ))
}

const RUNNING: u8 = 0;
const RETIRED: u8 = 1;
const DIED: u8 = 2;

#[derive(Debug)]
struct Beat {
    name: String,
    /// Milliseconds since the registry's epoch by which the next beat is due.
    deadline_ms: AtomicU64,
    state: AtomicU8,
}

#[derive(Debug)]
struct Board {
    epoch: Instant,
    tick: Duration,
    beats: Mutex<Vec<Arc<Beat>>>,
}

/// The heartbeats of every worker of one daemon. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Heartbeats(Arc<Board>);

impl Default for Heartbeats {
    fn default() -> Self {
        Heartbeats::new(Duration::from_secs(5))
    }
}

impl Heartbeats {
    /// `tick`: how often idle workers beat. A beat is good for three ticks.
    pub fn new(tick: Duration) -> Heartbeats {
        Heartbeats(Arc::new(Board {
            epoch: Instant::now(),
            tick: tick.max(Duration::from_millis(10)),
            beats: Mutex::new(Vec::new()),
        }))
    }

    /// The tick that suits a watchdog ping interval: a few beats per ping,
    /// at most every 5 s.
    pub fn for_watchdog(ping_interval: Option<Duration>) -> Heartbeats {
        let tick = ping_interval
            .map(|p| (p / 2).min(Duration::from_secs(5)))
            .unwrap_or(Duration::from_secs(5));
        Heartbeats::new(tick)
    }

    pub fn tick(&self) -> Duration {
        self.0.tick
    }

    fn now_ms(&self) -> u64 {
        crate::pacing::millis(self.0.epoch.elapsed())
    }

    /// A heartbeat for a new worker, alive as of now.
    pub fn register(&self, name: impl Into<String>) -> Heartbeat {
        let beat = Arc::new(Beat {
            name: name.into(),
            deadline_ms: AtomicU64::new(0),
            state: AtomicU8::new(RUNNING),
        });
        let mut beats = self.0.beats.lock();
        beats.retain(|b| b.state.load(Ordering::Acquire) != RETIRED);
        beats.push(beat.clone());
        drop(beats);
        let hb = Heartbeat {
            beat,
            board: self.clone(),
        };
        hb.beat();
        hb
    }

    /// The names of the workers whose next beat is overdue, or that died.
    pub fn stalled(&self) -> Vec<String> {
        let now = self.now_ms();
        let beats = self.0.beats.lock();
        beats
            .iter()
            .filter(|b| match b.state.load(Ordering::Acquire) {
                RUNNING => b.deadline_ms.load(Ordering::Acquire) < now,
                RETIRED => false,
                _ => true,
            })
            .map(|b| b.name.clone())
            .collect()
    }

    /// How many workers are registered and not retired.
    pub fn len(&self) -> usize {
        let beats = self.0.beats.lock();
        beats
            .iter()
            .filter(|b| b.state.load(Ordering::Acquire) != RETIRED)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One worker's heartbeat. Dropped normally, the worker leaves the set;
/// dropped while panicking, it counts as stalled from then on.
#[derive(Debug)]
pub struct Heartbeat {
    beat: Arc<Beat>,
    board: Heartbeats,
}

impl Heartbeat {
    fn due_in(&self, within: Duration) {
        let at = self
            .board
            .now_ms()
            .saturating_add(crate::pacing::millis(within));
        self.beat.deadline_ms.store(at, Ordering::Release);
    }

    /// Alive; the next beat comes within three ticks.
    pub fn beat(&self) {
        self.due_in(self.board.tick() * 3);
    }

    /// Starting a step that takes at most `budget` (plus the usual slack).
    pub fn busy(&self, budget: Duration) {
        self.due_in(budget + self.board.tick() * 3);
    }

    /// Sleeps for `d`, beating every tick.
    pub async fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        loop {
            self.beat();
            let now = Instant::now();
            if now >= until {
                return;
            }
            tokio::time::sleep((until - now).min(self.board.tick())).await;
        }
    }

    pub fn name(&self) -> &str {
        &self.beat.name
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        let state = if std::thread::panicking() {
            DIED
        } else {
            RETIRED
        };
        self.beat.state.store(state, Ordering::Release);
    }
}

/// Sends `WATCHDOG=1` every `interval` while no worker is stalled, until
/// `stop` turns true. Names stalled workers in the log and in `STATUS=`.
pub async fn watchdog(
    notifier: Arc<Notifier>,
    heartbeats: Heartbeats,
    interval: Duration,
    running_status: impl Fn() -> String + Send,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_stalled: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let stalled = heartbeats.stalled();
        if stalled.is_empty() {
            notifier.watchdog();
            if !was_stalled.is_empty() {
                tracing::info!("every worker is alive again; watchdog keep-alives resumed");
                notifier.status(&running_status());
            }
        } else if stalled != was_stalled {
            tracing::error!(workers = %stalled.join(", "), "worker stalled; withholding the watchdog keep-alive (systemd restarts the daemon when WatchdogSec runs out)");
            notifier.status(&format!(
                "stalled: {}; watchdog keep-alives withheld",
                stalled.join(", ")
            ));
        }
        was_stalled = stalled;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> (tempfile::TempDir, UnixDatagram, OsString) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (dir, sock, path.into_os_string())
    }

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_to_a_path_socket() {
        let (_dir, sock, path) = listener();
        let n = Notifier::from_vars(Some(path), Some("400000".into()), None);
        assert!(n.is_enabled());
        assert_eq!(n.watchdog_interval(), Some(Duration::from_millis(200)));
        n.ready("up\nand running");
        assert_eq!(recv(&sock), "READY=1\nSTATUS=up and running");
        n.watchdog();
        assert_eq!(recv(&sock), "WATCHDOG=1");
        n.stopping("bye");
        assert_eq!(recv(&sock), "STOPPING=1\nSTATUS=bye");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!(
            "switchyard-test-{}-{:?}",
            std::process::id(),
            Instant::now()
        );
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = Notifier::from_vars(Some(format!("@{name}").into()), None, None);
        n.status("hello");
        assert_eq!(recv(&sock), "STATUS=hello");
        assert_eq!(n.watchdog_interval(), None);
    }

    #[test]
    fn without_a_socket_nothing_happens() {
        let n = Notifier::from_vars(None, Some("400000".into()), None);
        assert!(!n.is_enabled());
        assert_eq!(n.watchdog_interval(), None);
        n.ready("x");
        let other = Notifier::from_vars(
            Some("/nonexistent/x.sock".into()),
            Some("1000000".into()),
            Some("1".into()),
        );
        // WATCHDOG_PID names another process: no watchdog for us.
        assert_eq!(other.watchdog, None);
    }

    // On tokio's paused clock: the figures are exact, whatever the load.
    #[tokio::test(start_paused = true)]
    async fn a_worker_past_its_budget_is_stalled_and_pausing_keeps_it_alive() {
        let hbs = Heartbeats::new(Duration::from_millis(20));
        let a = hbs.register("poll a");
        let b = hbs.register("outbox b");
        assert!(hbs.stalled().is_empty());
        b.busy(Duration::from_millis(400));
        a.pause(Duration::from_millis(200)).await;
        assert!(hbs.stalled().is_empty());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(hbs.stalled(), ["poll a", "outbox b"]);
        a.beat();
        b.beat();
        assert!(hbs.stalled().is_empty());
        drop(a);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            hbs.stalled(),
            ["outbox b"],
            "a returned worker leaves the set"
        );
        assert_eq!(hbs.len(), 1);
    }

    #[tokio::test]
    async fn a_panicked_worker_stays_stalled() {
        let hbs = Heartbeats::new(Duration::from_secs(60));
        let hb = hbs.register("poll x");
        let task = tokio::spawn(async move {
            let _hb = hb;
            panic!("boom");
        });
        assert!(task.await.is_err());
        assert_eq!(hbs.stalled(), ["poll x"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_pings_only_while_every_worker_is_alive() {
        let (_dir, sock, path) = listener();
        sock.set_nonblocking(true).unwrap();
        let n = Arc::new(Notifier::from_vars(Some(path), Some("100000".into()), None));
        let hbs = Heartbeats::new(Duration::from_millis(20));
        let hb = hbs.register("worker");
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(watchdog(
            n,
            hbs.clone(),
            Duration::from_millis(50),
            || "running".into(),
            stop_rx,
        ));
        let drain = |sock: &UnixDatagram| {
            let mut got = vec![];
            let mut buf = [0u8; 256];
            while let Ok(k) = sock.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..k]).into_owned());
            }
            got
        };
        let pings = |got: &[String]| got.iter().filter(|m| *m == "WATCHDOG=1").count();
        hb.pause(Duration::from_millis(300)).await;
        let got = drain(&sock);
        assert!((3..=8).contains(&pings(&got)), "{got:?}");
        // Wedged: no beat for a long time.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let got = drain(&sock);
        assert!(pings(&got) <= 3, "{got:?}");
        assert!(
            got.iter().any(|m| m.starts_with("STATUS=stalled: worker")),
            "{got:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(pings(&drain(&sock)), 0, "no keep-alive while stalled");
        hb.beat();
        tokio::time::sleep(Duration::from_millis(120)).await;
        let got = drain(&sock);
        assert!(got.contains(&"WATCHDOG=1".to_string()), "{got:?}");
        assert!(got.contains(&"STATUS=running".to_string()), "{got:?}");
        stop_tx.send(true).unwrap();
        task.await.unwrap();
    }
}
