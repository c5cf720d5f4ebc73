//! `lookup()`, `query()` and `q()`: Ansible's lookup plugins that run on the controller.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use minijinja::value::{Kwargs, Rest, Value, ValueKind, ValueOrKwargs};
use minijinja::{Environment, Error, ErrorKind, State};

use super::convert::python_str;
use super::{current_context, lazy, locate_in};

const SUPPORTED: &str =
    "env, file, template, pipe, lines, vars, fileglob, first_found, items, list, dict";

pub fn register(env: &mut Environment<'static>, search_paths: Arc<Vec<PathBuf>>) {
    let paths = search_paths.clone();
    env.add_function("lookup", move |state: &State, args: Rest<ValueOrKwargs>| {
        run(state, &paths, args, false)
    });
    let paths = search_paths.clone();
    env.add_function("query", move |state: &State, args: Rest<ValueOrKwargs>| {
        run(state, &paths, args, true)
    });
    let paths = search_paths;
    env.add_function("q", move |state: &State, args: Rest<ValueOrKwargs>| {
        run(state, &paths, args, true)
    });
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

/// A lookup call's terms and options.
struct Call<'a> {
    name: String,
    terms: Vec<Value>,
    options: Vec<(String, Value)>,
    search_paths: &'a [PathBuf],
}

impl Call<'_> {
    fn option(&self, key: &str) -> Option<&Value> {
        self.options.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn flag(&self, key: &str, default: bool) -> bool {
        self.option(key).map_or(default, Value::is_true)
    }

    fn term_strings(&self) -> Vec<String> {
        self.terms.iter().map(python_str).collect()
    }

    fn find(&self, term: &str, subdir: &str) -> Result<PathBuf, Error> {
        let nested: Vec<PathBuf> = self
            .search_paths
            .iter()
            .flat_map(|p| [p.join(subdir), p.clone()])
            .collect();
        locate_in(&nested, Path::new(term)).ok_or_else(|| {
            let searched: Vec<String> = nested.iter().map(|p| p.display().to_string()).collect();
            invalid(format!(
                "lookup('{}'): could not locate file {term:?} (searched {})",
                self.name,
                searched.join(", ")
            ))
        })
    }
}

fn run(
    state: &State,
    search_paths: &[PathBuf],
    args: Rest<ValueOrKwargs>,
    query: bool,
) -> Result<Value, Error> {
    let mut positional = Vec::new();
    let mut options = Vec::new();
    for arg in args.into_values() {
        if arg.is_kwargs() {
            let kwargs = Kwargs::try_from(arg)?;
            for key in kwargs.args() {
                options.push((key.to_string(), kwargs.peek::<Value>(key)?));
            }
        } else {
            positional.push(arg);
        }
    }
    let Some(name) = positional.first().map(python_str) else {
        return Err(Error::new(
            ErrorKind::MissingArgument,
            "lookup: missing the lookup plugin name",
        ));
    };
    let mut terms = Vec::new();
    for term in positional.into_iter().skip(1) {
        super::chain::require_defined(&term)?;
        if term.kind() == ValueKind::Seq && name != "items" && name != "list" {
            terms.extend(term.try_iter()?);
        } else {
            terms.push(term);
        }
    }
    let call = Call {
        name: name.clone(),
        terms,
        options,
        search_paths,
    };
    let wantlist = query || call.flag("wantlist", false);
    let errors = call
        .option("errors")
        .map(python_str)
        .unwrap_or_else(|| "strict".into());
    let results = match dispatch(state, &call) {
        Ok(results) => results,
        Err(_) if errors == "ignore" || errors == "warn" => {
            return Ok(if wantlist {
                Value::from(Vec::<Value>::new())
            } else {
                Value::from(())
            })
        }
        Err(error) => return Err(error),
    };
    if wantlist {
        return Ok(Value::from(results));
    }
    // Ansible joins string results with commas; otherwise one result stands alone.
    if results.iter().all(|r| r.kind() == ValueKind::String) {
        return Ok(Value::from(
            results.iter().map(python_str).collect::<Vec<_>>().join(","),
        ));
    }
    Ok(match results.len() {
        1 => results.into_iter().next().unwrap_or_default(),
        _ => Value::from(results),
    })
}

fn dispatch(state: &State, call: &Call) -> Result<Vec<Value>, Error> {
    match call.name.as_str() {
        "env" => Ok(env_lookup(call)),
        "file" => file_lookup(call),
        "template" => template_lookup(state, call),
        "pipe" => call
            .term_strings()
            .iter()
            .map(|cmd| run_command(cmd, call).map(|out| Value::from(out.trim_end())))
            .collect(),
        "lines" => {
            let mut lines = Vec::new();
            for cmd in call.term_strings() {
                lines.extend(run_command(&cmd, call)?.lines().map(Value::from));
            }
            Ok(lines)
        }
        "vars" => vars_lookup(state, call),
        "fileglob" => fileglob_lookup(call),
        "first_found" => first_found_lookup(call),
        "items" => {
            let mut out = Vec::new();
            for term in &call.terms {
                if term.kind() == ValueKind::Seq {
                    out.extend(term.try_iter()?);
                } else {
                    out.push(term.clone());
                }
            }
            Ok(out)
        }
        "list" => Ok(call.terms.clone()),
        "dict" => {
            let mut out = Vec::new();
            for term in &call.terms {
                if term.kind() != ValueKind::Map {
                    return Err(invalid("lookup('dict') expects a dictionary"));
                }
                for key in term.try_iter()? {
                    let value = term.get_item(&key)?;
                    out.push(Value::from_pairs([("key", key), ("value", value)]));
                }
            }
            Ok(out)
        }
        other => Err(invalid(format!(
            "lookup plugin '{other}' is not supported (supported: {SUPPORTED})"
        ))),
    }
}

fn env_lookup(call: &Call) -> Vec<Value> {
    let default = call.option("default").map(python_str).unwrap_or_default();
    call.term_strings()
        .iter()
        .map(|name| Value::from(std::env::var(name).unwrap_or_else(|_| default.clone())))
        .collect()
}

fn file_lookup(call: &Call) -> Result<Vec<Value>, Error> {
    let (lstrip, rstrip) = (call.flag("lstrip", false), call.flag("rstrip", true));
    let mut out = Vec::new();
    for term in call.term_strings() {
        let path = call.find(&term, "files")?;
        let text = std::fs::read_to_string(&path).map_err(|e| {
            invalid(format!("lookup('file'): cannot read {}", path.display())).with_source(e)
        })?;
        let text = if rstrip {
            text.trim_end()
        } else {
            text.as_str()
        };
        let text = if lstrip { text.trim_start() } else { text };
        out.push(Value::from(text));
    }
    Ok(out)
}

/// Renders template files with the variables of the render that called the lookup.
fn template_lookup(state: &State, call: &Call) -> Result<Vec<Value>, Error> {
    let base = current_context().unwrap_or_else(|| Value::from(()));
    let extra: Vec<(String, Value)> = match call.option("template_vars") {
        Some(vars) if vars.kind() == ValueKind::Map => {
            let mut extra = Vec::new();
            for key in vars.try_iter()? {
                extra.push((python_str(&key), vars.get_item(&key)?));
            }
            extra
        }
        _ => Vec::new(),
    };
    let context = if extra.is_empty() {
        base
    } else {
        lazy::overlay(base, extra)
    };
    let mut out = Vec::new();
    for term in call.term_strings() {
        let path = call.find(&term, "templates")?;
        let source = std::fs::read_to_string(&path).map_err(|e| {
            invalid(format!(
                "lookup('template'): cannot read {}",
                path.display()
            ))
            .with_source(e)
        })?;
        let name = path.to_string_lossy().into_owned();
        let rendered = state
            .env()
            .template_from_named_str(&name, &source)?
            .render(context.clone())?;
        out.push(Value::from(rendered));
    }
    Ok(out)
}

/// Runs a command on the controller, in the first search path (the playbook directory).
fn run_command(cmd: &str, call: &Call) -> Result<String, Error> {
    let mut command = Command::new("sh");
    command.arg("-c").arg(cmd);
    if let Some(dir) = call.search_paths.iter().find(|p| p.is_dir()) {
        command.current_dir(dir);
    }
    let output = command.output().map_err(|e| {
        invalid(format!("lookup('{}'): cannot run {cmd:?}", call.name)).with_source(e)
    })?;
    if !output.status.success() {
        let code = output
            .status
            .code()
            .map_or_else(|| "a signal".to_string(), |c| c.to_string());
        return Err(invalid(format!(
            "lookup('{}'): command {cmd:?} exited with {code}: {}",
            call.name,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn vars_lookup(state: &State, call: &Call) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for name in call.term_strings() {
        match state
            .lookup(&name)
            .filter(|v| !super::chain::is_undefined(v))
        {
            Some(value) => out.push(value),
            None => match call.option("default") {
                Some(default) => out.push(default.clone()),
                None => {
                    return Err(Error::new(
                        ErrorKind::UndefinedError,
                        format!("`{name}` is undefined"),
                    ))
                }
            },
        }
    }
    Ok(out)
}

fn fileglob_lookup(call: &Call) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for term in call.term_strings() {
        let pattern = Path::new(&term);
        let file_pattern = pattern
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = pattern.parent().unwrap_or(Path::new(""));
        let matcher = globset::Glob::new(&file_pattern)
            .map_err(|e| {
                invalid(format!("lookup('fileglob'): invalid pattern {term:?}")).with_source(e)
            })?
            .compile_matcher();
        let dirs: Vec<PathBuf> = if dir.is_absolute() {
            vec![dir.to_path_buf()]
        } else {
            call.search_paths
                .iter()
                .flat_map(|p| [p.join("files").join(dir), p.join(dir)])
                .collect()
        };
        for candidate in dirs {
            let Ok(entries) = std::fs::read_dir(&candidate) else {
                continue;
            };
            let mut found: Vec<String> = entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file() && matcher.is_match(e.file_name()))
                .map(|e| e.path().to_string_lossy().into_owned())
                .collect();
            if !found.is_empty() {
                found.sort();
                out.extend(found.into_iter().map(Value::from));
                break;
            }
        }
    }
    Ok(out)
}

fn spec_list(item: &Value) -> Result<Vec<String>, Error> {
    if item.is_undefined() || item.is_none() {
        return Ok(Vec::new());
    }
    if item.kind() == ValueKind::Seq {
        return Ok(item.try_iter()?.map(|v| python_str(&v)).collect());
    }
    Ok(python_str(item)
        .split([',', ';'])
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

fn first_found_lookup(call: &Call) -> Result<Vec<Value>, Error> {
    let mut files: Vec<String> = Vec::new();
    let mut paths: Vec<String> = Vec::new();
    let mut skip = call.flag("skip", false);
    for term in &call.terms {
        if term.kind() == ValueKind::Map {
            files.extend(spec_list(&term.get_attr("files")?)?);
            paths.extend(spec_list(&term.get_attr("paths")?)?);
            skip |= term.get_attr("skip").is_ok_and(|v| v.is_true());
        } else {
            files.push(python_str(term));
        }
    }
    if let Some(option) = call.option("files") {
        files.extend(spec_list(option)?);
    }
    if let Some(option) = call.option("paths") {
        paths.extend(spec_list(option)?);
    }
    let roots: Vec<PathBuf> = if paths.is_empty() {
        call.search_paths
            .iter()
            .flat_map(|p| [p.join("files"), p.clone()])
            .collect()
    } else {
        paths
            .iter()
            .map(PathBuf::from)
            .flat_map(|p| {
                if p.is_absolute() {
                    vec![p]
                } else {
                    call.search_paths.iter().map(|s| s.join(&p)).collect()
                }
            })
            .collect()
    };
    for file in &files {
        if let Some(found) = locate_in(&roots, Path::new(file)) {
            return Ok(vec![Value::from(found.to_string_lossy().as_ref())]);
        }
    }
    if skip {
        return Ok(Vec::new());
    }
    Err(invalid(format!(
        "lookup('first_found'): none of {files:?} was found"
    )))
}
