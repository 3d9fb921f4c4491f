//! The channel simulator used by `switchyard demo`, `switchyard replay` and
//! the daemon's tests: the loopback plumbing. It serves every channel from
//! one loopback server, under `/<channel>/...`, out of the recorded fixtures
//! in `fixtures/<channel>/<scenario>/`. Unlike the strict replay server of
//! tests, it answers the same request as often as it is asked and records
//! every request it saw. What a recording cannot answer (state that changes
//! with the calls, limits charged the way the channel charges them, webhooks
//! signed for the demo's accounts) each channel's crate answers through its
//! simulated side (`ChannelSim`, the crate's `sim` feature), found through
//! its line in `crate::registry`. Also here: the destination sink that
//! stands in for warehouses.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::json;
use switchyard_contract::Channel;
use switchyard_contract::testkit::{
    ChannelSim, Exchange, HttpRequest, HttpResponse, LoopbackServer, Scenario, SimMode,
    WebhookFixture,
};

use crate::config::AccountConfig;

/// A request the simulator received, with the channel it was addressed to.
#[derive(Debug, Clone)]
pub struct SimRequest {
    pub channel: Channel,
    pub request: HttpRequest,
}

/// A recorded webhook, ready to post: the path under the daemon's address,
/// headers (signed for the account it is addressed to) and the raw body.
#[derive(Debug, Clone)]
pub struct PreparedWebhook {
    pub name: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

struct SimState {
    mode: SimMode,
    exchanges: BTreeMap<Channel, Vec<Exchange>>,
    requests: Vec<SimRequest>,
    /// Each channel's simulated side, for the channels whose crate has one.
    channels: BTreeMap<Channel, Box<dyn ChannelSim>>,
}

pub struct Simulator {
    server: LoopbackServer,
    state: Arc<Mutex<SimState>>,
    scenarios: BTreeMap<Channel, Vec<String>>,
    webhooks: BTreeMap<Channel, Vec<WebhookFixture>>,
}

/// The scenario the demo plays for a channel; its exchanges are matched first.
pub const DEMO_SCENARIO: &str = "demo";

impl Simulator {
    /// Loads `fixtures_dir/<channel>/*/scenario.toml` for every channel and
    /// starts serving on 127.0.0.1 at a free port.
    pub async fn start(fixtures_dir: &Path) -> Result<Simulator, String> {
        let mut loaded = BTreeMap::new();
        for channel in Channel::ALL {
            let mut scenarios = Scenario::load_all(&fixtures_dir.join(channel.as_str()))?;
            scenarios.sort_by_key(|s| s.name != DEMO_SCENARIO);
            loaded.insert(channel, scenarios);
        }
        Simulator::serve(loaded, SimMode::Demo).await
    }

    /// Serves only the given scenarios of one channel (`switchyard replay`).
    pub async fn from_scenarios(
        channel: Channel,
        scenarios: Vec<Scenario>,
    ) -> Result<Simulator, String> {
        Simulator::serve(BTreeMap::from([(channel, scenarios)]), SimMode::Replay).await
    }

    async fn serve(
        loaded: BTreeMap<Channel, Vec<Scenario>>,
        mode: SimMode,
    ) -> Result<Simulator, String> {
        let mut exchanges = BTreeMap::new();
        let mut scenarios = BTreeMap::new();
        let mut webhooks = BTreeMap::new();
        let mut channels = BTreeMap::new();
        for (channel, loaded) in loaded {
            let sim = crate::registry::builtin(channel).and_then(|b| (b.simulator)(mode));
            if let Some(mut sim) = sim {
                for scenario in &loaded {
                    sim.learn(scenario);
                }
                sim.ready();
                channels.insert(channel, sim);
            }
            scenarios.insert(channel, loaded.iter().map(|s| s.name.clone()).collect());
            if mode == SimMode::Demo {
                webhooks.insert(
                    channel,
                    loaded
                        .iter()
                        .filter(|s| s.name == DEMO_SCENARIO)
                        .flat_map(|s| s.webhooks.clone())
                        .collect(),
                );
            }
            exchanges.insert(
                channel,
                loaded.into_iter().flat_map(|s| s.exchanges).collect(),
            );
        }
        let state = Arc::new(Mutex::new(SimState {
            mode,
            exchanges,
            requests: Vec::new(),
            channels,
        }));
        let s = state.clone();
        let server = LoopbackServer::start(Arc::new(move |req| s.lock().answer(req)))
            .await
            .map_err(|e| format!("simulator: cannot bind 127.0.0.1: {e}"))?;
        Ok(Simulator {
            server,
            state,
            scenarios,
            webhooks,
        })
    }

    /// The base URL an account of `channel` should use.
    pub fn base_url(&self, channel: Channel) -> String {
        format!("{}/{}", self.server.url(), channel)
    }

    /// The scenario names loaded for a channel.
    pub fn scenarios(&self, channel: Channel) -> &[String] {
        self.scenarios
            .get(&channel)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The demo scenario's webhooks for an account, signed the way its
    /// channel signs them with the account's configured secret.
    pub fn demo_webhooks(&self, account: &AccountConfig) -> Vec<PreparedWebhook> {
        let fixtures = self
            .webhooks
            .get(&account.channel)
            .cloned()
            .unwrap_or_default();
        let state = self.state.lock();
        let sim = state.channels.get(&account.channel);
        fixtures
            .into_iter()
            .map(|mut w| {
                if let (Some(sim), Some(settings)) = (sim, &account.settings) {
                    sim.sign_webhook(settings.as_ref(), &mut w);
                }
                PreparedWebhook {
                    name: w.name,
                    headers: w.headers.into_iter().collect(),
                    body: w.body,
                }
            })
            .collect()
    }

    /// Runs `f` on a channel's simulated side, if it has one of type `T`
    /// (tests reading or changing the simulated shop).
    pub fn with<T: 'static, R>(&self, channel: Channel, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut state = self.state.lock();
        let sim = state.channels.get_mut(&channel)?;
        sim.as_any().downcast_mut::<T>().map(f)
    }

    /// How many calls the simulated channels refused for their rate limits.
    pub fn throttled(&self) -> usize {
        self.state
            .lock()
            .channels
            .values()
            .map(|sim| sim.throttled())
            .sum()
    }

    /// What the daemon wrote to each channel, by what a person calls it,
    /// counted (the demo's summary).
    pub fn writes(&self) -> Vec<(String, usize)> {
        let state = self.state.lock();
        let mut writes = Vec::new();
        for (channel, sim) in &state.channels {
            let requests: Vec<HttpRequest> = state
                .requests
                .iter()
                .filter(|r| r.channel == *channel)
                .map(|r| r.request.clone())
                .collect();
            writes.extend(sim.writes(&requests));
        }
        writes
    }

    pub fn requests(&self) -> Vec<SimRequest> {
        self.state.lock().requests.clone()
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

impl SimState {
    fn answer(&mut self, mut req: HttpRequest) -> HttpResponse {
        let Some((channel, rest)) = split_channel(&req.path) else {
            return HttpResponse::json(
                404,
                &json!({"error": format!("simulator: no channel in path {}; use /<channel>/...", req.path)}),
            );
        };
        req.path = rest;
        let mut sim = self.channels.get_mut(&channel);
        let resp = match sim.as_mut().and_then(|sim| sim.answer(&req)) {
            Some(resp) => resp,
            None => {
                // The demo plays the happy path: a failure another scenario
                // recorded (a 500 for the account check, say) is served only
                // when no success matches. A replay serves what was recorded.
                let demo = self.mode == SimMode::Demo;
                let found = self.exchanges.get(&channel).and_then(|list| {
                    list.iter()
                        .filter(|e| e.matches(&req.method, &req.path, &req.query, &req.body))
                        .min_by_key(|e| demo && e.status >= 400)
                        .cloned()
                });
                match found {
                    Some(e) => {
                        let recorded = HttpResponse {
                            status: e.status,
                            headers: e.headers.into_iter().collect(),
                            body: e.response,
                        };
                        match sim {
                            Some(sim) => sim.recorded(&req, recorded),
                            None => recorded,
                        }
                    }
                    None => HttpResponse::json(
                        404,
                        &json!({"error": format!("simulator: no recorded {channel} response for {} {}", req.method, req.path)}),
                    ),
                }
            }
        };
        self.requests.push(SimRequest {
            channel,
            request: req,
        });
        resp
    }
}

/// A destination (warehouse, 3PL) for the demo and tests: accepts the
/// daemon's signed order deliveries on `/<destination id>`, checks each
/// signature with that destination's secret, and remembers what came.
pub struct DestinationSink {
    server: LoopbackServer,
    received: Arc<Mutex<Vec<Delivery>>>,
}

/// One delivery the sink received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub destination: String,
    pub delivery_id: Option<String>,
    pub signature_ok: bool,
    pub order: Option<switchyard_contract::Order>,
    /// `(index, of)` of a delivery that carries one part of a split order.
    pub part: Option<(u32, u32)>,
}

impl DestinationSink {
    /// `secrets`: destination id → its signing secret.
    pub async fn start(secrets: BTreeMap<String, Vec<u8>>) -> Result<DestinationSink, String> {
        let received = Arc::new(Mutex::new(Vec::new()));
        let r = received.clone();
        let server = LoopbackServer::start(Arc::new(move |req: HttpRequest| {
            let destination = req.path.trim_start_matches('/').to_owned();
            let Some(secret) = secrets.get(&destination) else {
                return HttpResponse::new(404, format!("no destination {destination:?} here"));
            };
            let signature_ok = req
                .header(crate::effects::deliveries::SIGNATURE_HEADER)
                .is_some_and(|sig| crate::effects::deliveries::verify(secret, &req.body, sig));
            let (order, part) = read_delivery(&req.body);
            r.lock().push(Delivery {
                destination,
                delivery_id: req
                    .header(crate::effects::deliveries::DELIVERY_HEADER)
                    .map(str::to_owned),
                signature_ok,
                order,
                part,
            });
            if signature_ok {
                HttpResponse::new(200, "received")
            } else {
                HttpResponse::new(401, "bad signature")
            }
        }))
        .await
        .map_err(|e| format!("destination sink: cannot bind 127.0.0.1: {e}"))?;
        Ok(DestinationSink { server, received })
    }

    /// The URL a destination should POST to.
    pub fn url(&self, destination: &str) -> String {
        format!("{}/{destination}", self.server.url())
    }

    pub fn received(&self) -> Vec<Delivery> {
        self.received.lock().clone()
    }

    /// How many deliveries it has received, without a copy of them.
    pub fn received_count(&self) -> usize {
        self.received.lock().len()
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// A delivery body: the canonical order, and `part` when it carries one
/// part of a split order.
fn read_delivery(body: &[u8]) -> (Option<switchyard_contract::Order>, Option<(u32, u32)>) {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, None);
    };
    let part = v.as_object_mut().and_then(|o| o.remove("part"));
    let number = |key: &str| {
        part.as_ref()
            .and_then(|p| p[key].as_u64())
            .and_then(|n| u32::try_from(n).ok())
    };
    let part = number("index").zip(number("of"));
    (serde_json::from_value(v).ok(), part)
}

fn split_channel(path: &str) -> Option<(Channel, String)> {
    let trimmed = path.strip_prefix('/')?;
    let (first, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    let channel = first.parse().ok()?;
    Some((channel, format!("/{rest}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_recorded_answers_per_channel_repeatedly() {
        let dir = tempfile::tempdir().unwrap();
        let scen = dir.path().join("etsy/one");
        std::fs::create_dir_all(&scen).unwrap();
        std::fs::write(scen.join("r.json"), b"{\"count\":0}").unwrap();
        std::fs::write(
            scen.join("scenario.toml"),
            "description = \"x\"\n[[exchange]]\nmethod = \"GET\"\npath = \"/v3/ping\"\nresponse = \"r.json\"\n",
        )
        .unwrap();
        let sim = Simulator::start(dir.path()).await.unwrap();
        assert_eq!(sim.scenarios(Channel::Etsy), ["one".to_string()]);
        let url = format!("{}/v3/ping", sim.base_url(Channel::Etsy));
        for _ in 0..2 {
            let r = reqwest::get(&url).await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.text().await.unwrap(), "{\"count\":0}");
        }
        let miss = reqwest::get(format!("{}/v3/ping", sim.base_url(Channel::Ebay)))
            .await
            .unwrap();
        assert_eq!(miss.status(), 404);
        let reqs = sim.requests();
        assert_eq!(reqs.len(), 3);
        assert_eq!(reqs[0].channel, Channel::Etsy);
        assert_eq!(reqs[0].request.path, "/v3/ping");
        sim.stop().await;
    }

    #[tokio::test]
    async fn the_demo_prefers_a_recorded_success_and_a_replay_serves_the_recording() {
        let dir = tempfile::tempdir().unwrap();
        for (name, status) in [("a-failure", 500), ("b-success", 200)] {
            let scen = dir.path().join("etsy").join(name);
            std::fs::create_dir_all(&scen).unwrap();
            std::fs::write(scen.join("r.json"), format!("{{\"from\":\"{name}\"}}")).unwrap();
            std::fs::write(
                scen.join("scenario.toml"),
                format!(
                    "description = \"x\"\n[[exchange]]\nmethod = \"GET\"\npath = \"/v3/ping\"\nstatus = {status}\nresponse = \"r.json\"\n"
                ),
            )
            .unwrap();
        }
        let demo = Simulator::start(dir.path()).await.unwrap();
        let r = reqwest::get(format!("{}/v3/ping", demo.base_url(Channel::Etsy)))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        demo.stop().await;

        let scenarios = Scenario::load_all(&dir.path().join("etsy")).unwrap();
        let replay = Simulator::from_scenarios(Channel::Etsy, scenarios)
            .await
            .unwrap();
        let r = reqwest::get(format!("{}/v3/ping", replay.base_url(Channel::Etsy)))
            .await
            .unwrap();
        assert_eq!(r.status(), 500);
        assert_eq!(r.text().await.unwrap(), "{\"from\":\"a-failure\"}");
        replay.stop().await;
    }
}
