//! The channel simulator used by `switchyard demo` and by daemon tests. It
//! serves every channel from one loopback server, under `/<channel>/...`, out
//! of the recorded fixtures in `fixtures/<channel>/<scenario>/`. Unlike the
//! strict replay server of tests, it answers the same request as often as it
//! is asked and records every request it saw. A channel whose connector needs
//! more than recorded answers (query cost, mutations) gets its own handler
//! here when its connector arrives.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::json;
use switchyard_contract::Channel;
use switchyard_contract::testkit::{Exchange, HttpRequest, HttpResponse, LoopbackServer, Scenario};

/// A request the simulator received, with the channel it was addressed to.
#[derive(Debug, Clone)]
pub struct SimRequest {
    pub channel: Channel,
    pub request: HttpRequest,
}

struct SimState {
    exchanges: BTreeMap<Channel, Vec<Exchange>>,
    requests: Vec<SimRequest>,
}

pub struct Simulator {
    server: LoopbackServer,
    state: Arc<Mutex<SimState>>,
    scenarios: BTreeMap<Channel, Vec<String>>,
}

impl Simulator {
    /// Loads `fixtures_dir/<channel>/*/scenario.toml` for every channel and
    /// starts serving on 127.0.0.1 at a free port.
    pub async fn start(fixtures_dir: &Path) -> Result<Simulator, String> {
        let mut exchanges = BTreeMap::new();
        let mut scenarios = BTreeMap::new();
        for channel in Channel::ALL {
            let loaded = Scenario::load_all(&fixtures_dir.join(channel.as_str()))?;
            scenarios.insert(channel, loaded.iter().map(|s| s.name.clone()).collect());
            exchanges.insert(
                channel,
                loaded.into_iter().flat_map(|s| s.exchanges).collect::<Vec<_>>(),
            );
        }
        let state = Arc::new(Mutex::new(SimState {
            exchanges,
            requests: Vec::new(),
        }));
        let s = state.clone();
        let server = LoopbackServer::start(Arc::new(move |req| {
            s.lock().unwrap_or_else(|p| p.into_inner()).answer(req)
        }))
        .await
        .map_err(|e| format!("simulator: cannot bind 127.0.0.1: {e}"))?;
        Ok(Simulator {
            server,
            state,
            scenarios,
        })
    }

    /// The base URL an account of `channel` should use.
    pub fn base_url(&self, channel: Channel) -> String {
        format!("{}/{}", self.server.url(), channel)
    }

    /// The scenario names loaded for a channel.
    pub fn scenarios(&self, channel: Channel) -> &[String] {
        self.scenarios.get(&channel).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn requests(&self) -> Vec<SimRequest> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).requests.clone()
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
        let found = self.exchanges.get(&channel).and_then(|list| {
            list.iter()
                .find(|e| e.matches(&req.method, &req.path, &req.query, &req.body))
                .cloned()
        });
        let resp = match found {
            Some(e) => HttpResponse {
                status: e.status,
                headers: e.headers.into_iter().collect(),
                body: e.response,
            },
            None => HttpResponse::json(
                404,
                &json!({"error": format!("simulator: no recorded {channel} response for {} {}", req.method, req.path)}),
            ),
        };
        self.requests.push(SimRequest { channel, request: req });
        resp
    }
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
        let miss = reqwest::get(format!("{}/v3/ping", sim.base_url(Channel::Ebay))).await.unwrap();
        assert_eq!(miss.status(), 404);
        let reqs = sim.requests();
        assert_eq!(reqs.len(), 3);
        assert_eq!(reqs[0].channel, Channel::Etsy);
        assert_eq!(reqs[0].request.path, "/v3/ping");
        sim.stop().await;
    }
}
