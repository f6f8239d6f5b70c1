//! Container metadata from the container runtimes: name, image, privileged flag, and the
//! Kubernetes pod a container belongs to.
//!
//! The container id comes from the kernel with every event (see [`crate::container`]); the rest
//! needs the runtime's API, which is slow next to an event. So, as Falco's container plugin does,
//! lookups are asynchronous: the first sight of a container starts one, events meanwhile show
//! these fields as missing (`<NA>`), and later events carry what the runtime answered. Containers
//! already running when the sensor starts are listed up front, so they are known from the start.

pub mod cri;
pub mod docker;
mod image;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use cri::CriApi;
pub use docker::DockerApi;

/// What a runtime says about a container, in the shape of Falco's `container.*` and `k8s.*`
/// fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// `container.type`: `docker`, `podman`, `containerd` or `cri-o`.
    pub runtime: &'static str,
    pub name: String,
    /// The image as the container was started with it (`nginx:1.25`).
    pub image: String,
    pub image_id: Option<String>,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    /// `None` where the runtime's API does not say (the CRI's plain status).
    pub privileged: Option<bool>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
    pub pod_uid: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("container runtime unreachable: {0}")]
    Unreachable(String),
    #[error("container runtime answered unexpectedly: {0}")]
    Answer(String),
    #[error("container runtime refused ({0:?}): {1}")]
    Status(tonic::Code, String),
}

/// Falco's container plugin gives an engine 10 s; a lookup is off the event path, but a hung
/// runtime should not pile up lookups either.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A container runtime's API.
#[derive(Debug, Clone)]
pub enum Engine {
    /// Docker, or Podman's compatible socket.
    Docker(DockerApi),
    /// containerd or CRI-O, through the Kubernetes CRI.
    Cri(CriApi),
}

impl Engine {
    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>, EngineError> {
        match self {
            Engine::Docker(api) => api.inspect(id).await,
            Engine::Cri(api) => api.inspect(id).await,
        }
    }

    async fn list(&self) -> Result<Vec<String>, EngineError> {
        match self {
            Engine::Docker(api) => api.list().await,
            Engine::Cri(api) => api.list().await,
        }
    }

    fn socket(&self) -> &std::path::Path {
        match self {
            Engine::Docker(api) => &api.socket,
            Engine::Cri(api) => &api.socket,
        }
    }
}

/// The runtime sockets Falco's container plugin tries when none is configured, those present.
pub fn default_engines() -> Vec<Engine> {
    let present = |path: &str| {
        std::path::Path::new(path)
            .exists()
            .then(|| PathBuf::from(path))
    };
    let mut engines = Vec::new();
    for path in ["/var/run/docker.sock", "/run/podman/podman.sock"] {
        if let Some(socket) = present(path) {
            engines.push(Engine::Docker(DockerApi::new(socket)));
        }
    }
    for path in [
        "/run/containerd/containerd.sock",
        "/run/crio/crio.sock",
        "/run/k3s/containerd/containerd.sock",
        "/run/host-containerd/containerd.sock",
    ] {
        if let Some(socket) = present(path) {
            engines.push(Engine::Cri(CriApi::new(socket)));
        }
    }
    engines
}

/// Labels the kubelet puts on every container it creates, whichever runtime runs it.
mod kubelet {
    pub const POD_NAME: &str = "io.kubernetes.pod.name";
    pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
    pub const POD_UID: &str = "io.kubernetes.pod.uid";
    pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
}

/// A label's value, when it is set and not empty.
fn label(labels: &HashMap<String, String>, key: &str) -> Option<String> {
    labels.get(key).filter(|v| !v.is_empty()).cloned()
}

/// The 12-character form of a runtime's container id, as the cgroup matcher gives it.
fn short_id(id: &str) -> Option<String> {
    id.get(..12).map(str::to_string)
}

/// How long a container no runtime knew is left alone before it is asked about again.
const RETRY_UNKNOWN: Duration = Duration::from_secs(30);
/// Entries kept at most; a node runs far fewer containers, so this only bounds a leak.
const MAX_ENTRIES: usize = 16_384;

enum Entry {
    Looking,
    Known(Arc<ContainerInfo>),
    Unknown(Instant),
}

/// The sensor's view of the containers on this host, filled in the background.
#[derive(Clone)]
pub struct Containers {
    engines: Arc<[Engine]>,
    cache: Arc<Mutex<HashMap<String, Entry>>>,
}

impl Containers {
    pub fn new(engines: Vec<Engine>) -> Self {
        Containers {
            engines: engines.into(),
            cache: Arc::default(),
        }
    }

    /// Lists the running containers of every engine in the background. Needs a tokio runtime.
    pub fn prefill(&self) {
        for engine in self.engines.iter() {
            let (this, engine) = (self.clone(), engine.clone());
            tokio::spawn(async move {
                match engine.list().await {
                    Ok(ids) => {
                        tracing::info!(
                            engine = %engine.socket().display(),
                            containers = ids.len(),
                            "container runtime reachable"
                        );
                        for id in ids {
                            if this.claim(&id) {
                                this.look_up(id).await;
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "container metadata unavailable"),
                }
            });
        }
    }

    /// What is known of a container. The first call for an id starts a lookup and returns
    /// `None`; so do calls while it runs. Needs a tokio runtime.
    pub fn get(&self, id: &str) -> Option<Arc<ContainerInfo>> {
        if self.engines.is_empty() {
            return None;
        }
        if let Some(Entry::Known(info)) = self.cache.lock().expect("container cache").get(id) {
            return Some(info.clone());
        }
        if self.claim(id) {
            let this = self.clone();
            let id = id.to_string();
            tokio::spawn(async move { this.look_up(id).await });
        }
        None
    }

    /// Marks `id` as being looked up, unless it is known, already being looked up, or was
    /// unknown to every runtime a moment ago.
    fn claim(&self, id: &str) -> bool {
        let mut cache = self.cache.lock().expect("container cache");
        match cache.get(id) {
            Some(Entry::Known(_) | Entry::Looking) => false,
            Some(Entry::Unknown(at)) if at.elapsed() < RETRY_UNKNOWN => false,
            _ => {
                if cache.len() >= MAX_ENTRIES {
                    cache.retain(|_, e| matches!(e, Entry::Looking));
                }
                cache.insert(id.to_string(), Entry::Looking);
                true
            }
        }
    }

    async fn look_up(&self, id: String) {
        let mut found = None;
        for engine in self.engines.iter() {
            match engine.inspect(&id).await {
                Ok(Some(info)) => {
                    found = Some(info);
                    break;
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(container = %id, error = %e, "container lookup failed"),
            }
        }
        let entry = match found {
            Some(info) => {
                tracing::debug!(container = %id, name = ?info.name, image = ?info.image, "container known");
                Entry::Known(Arc::new(info))
            }
            None => Entry::Unknown(Instant::now()),
        };
        self.cache
            .lock()
            .expect("container cache")
            .insert(id, entry);
    }
}

#[cfg(test)]
mod tests;
