//! Container ids from cgroup paths, for the layouts of Docker, containerd (CRI), CRI-O and Podman
//! under both cgroupfs and systemd drivers.
//!
//! A container's cgroup has a component holding its 64-hex-character id, bare
//! (`/docker/<id>`, `/kubepods/besteffort/pod.../<id>`) or wrapped in a systemd scope
//! (`docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`, `libpod-<id>.scope`).
//! Nothing shorter counts: the sandbox's own `memory:/process_api/<32 hex>` is not a container.

/// Scope prefixes of the container runtimes, and the wrappers that are not containers.
const SCOPE_PREFIXES: [&str; 4] = ["docker-", "cri-containerd-", "crio-", "libpod-"];

/// The container id (its first 12 hex characters) for a process in these cgroups, if any.
pub fn container_id<'a>(paths: impl IntoIterator<Item = &'a str>) -> Option<String> {
    for path in paths {
        for component in path.rsplit('/') {
            if let Some(id) = id_of(component) {
                return Some(id[..12].to_string());
            }
        }
    }
    None
}

fn id_of(component: &str) -> Option<&str> {
    let inner = component
        .strip_suffix(".scope")
        .map_or(component, |scoped| {
            SCOPE_PREFIXES
                .iter()
                .find_map(|p| scoped.strip_prefix(p))
                .unwrap_or("")
        });
    (inner.len() == 64 && inner.bytes().all(|b| b.is_ascii_hexdigit())).then_some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3ad7b26ded6d8e7b1f0ffbbd8bdd3b4e4b2eab5e3f2c7c1d8e9f0a1b2c3d4e5f";

    #[test]
    fn runtimes_and_drivers() {
        for path in [
            format!("/docker/{ID}"),
            format!("/system.slice/docker-{ID}.scope"),
            format!("/kubepods/besteffort/pod1234-5678/{ID}"),
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice/cri-containerd-{ID}.scope"),
            format!("/kubepods.slice/kubepods-pod1.slice/crio-{ID}.scope"),
            format!("/machine.slice/libpod-{ID}.scope/container"),
        ] {
            assert_eq!(container_id([path.as_str()]).as_deref(), Some("3ad7b26ded6d"), "{path}");
        }
    }

    #[test]
    fn hosts_and_lookalikes_are_not_containers() {
        for path in [
            "/",
            "/user.slice/user-1000.slice/session-3.scope",
            "/process_api/df387d277fc0bcb17172f11de82de993",
            "/system.slice/docker.service",
            "/system.slice/libpod-conmon-abc.scope",
        ] {
            assert_eq!(container_id([path]), None, "{path}");
        }
        assert_eq!(
            container_id(["/", &format!("/docker/{ID}")]).as_deref(),
            Some("3ad7b26ded6d")
        );
    }
}
