//! SMTP against a real server (aiosmtpd), read back from its Maildir.

use std::time::Duration;

use peregrine_fakes::smtp::{SmtpServer, PASSWORD, USER};
use serde_json::json;

use super::*;
use crate::settings::checked;
use crate::testing::{build_context, hostile, shadow_read};

const WAIT: Duration = Duration::from_secs(10);

fn output(server: &SmtpServer, extra: serde_json::Value) -> Arc<dyn Output> {
    let mut keys = json!({
        "host": "localhost", "port": server.port, "encryption": "starttls",
        "username": USER, "password": PASSWORD, "ca_file": server.ca_file(),
        "from": "Peregrine <falco@example.com>", "to": ["secops@example.com"]
    });
    for (k, v) in extra.as_object().unwrap() {
        keys[k] = v.clone();
    }
    checked::<SmtpSettings>(keys)
        .unwrap()
        .build(build_context())
}

/// A stored mail as a reader sees it: its headers and its decoded text and HTML parts.
struct Read {
    subject: String,
    from: String,
    to: String,
    text: String,
    html: String,
}

fn read(raw: &str) -> Read {
    let mail = mailparse::parse_mail(raw.as_bytes()).unwrap();
    let header = |name: &str| {
        mail.headers
            .iter()
            .find(|h| h.get_key() == name)
            .map(|h| h.get_value())
            .unwrap_or_default()
    };
    let part = |mime: &str| {
        mail.subparts
            .iter()
            .find(|p| p.ctype.mimetype == mime)
            .map(|p| p.get_body().unwrap())
            .unwrap_or_default()
    };
    Read {
        subject: header("Subject"),
        from: header("From"),
        to: header("To"),
        text: part("text/plain"),
        html: part("text/html"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_is_a_mail_with_text_and_escaped_html_over_starttls_with_auth() {
    let server = SmtpServer::start();
    let out = output(&server, json!({}));
    assert_eq!(
        out.deliver(&[shadow_read("Critical")]).await,
        Delivery::Delivered
    );
    assert_eq!(
        out.deliver(&[hostile("<script>x</script>")]).await,
        Delivery::Delivered
    );
    let mails = server.wait_mails(2, WAIT);
    let first = read(&mails[0]);
    assert_eq!(
        first.subject,
        "[Critical] Read sensitive file untrusted on node-1"
    );
    assert_eq!(first.from, "Peregrine <falco@example.com>");
    assert_eq!(first.to, "secops@example.com");
    assert!(
        first.text.contains("fd.name: /etc/shadow"),
        "{}",
        first.text
    );
    assert!(
        first
            .html
            .contains("<th align=\"left\">fd.name</th><td>/etc/shadow</td>"),
        "{}",
        first.html
    );
    let second = read(&mails[1]);
    assert_eq!(second.subject, "[Critical] <script>x</script> on node-1");
    assert!(
        second
            .html
            .contains("Critical: &lt;script&gt;x&lt;/script&gt;"),
        "{}",
        second.html
    );
    assert!(
        !second.html.contains("<script>"),
        "the HTML part escapes alert text: {}",
        second.html
    );
    assert!(
        second
            .html
            .contains("&lt;a href=&quot;https://evil.example&quot;&gt;x&lt;/a&gt;"),
        "{}",
        second.html
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_carries_a_batch_in_one_mail() {
    let server = SmtpServer::start();
    let out = output(
        &server,
        json!({"digest_window": "1s", "max_alerts_per_mail": 50}),
    );
    assert_eq!(out.batch_limits().max_events, 50);
    let mut batch: Vec<Envelope> = (0..3).map(|_| shadow_read("Warning")).collect();
    batch.push(shadow_read("Critical"));
    assert_eq!(out.deliver(&batch).await, Delivery::Delivered);
    let mails = server.wait_mails(1, WAIT);
    assert!(
        mails[0].contains("Subject: 4 Falco alerts: 1 Critical, 3 Warning"),
        "{}",
        mails[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_dead_letters_and_a_killed_server_a_retry_until_it_is_back() {
    let mut server = SmtpServer::start();
    let refused = output(&server, json!({"to": ["nobody@refused.example"]}));
    match refused.deliver(&[shadow_read("Error")]).await {
        Delivery::Permanent(f) => assert!(f.reason.contains("mailbox unavailable"), "{}", f.reason),
        other => panic!("{other:?}"),
    }
    let wrong = output(&server, json!({"password": "not-it"}));
    match wrong.deliver(&[shadow_read("Error")]).await {
        Delivery::Permanent(f) => assert!(!f.reason.contains("not-it"), "{}", f.reason),
        other => panic!("bad credentials: {other:?}"),
    }
    let out = output(&server, json!({}));
    assert_eq!(
        out.deliver(&[shadow_read("Error")]).await,
        Delivery::Delivered
    );
    server.kill();
    assert!(matches!(
        out.deliver(&[shadow_read("Error")]).await,
        Delivery::Retry(_)
    ));
    server.restart();
    let again = shadow_read("Error");
    assert_eq!(
        out.deliver(std::slice::from_ref(&again)).await,
        Delivery::Delivered
    );
    let mails = server.wait_mails(2, WAIT);
    assert!(
        mails[1].contains(again.id()),
        "what was accepted before the kill is kept, and the retry arrives"
    );
}

#[test]
fn keys_are_checked_and_the_password_never_printed() {
    let s = checked::<SmtpSettings>(json!({"host": "mail.example.com", "username": "u", "password": "pw-SECRET", "from": "a@example.com", "to": ["b@example.com"]})).unwrap();
    assert_eq!(
        s.describe(),
        "SMTP mail.example.com:587 (starttls) to b@example.com"
    );
    assert!(!format!("{s:?}").contains("pw-SECRET"));
    let e = |keys| checked::<SmtpSettings>(keys).unwrap_err().path;
    assert_eq!(
        e(json!({"host": "h", "from": "not an address", "to": ["b@example.com"]})),
        "from"
    );
    assert_eq!(
        e(json!({"host": "h", "from": "a@example.com", "to": []})),
        "to"
    );
    assert_eq!(
        e(json!({"host": "h", "from": "a@example.com", "to": ["b@example.com"], "username": "u"})),
        "username"
    );
}
