//! What one Lambda payload may say. The payload is an EventBridge (Scheduler or rule)
//! event, `{}` or `null`. It may narrow what is mirrored (`only`, at the top level or in
//! `detail`) and nothing else: a payload that could change the destination or the source
//! would let anyone allowed to *invoke* the function publish other content into the mirror
//! that every Trivy client trusts. A key naming any other setting is refused with the
//! variable that sets it.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde_json::{Map, Value};

use trivy_mirror::artifact::Kind;

/// Where an invocation came from, for the logs.
#[derive(Debug, PartialEq)]
pub(super) enum Trigger {
    /// `{}`, `null` or a bare override object: a manual `aws lambda invoke`, a test, or a
    /// Scheduler target without an EventBridge-shaped input.
    Direct,
    /// An EventBridge event envelope (a rule, or Scheduler with an event-shaped input).
    EventBridge { source: String, detail_type: String, id: Option<String>, time: Option<String> },
}

/// What one payload asks for.
#[derive(Debug, PartialEq)]
pub(super) struct Invocation {
    pub(super) trigger: Trigger,
    /// Replaces `TRIVY_MIRROR_ONLY` for this run.
    pub(super) only: Option<Vec<Kind>>,
}

/// Keys of an EventBridge envelope, which are never settings even where a setting has the
/// same name (`source`).
const ENVELOPE_KEYS: [&str; 9] =
    ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"];

impl Invocation {
    pub(super) fn parse(payload: Value) -> Result<Invocation, String> {
        let object = match payload {
            Value::Null => Map::new(),
            Value::Object(object) => object,
            other => {
                return Err(format!("expected a JSON object (an EventBridge event or {{}}), got {}", kind_of(&other)));
            }
        };
        let (trigger, detail) = if object.contains_key("detail-type") {
            let event: EventBridgeEvent<Value> = serde_json::from_value(Value::Object(object.clone()))
                .map_err(|e| format!("an EventBridge event needs \"detail-type\", \"source\" and \"detail\": {e}"))?;
            let detail = match event.detail {
                Value::Object(detail) => Some(detail),
                Value::Null => None,
                other => {
                    return Err(format!("the event's \"detail\" must be an object, got {}", kind_of(&other)));
                }
            };
            let trigger = Trigger::EventBridge {
                source: event.source,
                detail_type: event.detail_type,
                id: event.id,
                time: event.time.map(|t| t.to_rfc3339()),
            };
            (trigger, detail)
        } else {
            (Trigger::Direct, None)
        };
        let envelope = matches!(trigger, Trigger::EventBridge { .. });

        let mut only = None;
        let top = object.iter().filter(|(key, _)| !(envelope && ENVELOPE_KEYS.contains(&key.as_str())));
        let nested = detail.iter().flat_map(|d| d.iter());
        for (key, value) in top.chain(nested) {
            if key == "only" {
                let kinds = parse_only(value)?;
                if only.as_ref().is_some_and(|o| o != &kinds) {
                    return Err("\"only\" is given twice with different values".into());
                }
                only = Some(kinds);
            } else if let Some(variable) = trivy_mirror::settings::variable_for(key) {
                return Err(format!(
                    "{key:?} cannot be set by the payload; it is the function's {variable} \
                     setting. Only \"only\" can be given per invocation"
                ));
            }
            // Anything else (an event's own detail fields) is not ours and is ignored.
        }
        Ok(Invocation { trigger, only })
    }

    pub(super) fn log(&self) {
        let only: Option<Vec<&str>> = self.only.as_ref().map(|kinds| kinds.iter().map(|k| k.as_str()).collect());
        match &self.trigger {
            Trigger::Direct => tracing::info!(trigger = "direct", only = ?only, "invoked"),
            Trigger::EventBridge { source, detail_type, id, time } => tracing::info!(
                trigger = "eventbridge",
                event_source = %source,
                detail_type = %detail_type,
                event_id = id.as_deref().unwrap_or(""),
                event_time = time.as_deref().unwrap_or(""),
                only = ?only,
                "invoked"
            ),
        }
    }
}

/// `["db", "vex"]` or `"db,vex"`.
fn parse_only(value: &Value) -> Result<Vec<Kind>, String> {
    let names: Vec<&str> = match value {
        Value::String(s) => s.split(',').collect(),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| format!("\"only\" must list artifact kinds as strings, got {}", kind_of(item)))
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!("\"only\" must be a list like [\"db\", \"vex\"], got {}", kind_of(other)));
        }
    };
    let kinds = names
        .iter()
        .map(|name| name.trim())
        .filter(|name| !name.is_empty())
        .map(|name| name.parse::<Kind>().map_err(|e| format!("\"only\": {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if kinds.is_empty() {
        return Err("\"only\" is empty; name at least one of db, java-db, checks, vex, or leave it out".into());
    }
    Ok(kinds)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(payload: Value) -> Result<Invocation, String> {
        Invocation::parse(payload)
    }

    #[test]
    fn empty_and_null_payloads_run_with_the_function_settings() {
        for payload in [json!({}), Value::Null] {
            assert_eq!(parse(payload).unwrap(), Invocation { trigger: Trigger::Direct, only: None });
        }
    }

    #[test]
    fn a_scheduled_event_is_accepted() {
        // The envelope fields of EventBridge's scheduled-rule event that are read (the whole
        // event, as aws_lambda_events' fixture has it, goes through the function in tests/it/lambda.rs).
        let event = json!({
            "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "time": "2015-10-08T16:53:06Z",
            "detail": {}
        });
        let invocation = parse(event).unwrap();
        assert_eq!(invocation.only, None);
        assert!(matches!(
            invocation.trigger,
            Trigger::EventBridge { ref source, ref detail_type, .. }
                if source == "aws.events" && detail_type == "Scheduled Event"
        ));
    }

    #[test]
    fn overrides_come_from_the_top_level_or_the_detail() {
        let top = parse(json!({"only": ["db", "vex"]})).unwrap();
        assert_eq!(top.only, Some(vec![Kind::Db, Kind::Vex]));
        let detail = parse(json!({
            "source": "trivy-mirror.scheduler",
            "detail-type": "Scheduled Event",
            "detail": {"only": "java-db, checks"}
        }))
        .unwrap();
        assert_eq!(detail.only, Some(vec![Kind::JavaDb, Kind::Checks]));
    }

    #[test]
    fn bad_payloads_are_refused_with_a_reason() {
        let cases = [
            (json!([]), "expected a JSON object"),
            (json!({"only": ["nope"]}), "expected one of db, java-db, checks, vex"),
            (json!({"only": []}), "\"only\" is empty"),
            (json!({"only": 3}), "must be a list"),
            (json!({"detail-type": "Scheduled Event"}), "needs \"detail-type\", \"source\""),
            (json!({"to": "s3://elsewhere"}), "TRIVY_MIRROR_TO"),
            (json!({"source": "evil.example/ns"}), "TRIVY_MIRROR_SOURCE"),
            (
                json!({"source": "aws.events", "detail-type": "x", "detail": {"base_url": "https://x"}}),
                "TRIVY_MIRROR_BASE_URL",
            ),
        ];
        for (payload, expected) in cases {
            let err = parse(payload.clone()).unwrap_err();
            assert!(err.contains(expected), "{payload}: {err}");
        }
    }

    #[test]
    fn unknown_detail_fields_are_ignored() {
        let invocation = parse(json!({
            "source": "aws.events",
            "detail-type": "Scheduled Event",
            "detail": {"note": "anything"}
        }))
        .unwrap();
        assert_eq!(invocation.only, None);
    }
}
