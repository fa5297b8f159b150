//! How both services layer their settings: the defaults (a TOML document), then the file
//! given with `--config`, then `<PREFIX>__SECTION__KEY` environment variables, then
//! `--port`. Each service extracts its own typed settings from the result and validates
//! them, refusing any secret that still holds the example files' [`PLACEHOLDER`].

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

/// The layered sources, ready for the service to extract from.
pub fn layered(
    defaults: &str,
    file: Option<&Path>,
    env_prefix: &str,
    port: Option<u16>,
) -> Result<Figment, Box<figment::Error>> {
    let mut figment = Figment::from(Toml::string(defaults));
    if let Some(file) = file {
        if !file.exists() {
            let message = format!("config file {} does not exist", file.display());
            return Err(Box::new(figment::Error::from(message)));
        }
        figment = figment.merge(Toml::file(file));
    }
    figment = figment.merge(Env::prefixed(&format!("{env_prefix}__")).split("__"));
    if let Some(port) = port {
        figment = figment.merge(Serialized::default("server.port", port));
    }
    Ok(figment)
}

/// What the example Secrets and deploy files hold where a secret belongs. A service given
/// it refuses to start, so an example is never deployed with a secret everyone knows.
pub const PLACEHOLDER: &str = "CHANGE-ME";

/// Refuses a secret that still holds [`PLACEHOLDER`] (in any case, anywhere in it: the
/// password of a database URL too). The error names the setting, never its value.
pub fn refuse_placeholder(setting: &str, secret: &str) -> Result<(), String> {
    if secret.to_ascii_uppercase().contains(PLACEHOLDER) {
        Err(format!(
            "{setting} is still the placeholder {PLACEHOLDER}: set a secret of your own (docs/DEPLOY.md)"
        ))
    } else {
        Ok(())
    }
}

/// A secret setting (`#[serde(deserialize_with = "service::config::secret")]`): text, and
/// a value of another type is refused without being echoed, as serde's own message would
/// (a token of digits only, unquoted in TOML or in an environment variable, reads as a
/// number).
pub fn secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
    String::deserialize(deserializer)
        .map(SecretString::from)
        .map_err(|_| serde::de::Error::custom(NOT_TEXT))
}

/// [`secret`] for an optional setting (with `#[serde(default)]`).
pub fn optional_secret<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SecretString>, D::Error> {
    Option::<String>::deserialize(deserializer)
        .map(|text| text.map(SecretString::from))
        .map_err(|_| serde::de::Error::custom(NOT_TEXT))
}

/// Why a secret of another type than text is refused.
pub const NOT_TEXT: &str = "a secret must be text: quote it (\"0123\") if it is all digits";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_refused_wherever_they_hide_and_never_echoed() {
        for secret in [
            "CHANGE-ME",
            "change-me",
            "mysql://pulse:CHANGE-ME@mysql:3306/pulse",
        ] {
            let error = refuse_placeholder("database.url", secret).unwrap_err();
            assert!(error.starts_with("database.url is still the placeholder CHANGE-ME"));
            assert!(!error.contains("mysql://") && !error.contains("change-me"));
        }
        for secret in ["", "3f9a0c1d5e", "mysql://pulse:hunter2@mysql:3306/pulse"] {
            assert_eq!(refuse_placeholder("auth.export_token", secret), Ok(()));
        }
    }
}
