//! The Kubernetes Container Runtime Interface (CRI, gRPC) on containerd's or CRI-O's socket:
//! where a Kubernetes node's container names, images and pods are.
//!
//! Two calls of `runtime.v1.RuntimeService`: `ListContainers` (running ones) at start and
//! a verbose `ContainerStatus` for a container seen for the first time. Both runtimes resolve our
//! 12-character id as a prefix, as `crictl` relies on. The messages below are the subset of
//! `k8s.io/cri-api/pkg/apis/runtime/v1/api.proto` we read, with its field numbers; protobuf
//! skips the fields left out. Written out rather than generated so that the build needs no
//! `protoc`.

use std::collections::HashMap;
use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use tonic::codec::ProstCodec;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::Code;

use super::{image, kubelet, label, short_id, ContainerInfo, EngineError, REQUEST_TIMEOUT};

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatusRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(bool, tag = "2")]
    pub verbose: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatusResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<ContainerStatus>,
    /// Verbose answers only: runtime-specific JSON under the key `info`.
    #[prost(map = "string, string", tag = "2")]
    pub info: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatus {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<ContainerMetadata>,
    #[prost(message, optional, tag = "8")]
    pub image: Option<ImageSpec>,
    /// The image's digest reference (`repo@sha256:…`).
    #[prost(string, tag = "9")]
    pub image_ref: String,
    #[prost(map = "string, string", tag = "12")]
    pub labels: HashMap<String, String>,
    #[prost(string, tag = "17")]
    pub image_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ImageSpec {
    /// What the runtime resolved the image to: a tag, or an id when it has none.
    #[prost(string, tag = "1")]
    pub image: String,
    /// The image as the pod spec named it (newer runtimes only).
    #[prost(string, tag = "18")]
    pub user_specified_image: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListContainersRequest {
    #[prost(message, optional, tag = "1")]
    pub filter: Option<ContainerFilter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerFilter {
    #[prost(message, optional, tag = "2")]
    pub state: Option<ContainerStateValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStateValue {
    /// `CONTAINER_RUNNING` is 1.
    #[prost(int32, tag = "1")]
    pub state: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListContainersResponse {
    #[prost(message, repeated, tag = "1")]
    pub containers: Vec<ListedContainer>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListedContainer {
    #[prost(string, tag = "1")]
    pub id: String,
}

const CONTAINER_RUNNING: i32 = 1;

/// A runtime reached through the CRI.
#[derive(Debug, Clone)]
pub struct CriApi {
    pub socket: PathBuf,
    /// What `container.type` says for its containers: `containerd` or `cri-o`.
    pub kind: &'static str,
}

impl CriApi {
    pub fn new(socket: PathBuf) -> Self {
        let kind = if socket.to_string_lossy().contains("crio") {
            "cri-o"
        } else {
            "containerd"
        };
        CriApi { socket, kind }
    }

    /// The container's metadata, or `None` when this runtime does not know the id.
    pub async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>, EngineError> {
        // Verbose, as Falco asks: whether the container is privileged is only in the
        // runtime-specific JSON of the verbose answer.
        let request = ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: true,
        };
        let answer: Result<ContainerStatusResponse, _> = self
            .call("/runtime.v1.RuntimeService/ContainerStatus", request)
            .await;
        match answer {
            Ok(response) => {
                let privileged = response.info.get("info").and_then(|j| privileged(j));
                Ok(response.status.map(|s| ContainerInfo {
                    privileged,
                    ..self.info(s)
                }))
            }
            Err(EngineError::Status(Code::NotFound, _)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The 12-character ids of the running containers.
    pub async fn list(&self) -> Result<Vec<String>, EngineError> {
        let request = ListContainersRequest {
            filter: Some(ContainerFilter {
                state: Some(ContainerStateValue {
                    state: CONTAINER_RUNNING,
                }),
            }),
        };
        let response: ListContainersResponse = self
            .call("/runtime.v1.RuntimeService/ListContainers", request)
            .await?;
        Ok(response
            .containers
            .into_iter()
            .filter_map(|c| short_id(&c.id))
            .collect())
    }

    fn info(&self, s: ContainerStatus) -> ContainerInfo {
        let spec = s.image.unwrap_or_default();
        // The pod spec's spelling, else the tag the runtime resolved, else the digest reference.
        let named = [spec.user_specified_image, spec.image, s.image_ref.clone()]
            .into_iter()
            .find(|i| !i.is_empty() && !i.starts_with("sha256:"))
            .unwrap_or_default();
        let mut reference = image::parse(&named);
        if reference.digest.is_none() {
            reference.digest = s.image_ref.split_once('@').map(|(_, d)| d.to_string());
        }
        ContainerInfo {
            runtime: self.kind,
            name: s.metadata.map(|m| m.name).unwrap_or_default(),
            image: named,
            image_id: (!s.image_id.is_empty()).then_some(s.image_id),
            repository: reference.repository,
            tag: reference.tag,
            digest: reference.digest,
            // Only in the verbose answer's JSON: see `privileged`.
            privileged: None,
            pod_name: label(&s.labels, kubelet::POD_NAME),
            pod_namespace: label(&s.labels, kubelet::POD_NAMESPACE),
            pod_uid: label(&s.labels, kubelet::POD_UID),
        }
    }

    async fn call<Req, Resp>(&self, method: &'static str, request: Req) -> Result<Resp, EngineError>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let unreachable = |e: &dyn std::fmt::Display| {
            EngineError::Unreachable(format!("{}: {e}", self.socket.display()))
        };
        let channel = self.connect().await.map_err(|e| unreachable(&e))?;
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|e| unreachable(&e))?;
        let answer = grpc
            .unary(
                tonic::Request::new(request),
                PathAndQuery::from_static(method),
                ProstCodec::<Req, Resp>::default(),
            )
            .await;
        match answer {
            Ok(response) => Ok(response.into_inner()),
            Err(status) => Err(EngineError::Status(
                status.code(),
                format!("{}: {method}: {}", self.socket.display(), status.message()),
            )),
        }
    }

    /// A channel to the unix socket (gRPC wants a URI; the connector ignores it).
    async fn connect(&self) -> Result<Channel, tonic::transport::Error> {
        let socket = self.socket.clone();
        Endpoint::from_static("http://cri.localhost")
            .connect_timeout(REQUEST_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let socket = socket.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(socket).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }))
            .await
    }
}

/// Whether the verbose `info` JSON says the container is privileged, looked up where each runtime
/// writes it, in Falco's order: an old containerd's `runtimeSpec.linux.security_context`,
/// containerd's copy of the CRI request (`config.linux.security_context`, where Go leaves out a
/// false value), CRI-O's top-level `privileged`. Readable JSON that says nothing means not
/// privileged, as for Falco; JSON that does not parse tells nothing.
fn privileged(info: &str) -> Option<bool> {
    let root: serde_json::Value = serde_json::from_str(info).ok()?;
    if !root.is_object() {
        return None;
    }
    let paths: [&[&str]; 3] = [
        &["runtimeSpec", "linux", "security_context", "privileged"],
        &["config", "linux", "security_context", "privileged"],
        &["privileged"],
    ];
    let found = paths.iter().find_map(|path| {
        path.iter()
            .try_fold(&root, |v, key| v.get(key))
            .and_then(serde_json::Value::as_bool)
    });
    Some(found.unwrap_or(false))
}
