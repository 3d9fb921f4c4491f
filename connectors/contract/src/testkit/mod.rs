//! Test kit: recorded channel traffic as fixture folders, a loopback HTTP
//! server that replays them (strictly, for tests) or serves them (leniently,
//! for the simulator), golden files regenerated with `SWITCHYARD_BLESS=1`, a
//! validator of recorded requests against a channel's published API
//! description, the trait a channel's simulated state implements, and the
//! runner of a scenario's calls that every channel's replay tests share.
//! Support for tests and the simulator: a broken fixture or golden file is
//! a panic that names it, so `unwrap`/`expect` are allowed here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod calls;
pub mod fixture;
pub mod golden;
pub mod openapi;
pub mod server;
pub mod sim;

pub use calls::{
    Call, Calls, CallsRun, RecordingPacer, TestClock, assert_goldens, assert_no_secrets,
    error_json, order_json, run_calls,
};
pub use fixture::{Exchange, Scenario, WebhookFixture};
pub use golden::assert_golden_json;
pub use openapi::OpenApi;
pub use server::{HttpRequest, HttpResponse, LoopbackServer, ReplayServer};
pub use sim::{ChannelSim, SimFactory, SimMode};
