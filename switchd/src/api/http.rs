//! The HTTP/1.1 API over a Unix socket, in the manner of Docker's Engine API: JSON bodies,
//! errors as `{"message": ...}` with a 4xx (or 500 when the host failed us).

use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use control_plane::api::ErrorBody;
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::UnixListener;

use crate::daemon::{Daemon, OpError};

/// Largest request body accepted.
const MAX_BODY: usize = 1 << 20;
/// How long a request's header may take to arrive, and a connection may wait idle for its next
/// request.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

type Reply = Response<BoxBody<Bytes, Infallible>>;

/// Binds the socket (mode 0600, or 0660 with `group`), replacing a stale socket file but
/// refusing to take over from a live daemon.
pub fn bind(path: &Path, group: Option<u32>) -> anyhow::Result<std::os::unix::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("another switchd is already serving {}", path.display());
        }
        std::fs::remove_file(path)?;
    }
    // SAFETY: umask only changes this process's file creation mask; restored right after.
    let old = unsafe { libc::umask(0o177) };
    let l = std::os::unix::net::UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let l = l?;
    l.set_nonblocking(true)?;
    if let Some(g) = group {
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(g)))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    }
    Ok(l)
}

/// Serves connections until the listener fails.
pub async fn serve(listener: std::os::unix::net::UnixListener, daemon: Arc<Daemon>) -> anyhow::Result<()> {
    let listener = UnixListener::from_std(listener)?;
    let limits = daemon.limits().clone();
    loop {
        let ((stream, _), permit) = limits.admit("API", &limits.api, || listener.accept()).await;
        let d = daemon.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(d.clone(), req));
            if let Err(e) = builder().serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!("API connection ended: {e}");
            }
            drop(permit);
        });
    }
}

/// HTTP/1 with a bound on how long a request's header may take and a connection may sit
/// idle between requests: a client that sends half a request, or nothing, is closed.
pub fn builder() -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    b
}

/// Serves `GET /metrics` (Prometheus text format) on a TCP listener.
pub async fn serve_metrics(listener: std::net::TcpListener, daemon: Arc<Daemon>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let limits = daemon.limits().clone();
    loop {
        let ((stream, _), permit) = limits.admit("metrics", &limits.metrics, || listener.accept()).await;
        let d = daemon.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let d = d.clone();
                async move { Ok::<_, Infallible>(metrics(d, &req).await) }
            });
            if let Err(e) = builder().serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!("metrics connection ended: {e}");
            }
            drop(permit);
        });
    }
}

async fn metrics(d: Arc<Daemon>, req: &Request<Incoming>) -> Reply {
    let text = |status: StatusCode, body: String| {
        Response::builder()
            .status(status)
            .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            .body(Full::new(Bytes::from(body)).boxed())
            .expect("static response parts")
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => match blocking(move || d.stats()).await {
            Ok(s) => text(StatusCode::OK, control_plane::metrics::render(&s)),
            Err(r) => r,
        },
        (_, "/metrics") => text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {} is not allowed on /metrics: use GET\n", req.method()),
        ),
        (_, p) => text(
            StatusCode::NOT_FOUND,
            format!("page not found: {p} (metrics are at /metrics)\n"),
        ),
    }
}

fn json<T: Serialize>(status: StatusCode, v: &T) -> Reply {
    let body = serde_json::to_vec(v).expect("API types serialize");
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("static response parts")
}

fn error(status: u16, message: impl Into<String>) -> Reply {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(
        status,
        &ErrorBody {
            message: message.into(),
        },
    )
}

fn empty(status: StatusCode) -> Reply {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::new()).boxed())
        .expect("static response parts")
}

async fn body<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, Reply> {
    read_json(req).await.map_err(|(status, m)| error(status, m))
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes; refused: the status and the message.
pub async fn read_json<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, (u16, String)> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY);
    let bytes = match limited.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => return Err((413, format!("request body rejected: {e} (at most {MAX_BODY} bytes)"))),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err((400, "empty request body: expected a JSON object".into()));
    }
    serde_json::from_slice(&bytes).map_err(|e| (400, format!("invalid JSON body: {e}")))
}

/// Runs a blocking daemon operation off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, OpError> + Send + 'static) -> Result<T, Reply> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::info!(status = e.status(), "request refused: {}", e.message());
            Err(error(e.status(), e.message()))
        }
        Err(e) => Err(error(500, format!("operation failed: {e}"))),
    }
}

async fn handle(d: Arc<Daemon>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let reply = route(d, req).await.unwrap_or_else(|r| r);
    tracing::debug!(%method, %path, status = reply.status().as_u16(), "api");
    Ok(reply)
}

async fn route(d: Arc<Daemon>, req: Request<Incoming>) -> Result<Reply, Reply> {
    let path = req.uri().path().to_string();
    let decoded = control_plane::request::path_segments(&path);
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let m = req.method().clone();
    match (&m, segs.as_slice()) {
        (&Method::GET, ["_ping"]) => Ok(Response::new(Full::new(Bytes::from_static(b"OK")).boxed())),
        (&Method::GET, ["version"]) => Ok(json(StatusCode::OK, &server_version())),
        (&Method::GET, ["networks"]) => {
            let d = d.clone();
            Ok(json(StatusCode::OK, &blocking(move || Ok(d.networks())).await?))
        }
        (&Method::POST, ["networks", "create"]) => {
            let r = body(req).await?;
            Ok(json(StatusCode::CREATED, &blocking(move || d.create_network(r)).await?))
        }
        (&Method::POST, ["networks", "prune"]) => {
            let filters = control_plane::request::prune_filters(req.uri().query(), std::time::SystemTime::now())
                .map_err(|e| error(400, e.to_string()))?;
            Ok(json(
                StatusCode::OK,
                &blocking(move || d.prune_networks(&filters)).await?,
            ))
        }
        (&Method::GET, ["networks", id]) => {
            let id = id.to_string();
            Ok(json(StatusCode::OK, &blocking(move || d.network(&id)).await?))
        }
        (&Method::DELETE, ["networks", id]) => {
            let id = id.to_string();
            blocking(move || d.remove_network(&id)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["networks", id, "connect"]) => {
            let id = id.to_string();
            let r = body(req).await?;
            blocking(move || d.connect(&id, r)).await?;
            Ok(empty(StatusCode::OK))
        }
        (&Method::POST, ["networks", id, "disconnect"]) => {
            let id = id.to_string();
            let r: control_plane::api::NetworkDisconnect = body(req).await?;
            blocking(move || d.disconnect(&id, &r.container)).await?;
            Ok(empty(StatusCode::OK))
        }
        (&Method::GET, ["sandboxes"]) => Ok(json(StatusCode::OK, &blocking(move || Ok(d.sandboxes())).await?)),
        (&Method::POST, ["sandboxes", "create"]) => {
            let r = body(req).await?;
            Ok(json(StatusCode::CREATED, &blocking(move || d.create_sandbox(r)).await?))
        }
        (&Method::GET, ["sandboxes", id]) => {
            let id = id.to_string();
            Ok(json(StatusCode::OK, &blocking(move || d.sandbox(&id)).await?))
        }
        (&Method::DELETE, ["sandboxes", id]) => {
            let id = id.to_string();
            blocking(move || d.remove_sandbox(&id)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::GET, ["networks", id, "vteps"]) => {
            let id = id.to_string();
            Ok(json(StatusCode::OK, &blocking(move || d.vteps(&id)).await?))
        }
        (&Method::POST, ["networks", id, "vteps"]) => {
            let id = id.to_string();
            let r: control_plane::api::VtepAdd = body(req).await?;
            blocking(move || d.add_vtep(&id, &r.address)).await?;
            Ok(empty(StatusCode::CREATED))
        }
        (&Method::DELETE, ["networks", id, "vteps", addr]) => {
            let (id, addr) = (id.to_string(), addr.to_string());
            blocking(move || d.remove_vtep(&id, &addr)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::GET, ["cluster", "peers"]) => Ok(json(StatusCode::OK, &blocking(move || d.peers()).await?)),
        (&Method::POST, ["cluster", "revoke"]) => {
            let r: control_plane::api::RevokeRequest = body(req).await?;
            blocking(move || d.revoke(&r)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["cluster", "forget", host]) => {
            let host = host.to_string();
            Ok(json(StatusCode::OK, &blocking(move || d.forget(&host)).await?))
        }
        (&Method::GET, ["cluster"]) => {
            let c = d.cluster_counters();
            let body = serde_json::json!({
                "Member": c.is_some(),
                "DroppedUnauthenticated": c.map(|c| c.0),
                "SyncOk": c.map(|c| c.1),
                "SyncFailed": c.map(|c| c.2),
            });
            Ok(json(StatusCode::OK, &body))
        }
        (&Method::GET, ["vxlan"]) => Ok(json(StatusCode::OK, &blocking(move || d.vxlan()).await?)),
        (&Method::GET, ["ports"]) => Ok(json(StatusCode::OK, &blocking(move || d.ports()).await?)),
        (&Method::GET, ["fdb"]) => Ok(json(StatusCode::OK, &blocking(move || d.fdb()).await?)),
        (&Method::GET, ["ports", port, "capture"]) => {
            let count =
                control_plane::request::capture_count(req.uri().query()).map_err(|m| error(400, m.to_string()))?;
            let port = port.to_string();
            let (rx, label) = blocking(move || d.capture(&port)).await?;
            Ok(Response::builder()
                .status(StatusCode::OK)
                .header("Content-Type", "application/x-pcapng")
                .body(CaptureBody::new(rx, &label, count).boxed())
                .expect("static response parts"))
        }
        (&Method::GET, ["stats"]) => Ok(json(StatusCode::OK, &blocking(move || d.stats()).await?)),
        (&Method::POST, ["trace"]) => {
            let r = body(req).await?;
            Ok(json(StatusCode::OK, &blocking(move || d.trace(r)).await?))
        }
        (
            _,
            ["_ping" | "version" | "networks" | "sandboxes" | "ports" | "fdb" | "stats" | "trace" | "vxlan" | "cluster", ..],
        ) if known_path(&segs) => Err(error(405, format!("method {m} is not allowed on {path}"))),
        _ => Err(error(404, format!("page not found: {m} {path}"))),
    }
}

/// A capture as a pcapng stream: the header, then each mirrored frame as it comes, until
/// `left` frames were sent or the dataplane ends the capture.
struct CaptureBody {
    head: Option<Bytes>,
    rx: tokio::sync::mpsc::Receiver<crate::dataplane::Mirrored>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
    label: String,
    left: Option<u64>,
}

impl CaptureBody {
    fn new(c: crate::dataplane::CaptureRx, label: &str, left: Option<u64>) -> CaptureBody {
        CaptureBody {
            head: Some(Bytes::from(control_plane::capture::header(label))),
            rx: c.0,
            dropped: c.1,
            label: label.to_string(),
            left,
        }
    }
}

impl hyper::body::Body for CaptureBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        use std::task::Poll;
        if let Some(h) = self.head.take() {
            return Poll::Ready(Some(Ok(hyper::body::Frame::data(h))));
        }
        if self.left == Some(0) {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(m)) => {
                if let Some(l) = self.left.as_mut() {
                    *l -= 1;
                }
                let block = control_plane::capture::packet(m.ns, m.dir, &m.frame);
                Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from(block)))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for CaptureBody {
    fn drop(&mut self) {
        let dropped = self.dropped.load(std::sync::atomic::Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(interface = %self.label, dropped, "capture ended; frames were dropped because the reader fell behind");
        } else {
            tracing::info!(interface = %self.label, "capture ended");
        }
    }
}

/// `GET /version`: this release, its API and the kernel it runs on.
fn server_version() -> control_plane::api::VersionResource {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    control_plane::api::VersionResource {
        min_api_version: control_plane::api::MIN_API_VERSION.to_string(),
        kernel_version: kernel.trim().to_string(),
        ..control_plane::api::VersionResource::of_this(env!("CARGO_PKG_VERSION"))
    }
}

/// Whether the segments name a resource of the API (whatever the method).
fn known_path(segs: &[&str]) -> bool {
    matches!(
        segs,
        ["_ping"]
            | ["version"]
            | ["networks"]
            | ["networks", _]
            | ["networks", _, "connect" | "disconnect"]
            | ["sandboxes"]
            | ["sandboxes", _]
            | ["ports"]
            | ["ports", _, "capture"]
            | ["fdb"]
            | ["trace"]
            | ["stats"]
            | ["vxlan"]
            | ["cluster"]
            | ["cluster", "peers"]
            | ["cluster", "forget", _]
            | ["cluster", "revoke"]
            | ["networks", _, "vteps"]
            | ["networks", _, "vteps", _]
    )
}
