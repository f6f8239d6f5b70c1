//! A stand-in for the Docker Engine API on a unix socket, as the sensor reads it: the container
//! list and container inspection, with Docker's answers for unknown ids and paths.
//!
//! Like Docker, it resolves an id prefix (the sensor asks with 12 characters) and answers
//! `404 {"message":"No such container: …"}` for an id it does not know.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// A container the fake runtime knows.
#[derive(Debug, Clone)]
pub struct Container {
    /// The full 64-character id.
    pub id: String,
    /// As Docker prints it, with its leading slash (`/web`).
    pub name: String,
    /// As the user named it (`nginx:1.25`).
    pub image: String,
    pub privileged: bool,
    pub labels: Vec<(String, String)>,
}

impl Container {
    fn inspect(&self) -> Value {
        let labels: serde_json::Map<String, Value> = self
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        json!({
            "Id": self.id,
            "Created": "2026-11-29T08:00:00.000000000Z",
            "Path": "/docker-entrypoint.sh",
            "Args": ["nginx", "-g", "daemon off;"],
            "State": {"Status": "running", "Running": true, "Pid": 4242},
            "Image": format!("sha256:{}", "ab".repeat(32)),
            "Name": self.name,
            "Driver": "overlay2",
            "HostConfig": {"Privileged": self.privileged, "NetworkMode": "bridge"},
            "Config": {
                "Hostname": &self.id[..12],
                "Image": self.image,
                "Labels": labels,
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
            }
        })
    }
}

struct Shared {
    containers: Vec<Container>,
    requests: Mutex<Vec<String>>,
}

/// The fake, serving until dropped.
pub struct FakeDocker {
    socket: PathBuf,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeDocker {
    /// Listens on `socket` (replacing a stale file) on the current tokio runtime.
    pub async fn start(socket: &Path, containers: Vec<Container>) -> FakeDocker {
        let _ = std::fs::remove_file(socket);
        let listener = tokio::net::UnixListener::bind(socket).expect("bind the fake docker socket");
        let shared = Arc::new(Shared {
            containers,
            requests: Mutex::default(),
        });
        let app = Router::new()
            .route("/containers/json", get(list))
            .route("/containers/{id}/json", get(inspect))
            .fallback(|| async {
                (
                    StatusCode::NOT_FOUND,
                    Json(json!({"message": "page not found"})),
                )
            })
            .layer(axum::middleware::from_fn_with_state(shared.clone(), record))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeDocker {
            socket: socket.to_path_buf(),
            shared,
            task,
        }
    }

    /// The paths asked for, in order.
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeDocker {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.socket);
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    shared
        .requests
        .lock()
        .unwrap()
        .push(request.uri().path().to_string());
    next.run(request).await
}

async fn list(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(Value::Array(
        shared
            .containers
            .iter()
            .map(|c| {
                json!({
                    "Id": c.id,
                    "Names": [c.name],
                    "Image": c.image,
                    "ImageID": format!("sha256:{}", "ab".repeat(32)),
                    "State": "running",
                })
            })
            .collect(),
    ))
}

async fn inspect(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
) -> (StatusCode, Json<Value>) {
    let matching: Vec<&Container> = shared
        .containers
        .iter()
        .filter(|c| c.id.starts_with(&id) || c.name.trim_start_matches('/') == id)
        .collect();
    match matching.as_slice() {
        [one] => (StatusCode::OK, Json(one.inspect())),
        [] => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": format!("No such container: {id}")})),
        ),
        _ => (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": format!("multiple IDs found with provided prefix: {id}")})),
        ),
    }
}
