//! Payload schemas of the topic table and the rejected-publish feedback.
//!
//! A rule may name a JSON Schema its payloads must satisfy. A payload that is not JSON, or
//! breaks the schema, is refused with 0x99 (Payload format invalid), and the broker publishes
//! on `<topic>/rejected` a document saying why, as the platform's API document shows it:
//!
//! ```json
//! {
//!   "error": {
//!     "message": "Invalid payload due to regex pattern not matching.  Position: [0]/name. Value: \"Meta_New\".",
//!     "context": { "type": "string", "title": "Name", "pattern": "...", "minLength": 1 }
//!   },
//!   "data": [ { "name": "Meta_New", "value": 10 } ]
//! }
//! ```
//!
//! - `message`: `Invalid payload due to {what}.  Position: {where}. Value: {value}.`, with
//!   the failing value as JSON. Positions render array indexes as `[0]` and property names as they are, joined
//!   with `/` (the example's `[0]/name`); the whole payload is `(root)`.
//! - `context`: the schema object holding the keyword that failed (found through the error's
//!   schema path); `null` when it cannot be located, as for a payload that is not JSON at all.
//! - `data`: the payload as parsed JSON, or, when it is not JSON, as a string (lossy UTF-8).
//!
//! Only the first error is reported: one clear reason is what a device's developer needs, and
//! collecting every error costs more on the shard.
//!
//! Schemas are compiled once at load, with the fancy-regex engine so patterns may use
//! look-arounds like the document's `(?!.*__.*)`, and a backtracking limit so a hostile
//! payload cannot pin the shard. External `$ref`s are not resolved (no file or HTTP
//! resolver is built in): a schema refers only within itself.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::LocationSegment;
use jsonschema::{PatternOptions, ValidationError, Validator};
use serde::Serialize;
use serde_json::Value;

use crate::hooks::decision::{Denial, Feedback};
use crate::protocol::{ReasonCode, TopicName};

use super::BuiltinError;

/// How many backtracking steps one `pattern` may take on one value before the payload is
/// refused (fancy-regex's own default, stated so it is a decision rather than an accident).
const REGEX_BACKTRACK_LIMIT: usize = 1_000_000;

/// The suffix of the topic the feedback goes to.
pub const REJECTED_SUFFIX: &str = "/rejected";

/// A compiled JSON Schema for the payloads of one topic-table rule. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct PayloadSchema {
    /// The compiled validator.
    validator: Arc<Validator>,
    /// The schema document, to quote the failing sub-schema as `context`.
    document: Arc<Value>,
}

/// Why a payload was refused: the parts of the feedback document.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// What failed, where, with which value.
    pub message: String,
    /// The schema object whose keyword failed (`null` when there is none).
    pub context: Value,
    /// The payload: parsed JSON, or a string when it is not JSON.
    pub data: Value,
}

impl PayloadSchema {
    /// Reads and compiles the JSON Schema in `path`.
    pub fn from_file(path: &Path) -> Result<Self, BuiltinError> {
        let text = std::fs::read(path).map_err(|source| BuiltinError::Read {
            path: path.to_owned(),
            source,
        })?;
        let document: Value =
            serde_json::from_slice(&text).map_err(|source| BuiltinError::SchemaNotJson {
                path: path.to_owned(),
                source,
            })?;
        Self::compile(document).map_err(|message| BuiltinError::SchemaInvalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Compiles a schema document; the error is the validator's explanation.
    pub fn compile(document: Value) -> Result<Self, String> {
        let validator = jsonschema::options()
            .with_pattern_options(
                PatternOptions::fancy_regex().backtrack_limit(REGEX_BACKTRACK_LIMIT),
            )
            .build(&document)
            .map_err(|error| error.to_string())?;
        Ok(Self {
            validator: Arc::new(validator),
            document: Arc::new(document),
        })
    }

    /// Checks `payload`: `Ok` when it is JSON that satisfies the schema.
    pub fn check(&self, payload: &[u8]) -> Result<(), Rejection> {
        let data: Value = match serde_json::from_slice(payload) {
            Ok(data) => data,
            Err(error) => {
                return Err(Rejection {
                    message: format!("Invalid payload: not JSON ({error})."),
                    context: Value::Null,
                    data: Value::String(String::from_utf8_lossy(payload).into_owned()),
                })
            }
        };
        let (message, context) = match self.validator.validate(&data) {
            Ok(()) => return Ok(()),
            Err(error) => {
                let context = self.failing_subschema(&error);
                (describe(&error, &context), context)
            }
        };
        Err(Rejection {
            message,
            context,
            data,
        })
    }

    /// The schema object that holds the keyword that failed: the error's schema path without
    /// its last segment (the keyword itself).
    fn failing_subschema(&self, error: &ValidationError<'_>) -> Value {
        let keyword_path = error.schema_path().as_str();
        let node_path = keyword_path
            .rsplit_once('/')
            .map_or("", |(parent, _keyword)| parent);
        self.document
            .pointer(node_path)
            .cloned()
            .unwrap_or(Value::Null)
    }
}

impl Rejection {
    /// The document published on `<topic>/rejected`, `error` before `data` as in the example.
    pub fn feedback_payload(&self) -> Bytes {
        #[derive(Serialize)]
        struct Document<'a> {
            error: ErrorPart<'a>,
            data: &'a Value,
        }
        #[derive(Serialize)]
        struct ErrorPart<'a> {
            message: &'a str,
            context: &'a Value,
        }
        let document = Document {
            error: ErrorPart {
                message: &self.message,
                context: &self.context,
            },
            data: &self.data,
        };
        // Serializing a `Value` and strings into a Vec cannot fail; should it ever, the client
        // still gets its 0x99 and the feedback says only that much.
        Bytes::from(serde_json::to_vec(&document).unwrap_or_default())
    }

    /// The denial of the publish to `topic`: 0x99, with this rejection published on
    /// `<topic>/rejected`. When that topic cannot be formed (the name would be too long) the
    /// denial goes without feedback rather than not at all.
    pub fn into_denial(self, topic: &TopicName) -> Denial {
        let denial = Denial::new(ReasonCode::PAYLOAD_FORMAT_INVALID, self.message.clone());
        let feedback_topic = format!("{}{REJECTED_SUFFIX}", topic.as_str());
        match TopicName::new(&feedback_topic) {
            Ok(topic) => denial.with_feedback(Feedback {
                topic,
                payload: self.feedback_payload(),
            }),
            Err(_) => denial,
        }
    }
}

/// The message of a schema error, worded like the platform's example.
fn describe(error: &ValidationError<'_>, context: &Value) -> String {
    let what = match error.kind() {
        ValidationErrorKind::Pattern { .. } => "regex pattern not matching".to_owned(),
        ValidationErrorKind::Type { .. } => match context.get("type") {
            Some(expected) => format!("type not matching (expected {expected})"),
            None => "type not matching".to_owned(),
        },
        ValidationErrorKind::Required { property } => {
            format!("required property {property} missing")
        }
        ValidationErrorKind::MinLength { limit } => {
            format!("string shorter than minLength {limit}")
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("string longer than maxLength {limit}")
        }
        ValidationErrorKind::Minimum { limit } => format!("number below minimum {limit}"),
        ValidationErrorKind::Maximum { limit } => format!("number above maximum {limit}"),
        ValidationErrorKind::Enum { options } => format!("value not one of enum {options}"),
        // The rarer keywords keep the validator's own words.
        _ => error.to_string(),
    };
    let value = serde_json::to_string(error.instance().as_ref()).unwrap_or_default();
    format!(
        "Invalid payload due to {what}.  Position: {}. Value: {value}.",
        position(error)
    )
}

/// The instance path as the example renders it: `[0]/name`; `(root)` for the whole payload.
fn position(error: &ValidationError<'_>) -> String {
    let mut rendered = String::new();
    for segment in error.instance_path().iter() {
        if !rendered.is_empty() {
            rendered.push('/');
        }
        match segment {
            LocationSegment::Index(index) => rendered.push_str(&format!("[{index}]")),
            LocationSegment::Property(name) => rendered.push_str(&name),
        }
    }
    if rendered.is_empty() {
        rendered.push_str("(root)");
    }
    rendered
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    /// The platform document's example schema: a list of meta entries with a `name`.
    fn meta_schema() -> PayloadSchema {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hooks/meta.schema.json");
        PayloadSchema::from_file(&path).unwrap()
    }

    fn name_subschema() -> Value {
        json!({
            "type": "string",
            "title": "Name",
            "pattern": "^(~?)(?!.*__.*)[a-z][a-z0-9_]+$",
            "minLength": 1,
            "maxLength": 100
        })
    }

    #[test]
    fn the_documents_example_is_rejected_as_the_document_shows() {
        let payload = json!([
            { "name": "Meta_New", "display_name": "Meta New", "unit_of_measure": "Meters", "value": 10 }
        ]);
        let rejection = meta_schema()
            .check(payload.to_string().as_bytes())
            .unwrap_err();
        assert_eq!(
            rejection.message,
            "Invalid payload due to regex pattern not matching.  Position: [0]/name. Value: \"Meta_New\"."
        );
        assert_eq!(rejection.context, name_subschema());
        assert_eq!(rejection.data, payload);
    }

    #[test]
    fn the_look_ahead_of_the_pattern_is_honoured() {
        let schema = meta_schema();
        assert!(schema.check(br#"[{"name": "meta_new"}]"#).is_ok());
        assert!(schema.check(br#"[{"name": "~meta_new"}]"#).is_ok());
        // `(?!.*__.*)`: a double underscore anywhere is refused.
        let rejection = schema.check(br#"[{"name": "meta__new"}]"#).unwrap_err();
        assert!(rejection.message.contains("regex pattern not matching"));
    }

    #[test]
    fn a_valid_payload_is_accepted() {
        let payload = br#"[{"name": "temperature", "display_name": "Temperature", "value": 21.5}]"#;
        assert_eq!(meta_schema().check(payload), Ok(()));
    }

    #[test]
    fn a_payload_that_is_not_json_is_rejected_with_its_text_as_data() {
        let rejection = meta_schema().check(b"temperature=21").unwrap_err();
        assert!(
            rejection.message.starts_with("Invalid payload: not JSON ("),
            "{}",
            rejection.message
        );
        assert_eq!(rejection.context, Value::Null);
        assert_eq!(rejection.data, json!("temperature=21"));
    }

    #[test]
    fn common_keywords_are_worded_like_the_example() {
        let schema = meta_schema();
        let cases: [(&[u8], &str, Value); 4] = [
            (
                br#"{"name": "x"}"#,
                "Invalid payload due to type not matching (expected \"array\").  Position: (root). Value: {\"name\":\"x\"}.",
                Value::Null,
            ),
            (
                br#"[{"value": 1}]"#,
                "Invalid payload due to required property \"name\" missing.  Position: [0]. Value: {\"value\":1}.",
                Value::Null,
            ),
            (
                br#"[{"name": 7}]"#,
                "Invalid payload due to type not matching (expected \"string\").  Position: [0]/name. Value: 7.",
                name_subschema(),
            ),
            (
                br#"[{"name": "temperature", "value": -1}]"#,
                "Invalid payload due to number below minimum 0.  Position: [0]/value. Value: -1.",
                json!({ "type": "number", "minimum": 0 }),
            ),
        ];
        for (payload, message, context) in cases {
            let rejection = schema.check(payload).unwrap_err();
            assert_eq!(rejection.message, message);
            if !context.is_null() {
                assert_eq!(rejection.context, context);
            }
        }
    }

    #[test]
    fn the_context_of_a_root_or_items_error_is_that_schema_object() {
        let schema = meta_schema();
        let root = schema.check(br#"{"name": "x"}"#).unwrap_err();
        assert_eq!(&root.context, schema.document.as_ref());
        let missing = schema.check(br#"[{"value": 1}]"#).unwrap_err();
        assert_eq!(Some(&missing.context), schema.document.get("items"));
    }

    #[test]
    fn the_denial_is_0x99_with_the_document_on_the_rejected_topic() {
        let topic = TopicName::new("devices/d1/meta").unwrap();
        let payload = br#"[{"name": "Meta_New"}]"#;
        let denial = meta_schema()
            .check(payload)
            .unwrap_err()
            .into_denial(&topic);
        assert_eq!(denial.code, ReasonCode::PAYLOAD_FORMAT_INVALID);
        assert!(!denial.disconnect);
        let feedback = denial.feedback.unwrap();
        assert_eq!(feedback.topic.as_str(), "devices/d1/meta/rejected");
        let text = std::str::from_utf8(&feedback.payload).unwrap();
        assert!(text.starts_with(r#"{"error":{"message":"Invalid payload due to regex"#));
        let document: Value = serde_json::from_slice(&feedback.payload).unwrap();
        assert_eq!(document["error"]["context"], name_subschema());
        assert_eq!(document["data"], json!([{ "name": "Meta_New" }]));
        assert_eq!(denial.reason, document["error"]["message"]);
    }

    #[test]
    fn a_schema_file_that_is_missing_or_not_a_schema_is_an_error_naming_it() {
        let missing = PayloadSchema::from_file(Path::new("/nonexistent/meta.schema.json"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("/nonexistent/meta.schema.json"),
            "{missing}"
        );
        let invalid = PayloadSchema::compile(json!({ "type": "no-such-type" })).unwrap_err();
        assert!(!invalid.is_empty());
        let bad_regex = PayloadSchema::compile(json!({ "pattern": "(" })).unwrap_err();
        assert!(!bad_regex.is_empty());
    }
}
