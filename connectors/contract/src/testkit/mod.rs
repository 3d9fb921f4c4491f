//! Test kit: recorded channel traffic as fixture folders, a loopback HTTP
//! server that replays them (strictly, for tests) or serves them (leniently,
//! for the simulator), and golden files regenerated with `SWITCHYARD_BLESS=1`.

pub mod fixture;
pub mod golden;
pub mod server;

pub use fixture::{Exchange, Scenario, WebhookFixture};
pub use golden::assert_golden_json;
pub use server::{HttpRequest, HttpResponse, LoopbackServer, ReplayServer};
