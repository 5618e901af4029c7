//! `{{name}}` placeholders in scenario strings and JSON templates.

use std::collections::BTreeMap;

use serde_json::Value;

/// Values placeholders resolve to. Dynamic ones (`now_ms`) are computed at each expansion.
#[derive(Debug, Clone, Default)]
pub struct Variables {
    pub fixed: BTreeMap<String, String>,
}

impl Variables {
    fn lookup(&self, name: &str) -> Option<String> {
        match name {
            "now_ms" => Some(reference_server::now_ms().to_string()),
            "now_iso" => {
                let ms = reference_server::now_ms();
                Some(reference_server::iso8601(ms / 1000, ((ms % 1000) * 1000) as u32))
            }
            other => self.fixed.get(other).cloned(),
        }
    }

    /// Expands every `{{name}}` in `text`; an unknown name is an error naming it.
    pub fn expand_str(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| format!("unclosed {{{{ in {text:?}"))?;
            let name = after[..end].trim();
            let value = self.lookup(name).ok_or_else(|| format!("unknown placeholder {{{{{name}}}}} in {text:?}"))?;
            out.push_str(&value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Expands strings inside a JSON template. A string that is exactly one numeric
    /// placeholder (`"{{now_ms}}"`) becomes a number, so templates stay valid YAML.
    pub fn expand_json(&self, template: &Value) -> Result<Value, String> {
        Ok(match template {
            Value::String(s) => {
                let expanded = self.expand_str(s)?;
                let whole_placeholder =
                    s.trim().starts_with("{{") && s.trim().ends_with("}}") && s.matches("{{").count() == 1;
                match expanded.parse::<serde_json::Number>() {
                    Ok(number) if whole_placeholder => Value::Number(number),
                    _ => Value::String(expanded),
                }
            }
            Value::Array(items) => Value::Array(items.iter().map(|v| self.expand_json(v)).collect::<Result<_, _>>()?),
            Value::Object(map) => Value::Object(
                map.iter().map(|(k, v)| Ok((k.clone(), self.expand_json(v)?))).collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expands_fixed_and_dynamic_values() {
        let mut vars = Variables::default();
        vars.fixed.insert("welcome".into(), "Connected".into());
        assert_eq!(vars.expand_str("type {{ welcome }}!").unwrap(), "type Connected!");
        let out = vars.expand_json(&json!({"type": "Ping", "timestamp": "{{now_ms}}", "n": ["{{welcome}}"]})).unwrap();
        assert!(out["timestamp"].is_u64(), "{out}");
        assert_eq!(out["n"][0], "Connected");
        assert!(vars.expand_str("{{nope}}").unwrap_err().contains("unknown placeholder {{nope}}"));
        assert!(vars.expand_str("{{open").is_err());
    }
}
