//! Splitting an image reference (`registry:5000/team/app:1.2@sha256:…`) into the parts Falco
//! reports as `container.image.repository`, `.tag` and `.digest`.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub repository: String,
    /// `latest` when the reference names neither a tag nor a digest, as Docker reads it.
    pub tag: Option<String>,
    pub digest: Option<String>,
}

pub fn parse(reference: &str) -> ImageRef {
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest.to_string())),
        None => (reference, None),
    };
    // A colon after the last slash separates the tag; one before it is a registry's port.
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (
            &name[..last_slash + i],
            Some(name[last_slash + i + 1..].to_string()),
        ),
        None => (name, None),
    };
    let tag = match (tag, &digest) {
        (None, None) => Some("latest".to_string()),
        (tag, _) => tag,
    };
    ImageRef {
        repository: repository.to_string(),
        tag,
        digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(r: &str) -> (String, Option<String>, Option<String>) {
        let i = parse(r);
        (i.repository, i.tag, i.digest)
    }

    #[test]
    fn references() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(parts("nginx:1.25"), ("nginx".into(), s("1.25"), None));
        assert_eq!(parts("nginx"), ("nginx".into(), s("latest"), None));
        assert_eq!(
            parts("localhost:5000/team/app"),
            ("localhost:5000/team/app".into(), s("latest"), None)
        );
        assert_eq!(
            parts("registry.k8s.io/pause:3.9"),
            ("registry.k8s.io/pause".into(), s("3.9"), None)
        );
        assert_eq!(
            parts("docker.io/library/redis:7@sha256:abc"),
            ("docker.io/library/redis".into(), s("7"), s("sha256:abc"))
        );
        assert_eq!(
            parts("quay.io/app@sha256:abc"),
            ("quay.io/app".into(), None, s("sha256:abc"))
        );
    }
}
