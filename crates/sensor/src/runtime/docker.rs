//! The Docker Engine API over its unix socket (`/var/run/docker.sock`), which Podman's
//! compatibility socket (`/run/podman/podman.sock`) also speaks.
//!
//! Two calls: `GET /containers/json` lists the running containers at start, and
//! `GET /containers/{id}/json` inspects one (the API resolves our 12-character id as a prefix).
//! Paths carry no API version: Docker serves unversioned paths at its current version, while
//! every fixed version is refused by some Docker release (29 refuses anything below 1.44).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use super::{image, kubelet, label, short_id, ContainerInfo, EngineError, REQUEST_TIMEOUT};

/// A runtime reached through the Docker Engine API.
#[derive(Debug, Clone)]
pub struct DockerApi {
    pub socket: PathBuf,
    /// What `container.type` says for its containers: `docker` or `podman`.
    pub kind: &'static str,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    #[serde(default)]
    name: String,
    /// The image's id (`sha256:…`).
    #[serde(default)]
    image: String,
    #[serde(default)]
    config: Config,
    #[serde(default)]
    host_config: HostConfig,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Config {
    /// The image as the user named it (`nginx:1.25`).
    #[serde(default)]
    image: String,
    #[serde(default)]
    labels: Option<HashMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct HostConfig {
    #[serde(default)]
    privileged: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Listed {
    id: String,
}

impl DockerApi {
    /// A Docker Engine API socket; a path naming Podman makes its containers `podman`.
    pub fn new(socket: PathBuf) -> Self {
        let kind = if socket.to_string_lossy().contains("podman") {
            "podman"
        } else {
            "docker"
        };
        DockerApi { socket, kind }
    }

    /// The container's metadata, or `None` when this runtime does not know the id.
    pub async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>, EngineError> {
        if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let (status, body) = get(&self.socket, &format!("/containers/{id}/json")).await?;
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let inspect: Inspect = serde_json::from_slice(&body)
                    .map_err(|e| EngineError::Answer(format!("container {id}: {e}")))?;
                Ok(Some(self.info(inspect)))
            }
            s => Err(EngineError::Answer(format!(
                "inspecting container {id} answered {s}"
            ))),
        }
    }

    /// The 12-character ids of the running containers.
    pub async fn list(&self) -> Result<Vec<String>, EngineError> {
        let (status, body) = get(&self.socket, "/containers/json").await?;
        if !status.is_success() {
            return Err(EngineError::Answer(format!(
                "listing containers answered {status}"
            )));
        }
        let listed: Vec<Listed> = serde_json::from_slice(&body)
            .map_err(|e| EngineError::Answer(format!("container list: {e}")))?;
        Ok(listed.into_iter().filter_map(|c| short_id(&c.id)).collect())
    }

    fn info(&self, c: Inspect) -> ContainerInfo {
        let labels = c.config.labels.unwrap_or_default();
        let name = label(&labels, kubelet::CONTAINER_NAME)
            .unwrap_or_else(|| c.name.trim_start_matches('/').to_string());
        let reference = image::parse(&c.config.image);
        ContainerInfo {
            runtime: self.kind,
            name,
            image: c.config.image,
            image_id: (!c.image.is_empty()).then_some(c.image),
            repository: reference.repository,
            tag: reference.tag,
            digest: reference.digest,
            privileged: Some(c.host_config.privileged),
            pod_name: label(&labels, kubelet::POD_NAME),
            pod_namespace: label(&labels, kubelet::POD_NAMESPACE),
            pod_uid: label(&labels, kubelet::POD_UID),
        }
    }
}

/// One request on a fresh connection: lookups are rare (once per container), so a pool would
/// only keep sockets open for nothing.
async fn get(socket: &Path, path: &str) -> Result<(StatusCode, Bytes), EngineError> {
    let unreachable =
        |e: &dyn std::fmt::Display| EngineError::Unreachable(format!("{}: {e}", socket.display()));
    let exchange = async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| unreachable(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
        tokio::spawn(connection);
        let request = Request::get(path)
            .header(hyper::header::HOST, "docker")
            .body(Empty::<Bytes>::new())
            .expect("a valid request");
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(&e))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(&e))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| unreachable(&"no answer in time"))?
}
