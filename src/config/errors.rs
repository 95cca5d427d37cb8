//! Configuration errors shared by every command (exit 64), durations, and reading
//! `PODTERM_*` variables with messages that name the variable at fault.

/// Exit status for bad configuration (sysexits `EX_USAGE`).
pub const EXIT_CONFIG: u8 = 64;

/// A configuration value that could not be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl From<envy::Error> for ConfigError {
    fn from(e: envy::Error) -> Self {
        ConfigError(format!("bad configuration: {}", envy_message(&e)))
    }
}

fn envy_message(e: &envy::Error) -> String {
    match e {
        envy::Error::MissingValue(name) => {
            format!("PODTERM_{} is required", name.to_uppercase())
        }
        envy::Error::Custom(msg) => upcase_field(msg),
    }
}

/// envy reports fields by their lower-case struct name (`field \`listen\``); say the variable.
fn upcase_field(msg: &str) -> String {
    match (msg.find('`'), msg.rfind('`')) {
        (Some(a), Some(b)) if b > a => format!(
            "{}PODTERM_{}{}",
            &msg[..a],
            msg[a + 1..b].to_uppercase(),
            &msg[b + 1..]
        ),
        _ => msg.to_string(),
    }
}

/// Why a command could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Fatal(String),
}

impl StartError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Config(_) => EXIT_CONFIG,
            StartError::Bind { .. } | StartError::Fatal(_) => 1,
        }
    }
}

/// Parses a duration such as `30s`, `5m`, `1h30m`, `250ms` (humantime's syntax) or a bare
/// number of seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let secs = text
            .parse()
            .map_err(|_| format!("`{text}` is too many seconds"))?;
        return Ok(std::time::Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration (e.g. 30s, 5m, 1h): {e}"))
}

/// serde helper: `#[serde(deserialize_with = "config::duration")]` for duration fields.
pub fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// Deserializes `T` from the variables that start with `prefix` (envy); on failure, names the
/// variable at fault (found by reading each one alone), never its value.
pub fn read_prefixed<T: serde::de::DeserializeOwned>(
    prefix: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .collect();
    let error = match envy::prefixed(prefix).from_iter::<_, T>(vars.clone()) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    for (name, value) in &vars {
        let alone = envy::prefixed(prefix).from_iter::<_, T>([(name.clone(), value.clone())]);
        if let Err(envy::Error::Custom(msg)) = alone {
            let msg = msg.split(" while parsing value").next().unwrap_or(&msg);
            return Err(ConfigError(format!("bad configuration: {name}: {msg}")));
        }
    }
    Err(error.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("12"), Ok(Duration::from_secs(12)));
        assert!(parse_duration("abc").is_err());
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn envy_errors_name_the_variable() {
        let e = ConfigError::from(envy::Error::Custom(
            "invalid digit found in string while parsing field `listen`".into(),
        ));
        assert!(e.0.contains("PODTERM_LISTEN"), "{e}");
        let e = ConfigError::from(envy::Error::MissingValue("kubeconfig"));
        assert!(e.0.contains("PODTERM_KUBECONFIG"), "{e}");
    }
}
