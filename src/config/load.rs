//! Loading the layers: defaults, file, environment, `--set`.

use std::collections::BTreeMap;
use std::path::Path;

use figment::providers::{Format as _, Toml};
use figment::value::{Dict, Value};
use figment::Figment;

use super::{Config, ConfigError, ENV_PREFIX};

impl Config {
    /// Loads the layers: defaults, `file`, the environment, then `sets`.
    pub fn load(file: Option<&Path>, sets: &[String]) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env, sets)
    }

    /// As [`Config::load`], with the environment given (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: &[(String, String)],
        sets: &[String],
    ) -> Result<Self, ConfigError> {
        let defaults = Layer {
            name: "the built-in defaults".into(),
            dict: Value::serialize(Config::default())
                .ok()
                .and_then(|v| v.into_dict())
                .unwrap_or_default(),
        };
        let mut figment = Figment::from(defaults);
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Load(format!(
                    "the config file {} does not exist",
                    path.display()
                )));
            }
            // Exactly this file: no search of the parent directories.
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(Layer {
            name: "the environment".into(),
            dict: env_layer(env)?,
        });
        for set in sets {
            figment = figment.merge(Layer {
                name: format!("--set {set}"),
                dict: set_layer(set)?,
            });
        }
        let mut config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Load(describe(e, file)))?;
        if config.http.token.is_empty() {
            if let Some((_, token)) = env.iter().find(|(k, _)| k == "GMM_STREAM_HTTP_TOKEN") {
                config.http.token = token.clone();
            }
        }
        config.validate()?;
        Ok(config)
    }
}

/// Parses a command-line or environment value as a TOML value (numbers, `inf`,
/// booleans, arrays, inline tables, quoted strings), else takes it as a string.
fn parse_value(raw: &str) -> Value {
    toml::from_str::<BTreeMap<String, toml::Value>>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .and_then(|v| Value::serialize(v).ok())
        .unwrap_or_else(|| Value::from(raw.to_string()))
}

/// One configuration layer, named for error messages ("from the environment").
struct Layer {
    name: String,
    dict: Dict,
}

impl figment::Provider for Layer {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, Dict>, figment::Error> {
        Ok(figment::Profile::Default.collect(self.dict.clone()))
    }
}

/// Nests `value` under `path` (section, key, ...).
fn nested(path: &[String], value: Value) -> Dict {
    let mut dict = Dict::new();
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            dict.insert(first.clone(), Value::from(nested(rest, value)));
        }
    }
    dict
}

/// `section.key=value`; under `kafka.properties` the rest of the name is one
/// librdkafka property, dots included (`kafka.properties.security.protocol=SSL`).
fn set_layer(set: &str) -> Result<Dict, ConfigError> {
    let (name, raw) = set
        .split_once('=')
        .ok_or_else(|| ConfigError::BadSet(set.to_string()))?;
    let path = key_path(name.trim(), '.');
    if path.len() < 2 || path.iter().any(|p| p.is_empty()) {
        return Err(ConfigError::BadSet(set.to_string()));
    }
    let value = if path.len() == 3 && path[0] == "kafka" && path[1] == "properties" {
        Value::from(raw.to_string())
    } else {
        parse_value(raw.trim())
    };
    Ok(nested(&path, value))
}

fn key_path(name: &str, sep: char) -> Vec<String> {
    let parts: Vec<&str> = name.split(sep).collect();
    match parts.as_slice() {
        ["kafka", "properties", rest @ ..] if !rest.is_empty() => {
            vec!["kafka".into(), "properties".into(), rest.join(".")]
        }
        _ => parts.iter().map(|p| p.to_string()).collect(),
    }
}

/// `GMM_STREAM__SECTION__KEY=value` (names lower-cased; deeper tables with more
/// `__`). Kafka properties: `GMM_STREAM__KAFKA__PROPERTIES__SASL_USERNAME` sets
/// `sasl.username` (underscores become dots).
fn env_layer(env: &[(String, String)]) -> Result<Dict, ConfigError> {
    let mut layer = Dict::new();
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let lower = rest.to_lowercase();
        let parts: Vec<&str> = lower.split("__").collect();
        let (path, value) = match parts.as_slice() {
            ["kafka", "properties", prop] => (
                vec!["kafka".into(), "properties".into(), prop.replace('_', ".")],
                Value::from(raw.clone()),
            ),
            _ => (
                parts.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                parse_value(raw.trim()),
            ),
        };
        if path.len() < 2 || path.iter().any(|p| p.is_empty()) {
            return Err(ConfigError::Load(format!(
                "environment variable {name} does not name a key (GMM_STREAM__SECTION__KEY)"
            )));
        }
        merge_dict(&mut layer, nested(&path, value));
    }
    Ok(layer)
}

fn merge_dict(into: &mut Dict, from: Dict) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Dict(_, a)), Value::Dict(_, b)) => merge_dict(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// figment's error, as one sentence that names the key and where it came from:
/// the config `file` as the user spelt it (figment would show it relative to the
/// working directory, `../../x.toml`).
fn describe(e: figment::Error, file: Option<&Path>) -> String {
    e.into_iter()
        .map(|err| {
            let key = if err.path.is_empty() {
                String::new()
            } else {
                format!("{}: ", err.path.join("."))
            };
            let origin = err
                .metadata
                .as_ref()
                .map(|m| match (&m.source, file) {
                    (Some(figment::Source::File(_)), Some(path)) => {
                        format!(" (from {} {})", m.name, path.display())
                    }
                    (Some(source), _) => format!(" (from {} {source})", m.name),
                    (None, _) => format!(" (from {})", m.name),
                })
                .unwrap_or_default();
            // A TOML syntax error spans lines; the log wants one.
            let kind = err.kind.to_string();
            let kind = kind.split_whitespace().collect::<Vec<_>>().join(" ");
            format!("{key}{kind}{origin}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}
