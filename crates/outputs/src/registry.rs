//! The output types this build provides: one line per output folder.

use crate::settings::OutputType;

/// Every output type, in the order `--help` and errors list them.
pub const OUTPUT_TYPES: &[OutputType] = &[
    crate::webhook::TYPE,
    crate::stdout::TYPE,
    crate::slack::TYPE,
    crate::teams::TYPE,
    crate::discord::TYPE,
    crate::googlechat::TYPE,
    crate::mattermost::TYPE,
    crate::rocketchat::TYPE,
    crate::telegram::TYPE,
    crate::pagerduty::TYPE,
    crate::opsgenie::TYPE,
    crate::grafana_oncall::TYPE,
    crate::ntfy::TYPE,
    crate::gotify::TYPE,
    crate::smtp::TYPE,
    crate::sidekick_ui::TYPE,
    crate::elasticsearch::TYPE,
    crate::loki::TYPE,
    crate::sns::TYPE,
    crate::sqs::TYPE,
    crate::kinesis::TYPE,
    crate::cloudwatch_logs::TYPE,
    crate::s3::TYPE,
    crate::kafka::TYPE,
    crate::alertmanager::TYPE,
    crate::syslog::TYPE,
    crate::redis::TYPE,
    crate::rabbitmq::TYPE,
    crate::mqtt::TYPE,
    crate::nats::TYPE,
    crate::datadog::TYPE,
    crate::splunk::TYPE,
    crate::otlp::TYPE,
    crate::exec::TYPE,
];

/// The type named in an output's `type:` key.
pub fn output_type(name: &str) -> Result<&'static OutputType, String> {
    OUTPUT_TYPES.iter().find(|t| t.name == name).ok_or_else(|| {
        let available: Vec<&str> = OUTPUT_TYPES.iter().map(|t| t.name).collect();
        format!(
            "unknown output type '{name}' (available: {})",
            available.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_found_by_its_name_once() {
        for t in OUTPUT_TYPES {
            assert_eq!(output_type(t.name).unwrap().name, t.name);
            assert_eq!(OUTPUT_TYPES.iter().filter(|o| o.name == t.name).count(), 1);
        }
        let e = output_type("carrier-pigeon").unwrap_err();
        assert!(
            e.starts_with(
                "unknown output type 'carrier-pigeon' (available: webhook, stdout, slack"
            ),
            "{e}"
        );
    }

    #[test]
    fn only_outputs_for_machines_may_not_deduplicate() {
        let machines: Vec<&str> = OUTPUT_TYPES
            .iter()
            .filter(|t| !t.is_for_people())
            .map(|t| t.name)
            .collect();
        assert_eq!(
            machines,
            [
                "webhook",
                "stdout",
                "elasticsearch",
                "loki",
                "sns",
                "sqs",
                "kinesis",
                "cloudwatch_logs",
                "s3",
                "kafka",
                "alertmanager",
                "syslog",
                "redis",
                "rabbitmq",
                "mqtt",
                "nats",
                "datadog",
                "splunk",
                "otlp"
            ]
        );
    }
}
