//! Datasets at runtime: the [`Datasets`] catalog every part of the analyser reads them
//! from, the one validation the config file and the API share ([`DatasetSettings::check`]),
//! reading a dataset from a request body with the field at fault named ([`parse`]), and
//! (in `store`) the `datasets` table, the truth once the config file has seeded it.

mod store;

use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};

use crate::configuration::DatasetSettings;

pub use store::{create, delete, load, replace, seed, ModelChange, Replaced};

/// The datasets in force, shared by the handlers, the engine, reports and digests.
///
/// The database is the truth: the engine refreshes this from it whenever it rebuilds (a
/// change moves every shard's generation on, so every analyser rebuilds at its next
/// pull), and a change through this process's API replaces it once committed.
#[derive(Debug, Clone, Default)]
pub struct Datasets(Arc<RwLock<Arc<[DatasetSettings]>>>);

impl Datasets {
    pub fn new(list: Vec<DatasetSettings>) -> Self {
        Datasets(Arc::new(RwLock::new(list.into())))
    }

    /// Every dataset, by name.
    pub fn list(&self) -> Arc<[DatasetSettings]> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn get(&self, name: &str) -> Option<DatasetSettings> {
        self.list().iter().find(|d| d.name == name).cloned()
    }

    pub fn replace(&self, list: Vec<DatasetSettings>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = list.into();
    }
}

/// A dataset field at fault, and why (the message names the field).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

fn fault(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// A dataset's fields, as the config file and the API spell them.
pub const FIELDS: [&str; 16] = [
    "name",
    "labels",
    "entities",
    "time_step",
    "time_ago",
    "method",
    "levels",
    "level_min_change",
    "min_count_per_step",
    "warning_multiplier",
    "alarm_multiplier",
    "auto_warning_rate",
    "auto_alarm_rate",
    "idle_after",
    "allowed_lateness",
    "series_ttl",
];

impl DatasetSettings {
    /// Whether the dataset can be judged; the config file's `[[datasets]]` and the API
    /// both refuse what this refuses.
    pub fn check(&self) -> Result<(), FieldError> {
        if self.name.is_empty() || self.name.chars().count() > 64 {
            return Err(fault("name", "name must be 1 to 64 characters"));
        }
        if self.name.chars().any(char::is_control) {
            return Err(fault("name", "name must not hold control characters"));
        }
        if self.time_step.as_secs() == 0 || self.time_step.subsec_nanos() != 0 {
            return Err(fault(
                "time_step",
                "time_step must be a whole number of seconds",
            ));
        }
        let step = self.time_step.as_secs();
        let ago = self.time_ago().as_secs();
        if self.time_ago().subsec_nanos() != 0
            || !ago.is_multiple_of(step)
            || !(2..=10_000).contains(&(ago / step))
        {
            return Err(fault(
                "time_ago",
                "time_ago must be 2 to 10000 whole time_steps",
            ));
        }
        if !(self.warning_multiplier > 0.0 && self.warning_multiplier.is_finite()) {
            return Err(fault(
                "warning_multiplier",
                "need 0 < warning_multiplier <= alarm_multiplier",
            ));
        }
        if !(self.alarm_multiplier >= self.warning_multiplier && self.alarm_multiplier.is_finite())
        {
            return Err(fault(
                "alarm_multiplier",
                "need 0 < warning_multiplier <= alarm_multiplier",
            ));
        }
        if !(self.auto_warning_rate > 0.0 && self.auto_warning_rate < 0.5) {
            return Err(fault(
                "auto_warning_rate",
                "need 0 < auto_alarm_rate <= auto_warning_rate < 0.5",
            ));
        }
        if !(self.auto_alarm_rate > 0.0 && self.auto_alarm_rate <= self.auto_warning_rate) {
            return Err(fault(
                "auto_alarm_rate",
                "need 0 < auto_alarm_rate <= auto_warning_rate < 0.5",
            ));
        }
        if !(0.0..=10.0).contains(&self.level_min_change) {
            return Err(fault(
                "level_min_change",
                "level_min_change must be between 0 and 10",
            ));
        }
        if let Some(label) = self
            .levels
            .iter()
            .find(|l| !self.labels.is_empty() && !self.labels.contains(l))
        {
            return Err(fault(
                "levels",
                format!("level label {label:?} is not in labels"),
            ));
        }
        if !(self.min_count_per_step >= 0.0 && self.min_count_per_step.is_finite()) {
            return Err(fault(
                "min_count_per_step",
                "min_count_per_step must not be negative",
            ));
        }
        Ok(())
    }
}

/// A dataset from a JSON body, checked. With `name` (a `PUT` to the dataset's path), the
/// body may leave the name out but not change it. A field that does not parse is named.
pub fn parse(body: &[u8], name: Option<&str>) -> Result<DatasetSettings, FieldError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| fault("body", format!("not a dataset: {e}")))?;
    let Value::Object(mut fields) = value else {
        return Err(fault("body", "not a dataset: expected a JSON object"));
    };
    if let Some(name) = name {
        match fields.get("name") {
            None => {
                fields.insert("name".to_owned(), Value::String(name.to_owned()));
            }
            Some(Value::String(given)) if given == name => {}
            Some(_) => {
                return Err(fault(
                    "name",
                    format!("name must be {name:?}, the dataset's path: a dataset is not renamed"),
                ))
            }
        }
    }
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(fault(
            "body",
            format!(
                "unknown field {unknown:?}; a dataset has {}",
                FIELDS.join(", ")
            ),
        ));
    }
    let dataset: DatasetSettings =
        serde_json::from_value(Value::Object(fields.clone())).map_err(|e| {
            // serde names a missing field but not one of the wrong type: find it alone.
            let field = FIELDS
                .iter()
                .find(|field| {
                    fields.get(**field).is_some_and(|value| {
                        let mut alone = Map::new();
                        alone.insert("name".to_owned(), Value::String("x".to_owned()));
                        alone.insert((**field).to_owned(), value.clone());
                        serde_json::from_value::<DatasetSettings>(Value::Object(alone)).is_err()
                    })
                })
                .copied()
                .unwrap_or("name");
            fault(field, format!("{field}: {e}"))
        })?;
    dataset.check()?;
    Ok(dataset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_with_a_bad_field_is_refused_naming_that_field() {
        for (body, field) in [
            (r#"{"name":"shop","time_step":60}"#, "time_step"),
            (r#"{"name":"shop","time_step":"90x"}"#, "time_step"),
            (r#"{"name":"shop","method":"five_sigma"}"#, "method"),
            (
                r#"{"name":"shop","alarm_multiplier":1.0}"#,
                "alarm_multiplier",
            ),
            (r#"{"name":"shop","time_ago":"90s"}"#, "time_ago"),
            (r#"{"name":"shop","labels":["a"],"levels":["b"]}"#, "levels"),
            (r#"{"name":""}"#, "name"),
            (r#"{"labels":[]}"#, "name"),
            (r#"{"name":"shop","colour":"red"}"#, "body"),
            (r#"[1]"#, "body"),
        ] {
            let error = parse(body.as_bytes(), None).unwrap_err();
            assert_eq!(error.field, field, "{body}: {error}");
        }
    }

    #[test]
    fn a_body_takes_the_defaults_and_the_name_of_its_path() {
        let dataset = parse(
            br#"{"time_step":"5m","method":"three_sigma"}"#,
            Some("shop"),
        )
        .unwrap();
        assert_eq!(dataset.name, "shop");
        assert_eq!(dataset.window_steps(), 30);
        assert_eq!(dataset.alarm_multiplier, 3.0);
        let renamed = parse(br#"{"name":"other"}"#, Some("shop")).unwrap_err();
        assert_eq!(renamed.field, "name");
    }

    #[test]
    fn a_dataset_written_out_reads_back_the_same() {
        let dataset = parse(
            br#"{"name":"shop","labels":["checkout","price"],"levels":["price"],"time_step":"1m","time_ago":"30m","alarm_multiplier":4}"#,
            None,
        )
        .unwrap();
        let written = serde_json::to_vec(&dataset).unwrap();
        let read = parse(&written, None).unwrap();
        assert_eq!(
            serde_json::to_value(&read).unwrap(),
            serde_json::to_value(&dataset).unwrap()
        );
    }
}
