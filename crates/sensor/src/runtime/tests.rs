use std::time::{Duration, Instant};

use peregrine_fakes::docker::{Container, FakeDocker};

use super::*;

const WEB: &str = "3ad7b26ded6d8e7b1f0ffbbd8bdd3b4e4b2eab5e3f2c7c1d8e9f0a1b2c3d4e5f";
const POD: &str = "9f0a1b2c3d4e5f3ad7b26ded6d8e7b1f0ffbbd8bdd3b4e4b2eab5e3f2c7c1d8e";

fn containers() -> Vec<Container> {
    vec![
        Container {
            id: WEB.into(),
            name: "/web".into(),
            image: "nginx:1.25".into(),
            privileged: false,
            labels: vec![],
        },
        Container {
            id: POD.into(),
            name: "/k8s_api_checkout-7d9f_shop_0e1f_0".into(),
            image: "registry.local:5000/shop/api@sha256:feed".into(),
            privileged: true,
            labels: vec![
                ("io.kubernetes.container.name".into(), "api".into()),
                ("io.kubernetes.pod.name".into(), "checkout-7d9f".into()),
                ("io.kubernetes.pod.namespace".into(), "shop".into()),
                ("io.kubernetes.pod.uid".into(), "0e1f".into()),
            ],
        },
    ]
}

fn api(socket: &std::path::Path) -> DockerApi {
    DockerApi {
        socket: socket.to_path_buf(),
        kind: "docker",
    }
}

#[tokio::test]
async fn inspects_a_container_by_its_short_id() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let fake = FakeDocker::start(&socket, containers()).await;
    let docker = api(&socket);

    let web = docker.inspect(&WEB[..12]).await.unwrap().expect("known");
    assert_eq!(
        (
            web.name.as_str(),
            web.image.as_str(),
            web.repository.as_str()
        ),
        ("web", "nginx:1.25", "nginx")
    );
    assert_eq!(web.tag.as_deref(), Some("1.25"));
    assert!(!web.privileged);
    assert_eq!(web.pod_name, None);
    assert!(web.image_id.as_deref().unwrap().starts_with("sha256:"));

    // A kubelet-run container: Kubernetes' names, not Docker's generated one.
    let api_pod = docker.inspect(&POD[..12]).await.unwrap().expect("known");
    assert_eq!(api_pod.name, "api");
    assert_eq!(api_pod.pod_name.as_deref(), Some("checkout-7d9f"));
    assert_eq!(api_pod.pod_namespace.as_deref(), Some("shop"));
    assert_eq!(api_pod.repository, "registry.local:5000/shop/api");
    assert_eq!(
        (api_pod.tag, api_pod.digest.as_deref()),
        (None, Some("sha256:feed"))
    );
    assert!(api_pod.privileged);

    assert_eq!(docker.inspect("0123456789ab").await.unwrap(), None);
    let mut listed = docker.list().await.unwrap();
    listed.sort();
    assert_eq!(listed, vec![WEB[..12].to_string(), POD[..12].to_string()]);
    assert_eq!(
        fake.requests(),
        vec![
            format!("/containers/{}/json", &WEB[..12]),
            format!("/containers/{}/json", &POD[..12]),
            "/containers/0123456789ab/json".to_string(),
            "/containers/json".to_string(),
        ]
    );
}

#[tokio::test]
async fn a_missing_socket_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nothing.sock");
    let err = api(&socket).inspect(&WEB[..12]).await.unwrap_err();
    assert!(matches!(err, EngineError::Unreachable(_)), "{err}");
    assert!(err.to_string().contains("nothing.sock"), "{err}");
}

async fn eventually(containers: &Containers, id: &str) -> Option<Arc<ContainerInfo>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(info) = containers.get(id) {
            return Some(info);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_cache_looks_up_once_and_answers_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let fake = FakeDocker::start(&socket, containers()).await;
    let containers = Containers::new(vec![api(&socket)]);

    // First sight: nothing yet, a lookup starts; then the answer stays in memory.
    assert!(containers.get(&WEB[..12]).is_none());
    let web = eventually(&containers, &WEB[..12])
        .await
        .expect("looked up");
    assert_eq!(web.name, "web");
    for _ in 0..100 {
        assert!(containers.get(&WEB[..12]).is_some());
    }
    // An id no runtime knows is asked about once, not on every event.
    for _ in 0..100 {
        assert!(containers.get("0123456789ab").is_none());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let asked = |path: &str| fake.requests().iter().filter(|p| *p == path).count();
    assert_eq!(asked(&format!("/containers/{}/json", &WEB[..12])), 1);
    assert_eq!(asked("/containers/0123456789ab/json"), 1);
}

#[tokio::test]
async fn running_containers_are_known_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let fake = FakeDocker::start(&socket, containers()).await;
    let containers = Containers::new(vec![api(&socket)]);
    containers.prefill();
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.requests().len() < 3 {
        assert!(Instant::now() < deadline, "{:?}", fake.requests());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Both answered on the first ask: no event of theirs goes without metadata.
    assert_eq!(containers.get(&POD[..12]).unwrap().name, "api");
    assert_eq!(containers.get(&WEB[..12]).unwrap().name, "web");
}

#[tokio::test]
async fn without_a_runtime_nothing_is_asked_and_nothing_breaks() {
    let containers = Containers::new(Vec::new());
    containers.prefill();
    assert!(containers.get(&WEB[..12]).is_none());
    let dir = tempfile::tempdir().unwrap();
    let gone = Containers::new(vec![api(&dir.path().join("gone.sock"))]);
    assert!(gone.get(&WEB[..12]).is_none());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(gone.get(&WEB[..12]).is_none());
}
