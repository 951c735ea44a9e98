//! A workflow file as a layer of the configuration: its mapped front matter
//! as a figment provider beneath orch.toml and the environment, with the
//! overridden keys named.

use super::{WorkflowFile, WorkflowPrompt, map_front_matter};
use crate::error::{ConfigError, Problem, Warning};
use figment::value::{Dict, Map as FigMap, Value as FigValue};
use figment::{Figment, Metadata, Profile, Provider};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The start of the layer's provider name; the rest is the file's path
/// (errors about its values name the file).
pub(crate) const PROVIDER_NAME: &str = "workflow file";

/// A workflow file, ready to be merged under the host's configuration.
pub(crate) struct Layer {
    pub path: PathBuf,
    pub provider: WorkflowProvider,
    /// The developer's template; `None` when the body is empty (orch's own
    /// developer prompt is used then).
    pub prompt: Option<WorkflowPrompt>,
    pub warnings: Vec<Warning>,
}

pub(crate) struct WorkflowProvider {
    name: String,
    data: Dict,
}

impl Provider for WorkflowProvider {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<FigMap<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.data.clone()))
    }
}

/// Reads `path` and maps it; `host` (orch.toml and the environment) decides
/// which of its keys are overridden.
pub(crate) fn load_layer(path: &Path, host: &Figment) -> Result<Layer, ConfigError> {
    let file = WorkflowFile::read(path)?;
    let label = path.display().to_string();
    let mut mapped = map_front_matter(&file.front, &label);
    let mut warnings = std::mem::take(&mut mapped.warnings);
    let mut problems: Vec<Problem> = Vec::new();
    for (key, problem) in mapped.problems {
        if host.find_value(&key).is_ok() {
            warnings.push(Warning::at(
                problem.key,
                format!("not used: orch.toml or the environment sets {key}"),
            ));
        } else {
            problems.push(problem);
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError::invalid(problems));
    }
    // An agent is one unit: the host's command runs with the host's adapter,
    // never with the adapter the workflow chose for its own command.
    if host.find_value("agents.developer.command").is_ok()
        && let Some(Value::Object(dev)) = mapped
            .overlay
            .get_mut("agents")
            .and_then(|a| a.get_mut("developer"))
    {
        dev.remove("adapter");
    }
    let mut leaves = Vec::new();
    leaves_of(&mapped.overlay, String::new(), &mut leaves);
    for (key, value) in leaves {
        if let Ok(host_value) = host.extract_inner::<Value>(&key)
            && host_value != value
        {
            warnings.push(Warning::at(
                format!("{label}: {key}"),
                format!("{value} is overridden by orch.toml or the environment ({host_value})"),
            ));
        }
    }
    let data = match FigValue::serialize(&mapped.overlay) {
        Ok(v) => v.into_dict().unwrap_or_default(),
        Err(e) => {
            return Err(ConfigError::invalid(vec![Problem::at(
                label,
                format!("the front matter cannot be used: {e}"),
            )]));
        }
    };
    let prompt = (!file.prompt_template.is_empty()).then(|| WorkflowPrompt {
        path: path.to_path_buf(),
        template: file.prompt_template,
    });
    Ok(Layer {
        path: path.to_path_buf(),
        provider: WorkflowProvider {
            name: format!("{PROVIDER_NAME} {label}"),
            data,
        },
        prompt,
        warnings,
    })
}

/// The dotted keys of the values in `map` (lists are values, not tables).
fn leaves_of(map: &Map<String, Value>, prefix: String, out: &mut Vec<(String, Value)>) {
    for (k, v) in map {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(inner) => leaves_of(inner, key, out),
            other => out.push((key, other.clone())),
        }
    }
}
