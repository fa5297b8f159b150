//! How both services layer their settings: the defaults (a TOML document), then the file
//! given with `--config`, then `<PREFIX>__SECTION__KEY` environment variables, then
//! `--port`. Each service extracts its own typed settings from the result and validates
//! them.

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;

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
