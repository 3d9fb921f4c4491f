//! Test kit: recorded channel traffic as fixture folders, a loopback HTTP
//! server that replays them (strictly, for tests) or serves them (leniently,
//! for the simulator), golden files regenerated with `SWITCHYARD_BLESS=1`, and
//! a validator of recorded requests against a channel's published API description.

pub mod fixture;
pub mod golden;
pub mod openapi;
pub mod server;

pub use fixture::{Exchange, Scenario, WebhookFixture};
pub use golden::assert_golden_json;
pub use openapi::OpenApi;
pub use server::{HttpRequest, HttpResponse, LoopbackServer, ReplayServer};
