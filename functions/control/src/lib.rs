//! The circuit breaker's [`Switch`] on AWS, shared by the forwarder and `sfctl`: the delivery
//! state in an SSM parameter (`STATE_PARAMETER`), and consumption as the forwarder's event source
//! mappings, enabled or disabled.

use aws_sdk_lambda::error::DisplayErrorContext;
use aws_sdk_ssm::types::ParameterType;
use storeforward_core::breaker::{DeliveryState, Switch, SwitchError};
use tracing::info;

/// The state parameter and, with the SQS trigger, the mappings it switches.
#[derive(Debug, Clone)]
pub struct AwsSwitch {
    ssm: aws_sdk_ssm::Client,
    parameter: String,
    mappings: Option<Mappings>,
}

/// The function's event source mappings, except the probe queue's.
#[derive(Debug, Clone)]
struct Mappings {
    lambda: aws_sdk_lambda::Client,
    function_name: String,
    probe_queue_name: String,
}

impl AwsSwitch {
    /// A switch for a scheduled forwarder: the state alone gates its polls.
    pub fn new(ssm: aws_sdk_ssm::Client, parameter: impl Into<String>) -> Self {
        Self {
            ssm,
            parameter: parameter.into(),
            mappings: None,
        }
    }

    /// Also enables and disables `function_name`'s event source mappings, all but the one that
    /// reads the probe queue (which stays on so that probes arrive).
    pub fn with_mappings(
        self,
        lambda: aws_sdk_lambda::Client,
        function_name: impl Into<String>,
        probe_queue_url: &str,
    ) -> Self {
        Self {
            mappings: Some(Mappings {
                lambda,
                function_name: function_name.into(),
                probe_queue_name: queue_name(probe_queue_url).to_owned(),
            }),
            ..self
        }
    }
}

/// The last path segment of a queue URL, or the last field of a queue ARN: the queue's name.
fn queue_name(url_or_arn: &str) -> &str {
    url_or_arn.rsplit(['/', ':']).next().unwrap_or(url_or_arn)
}

fn failed<E: std::error::Error>(what: &str, e: E) -> SwitchError {
    SwitchError(format!("{what}: {}", DisplayErrorContext(e)))
}

impl Switch for AwsSwitch {
    async fn read(&self) -> Result<DeliveryState, SwitchError> {
        let answer = self.ssm.get_parameter().name(&self.parameter).send().await;
        match answer {
            Ok(out) => match out.parameter.and_then(|p| p.value) {
                Some(text) => DeliveryState::parse(&text),
                None => Ok(DeliveryState::Delivering),
            },
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_parameter_not_found()) =>
            {
                Ok(DeliveryState::Delivering)
            }
            Err(e) => Err(failed("reading the delivery state", e)),
        }
    }

    async fn write(&self, state: &DeliveryState) -> Result<(), SwitchError> {
        self.ssm
            .put_parameter()
            .name(&self.parameter)
            .value(state.to_json())
            .r#type(ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed("recording the delivery state", e))
    }

    async fn consume(&self, on: bool) -> Result<(), SwitchError> {
        let Some(m) = &self.mappings else {
            return Ok(());
        };
        let wanted = if on { "Enabl" } else { "Disabl" };
        for mapping in self.mappings().await? {
            if mapping.state.starts_with(wanted) {
                continue;
            }
            m.lambda
                .update_event_source_mapping()
                .uuid(&mapping.uuid)
                .enabled(on)
                .send()
                .await
                .map_err(|e| failed("switching the event source mapping", e))?;
            info!(uuid = %mapping.uuid, queue = %mapping.queue, enabled = on, "event source mapping switched");
        }
        Ok(())
    }
}

/// One event source mapping that the switch turns on and off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub uuid: String,
    /// The name of the queue it reads.
    pub queue: String,
    /// `Enabled`, `Disabled`, or a transition (`Enabling`, `Disabling`, `Updating`, ...).
    pub state: String,
}

impl AwsSwitch {
    /// The function's mappings, except the probe queue's (none for a scheduled forwarder).
    pub async fn mappings(&self) -> Result<Vec<Mapping>, SwitchError> {
        let Some(m) = &self.mappings else {
            return Ok(Vec::new());
        };
        let listed = m
            .lambda
            .list_event_source_mappings()
            .function_name(&m.function_name)
            .send()
            .await
            .map_err(|e| failed("listing the event source mappings", e))?;
        Ok(listed
            .event_source_mappings()
            .iter()
            .filter_map(|mapping| {
                let queue = queue_name(mapping.event_source_arn()?);
                (queue != m.probe_queue_name).then(|| Mapping {
                    uuid: mapping.uuid().unwrap_or_default().to_owned(),
                    queue: queue.to_owned(),
                    state: mapping.state().unwrap_or_default().to_owned(),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_come_from_urls_and_arns_alike() {
        assert_eq!(
            queue_name("http://127.0.0.1:4566/000000000000/sf-orders-probe"),
            "sf-orders-probe"
        );
        assert_eq!(
            queue_name("arn:aws:sqs:eu-west-1:000000000000:sf-orders-probe"),
            "sf-orders-probe"
        );
    }
}
