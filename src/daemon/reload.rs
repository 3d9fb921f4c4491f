//! Live reload of the rules: on SIGHUP, and when the rules file
//! changes (its modification time, size or inode, looked at every
//! [`RULES_POLL_INTERVAL`]; no file-watch crate), the file is read and
//! validated against the running destinations, and the new rules are swapped
//! into the [`LiveRules`] that the ingest path reads for every batch. A file
//! that fails validation changes nothing: every error is logged (one line
//! each, `FILE:LINE:COLUMN: message`), `switchyard_rules_reloads_total{outcome="failed"}`
//! counts it, and the rules in force stay. The daemon never stops over it.
//!
//! What else changes live: on SIGHUP `switchyard.toml` is read again and
//! checked (every error logged, `switchyard_config_checks_total` counts the
//! result); a new `daemon.rules` path is followed at once. Everything else in
//! it (accounts, destinations, listen address, secrets, log format, buffers)
//! needs a restart, because workers, connectors and the listener are built
//! from it at start: when the file differs from the running config in any of
//! those (values compared, a rotated secret included), a warning says so.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, watch};

use crate::config::{AccountConfig, Config, DaemonConfig, DestinationConfig, InventoryConfig};
use crate::ingest::LiveRules;
use crate::metrics::{Metrics, outcome};
use crate::systemd::Notifier;

/// How often the rules file's metadata is looked at.
pub const RULES_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// What identifies one version of the file on disk.
type Fingerprint = Option<(SystemTime, u64, u64)>;

fn fingerprint(path: &Path) -> Fingerprint {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.modified().ok()?, m.len(), ino))
}

fn rule_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What a re-read of the config file came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigCheck {
    /// It has errors; the running config stays.
    Failed,
    /// Nothing changed that needs a restart (a new rules path is followed).
    Applied,
    /// Something changed that only a restart applies; a warning said so.
    NeedsRestart,
}

/// Reloads the rules of one running daemon.
pub struct Reloader {
    rules_path: PathBuf,
    destinations: Vec<String>,
    live: LiveRules,
    metrics: Metrics,
    notifier: Arc<Notifier>,
    /// The config file and what of it needs a restart to change.
    config_path: PathBuf,
    restart_only: RestartOnly,
}

/// The parts of a config that only a restart applies.
#[derive(Debug, PartialEq, Eq)]
struct RestartOnly {
    /// Without `rules`, which a reload follows.
    daemon: DaemonConfig,
    accounts: Vec<AccountConfig>,
    destinations: Vec<DestinationConfig>,
    inventory: InventoryConfig,
}

impl RestartOnly {
    /// The keys that differ between `self` (running) and `new`, as a person
    /// finds them in the file: `daemon.listen`, `[[account]] "shop-us".poll_interval`.
    fn changed_keys(&self, new: &RestartOnly) -> Vec<String> {
        let mut keys = Vec::new();
        let (a, b) = (&self.daemon, &new.daemon);
        for (key, differs) in [
            ("state_dir", a.state_dir != b.state_dir),
            ("listen", a.listen != b.listen),
            ("log_format", a.log_format != b.log_format),
            ("admin_token", a.admin_token != b.admin_token),
            ("shutdown_timeout", a.shutdown_timeout != b.shutdown_timeout),
        ] {
            if differs {
                keys.push(format!("daemon.{key}"));
            }
        }
        if self.inventory != new.inventory {
            keys.push("inventory.buffer".to_owned());
        }
        for old in &self.accounts {
            match new.accounts.iter().find(|n| n.id == old.id) {
                None => keys.push(format!("[[account]] {:?} (removed)", old.id)),
                Some(n) => {
                    for (key, differs) in [
                        ("channel", old.channel != n.channel),
                        ("base_url", old.base_url != n.base_url),
                        ("poll_interval", old.poll_interval != n.poll_interval),
                        ("start_date", old.start_date != n.start_date),
                        ("buffer", old.buffer != n.buffer),
                        ("webhooks", old.webhooks != n.webhooks),
                    ] {
                        if differs {
                            keys.push(format!("[[account]] {:?}.{key}", old.id));
                        }
                    }
                    if old.channel == n.channel && !old.same_settings(n) {
                        keys.push(format!(
                            "[[account]] {:?} (its {} keys or secrets)",
                            old.id, old.channel
                        ));
                    }
                }
            }
        }
        for n in &new.accounts {
            if !self.accounts.iter().any(|o| o.id == n.id) {
                keys.push(format!("[[account]] {:?} (added)", n.id));
            }
        }
        for old in &self.destinations {
            match new.destinations.iter().find(|n| n.id == old.id) {
                None => keys.push(format!("[[destination]] {:?} (removed)", old.id)),
                Some(n) => {
                    for (key, differs) in [
                        ("rate", old.pace.rate.to_bits() != n.pace.rate.to_bits()),
                        ("concurrency", old.pace.concurrency != n.pace.concurrency),
                    ] {
                        if differs {
                            keys.push(format!("[[destination]] {:?}.{key}", old.id));
                        }
                    }
                    if old.kind != n.kind {
                        keys.push(format!("[[destination]] {:?} (its url or secret)", old.id));
                    }
                }
            }
        }
        for n in &new.destinations {
            if !self.destinations.iter().any(|o| o.id == n.id) {
                keys.push(format!("[[destination]] {:?} (added)", n.id));
            }
        }
        keys
    }

    fn of(config: &Config) -> RestartOnly {
        let mut daemon = config.daemon.clone();
        daemon.rules = PathBuf::new();
        RestartOnly {
            daemon,
            accounts: config.accounts.clone(),
            destinations: config.destinations.clone(),
            inventory: config.inventory.clone(),
        }
    }
}

impl Reloader {
    pub fn new(
        config: &Config,
        live: LiveRules,
        metrics: Metrics,
        notifier: Arc<Notifier>,
    ) -> Reloader {
        metrics.rules.set(rule_count(live.current().len()));
        Reloader {
            rules_path: config.daemon.rules.clone(),
            destinations: config.destinations.iter().map(|d| d.id.clone()).collect(),
            live,
            metrics,
            notifier,
            config_path: config.source.clone(),
            restart_only: RestartOnly::of(config),
        }
    }

    pub fn rules_path(&self) -> &Path {
        &self.rules_path
    }

    /// Reads, validates and (when valid) swaps in the rules file. `why`
    /// goes into the log. Returns whether the new rules are in force.
    pub fn reload_rules(&self, why: &str) -> bool {
        let path = self.rules_path.display().to_string();
        self.notifier
            .status(&format!("running; reloading the rules ({why})"));
        let at = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC");
        match crate::rules::load_rules(&self.rules_path, &self.destinations) {
            Ok((rules, warnings)) => {
                for w in &warnings {
                    tracing::warn!(rules = %path, "{w}");
                }
                let count = rules.len();
                self.live.replace(rules);
                self.metrics
                    .rule_reloads
                    .get_or_create(&outcome("ok"))
                    .inc();
                self.metrics.rules.set(rule_count(count));
                tracing::info!(rules = %path, count, reason = why, "rules reloaded");
                self.notifier
                    .status(&format!("running; rules reloaded at {at} ({count} rules)"));
                true
            }
            Err(errors) => {
                for e in &errors {
                    tracing::error!(rules = %path, reason = why, "{e}");
                }
                self.metrics
                    .rule_reloads
                    .get_or_create(&outcome("failed"))
                    .inc();
                let n = errors.iter().filter(|e| e.is_error()).count().max(1);
                tracing::error!(
                    rules = %path,
                    errors = n,
                    reason = why,
                    "rules reload failed; the rules in force stay until the file is fixed"
                );
                self.notifier.status(&format!(
                    "running; rules reload at {at} failed ({n} errors), previous rules in force"
                ));
                false
            }
        }
    }

    /// Reads `switchyard.toml` again (SIGHUP): logs its errors, follows a
    /// new rules path, and warns about changes that need a restart.
    pub fn check_config(&mut self) -> ConfigCheck {
        match crate::config::load(&self.config_path) {
            Err(errors) => {
                for line in errors.to_string().lines() {
                    tracing::error!("{line}");
                }
                self.metrics
                    .config_checks
                    .get_or_create(&outcome("failed"))
                    .inc();
                tracing::error!(
                    config = %self.config_path.display(),
                    "the config file has errors; the running config stays"
                );
                ConfigCheck::Failed
            }
            Ok(new) => {
                self.metrics
                    .config_checks
                    .get_or_create(&outcome("ok"))
                    .inc();
                if new.daemon.rules != self.rules_path {
                    tracing::info!(
                        from = %self.rules_path.display(),
                        to = %new.daemon.rules.display(),
                        "daemon.rules changed; reading the rules from the new path"
                    );
                    self.rules_path = new.daemon.rules.clone();
                }
                let next = RestartOnly::of(&new);
                if next == self.restart_only {
                    return ConfigCheck::Applied;
                }
                let changed = self.restart_only.changed_keys(&next);
                tracing::warn!(
                    config = %self.config_path.display(),
                    changed = %changed.join(", "),
                    "the config file changed beyond daemon.rules ({}); those changes apply at the next restart (systemctl restart switchyard)",
                    changed.join(", ")
                );
                ConfigCheck::NeedsRestart
            }
        }
    }

    /// Reloads on every `trigger` (SIGHUP: the config is checked too, and
    /// the rules are read even if unchanged) and whenever the rules file
    /// changes on disk, until `stop` turns true.
    pub async fn run(mut self, trigger: Option<Arc<Notify>>, mut stop: watch::Receiver<bool>) {
        let mut seen = fingerprint(&self.rules_path);
        let hup = async |t: &Option<Arc<Notify>>| match t {
            Some(n) => n.notified().await,
            None => std::future::pending().await,
        };
        loop {
            tokio::select! {
                _ = hup(&trigger) => {
                    tracing::info!("SIGHUP: reloading");
                    self.check_config();
                    seen = fingerprint(&self.rules_path);
                    self.reload_rules("SIGHUP");
                }
                _ = tokio::time::sleep(RULES_POLL_INTERVAL) => {
                    let now = fingerprint(&self.rules_path);
                    if now != seen {
                        seen = now;
                        self.reload_rules("the file changed");
                    }
                }
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_text(access_token: &str, destination_secret: &str, rules: &str) -> String {
        format!(
            r#"[daemon]
listen = "127.0.0.1:7300"
rules = "{rules}"

[[account]]
id = "shop-us"
channel = "shopify"
base_url = "https://example.myshopify.com"
access_token = "{access_token}"

[[destination]]
id = "east-wh"
kind = "webhook"
url = "https://wms.example.com/orders"
secret = "{destination_secret}"
"#
        )
    }

    #[test]
    fn a_rotated_secret_is_a_change_that_needs_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchyard.toml");
        std::fs::write(&path, config_text("token-1", "dest-1", "rules.toml")).unwrap();
        let config = crate::config::load(&path).unwrap();
        let mut reloader = Reloader::new(
            &config,
            LiveRules::default(),
            Metrics::default(),
            Arc::new(Notifier::disabled()),
        );
        assert_eq!(reloader.check_config(), ConfigCheck::Applied);
        // Only the rules path: followed, no restart.
        std::fs::write(&path, config_text("token-1", "dest-1", "other.toml")).unwrap();
        assert_eq!(reloader.check_config(), ConfigCheck::Applied);
        assert!(reloader.rules_path().ends_with("other.toml"));
        // Secrets print as `***` either way: the values tell them apart.
        for (token, secret) in [("token-2", "dest-1"), ("token-1", "dest-2")] {
            std::fs::write(&path, config_text(token, secret, "other.toml")).unwrap();
            assert_eq!(
                reloader.check_config(),
                ConfigCheck::NeedsRestart,
                "{token} {secret}"
            );
        }
        // The warning names what changed.
        let running = RestartOnly::of(&crate::config::load(&path).unwrap());
        let text = config_text("token-2", "dest-1", "other.toml")
            .replace(
                "base_url = \"https://example.myshopify.com\"",
                "base_url = \"https://other.myshopify.com\"\npoll_interval = \"9m\"",
            )
            .replace("listen = \"127.0.0.1:7300\"", "listen = \"127.0.0.1:7400\"")
            + "concurrency = 2\n";
        std::fs::write(&path, text).unwrap();
        let next = RestartOnly::of(&crate::config::load(&path).unwrap());
        assert_eq!(
            running.changed_keys(&next),
            [
                "daemon.listen",
                "[[account]] \"shop-us\".base_url",
                "[[account]] \"shop-us\".poll_interval",
                "[[account]] \"shop-us\" (its shopify keys or secrets)",
                "[[destination]] \"east-wh\".concurrency",
                "[[destination]] \"east-wh\" (its url or secret)",
            ]
        );
        std::fs::write(&path, "[daemon]\nlisten = 5\n").unwrap();
        assert_eq!(reloader.check_config(), ConfigCheck::Failed);
    }
}
