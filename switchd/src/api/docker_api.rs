//! What the plugin protocol does not say, asked of the Docker Engine's API: the name of the
//! container an endpoint joined, and its aliases on the network (`--network-alias`, and the
//! short container ID Docker adds). switchd names the container's sandbox and endpoint after
//! them, so its DNS (on other hosts too) and `switchctl` know Docker's containers by name.

use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Why the Docker Engine could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Its socket does not answer.
    #[error("cannot reach the Docker Engine at {}: {source}", path.display())]
    Unreachable {
        /// The socket (`--docker-host`).
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("Docker Engine: {0}")]
    Http(#[from] hyper::Error),
    /// Its answer could not be read.
    #[error("Docker Engine's answer: {0}")]
    Answer(String),
    /// It did not answer within the request timeout.
    #[error("the Docker Engine did not answer in time")]
    Timeout,
}

/// Largest answer read from the Docker Engine.
const MAX_ANSWER: usize = 4 << 20;
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The Docker Engine's API socket.
#[derive(Debug, Clone)]
pub struct Engine {
    socket: PathBuf,
}

/// A container as one of its endpoints sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The container's name (without Docker's leading `/`).
    pub name: String,
    /// Its aliases on the endpoint's network.
    pub aliases: Vec<String>,
}

impl Engine {
    /// The Engine listening on `socket`.
    pub fn new(socket: PathBuf) -> Engine {
        Engine { socket }
    }

    /// GETs `path` and parses the JSON answer; `None` for anything but a 200 with JSON.
    async fn get(&self, path: &str) -> Result<Option<Value>, EngineError> {
        let stream =
            tokio::net::UnixStream::connect(&self.socket)
                .await
                .map_err(|source| EngineError::Unreachable {
                    path: self.socket.clone(),
                    source,
                })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let task = tokio::spawn(conn);
        let req = Request::get(path)
            .header("Host", "docker")
            .body(Empty::<Bytes>::new())
            .map_err(|e| EngineError::Answer(e.to_string()))?;
        let res = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let res = sender.send_request(req).await?;
            if !res.status().is_success() {
                return Ok(None);
            }
            let body = Limited::new(res.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| EngineError::Answer(e.to_string()))?
                .to_bytes();
            Ok(serde_json::from_slice(&body).ok())
        })
        .await
        .unwrap_or(Err(EngineError::Timeout));
        task.abort();
        res
    }

    /// Network `network`'s name, once Docker shows the network (`None` while it does not).
    pub async fn network_name(&self, network: &str) -> Result<Option<String>, EngineError> {
        let net = self.get(&format!("/networks/{network}")).await?;
        Ok(net.and_then(|n| n.get("Name").and_then(Value::as_str).map(str::to_string)))
    }

    /// The container that endpoint `endpoint` of network `network` joined, once Docker shows
    /// it (`None` while it does not).
    pub async fn member(&self, network: &str, endpoint: &str) -> Result<Option<Member>, EngineError> {
        let Some(net) = self.get(&format!("/networks/{network}")).await? else {
            return Ok(None);
        };
        let Some((cid, name)) = container_of(&net, endpoint) else {
            return Ok(None);
        };
        // The container shows the endpoint (and its aliases) once it has started.
        let aliases = self
            .get(&format!("/containers/{cid}/json"))
            .await?
            .and_then(|c| aliases_of(&c, endpoint));
        Ok(aliases.map(|aliases| Member { name, aliases }))
    }
}

/// From `GET /networks/ID`: the container ID and name whose endpoint is `endpoint`.
fn container_of(net: &Value, endpoint: &str) -> Option<(String, String)> {
    net.get("Containers")?.as_object()?.iter().find_map(|(cid, c)| {
        (c.get("EndpointID")?.as_str()? == endpoint).then(|| {
            let name = c.get("Name").and_then(Value::as_str).unwrap_or_default();
            (cid.clone(), name.trim_start_matches('/').to_string())
        })
    })
}

/// From `GET /containers/ID/json`: the aliases of the network whose endpoint is `endpoint`;
/// `None` while no network of the container shows that endpoint.
fn aliases_of(container: &Value, endpoint: &str) -> Option<Vec<String>> {
    let nets = container
        .pointer("/NetworkSettings/Networks")
        .and_then(Value::as_object);
    let net = nets
        .into_iter()
        .flat_map(|m| m.values())
        .find(|n| n.get("EndpointID").and_then(Value::as_str) == Some(endpoint))?;
    Some(
        net.get("Aliases")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_member_is_found_by_its_endpoint() {
        let net: Value = serde_json::json!({"Containers": {
            "c1": {"Name": "vm1", "EndpointID": "e1"},
            "c2": {"Name": "vm2", "EndpointID": "e2"}}});
        assert_eq!(container_of(&net, "e2"), Some(("c2".into(), "vm2".into())));
        assert_eq!(container_of(&net, "e3"), None);
        assert_eq!(container_of(&serde_json::json!({"Containers": null}), "e1"), None);
        let c: Value = serde_json::json!({"NetworkSettings": {"Networks": {
            "a": {"EndpointID": "e1", "Aliases": ["web", "c1short"]},
            "b": {"EndpointID": "e9", "Aliases": ["other"]}}}});
        assert_eq!(
            aliases_of(&c, "e1"),
            Some(vec!["web".to_string(), "c1short".to_string()])
        );
        assert_eq!(aliases_of(&c, "e2"), None);
        assert_eq!(aliases_of(&serde_json::json!({"NetworkSettings": 3}), "e1"), None);
    }
}
