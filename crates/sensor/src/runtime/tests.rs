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

fn engine(socket: &std::path::Path) -> Engine {
    Engine::Docker(api(socket))
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
    assert_eq!(web.privileged, Some(false));
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
    assert_eq!(api_pod.privileged, Some(true));

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

/// Waits until `done` holds, polling, and fails the test if it still does not after 5 s: the
/// tests wait for what they need to have happened, never for a length of time.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "still not {what} after 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What `get` answers once a lookup of `id` (which the first `get` starts) has finished.
async fn eventually(containers: &Containers, id: &str) -> Option<Arc<ContainerInfo>> {
    let _ = containers.get(id);
    wait_until("looked up", || settled(containers, id)).await;
    containers.get(id)
}

/// Whether the cache holds an answer for `id` (known, or unknown to every runtime), read
/// without starting a lookup as `get` would.
fn settled(containers: &Containers, id: &str) -> bool {
    matches!(
        containers.cache.lock().unwrap().get(id),
        Some(Entry::Known(_) | Entry::Unknown(_))
    )
}

/// Whether the cache knows `id`, read without starting a lookup.
fn known(containers: &Containers, id: &str) -> bool {
    matches!(
        containers.cache.lock().unwrap().get(id),
        Some(Entry::Known(_))
    )
}

#[tokio::test]
async fn the_cache_looks_up_once_and_answers_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let fake = FakeDocker::start(&socket, containers()).await;
    let containers = Containers::new(vec![engine(&socket)]);

    // First sight: nothing yet, a lookup starts; then the answer stays in memory.
    assert!(containers.get(&WEB[..12]).is_none());
    let web = eventually(&containers, &WEB[..12])
        .await
        .expect("looked up");
    assert_eq!(web.name, "web");
    for _ in 0..100 {
        assert!(containers.get(&WEB[..12]).is_some());
    }
    // An id no runtime knows is asked about once, not on every event: once its lookup has
    // found nothing, asking again starts none (a lookup would mark it as being looked up).
    assert_eq!(eventually(&containers, "0123456789ab").await, None);
    for _ in 0..100 {
        assert!(containers.get("0123456789ab").is_none());
        assert!(settled(&containers, "0123456789ab"), "looked up again");
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
    let containers = Containers::new(vec![engine(&socket)]);
    containers.prefill();
    // The listing alone looks both up: no event of theirs goes without metadata.
    wait_until("both known", || {
        known(&containers, &POD[..12]) && known(&containers, &WEB[..12])
    })
    .await;
    assert_eq!(containers.get(&POD[..12]).unwrap().name, "api");
    assert_eq!(containers.get(&WEB[..12]).unwrap().name, "web");
    assert_eq!(fake.requests().len(), 3, "{:?}", fake.requests());
}

#[tokio::test]
async fn without_a_runtime_nothing_is_asked_and_nothing_breaks() {
    let containers = Containers::new(Vec::new());
    containers.prefill();
    assert!(containers.get(&WEB[..12]).is_none());
    let dir = tempfile::tempdir().unwrap();
    let gone = Containers::new(vec![engine(&dir.path().join("gone.sock"))]);
    assert!(gone.get(&WEB[..12]).is_none());
    // The lookup fails; the container is then unknown, not an error.
    assert_eq!(eventually(&gone, &WEB[..12]).await, None);
}

mod cri {
    use peregrine_fakes::cri::{containerd_info, cri_o_info, CriContainer, FakeCri};

    use super::*;

    const NGINX: &str = "5e3f2c7c1d8e9f0a1b2c3d4e5f3ad7b26ded6d8e7b1f0ffbbd8bdd3b4e4b2eab";
    const OLD: &str = "7c1d8e9f0a1b2c3d4e5f3ad7b26ded6d8e7b1f0ffbbd8bdd3b4e4b2eab5e3f2c";
    const UNTAGGED: &str = "0a1b2c3d4e5f3ad7b26ded6d8e7b1f0ffbbd8bdd3b4e4b2eab5e3f2c7c1d8e9f";

    fn pod_labels(pod: &str) -> Vec<(String, String)> {
        vec![
            ("io.kubernetes.pod.name".into(), pod.into()),
            ("io.kubernetes.pod.namespace".into(), "shop".into()),
            ("io.kubernetes.pod.uid".into(), "6f1c-22".into()),
            ("io.kubernetes.container.name".into(), "ignored".into()),
        ]
    }

    fn node() -> Vec<CriContainer> {
        vec![
            CriContainer {
                id: NGINX.into(),
                name: "web".into(),
                image: "docker.io/library/nginx:1.25".into(),
                user_specified_image: "nginx:1.25".into(),
                image_ref: "docker.io/library/nginx@sha256:0d17".into(),
                labels: pod_labels("web-5d8f"),
                verbose_info: Some(containerd_info(NGINX, false)),
            },
            // A runtime that predates user_specified_image.
            CriContainer {
                id: OLD.into(),
                name: "api".into(),
                image: "registry.local:5000/shop/api:3.1".into(),
                user_specified_image: String::new(),
                image_ref: "registry.local:5000/shop/api@sha256:aa11".into(),
                labels: pod_labels("api-77c4"),
                verbose_info: Some(containerd_info(OLD, true)),
            },
            // Pulled by digest: no tag to resolve to.
            CriContainer {
                id: UNTAGGED.into(),
                name: "job".into(),
                image: format!("sha256:{}", "ef".repeat(32)),
                user_specified_image: String::new(),
                image_ref: "quay.io/shop/job@sha256:bb22".into(),
                labels: pod_labels("job-1"),
                verbose_info: None,
            },
        ]
    }

    #[tokio::test]
    async fn reads_name_image_and_pod_from_container_status() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("containerd.sock");
        let fake = FakeCri::start(&socket, node()).await;
        let cri = CriApi::new(socket.clone());

        let web = cri.inspect(&NGINX[..12]).await.unwrap().expect("known");
        assert_eq!(web.runtime, "containerd");
        assert_eq!(
            (web.name.as_str(), web.image.as_str()),
            ("web", "nginx:1.25")
        );
        assert_eq!(
            (
                web.repository.as_str(),
                web.tag.as_deref(),
                web.digest.as_deref()
            ),
            ("nginx", Some("1.25"), Some("sha256:0d17"))
        );
        assert_eq!(web.pod_name.as_deref(), Some("web-5d8f"));
        assert_eq!(web.pod_namespace.as_deref(), Some("shop"));
        assert_eq!(web.pod_uid.as_deref(), Some("6f1c-22"));
        // containerd leaves a false `privileged` out of its JSON: not privileged, not unknown.
        assert_eq!(web.privileged, Some(false));

        let old = cri.inspect(&OLD[..12]).await.unwrap().expect("known");
        assert_eq!(
            (old.repository.as_str(), old.tag.as_deref()),
            ("registry.local:5000/shop/api", Some("3.1"))
        );
        assert_eq!(old.privileged, Some(true));
        let job = cri.inspect(&UNTAGGED[..12]).await.unwrap().expect("known");
        assert_eq!(
            (
                job.repository.as_str(),
                job.tag.as_deref(),
                job.digest.as_deref()
            ),
            ("quay.io/shop/job", None, Some("sha256:bb22"))
        );
        // A runtime whose verbose answer has no info: unknown, not false.
        assert_eq!(job.privileged, None);

        assert_eq!(cri.inspect("0123456789ab").await.unwrap(), None);
        let mut listed = cri.list().await.unwrap();
        listed.sort();
        assert_eq!(
            listed,
            vec![
                UNTAGGED[..12].to_string(),
                NGINX[..12].to_string(),
                OLD[..12].to_string()
            ]
        );
        assert_eq!(
            fake.calls(),
            [
                "ContainerStatus",
                "ContainerStatus",
                "ContainerStatus",
                "ContainerStatus",
                "ListContainers"
            ]
        );
    }

    #[tokio::test]
    async fn a_cri_socket_behind_a_missing_docker_socket_still_answers() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("crio.sock");
        let _fake = FakeCri::start(&socket, node()).await;
        let containers = Containers::new(vec![
            engine(&dir.path().join("docker.sock")),
            Engine::Cri(CriApi::new(socket)),
        ]);
        let web = eventually(&containers, &NGINX[..12]).await.expect("found");
        assert_eq!((web.runtime, web.name.as_str()), ("cri-o", "web"));
    }

    #[tokio::test]
    async fn cri_o_says_privileged_at_the_top_of_its_info() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("crio.sock");
        let mut containers = node();
        containers[0].verbose_info = Some(cri_o_info(true));
        containers[1].verbose_info = Some(cri_o_info(false));
        let _fake = FakeCri::start(&socket, containers).await;
        let cri = CriApi::new(socket);
        let web = cri.inspect(&NGINX[..12]).await.unwrap().expect("known");
        assert_eq!((web.runtime, web.privileged), ("cri-o", Some(true)));
        let api = cri.inspect(&OLD[..12]).await.unwrap().expect("known");
        assert_eq!(api.privileged, Some(false));
    }

    #[tokio::test]
    async fn a_missing_cri_socket_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let cri = CriApi::new(dir.path().join("none.sock"));
        let err = cri.inspect(&NGINX[..12]).await.unwrap_err();
        assert!(matches!(err, EngineError::Unreachable(_)), "{err}");
        assert!(err.to_string().contains("none.sock"), "{err}");
    }
}
