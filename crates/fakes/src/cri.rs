//! A stand-in for a Kubernetes node's CRI socket (containerd's or CRI-O's gRPC
//! `runtime.v1.RuntimeService`), as the sensor reads it: `ListContainers` and
//! `ContainerStatus`, with containerd's `NotFound` for an id it does not know and
//! `Unimplemented` for any other method.
//!
//! Like containerd, it resolves an id prefix, and answers `ContainerStatus` with the image as
//! it resolved it (`image.image`), the digest reference (`image_ref`) and, when the pod spec's
//! spelling is known, `image.user_specified_image`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::codec::ProstCodec;
use tonic::server::Grpc;
use tonic::{Request, Response, Status};

/// A container the fake runtime knows.
#[derive(Debug, Clone)]
pub struct CriContainer {
    pub id: String,
    /// The container's name in its pod spec.
    pub name: String,
    /// The image as the runtime resolved it (a repo tag, or `sha256:…` when it has none).
    pub image: String,
    /// The pod spec's spelling, empty where the runtime predates the field.
    pub user_specified_image: String,
    pub image_ref: String,
    pub labels: Vec<(String, String)>,
    /// What a verbose `ContainerStatus` carries under `info["info"]`: see [`containerd_info`]
    /// and [`cri_o_info`]. `None` answers verbose requests without it.
    pub verbose_info: Option<serde_json::Value>,
}

/// containerd's verbose container info (`pkg/cri/server/container_status.go`): its copy of the
/// CRI `ContainerConfig` in Go's JSON, where a false `privileged` is left out.
pub fn containerd_info(id: &str, privileged: bool) -> serde_json::Value {
    let mut security_context = serde_json::json!({"namespace_options": {"pid": 1}});
    if privileged {
        security_context["privileged"] = true.into();
    }
    serde_json::json!({
        "sandboxID": "ab".repeat(32),
        "pid": 4242,
        "removing": false,
        "snapshotKey": id,
        "snapshotter": "overlayfs",
        "runtimeType": "io.containerd.runc.v2",
        "runtimeOptions": {"systemd_cgroup": true},
        "config": {
            "metadata": {"name": "app"},
            "image": {"image": format!("sha256:{}", "cd".repeat(32))},
            "linux": {"resources": {"cpu_shares": 2}, "security_context": security_context},
        },
        "runtimeSpec": {
            "ociVersion": "1.1.0",
            "process": {"user": {"uid": 0, "gid": 0}, "cwd": "/"},
            "linux": {"resources": {"cpu": {"shares": 2}}, "cgroupsPath": "kubepods-besteffort.slice"},
        },
    })
}

/// CRI-O's verbose container info (`internal/server/container_status.go`): `privileged` at the
/// top, always written.
pub fn cri_o_info(privileged: bool) -> serde_json::Value {
    serde_json::json!({
        "sandboxID": "ab".repeat(32),
        "pid": 4242,
        "runtimeSpec": {"ociVersion": "1.0.2-dev", "process": {"user": {"uid": 0, "gid": 0}}},
        "privileged": privileged,
    })
}

// The runtime's side of the messages, with the field numbers of
// k8s.io/cri-api/pkg/apis/runtime/v1/api.proto.

#[derive(Clone, PartialEq, prost::Message)]
struct StatusRequest {
    #[prost(string, tag = "1")]
    container_id: String,
    #[prost(bool, tag = "2")]
    verbose: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StatusResponse {
    #[prost(message, optional, tag = "1")]
    status: Option<ContainerStatus>,
    #[prost(map = "string, string", tag = "2")]
    info: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ContainerStatus {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(message, optional, tag = "2")]
    metadata: Option<Metadata>,
    #[prost(int32, tag = "3")]
    state: i32,
    #[prost(int64, tag = "4")]
    created_at: i64,
    #[prost(message, optional, tag = "8")]
    image: Option<Image>,
    #[prost(string, tag = "9")]
    image_ref: String,
    #[prost(map = "string, string", tag = "12")]
    labels: HashMap<String, String>,
    #[prost(string, tag = "15")]
    log_path: String,
    #[prost(string, tag = "17")]
    image_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Metadata {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(uint32, tag = "2")]
    attempt: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Image {
    #[prost(string, tag = "1")]
    image: String,
    #[prost(string, tag = "18")]
    user_specified_image: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ListRequest {
    #[prost(message, optional, tag = "1")]
    filter: Option<Filter>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Filter {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(message, optional, tag = "2")]
    state: Option<StateValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StateValue {
    #[prost(int32, tag = "1")]
    state: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ListResponse {
    #[prost(message, repeated, tag = "1")]
    containers: Vec<Listed>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Listed {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    pod_sandbox_id: String,
    #[prost(message, optional, tag = "3")]
    metadata: Option<Metadata>,
    #[prost(message, optional, tag = "4")]
    image: Option<Image>,
    #[prost(string, tag = "5")]
    image_ref: String,
    #[prost(int32, tag = "6")]
    state: i32,
}

const RUNNING: i32 = 1;

struct Shared {
    containers: Vec<CriContainer>,
    /// gRPC methods called, in order.
    calls: Mutex<Vec<String>>,
}

/// The fake, serving until dropped.
pub struct FakeCri {
    socket: PathBuf,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeCri {
    /// Listens on `socket` (replacing a stale file) on the current tokio runtime.
    pub async fn start(socket: &Path, containers: Vec<CriContainer>) -> FakeCri {
        let _ = std::fs::remove_file(socket);
        let listener = tokio::net::UnixListener::bind(socket).expect("bind the fake CRI socket");
        let shared = Arc::new(Shared {
            containers,
            calls: Mutex::default(),
        });
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = serving.clone();
                let service = hyper::service::service_fn(move |req| route(shared.clone(), req));
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        FakeCri {
            socket: socket.to_path_buf(),
            shared,
            task,
        }
    }

    /// The gRPC methods called, in order (`ContainerStatus`, `ListContainers`).
    pub fn calls(&self) -> Vec<String> {
        self.shared.calls.lock().unwrap().clone()
    }
}

impl Drop for FakeCri {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.socket);
    }
}

async fn route(
    shared: Arc<Shared>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<tonic::body::BoxBody>, Infallible> {
    let method = req
        .uri()
        .path()
        .strip_prefix("/runtime.v1.RuntimeService/")
        .unwrap_or("")
        .to_string();
    shared.calls.lock().unwrap().push(method.clone());
    let answer = match method.as_str() {
        "ContainerStatus" => {
            let codec = ProstCodec::<StatusResponse, StatusRequest>::default();
            let s = shared.clone();
            let service = tower::service_fn(move |r: Request<StatusRequest>| {
                std::future::ready(status(&s, r))
            });
            Grpc::new(codec).unary(service, req).await
        }
        "ListContainers" => {
            let codec = ProstCodec::<ListResponse, ListRequest>::default();
            let s = shared.clone();
            let service =
                tower::service_fn(move |r: Request<ListRequest>| std::future::ready(list(&s, r)));
            Grpc::new(codec).unary(service, req).await
        }
        _ => Status::unimplemented(format!("unknown method {}", req.uri().path())).into_http(),
    };
    Ok(answer)
}

// tonic's unary services answer `Result<_, Status>`, large as it is.
#[allow(clippy::result_large_err)]
fn status(shared: &Shared, r: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
    let StatusRequest {
        container_id: id,
        verbose,
    } = r.into_inner();
    let not_found = || {
        Status::not_found(format!(
            "an error occurred when try to find container {id:?}: not found"
        ))
    };
    if id.is_empty() {
        return Err(not_found());
    }
    let c = shared
        .containers
        .iter()
        .find(|c| c.id.starts_with(&id))
        .ok_or_else(not_found)?;
    Ok(Response::new(StatusResponse {
        status: Some(ContainerStatus {
            id: c.id.clone(),
            metadata: Some(Metadata {
                name: c.name.clone(),
                attempt: 0,
            }),
            state: RUNNING,
            created_at: 1_795_000_000_000_000_000,
            image: Some(Image {
                image: c.image.clone(),
                user_specified_image: c.user_specified_image.clone(),
            }),
            image_ref: c.image_ref.clone(),
            labels: c.labels.iter().cloned().collect(),
            log_path: format!("/var/log/pods/{}/0.log", c.name),
            image_id: format!("sha256:{}", "cd".repeat(32)),
        }),
        // Like containerd and CRI-O, the runtime-specific JSON only when asked for.
        info: match (&c.verbose_info, verbose) {
            (Some(info), true) => HashMap::from([("info".to_string(), info.to_string())]),
            _ => HashMap::new(),
        },
    }))
}

#[allow(clippy::result_large_err)]
fn list(shared: &Shared, r: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
    let wanted = r.into_inner().filter.and_then(|f| f.state).map(|s| s.state);
    if wanted.is_some_and(|s| s != RUNNING) {
        return Ok(Response::new(ListResponse::default()));
    }
    Ok(Response::new(ListResponse {
        containers: shared
            .containers
            .iter()
            .map(|c| Listed {
                id: c.id.clone(),
                pod_sandbox_id: "ab".repeat(32),
                metadata: Some(Metadata {
                    name: c.name.clone(),
                    attempt: 0,
                }),
                image: Some(Image {
                    image: c.image.clone(),
                    user_specified_image: c.user_specified_image.clone(),
                }),
                image_ref: c.image_ref.clone(),
                state: RUNNING,
            })
            .collect(),
    }))
}
