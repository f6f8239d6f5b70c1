//! Every chat and incident preset through the real gateway at once, each against its fake: one
//! alert reaches all of them formatted as each service takes it, a service's error answer is a
//! dead letter with the service's reason, and a 429 pauses the output and then delivers.

use std::time::Duration;

use peregrine_e2e::falco_alert;
use peregrine_e2e::gateway::GatewayProcess;
use peregrine_fakes::{
    discord, googlechat, gotify, grafana_oncall, mattermost, ntfy, opsgenie, rocketchat,
    sidekick_ui, telegram, FakeService,
};

const WAIT: Duration = Duration::from_secs(30);

struct Fakes {
    discord: FakeService,
    googlechat: FakeService,
    gotify: FakeService,
    oncall: FakeService,
    mattermost: FakeService,
    ntfy: FakeService,
    opsgenie: FakeService,
    rocketchat: FakeService,
    telegram: FakeService,
    ui: FakeService,
}

impl Fakes {
    async fn start() -> Fakes {
        Fakes {
            discord: discord::start().await,
            googlechat: googlechat::start().await,
            gotify: gotify::start("GotifyApp").await,
            oncall: grafana_oncall::start("OnCallToken").await,
            mattermost: mattermost::start().await,
            ntfy: ntfy::start_with_token("tk_phone").await,
            opsgenie: opsgenie::start("og-key").await,
            rocketchat: rocketchat::start().await,
            telegram: telegram::start().await,
            ui: sidekick_ui::start().await,
        }
    }

    fn config(&self) -> String {
        format!(
            r#"outputs:
  - {{ name: discord, type: discord, webhook_url: "{}" }}
  - {{ name: gchat, type: googlechat, webhook_url: "{}" }}
  - {{ name: gotify, type: gotify, url: "{}", token: GotifyApp }}
  - {{ name: oncall, type: grafana_oncall, webhook_url: "{}" }}
  - {{ name: mm, type: mattermost, webhook_url: "{}" }}
  - {{ name: phones, type: ntfy, url: "{}", topic: falco, token: tk_phone }}
  - {{ name: og, type: opsgenie, url: "{}", api_key: og-key }}
  - {{ name: rc, type: rocketchat, webhook_url: "{}" }}
  - {{ name: tg, type: telegram, api_url: "{}", token: "123:abc", chat_id: 42 }}
  - {{ name: ui, type: falcosidekick_ui, url: "{}" }}
"#,
            self.discord.url("/api/webhooks/1/tok"),
            self.googlechat.url("/v1/spaces/AAA/messages?key=k&token=t"),
            self.gotify.url(""),
            self.oncall
                .url("/integrations/v1/formatted_webhook/OnCallToken/"),
            self.mattermost.url("/hooks/xq9w3ezqt3ggtnd6yqhh4tq4zc"),
            self.ntfy.url(""),
            self.opsgenie.url(""),
            self.rocketchat.url("/hooks/id/token"),
            self.telegram.url(""),
            self.ui.url(""),
        )
    }

    fn all(&self) -> [(&'static str, &FakeService); 10] {
        [
            ("discord", &self.discord),
            ("googlechat", &self.googlechat),
            ("gotify", &self.gotify),
            ("grafana_oncall", &self.oncall),
            ("mattermost", &self.mattermost),
            ("ntfy", &self.ntfy),
            ("opsgenie", &self.opsgenie),
            ("rocketchat", &self.rocketchat),
            ("telegram", &self.telegram),
            ("falcosidekick_ui", &self.ui),
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_alert_reaches_every_preset_in_its_services_format() {
    let fakes = Fakes::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(tmp.path(), &fakes.config()).await;
    let alert = falco_alert("Shell @here <b>spawned</b>", "Critical", &["shell"]);
    assert_eq!(gw.post(&alert).await.status(), 200);
    for (kind, fake) in fakes.all() {
        let got = fake.wait_accepted(1, WAIT).await;
        assert_eq!(got.len(), 1, "{kind}: {got:?}");
    }
    let discord = &fakes.discord.accepted()[0];
    assert_eq!(
        discord["embeds"][0]["title"],
        "Critical: Shell @\u{2060}here \\<b\\>spawned\\</b\\>"
    );
    let telegram = &fakes.telegram.accepted()[0];
    assert!(telegram["text"]
        .as_str()
        .unwrap()
        .starts_with("<b>Critical: Shell @here &lt;b&gt;spawned&lt;/b&gt;</b>"));
    let chat = &fakes.googlechat.accepted()[0];
    assert!(chat["text"]
        .as_str()
        .unwrap()
        .starts_with("*Critical: Shell @here &lt;b&gt;spawned&lt;/b&gt;*"));
    assert_eq!(
        fakes.opsgenie.accepted()[0]["message"],
        "Shell @here <b>spawned</b>"
    );
    assert_eq!(fakes.ntfy.accepted()[0]["priority"], 5);
    assert_eq!(
        fakes.ui.accepted()[0]["event"]["rule"],
        "Shell @here <b>spawned</b>"
    );
    for (kind, _) in fakes.all() {
        let name = match kind {
            "googlechat" => "gchat",
            "grafana_oncall" => "oncall",
            "mattermost" => "mm",
            "ntfy" => "phones",
            "opsgenie" => "og",
            "rocketchat" => "rc",
            "telegram" => "tg",
            "falcosidekick_ui" => "ui",
            other => other,
        };
        let sent = format!("peregrine_output_sent_total{{output=\"{name}\",type=\"{kind}\"}}");
        gw.wait_metric(&sent, 1.0, WAIT).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_answer_is_a_dead_letter_and_a_429_a_pause_then_delivery() {
    let fakes = Fakes::start().await;
    fakes
        .telegram
        .force(telegram::error(400, "Bad Request: chat not found"), 1);
    fakes.discord.force(discord::rate_limited(1.0), 1);
    let tmp = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(tmp.path(), &fakes.config()).await;
    assert_eq!(
        gw.post(&falco_alert("Only once", "Error", &[]))
            .await
            .status(),
        200
    );

    let dead = r#"peregrine_output_dead_lettered_total{output="tg",type="telegram"}"#;
    gw.wait_metric(dead, 1.0, WAIT).await;
    let letters = std::fs::read_to_string(tmp.path().join("spool/dead-letter/tg.jsonl")).unwrap();
    let letter: serde_json::Value = serde_json::from_str(letters.lines().next().unwrap()).unwrap();
    assert_eq!(letter["alert"]["rule"], "Only once");
    assert!(
        letter["reason"]
            .as_str()
            .unwrap()
            .contains("Bad Request: chat not found"),
        "{letter}"
    );

    // Discord said wait a second: the alert arrives after the pause, once.
    let got = fakes.discord.wait_accepted(1, WAIT).await;
    let (limited, delivered) = (&got[0], got.iter().find(|m| m.accepted()).unwrap());
    assert_eq!(limited.status, 429);
    let waited = delivered.at.duration_since(limited.at);
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );
    assert_eq!(fakes.discord.accepted().len(), 1);
}
