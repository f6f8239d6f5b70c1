//! `peregrine-gateway migrate --from-falcosidekick` on Falcosidekick's own example config
//! (tests/data/falcosidekick, with its licence), with the environment variables a Falcosidekick
//! user has: the printed config is valid, keeps no secret, and delivers to Slack.

use std::time::Duration;

use peregrine_e2e::gateway::{run_cli, GatewayProcess, Launch};
use peregrine_e2e::{falco_alert, workspace_root};
use peregrine_fakes::slack;

fn example() -> String {
    workspace_root()
        .join("tests/data/falcosidekick/config_example.yaml")
        .display()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_falcosidekick_config_and_its_environment_become_a_config_that_reaches_slack() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = slack::start().await;
    let webhook = fake.url("/services/T0MIGRATE/B0MIGRATE/s3cr3tw3bh00k");
    let env = [
        ("SLACK_WEBHOOKURL", webhook.as_str()),
        ("SLACK_MINIMUMPRIORITY", "warning"),
        ("ELASTICSEARCH_HOSTPORT", "http://127.0.0.1:9"),
        ("ELASTICSEARCH_PASSWORD", "es-p4ssw0rd-secret"),
        ("DATADOG_APIKEY", "dd-k3y-secret"),
    ];
    let run = tokio::task::block_in_place(|| {
        run_cli(&["migrate", "--from-falcosidekick", &example()], &env)
    });
    assert_eq!(run.code, Some(0), "{}", run.text());
    for secret in ["s3cr3tw3bh00k", "es-p4ssw0rd-secret", "dd-k3y-secret"] {
        assert!(
            !run.text().contains(secret),
            "{secret} printed:\n{}",
            run.text()
        );
    }
    assert!(
        run.stdout.contains("webhook_url: ${SLACK_WEBHOOKURL}"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("min_priority: warning"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("password: ${ELASTICSEARCH_PASSWORD}"),
        "{}",
        run.stdout
    );
    for note in [
        "customtags: not carried over",
        "outputfieldformat: not carried over",
        "datadog: not carried over: Peregrine has no output of this kind",
        "SLACK_WEBHOOKURL: written as ${SLACK_WEBHOOKURL}; it is already in the environment",
    ] {
        assert!(
            run.stderr.contains(note),
            "no note {note:?}:\n{}",
            run.stderr
        );
    }

    // The printed config, as the user saves it, run with the same environment: a Warning
    // alert reaches Slack, a Notice one (below SLACK_MINIMUMPRIORITY) does not.
    let config = run.stdout.replace("listen: 0.0.0.0:2801\n", "").replace(
        "/var/lib/peregrine/spool",
        &tmp.path().join("spool").display().to_string(),
    );
    let launch = Launch {
        env: &env,
        ..Launch::default()
    };
    let gw = GatewayProcess::launch(tmp.path(), &config, launch).await;
    assert_eq!(
        gw.post(&falco_alert("Below the minimum", "Notice", &[]))
            .await
            .status(),
        200
    );
    assert_eq!(
        gw.post(&falco_alert("Migrated rule", "Warning", &[]))
            .await
            .status(),
        200
    );
    let messages = fake.wait_accepted(1, Duration::from_secs(20)).await;
    let text: Vec<String> = messages.iter().map(|m| m.json().to_string()).collect();
    assert!(text.iter().any(|t| t.contains("Migrated rule")), "{text:?}");
    assert!(
        !text.iter().any(|t| t.contains("Below the minimum")),
        "{text:?}"
    );
}

#[test]
fn the_example_alone_enables_no_output_and_says_so() {
    let run = run_cli(&["migrate", "--from-falcosidekick", &example()], &[]);
    assert_eq!(run.code, Some(0), "{}", run.text());
    assert!(run.stdout.contains("type: stdout"), "{}", run.stdout);
    assert!(
        run.stdout.contains("akey: AValue"),
        "custom fields carried: {}",
        run.stdout
    );
    assert!(
        run.stderr.contains("no Falcosidekick output is enabled"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_broken_falcosidekick_file_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, "slack:\n  webhookurl: [unclosed\n").unwrap();
    let run = run_cli(
        &[
            "migrate".as_ref(),
            "--from-falcosidekick".as_ref(),
            file.as_os_str(),
        ],
        &[],
    );
    assert_eq!(run.code, Some(1), "{}", run.text());
    assert!(run.stderr.contains("line "), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}
