//! A channel's simulated side, for `switchyard demo`, `switchyard replay`
//! and the daemon's tests. The daemon's simulator serves every channel from
//! one loopback server out of the recorded fixtures; what a recording cannot
//! answer (state that changes with the calls: stock set, fulfilments made,
//! rotating tokens; limits charged the way the channel charges them) each
//! channel's crate answers through a [`ChannelSim`], behind its `sim`
//! feature, found through the daemon's registry line for the crate.

use std::any::Any;

use super::fixture::{Scenario, WebhookFixture};
use super::server::{HttpRequest, HttpResponse};
use crate::settings::AccountSettings;

/// What the simulator is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimMode {
    /// `switchyard demo` and daemon tests: every scenario of the channel is
    /// loaded, the `demo` one first.
    Demo,
    /// `switchyard replay`: the scenarios a person named, which should
    /// replay as they were recorded.
    Replay,
}

/// One channel's simulated state. The simulator holds one per channel, and
/// calls it under one lock: no call runs concurrently with another.
pub trait ChannelSim: Send {
    /// Learns from a scenario of the channel's fixtures before serving
    /// (the catalog its answers show, the orders its webhooks carry).
    fn learn(&mut self, _scenario: &Scenario) {}

    /// Called once everything is learned, before the first request.
    fn ready(&mut self) {}

    /// The answer to a request this state answers; `None`: the recorded
    /// answer that matches is served (through [`ChannelSim::recorded`]).
    fn answer(&mut self, req: &HttpRequest) -> Option<HttpResponse>;

    /// A recorded answer on its way out: the channel may charge for it, or
    /// refuse the call instead (Shopify's cost bucket).
    fn recorded(&mut self, _req: &HttpRequest, resp: HttpResponse) -> HttpResponse {
        resp
    }

    /// Signs a recorded webhook for an account with these settings (the
    /// demo's accounts have their own secrets), as the channel would.
    fn sign_webhook(&self, _settings: &dyn AccountSettings, _webhook: &mut WebhookFixture) {}

    /// The writes among `requests` (all this channel received, in order),
    /// counted by what a person calls them ("stock levels (Shopify
    /// inventorySetQuantities)"): the demo's summary.
    fn writes(&self, _requests: &[HttpRequest]) -> Vec<(String, usize)> {
        Vec::new()
    }

    /// Calls refused because of the channel's rate limit so far.
    fn throttled(&self) -> usize {
        0
    }

    /// For tests that look at the channel's own state.
    fn as_any(&mut self) -> &mut dyn Any;
}

/// How a channel crate makes its simulated state: `None` when the mode
/// needs none (the recorded answers alone replay a scenario).
pub type SimFactory = fn(SimMode) -> Option<Box<dyn ChannelSim>>;
