//! Field matchers for `expect.match`: `/data/code: WEBSOCKET_ERROR` (equals), or one of
//! `{equals}`, `{not_equals}`, `{one_of}`, `{regex}`, `{present}`, `{type}`, `{min}`, `{max}`.
//! String operands may hold templates, expanded when the step runs.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

#[derive(Debug, Clone)]
pub enum Matcher {
    Equals(Value),
    NotEquals(Value),
    OneOf(Vec<Value>),
    Regex(regex::Regex),
    Present(bool),
    Type(JsonType),
    Min(f64),
    Max(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    Null,
    Boolean,
    Integer,
    Number,
    String,
    Array,
    Object,
}

impl JsonType {
    fn holds(self, value: &Value) -> bool {
        match self {
            JsonType::Null => value.is_null(),
            JsonType::Boolean => value.is_boolean(),
            JsonType::Integer => value.is_i64() || value.is_u64(),
            JsonType::Number => value.is_number(),
            JsonType::String => value.is_string(),
            JsonType::Array => value.is_array(),
            JsonType::Object => value.is_object(),
        }
    }
}

const OPERATORS: [&str; 8] = ["equals", "not_equals", "one_of", "regex", "present", "type", "min", "max"];

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Matcher, D::Error> {
        use serde::de::Error;
        let value = Value::deserialize(deserializer)?;
        let Some((operator, operand)) = value.as_object().filter(|o| o.len() == 1).and_then(|o| o.iter().next()) else {
            return Ok(Matcher::Equals(value));
        };
        if !OPERATORS.contains(&operator.as_str()) {
            return Ok(Matcher::Equals(value.clone()));
        }
        let number = |v: &Value| v.as_f64().ok_or_else(|| D::Error::custom(format!("{operator} needs a number")));
        Ok(match operator.as_str() {
            "equals" => Matcher::Equals(operand.clone()),
            "not_equals" => Matcher::NotEquals(operand.clone()),
            "one_of" => {
                Matcher::OneOf(operand.as_array().cloned().ok_or_else(|| D::Error::custom("one_of needs a list"))?)
            }
            "regex" => {
                let pattern = operand.as_str().ok_or_else(|| D::Error::custom("regex needs a string"))?;
                Matcher::Regex(regex::Regex::new(pattern).map_err(|e| D::Error::custom(format!("bad regex: {e}")))?)
            }
            "present" => {
                Matcher::Present(operand.as_bool().ok_or_else(|| D::Error::custom("present needs true or false"))?)
            }
            "type" => {
                Matcher::Type(JsonType::deserialize(operand.clone()).map_err(|e| D::Error::custom(e.to_string()))?)
            }
            "min" => Matcher::Min(number(operand)?),
            _ => Matcher::Max(number(operand)?),
        })
    }
}

impl Matcher {
    /// Checks the value found at a pointer (`None` when absent); `expand` resolves templates.
    pub fn check(&self, actual: Option<&Value>, expand: &dyn Fn(&Value) -> Value) -> Result<(), String> {
        let shown = |v: Option<&Value>| v.map_or_else(|| "nothing (absent)".to_string(), |v| v.to_string());
        let ok = match self {
            Matcher::Present(wanted) => actual.is_some() == *wanted,
            Matcher::Equals(expected) => actual == Some(&expand(expected)),
            Matcher::NotEquals(unwanted) => actual.is_some_and(|a| *a != expand(unwanted)),
            Matcher::OneOf(options) => actual.is_some_and(|a| options.iter().any(|o| *a == expand(o))),
            Matcher::Regex(pattern) => actual.and_then(Value::as_str).is_some_and(|s| pattern.is_match(s)),
            Matcher::Type(t) => actual.is_some_and(|a| t.holds(a)),
            Matcher::Min(min) => actual.and_then(Value::as_f64).is_some_and(|n| n >= *min),
            Matcher::Max(max) => actual.and_then(Value::as_f64).is_some_and(|n| n <= *max),
        };
        if ok {
            return Ok(());
        }
        let wanted = match self {
            Matcher::Present(true) => "present".to_string(),
            Matcher::Present(false) => "absent".to_string(),
            Matcher::Equals(v) => format!("{}", expand(v)),
            Matcher::NotEquals(v) => format!("anything but {}", expand(v)),
            Matcher::OneOf(options) => {
                format!("one of {}", options.iter().map(|o| expand(o).to_string()).collect::<Vec<_>>().join(", "))
            }
            Matcher::Regex(r) => format!("a string matching /{r}/"),
            Matcher::Type(t) => format!("a value of type {t:?}").to_lowercase(),
            Matcher::Min(m) => format!("a number >= {m}"),
            Matcher::Max(m) => format!("a number <= {m}"),
        };
        Err(format!("expected {wanted}, found {}", shown(actual)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matcher(yaml: &str) -> Matcher {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn shorthand_is_equals_and_operators_work() {
        let same = |v: &Value| v.clone();
        assert!(matcher("WEBSOCKET_ERROR").check(Some(&json!("WEBSOCKET_ERROR")), &same).is_ok());
        assert!(matcher("{one_of: [1, 2]}").check(Some(&json!(3)), &same).unwrap_err().contains("one of 1, 2"));
        assert!(matcher("{regex: '^client_'}").check(Some(&json!("client_7")), &same).is_ok());
        assert!(matcher("{present: false}").check(None, &same).is_ok());
        assert!(matcher("{type: integer}").check(Some(&json!(1.5)), &same).is_err());
        assert!(matcher("{min: 0}").check(Some(&json!(-1)), &same).is_err());
        assert!(matcher("{not_equals: x}").check(None, &same).is_err(), "absent is not 'anything but x'");
    }

    #[test]
    fn bad_operands_are_errors() {
        assert!(serde_norway::from_str::<Matcher>("{regex: '('}").is_err());
        assert!(serde_norway::from_str::<Matcher>("{min: abc}").is_err());
    }
}
