//! The embedded WorkMail service model, and request validation driven by it: required
//! members, types, lengths, patterns, ranges and enums, exactly as the model states them.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use regex::Regex;
use serde_json::Value;

/// The botocore service model the AWS SDKs are generated from (vendored, unchanged).
pub const SERVICE_MODEL: &str = include_str!("model/workmail-2017-10-01.service-2.json");

static MODEL: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(SERVICE_MODEL).unwrap_or(Value::Null));

static PATTERNS: LazyLock<Mutex<HashMap<String, Option<Regex>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Why a request body was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Invalid {
    /// A member had the wrong JSON type (`SerializationException`).
    Serialization(String),
    /// Constraint violations, in AWS's wording (`InvalidParameterException`).
    Constraints(Vec<String>),
}

impl Invalid {
    /// The message AWS services send for these violations.
    pub fn message(&self) -> String {
        match self {
            Invalid::Serialization(m) => m.clone(),
            Invalid::Constraints(v) => format!(
                "{} validation error{} detected: {}",
                v.len(),
                if v.len() == 1 { "" } else { "s" },
                v.join("; ")
            ),
        }
    }
}

/// The input shape name of an operation, or `None` when the model has no such operation.
pub fn input_shape(operation: &str) -> Option<&'static str> {
    MODEL["operations"][operation]["input"]["shape"].as_str()
}

/// Validates a request body against the operation's input shape.
pub fn validate(operation: &str, body: &Value) -> Result<(), Invalid> {
    let Some(shape) = input_shape(operation) else {
        return Ok(());
    };
    if !body.is_object() {
        return Err(Invalid::Serialization(
            "Start of structure or map found where not expected".to_owned(),
        ));
    }
    let mut errors = Vec::new();
    check(shape, body, "", &mut errors)?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Invalid::Constraints(errors))
    }
}

/// AWS names members in validation messages with a lower-case first letter.
fn path_join(parent: &str, member: &str) -> String {
    let mut c = member.chars();
    let lower: String = c
        .next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default();
    if parent.is_empty() {
        lower
    } else {
        format!("{parent}.{lower}")
    }
}

fn check(
    shape_name: &str,
    value: &Value,
    path: &str,
    errors: &mut Vec<String>,
) -> Result<(), Invalid> {
    let shape = &MODEL["shapes"][shape_name];
    let sensitive = shape["sensitive"].as_bool().unwrap_or(false);
    let shown = |v: &dyn std::fmt::Display| {
        if sensitive {
            "'***'".to_owned()
        } else {
            format!("'{v}'")
        }
    };
    let mut fail = |what: String, shown_value: String| {
        errors.push(format!(
            "Value {shown_value} at '{path}' failed to satisfy constraint: Member must {what}"
        ));
    };
    let wrong_type = || {
        Invalid::Serialization(format!(
            "Unexpected JSON type for member '{path}' of shape {shape_name}"
        ))
    };
    match shape["type"].as_str().unwrap_or_default() {
        "structure" => {
            let Some(obj) = value.as_object() else {
                return Err(wrong_type());
            };
            let members = shape["members"].as_object();
            for req in shape["required"].as_array().into_iter().flatten() {
                let req = req.as_str().unwrap_or_default();
                if obj.get(req).is_none_or(Value::is_null) {
                    let p = path_join(path, req);
                    errors.push(format!(
                        "Value null at '{p}' failed to satisfy constraint: Member must not be null"
                    ));
                }
            }
            for (name, member) in members.into_iter().flatten() {
                if let Some(v) = obj.get(name).filter(|v| !v.is_null()) {
                    let target = member["shape"].as_str().unwrap_or_default();
                    check(target, v, &path_join(path, name), errors)?;
                }
            }
        }
        "string" => {
            let Some(s) = value.as_str() else {
                return Err(wrong_type());
            };
            let len = s.chars().count() as i64;
            if let Some(min) = shape["min"].as_i64().filter(|m| len < *m) {
                fail(
                    format!("have length greater than or equal to {min}"),
                    shown(&s),
                );
            }
            if let Some(max) = shape["max"].as_i64().filter(|m| len > *m) {
                fail(
                    format!("have length less than or equal to {max}"),
                    shown(&s),
                );
            }
            if let Some(allowed) = shape["enum"].as_array()
                && !allowed.iter().any(|a| a.as_str() == Some(s))
            {
                let set: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
                fail(
                    format!("satisfy enum value set: [{}]", set.join(", ")),
                    shown(&s),
                );
            }
            if let Some(p) = shape["pattern"].as_str()
                && !full_match(p, s)
            {
                fail(
                    format!("satisfy regular expression pattern: {p}"),
                    shown(&s),
                );
            }
        }
        "integer" | "long" => {
            let Some(n) = value.as_i64() else {
                return Err(wrong_type());
            };
            if let Some(min) = shape["min"].as_i64().filter(|m| n < *m) {
                fail(
                    format!("have value greater than or equal to {min}"),
                    shown(&n),
                );
            }
            if let Some(max) = shape["max"].as_i64().filter(|m| n > *m) {
                fail(format!("have value less than or equal to {max}"), shown(&n));
            }
        }
        "boolean" if !value.is_boolean() => return Err(wrong_type()),
        "timestamp" if !value.is_number() => return Err(wrong_type()),
        "list" => {
            let Some(items) = value.as_array() else {
                return Err(wrong_type());
            };
            let len = items.len() as i64;
            if let Some(min) = shape["min"].as_i64().filter(|m| len < *m) {
                fail(
                    format!("have length greater than or equal to {min}"),
                    "'[...]'".into(),
                );
            }
            if let Some(max) = shape["max"].as_i64().filter(|m| len > *m) {
                fail(
                    format!("have length less than or equal to {max}"),
                    "'[...]'".into(),
                );
            }
            let member = shape["member"]["shape"].as_str().unwrap_or_default();
            for (i, item) in items.iter().enumerate() {
                check(member, item, &format!("{path}.{}", i + 1), errors)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Whether `s` matches the model pattern as a whole, the way AWS services apply patterns.
///
/// A pattern the `regex` crate cannot compile (none of the implemented operations' input
/// shapes has one) is treated as matching, so the emulator never refuses what AWS would take.
pub fn full_match(pattern: &str, s: &str) -> bool {
    let mut cache = PATTERNS.lock().unwrap_or_else(|e| e.into_inner());
    let re = cache
        .entry(pattern.to_owned())
        .or_insert_with(|| Regex::new(&format!("^(?:{pattern})$")).ok());
    re.as_ref().is_none_or(|re| re.is_match(s))
}
