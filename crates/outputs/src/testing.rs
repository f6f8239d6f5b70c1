//! Alerts for the outputs' tests, shaped like what Falco posts.

use peregrine_engine::{Alert, AlertId};

use crate::envelope::Envelope;

/// Falco's stable "Read sensitive file untrusted" alert from a container, as Falco 0.41 posts it.
pub fn shadow_read(priority: &str) -> Envelope {
    envelope(serde_json::json!({
        "hostname": "node-1",
        "output": format!("09:23:10.123456789: {priority} Sensitive file opened for reading by non-trusted program (file=/etc/shadow gparent=bash ggparent=containerd-shim gggparent=<NA> evt_type=openat user=root user_uid=0 user_loginuid=-1 process=cat proc_exepath=/usr/bin/cat parent=bash command=cat /etc/shadow terminal=34816 container_id=3ad7b26ded6d container_name=web)"),
        "output_fields": {
            "container.id": "3ad7b26ded6d",
            "container.name": "web",
            "container.image.repository": "nginx",
            "evt.time": 1781256190123456789u64,
            "evt.type": "openat",
            "fd.name": "/etc/shadow",
            "proc.cmdline": "cat /etc/shadow",
            "proc.exepath": "/usr/bin/cat",
            "proc.name": "cat",
            "proc.pname": "bash",
            "proc.tty": 34816,
            "user.loginuid": -1,
            "user.name": "root",
            "user.uid": 0,
            "k8s.ns.name": null,
            "container.privileged": false
        },
        "priority": priority,
        "rule": "Read sensitive file untrusted",
        "source": "syscall",
        "tags": ["filesystem", "mitre_credential_access", "T1555"],
        "time": "2026-06-12T09:23:10.123456789Z"
    }))
}

/// An envelope for alert JSON, with a fresh id.
pub fn envelope(json: serde_json::Value) -> Envelope {
    let mut a = Alert::from_json(json).expect("a valid alert");
    a.uuid = Some(AlertId::generate());
    Envelope::new(a)
}

/// What building an output in a test needs.
pub fn build_context() -> crate::settings::BuildContext {
    crate::settings::BuildContext {
        name: "test".into(),
        max_in_flight: 1,
        timeout: std::time::Duration::from_secs(5),
    }
}

/// An alert whose text tries every markup trick: mentions, links, emphasis, tags, entities.
pub fn hostile(rule: &str) -> Envelope {
    envelope(serde_json::json!({
        "hostname": "node-1",
        "output": "09:23:10.123456789: Critical @everyone @here <!channel> [click](https://evil.example) **bold** <b>tag</b> &amp; `code` <users/all>",
        "output_fields": {"proc.name": "sh", "fd.name": "<a href=\"https://evil.example\">x</a>"},
        "priority": "Critical",
        "rule": rule,
        "source": "syscall",
        "tags": ["T1059"],
        "time": "2026-06-12T09:23:10.123456789Z"
    }))
}

/// An alert whose output is `n` characters long.
pub fn long_output(n: usize) -> Envelope {
    envelope(serde_json::json!({
        "hostname": "node-1",
        "output": "é".repeat(n),
        "output_fields": {"proc.name": "x".repeat(n)},
        "priority": "Warning",
        "rule": "R".repeat(n),
        "source": "syscall",
        "tags": [],
        "time": "2026-06-12T09:23:10.123456789Z"
    }))
}

/// Delivers alerts until the destination says to wait (at most `max` attempts, all others
/// delivered), and returns how many were delivered first and the answer.
pub async fn deliver_until_paused(
    out: &impl crate::output::Output,
    max: usize,
) -> (usize, crate::delivery::Failure, std::time::Duration) {
    use crate::delivery::Delivery;
    for delivered in 0..max {
        match out.deliver(&[shadow_read("Notice")]).await {
            Delivery::Delivered => continue,
            Delivery::RetryAfter(f, wait) => return (delivered, f, wait),
            other => panic!("after {delivered} delivered: {other:?}"),
        }
    }
    panic!("{max} requests were all delivered: the service never said to wait")
}
