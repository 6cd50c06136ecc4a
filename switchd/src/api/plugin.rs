//! The Docker Engine's network and IPAM plugin: Docker's libnetwork finds the socket
//! `/run/docker/plugins/NAME.sock`, activates it, and drives switchd's networks through it
//! (`docker network create -d NAME --ipam-driver NAME`). The messages are in
//! [`control_plane::plugin`]; the operations in the daemon.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use control_plane::plugin::{self as proto, ErrorReply};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use tokio::net::UnixListener;

use crate::api::docker_api::Engine;
use crate::daemon::{Daemon, OpError};

/// What every request of the plugin shares.
struct Ctx {
    plugin: String,
    engine: Engine,
}

/// Where Docker looks for plugin sockets.
pub const PLUGIN_DIR: &str = "/run/docker/plugins";

type Reply = Response<BoxBody<Bytes, Infallible>>;

/// A plugin name that `docker network create -d` or a file name would not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid plugin name {0:?}: use 1-64 characters from [a-z0-9_.-], starting with a letter or digit")]
pub struct InvalidPluginName(pub String);

/// Checks a plugin name: what `docker network create -d` takes and a file name allows.
///
/// # Errors
/// [`InvalidPluginName`], naming it and what is accepted.
pub fn check_name(name: &str) -> Result<(), InvalidPluginName> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(InvalidPluginName(name.to_string()))
    }
}

/// The socket path of plugin `name` in `dir`.
pub fn socket_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sock"))
}

/// How long switchd asks the Docker Engine for the container of a joined endpoint (Docker
/// shows it once the container started).
const NAMING_WINDOW: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves the plugin on `listener` until it fails. `name` is what Docker calls the driver;
/// `engine` is the Docker Engine asked for the names of containers.
pub async fn serve(
    listener: std::os::unix::net::UnixListener,
    daemon: Arc<Daemon>,
    name: String,
    engine: Engine,
) -> anyhow::Result<()> {
    let listener = UnixListener::from_std(listener)?;
    let limits = daemon.limits().clone();
    let ctx = Arc::new(Ctx { plugin: name, engine });
    loop {
        let ((stream, _), permit) = limits.admit("plugin", &limits.api, || listener.accept()).await;
        let (d, ctx) = (daemon.clone(), ctx.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let (d, ctx) = (d.clone(), ctx.clone());
                async move { Ok::<_, Infallible>(handle(d, &ctx, req).await) }
            });
            if let Err(e) = crate::api::http::builder()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!("plugin connection ended: {e}");
            }
            drop(permit);
        });
    }
}

fn reply<T: Serialize>(status: StatusCode, v: &T) -> Reply {
    let body = serde_json::to_vec(v).expect("replies serialize");
    Response::builder()
        .status(status)
        .header("Content-Type", proto::CONTENT_TYPE)
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("static response parts")
}

fn refuse(status: u16, message: String) -> Reply {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    reply(status, &ErrorReply { err: message })
}

async fn handle(d: Arc<Daemon>, ctx: &Arc<Ctx>, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let r = route(d, ctx, req).await.unwrap_or_else(|(status, m)| {
        tracing::info!(%path, status, "Docker's request refused: {m}");
        refuse(status, m)
    });
    tracing::debug!(%method, %path, status = r.status().as_u16(), "plugin");
    r
}

async fn body<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, (u16, String)> {
    crate::api::http::read_json(req).await
}

/// Runs a daemon operation off the async threads.
async fn op<T: Send + 'static>(f: impl FnOnce() -> Result<T, OpError> + Send + 'static) -> Result<T, (u16, String)> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err((e.status(), e.message())),
        Err(e) => Err((500, format!("operation failed: {e}"))),
    }
}

async fn route(d: Arc<Daemon>, ctx: &Arc<Ctx>, req: Request<Incoming>) -> Result<Reply, (u16, String)> {
    let path = req.uri().path().trim_start_matches('/').to_string();
    if req.method() != Method::POST {
        return Err((
            405,
            format!(
                "method {} is not allowed on /{path}: Docker's plugin calls are POSTs",
                req.method()
            ),
        ));
    }
    let ok = |v: serde_json::Value| Ok(reply(StatusCode::OK, &v));
    match path.as_str() {
        "Plugin.Activate" => ok(json!({"Implements": ["NetworkDriver", "IpamDriver"]})),
        "NetworkDriver.GetCapabilities" => ok(json!({"Scope": "local", "ConnectivityScope": "local"})),
        "IpamDriver.GetCapabilities" => ok(json!({"RequiresMACAddress": false, "RequiresRequestReplay": false})),
        "IpamDriver.GetDefaultAddressSpaces" => ok(json!({
            "LocalDefaultAddressSpace": proto::ADDRESS_SPACE_LOCAL,
            "GlobalDefaultAddressSpace": proto::ADDRESS_SPACE_GLOBAL,
        })),
        "IpamDriver.RequestPool" => {
            let r: proto::RequestPool = body(req).await?;
            let (id, subnet) = op(move || d.docker_request_pool(r)).await?;
            ok(json!({"PoolID": id, "Pool": subnet.to_string(), "Data": {}}))
        }
        "IpamDriver.ReleasePool" => {
            let r: proto::ReleasePool = body(req).await?;
            op(move || d.docker_release_pool(&r.pool_id)).await?;
            ok(json!({}))
        }
        "IpamDriver.RequestAddress" => {
            let r: proto::AddressRequest = body(req).await?;
            let (ip, len) = op(move || d.docker_request_address(r)).await?;
            ok(json!({"Address": format!("{ip}/{len}"), "Data": {}}))
        }
        "IpamDriver.ReleaseAddress" => {
            let r: proto::AddressRequest = body(req).await?;
            op(move || d.docker_release_address(r)).await?;
            ok(json!({}))
        }
        "NetworkDriver.CreateNetwork" => {
            let r: proto::CreateNetwork = body(req).await?;
            let plugin = ctx.plugin.clone();
            let network = r.network_id.clone();
            op({
                let d = d.clone();
                move || d.docker_create_network(r, &plugin)
            })
            .await?;
            tokio::spawn(name_network(d, ctx.clone(), network));
            ok(json!({}))
        }
        "NetworkDriver.DeleteNetwork" => {
            let r: proto::NetworkRef = body(req).await?;
            op(move || d.docker_delete_network(&r.network_id)).await?;
            ok(json!({}))
        }
        "NetworkDriver.CreateEndpoint" => {
            let r: proto::CreateEndpoint = body(req).await?;
            let mac = op(move || d.docker_create_endpoint(r)).await?;
            // A MAC goes back only when Docker gave none (Docker refuses one it did not ask for).
            match mac {
                Some(m) => ok(json!({"Interface": {"MacAddress": m.to_string()}})),
                None => ok(json!({"Interface": {}})),
            }
        }
        "NetworkDriver.DeleteEndpoint" => {
            let r: proto::EndpointRef = body(req).await?;
            op(move || d.docker_delete_endpoint(&r.network_id, &r.endpoint_id)).await?;
            ok(json!({}))
        }
        "NetworkDriver.EndpointOperInfo" => {
            let _: proto::EndpointRef = body(req).await?;
            ok(json!({"Value": {}}))
        }
        "NetworkDriver.Join" => {
            let r: proto::Join = body(req).await?;
            let (network, endpoint) = (r.network_id.clone(), r.endpoint_id.clone());
            let j = op({
                let d = d.clone();
                move || d.docker_join(r)
            })
            .await?;
            tokio::spawn(name_container(d, ctx.clone(), network, endpoint));
            let mut v = json!({
                "InterfaceName": {"SrcName": j.src_name, "DstPrefix": control_plane::model::DOCKER_IFNAME_PREFIX},
                "StaticRoutes": [],
                "DisableGatewayService": false,
            });
            if let Some(gw) = j.gateway {
                v["Gateway"] = json!(gw.to_string());
            }
            if let Some(gw) = j.gateway6 {
                v["GatewayIPv6"] = json!(gw.to_string());
            }
            ok(v)
        }
        "NetworkDriver.Leave" => {
            let r: proto::EndpointRef = body(req).await?;
            op(move || d.docker_leave(&r.network_id, &r.endpoint_id)).await?;
            ok(json!({}))
        }
        "NetworkDriver.ProgramExternalConnectivity" => {
            let r: proto::Connectivity = body(req).await?;
            op(move || d.docker_publish(r)).await?;
            ok(json!({}))
        }
        "NetworkDriver.RevokeExternalConnectivity" => {
            let r: proto::EndpointRef = body(req).await?;
            op(move || d.docker_unpublish(&r.network_id, &r.endpoint_id)).await?;
            ok(json!({}))
        }
        // Other nodes of a swarm: switchd's cluster has its own membership.
        "NetworkDriver.DiscoverNew" | "NetworkDriver.DiscoverDelete" => ok(json!({})),
        other => Err((
            404,
            format!("switchd's Docker plugin has no method {other:?}: it serves Plugin.Activate, NetworkDriver.* and IpamDriver.* of libnetwork's remote drivers"),
        )),
    }
}

/// Asks the Docker Engine, until it knows or [`NAMING_WINDOW`] passes, which container a
/// joined endpoint is, and names the endpoint's sandbox and aliases after it.
async fn name_container(d: Arc<Daemon>, ctx: Arc<Ctx>, network: String, endpoint: String) {
    let Some(id) = control_plane::Id::parse(&endpoint) else {
        return;
    };
    let Some(m) = engine_shows(&endpoint, || ctx.engine.member(&network, &endpoint)).await else {
        return;
    };
    let r = tokio::task::spawn_blocking(move || d.docker_name(&id, &m.name, &m.aliases)).await;
    if let Ok(Err(e)) = r {
        tracing::debug!(%endpoint, "cannot name the endpoint's sandbox: {}", e.message());
    }
}

/// Asks the Docker Engine, until it shows the network it just created or [`NAMING_WINDOW`]
/// passes, for the network's name, and names the switchd network after it.
async fn name_network(d: Arc<Daemon>, ctx: Arc<Ctx>, network: String) {
    let Some(name) = engine_shows(&network, || ctx.engine.network_name(&network)).await else {
        return;
    };
    let r = tokio::task::spawn_blocking(move || d.docker_name_network(&network, &name)).await;
    if let Ok(Err(e)) = r {
        tracing::debug!("cannot name the network: {}", e.message());
    }
}

/// Polls `ask` until the Engine shows the object (`what`, for the log) or [`NAMING_WINDOW`]
/// passes; what it showed, or `None` (logged) when it did not or could not be reached.
async fn engine_shows<T, F, Fut>(what: &str, ask: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, crate::api::docker_api::EngineError>>,
{
    let deadline = tokio::time::Instant::now() + NAMING_WINDOW;
    while tokio::time::Instant::now() < deadline {
        match ask().await {
            Ok(Some(v)) => return Some(v),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%what, "{e}: switchd keeps its own name for it (--docker-host)");
                return None;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    tracing::warn!(%what, "the Docker Engine did not show it: switchd keeps its own name for it");
    None
}
