//! The one way tests wait for something the daemon does in the background.
//! (Also built into `benches/webhooks.rs`, with the daemon harness.)

use std::time::Duration;

/// What a check of [`eventually`] gives: done (with a value), or not yet
/// (with what it saw, for the failure message).
pub trait Outcome {
    type Value;
    fn into_result(self) -> Result<Self::Value, String>;
}

impl Outcome for bool {
    type Value = ();
    fn into_result(self) -> Result<(), String> {
        if self { Ok(()) } else { Err(String::new()) }
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn into_result(self) -> Result<T, String> {
        self.ok_or_else(String::new)
    }
}

impl<T, E: std::fmt::Display> Outcome for Result<T, E> {
    type Value = T;
    fn into_result(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Runs `check` every 20 ms until it says done, and returns its value;
/// panics naming `what` (and what the last check saw) after `within`. The
/// one way tests wait for something the daemon does in the background.
pub async fn eventually<O: Outcome>(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> O,
) -> O::Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match check().await.into_result() {
            Ok(value) => return value,
            Err(seen) => assert!(
                tokio::time::Instant::now() < deadline,
                "waited {within:?} for {what}{}{seen}",
                if seen.is_empty() { "" } else { ": " }
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
