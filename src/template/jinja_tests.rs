//! Ansible's Jinja tests (`x is defined`, `result is failed`, `v is version('1.2', '>=')`, …).

use std::cmp::Ordering;
use std::path::Path;

use minijinja::value::{Rest, Value, ValueKind, ValueOrKwargs};
use minijinja::{Environment, Error, ErrorKind};

use super::chain::{self, require_defined};
use super::convert::python_str;
use super::filters::{compile_regex, truthy};

pub fn register(env: &mut Environment<'static>) {
    env.add_test("defined", |v: &Value| !chain::is_undefined(v));
    env.add_test("undefined", |v: &Value| chain::is_undefined(v));
    env.add_test(
        "truthy",
        |v: &Value, args: Rest<ValueOrKwargs>| -> Result<bool, Error> {
            let [convert] = bind("truthy", args, ["convert_bool"])?;
            require_defined(v)?;
            Ok(truthy(v, convert.is_some_and(|c| c.is_true())))
        },
    );
    env.add_test(
        "falsy",
        |v: &Value, args: Rest<ValueOrKwargs>| -> Result<bool, Error> {
            let [convert] = bind("falsy", args, ["convert_bool"])?;
            require_defined(v)?;
            Ok(!truthy(v, convert.is_some_and(|c| c.is_true())))
        },
    );
    env.add_test("match", |v: &Value, args: Rest<ValueOrKwargs>| {
        regex_test("match", v, args, Some("match"))
    });
    env.add_test("search", |v: &Value, args: Rest<ValueOrKwargs>| {
        regex_test("search", v, args, Some("search"))
    });
    env.add_test("regex", |v: &Value, args: Rest<ValueOrKwargs>| {
        regex_test("regex", v, args, None)
    });
    env.add_test(
        "contains",
        |seq: &Value, item: &Value| -> Result<bool, Error> {
            require_defined(seq)?;
            contains(seq, item)
        },
    );
    env.add_test("subset", |a: &Value, b: &Value| -> Result<bool, Error> {
        all_in(a, b)
    });
    env.add_test("superset", |a: &Value, b: &Value| -> Result<bool, Error> {
        all_in(b, a)
    });
    env.add_test("any", |v: &Value| -> Result<bool, Error> {
        Ok(items(v)?.iter().any(Value::is_true))
    });
    env.add_test("all", |v: &Value| -> Result<bool, Error> {
        Ok(items(v)?.iter().all(Value::is_true))
    });
    for name in ["failed", "failure"] {
        env.add_test(name, |r: &Value| -> Result<bool, Error> {
            Ok(flag(expect_result(r, "failed")?, "failed"))
        });
    }
    for name in ["success", "succeeded"] {
        env.add_test(name, |r: &Value| -> Result<bool, Error> {
            Ok(!flag(expect_result(r, "succeeded")?, "failed"))
        });
    }
    for name in ["changed", "change"] {
        env.add_test(name, |r: &Value| -> Result<bool, Error> {
            changed(expect_result(r, "changed")?)
        });
    }
    for name in ["skipped", "skip"] {
        env.add_test(name, |r: &Value| -> Result<bool, Error> {
            Ok(flag(expect_result(r, "skipped")?, "skipped"))
        });
    }
    env.add_test("unreachable", |r: &Value| -> Result<bool, Error> {
        Ok(flag(expect_result(r, "unreachable")?, "unreachable"))
    });
    env.add_test("reachable", |r: &Value| -> Result<bool, Error> {
        Ok(!flag(expect_result(r, "reachable")?, "unreachable"))
    });
    env.add_test("finished", |r: &Value| -> Result<bool, Error> {
        let r = expect_result(r, "finished")?;
        Ok(match r.get_attr("finished") {
            Ok(v) if !v.is_undefined() => {
                v.as_i64() == Some(1) || (v.kind() == ValueKind::Bool && v.is_true())
            }
            _ => true,
        })
    });
    env.add_test("version", version_test);
    env.add_test("version_compare", version_test);
    env.add_test("abs", |p: &Value| -> Result<bool, Error> {
        Ok(Path::new(&path_arg(p)?).is_absolute())
    });
    env.add_test("exists", |p: &Value| -> Result<bool, Error> {
        Ok(Path::new(&path_arg(p)?).exists())
    });
    env.add_test("file", |p: &Value| -> Result<bool, Error> {
        Ok(Path::new(&path_arg(p)?).is_file())
    });
    env.add_test("directory", |p: &Value| -> Result<bool, Error> {
        Ok(Path::new(&path_arg(p)?).is_dir())
    });
    env.add_test("link", |p: &Value| -> Result<bool, Error> {
        Ok(Path::new(&path_arg(p)?).is_symlink())
    });
    env.add_test("vault_encrypted", |v: &Value| {
        v.as_str().is_some_and(|s| s.starts_with("$ANSIBLE_VAULT;"))
    });
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

/// Binds a test's positional and keyword arguments (the filters' binder, named as a test).
fn bind<const N: usize>(
    test: &str,
    args: Rest<ValueOrKwargs>,
    names: [&str; N],
) -> Result<[Option<Value>; N], Error> {
    super::filters::bind(&format!("test {test}"), args, names)
}

fn regex_test(
    test: &str,
    value: &Value,
    args: Rest<ValueOrKwargs>,
    mode: Option<&str>,
) -> Result<bool, Error> {
    let [pattern, ignorecase, multiline, match_type] = bind(
        test,
        args,
        ["pattern", "ignorecase", "multiline", "match_type"],
    )?;
    require_defined(value)?;
    let pattern = pattern.map(|p| python_str(&p)).unwrap_or_default();
    let mode = match (mode, match_type) {
        (Some(mode), _) => mode.to_string(),
        (None, Some(t)) => python_str(&t),
        (None, None) => "search".to_string(),
    };
    let ignorecase = ignorecase.is_some_and(|v| v.is_true());
    let multiline = multiline.is_some_and(|v| v.is_true());
    let text = python_str(value);
    match mode.as_str() {
        // Python's re.match anchors at the start of the text only.
        "match" => {
            Ok(compile_regex(&format!("\\A(?:{pattern})"), ignorecase, multiline)?.is_match(&text))
        }
        "search" => Ok(compile_regex(&pattern, ignorecase, multiline)?.is_match(&text)),
        "fullmatch" => Ok(
            compile_regex(&format!("\\A(?:{pattern})\\z"), ignorecase, multiline)?.is_match(&text),
        ),
        other => Err(invalid(format!(
            "regex: match_type must be match, search or fullmatch, not {other:?}"
        ))),
    }
}

fn contains(seq: &Value, item: &Value) -> Result<bool, Error> {
    match (seq.as_str(), item.as_str()) {
        (Some(text), Some(part)) => Ok(text.contains(part)),
        _ => Ok(items(seq)?.contains(item)),
    }
}

fn items(value: &Value) -> Result<Vec<Value>, Error> {
    require_defined(value)?;
    Ok(value.try_iter()?.collect())
}

fn all_in(part: &Value, whole: &Value) -> Result<bool, Error> {
    let whole = items(whole)?;
    Ok(items(part)?.iter().all(|x| whole.contains(x)))
}

fn path_arg(value: &Value) -> Result<String, Error> {
    require_defined(value)?;
    let text = python_str(value);
    Ok(match (text.strip_prefix("~/"), dirs::home_dir()) {
        (Some(rest), Some(home)) => home.join(rest).to_string_lossy().into_owned(),
        _ => text,
    })
}

/// The tests on registered results need a result mapping, as in Ansible.
fn expect_result<'a>(value: &'a Value, test: &str) -> Result<&'a Value, Error> {
    require_defined(value)?;
    if value.kind() != ValueKind::Map {
        return Err(invalid(format!("The '{test}' test expects a dictionary")));
    }
    Ok(value)
}

fn flag(result: &Value, key: &str) -> bool {
    result.get_attr(key).is_ok_and(|v| v.is_true())
}

/// A loop's result is changed when any item changed.
fn changed(result: &Value) -> Result<bool, Error> {
    if let Ok(results) = result.get_attr("results") {
        if results.kind() == ValueKind::Seq {
            let items: Vec<Value> = results.try_iter()?.collect();
            if items.first().is_some_and(|i| i.kind() == ValueKind::Map) {
                return Ok(items.iter().any(|i| flag(i, "changed")));
            }
        }
    }
    Ok(flag(result, "changed"))
}

fn version_test(value: &Value, args: Rest<ValueOrKwargs>) -> Result<bool, Error> {
    let [version, operator, strict, version_type] = bind(
        "version",
        args,
        ["version", "operator", "strict", "version_type"],
    )?;
    require_defined(value)?;
    let left = python_str(value);
    let right = version
        .map(|v| python_str(&v))
        .ok_or_else(|| invalid("version: missing the version to compare with"))?;
    let operator = operator
        .map(|o| python_str(&o))
        .unwrap_or_else(|| "eq".into());
    let kind = version_type.map(|t| python_str(&t)).unwrap_or_else(|| {
        if strict.is_some_and(|s| s.is_true()) {
            "strict".into()
        } else {
            "loose".into()
        }
    });
    let ordering = compare_versions(&left, &right, &kind)?;
    Ok(match operator.as_str() {
        "==" | "=" | "eq" => ordering == Ordering::Equal,
        "!=" | "<>" | "ne" => ordering != Ordering::Equal,
        "<" | "lt" => ordering == Ordering::Less,
        "<=" | "le" => ordering != Ordering::Greater,
        ">" | "gt" => ordering == Ordering::Greater,
        ">=" | "ge" => ordering != Ordering::Less,
        other => {
            return Err(invalid(format!(
                "version: invalid operator {other:?} (use lt, le, gt, ge, eq, ne or symbols)"
            )))
        }
    })
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
enum Part {
    // Declared first so that text sorts before numbers ("1.0a" < "1.0.1"), where Python would refuse.
    Text(String),
    Number(u64),
}

/// LooseVersion's components: runs of digits and of letters; separators dropped.
fn parts(version: &str) -> Vec<Part> {
    let mut out = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, out: &mut Vec<Part>| {
        if !current.is_empty() {
            out.push(match current.parse::<u64>() {
                Ok(n) => Part::Number(n),
                Err(_) => Part::Text(std::mem::take(current)),
            });
            current.clear();
        }
    };
    for c in version.chars() {
        let same_run = current
            .chars()
            .last()
            .is_some_and(|last| last.is_ascii_digit() == c.is_ascii_digit());
        if !c.is_alphanumeric() {
            flush(&mut current, &mut out);
            continue;
        }
        if !same_run {
            flush(&mut current, &mut out);
        }
        current.push(c);
    }
    flush(&mut current, &mut out);
    out
}

fn compare_versions(left: &str, right: &str, kind: &str) -> Result<Ordering, Error> {
    match kind {
        "loose" => Ok(parts(left).cmp(&parts(right))),
        "strict" => {
            for v in [left, right] {
                if !is_strict_version(v) {
                    return Err(invalid(format!(
                        "version: invalid version number '{v}' for a strict comparison"
                    )));
                }
            }
            Ok(parts(left).cmp(&parts(right)))
        }
        "semver" | "semantic" | "pep440" => {
            Ok(release_then_pre(left).cmp(&release_then_pre(right)))
        }
        other => Err(invalid(format!(
            "version: unknown version_type {other:?} (loose, strict, semver, semantic, pep440)"
        ))),
    }
}

fn is_strict_version(v: &str) -> bool {
    let (numbers, pre) = match v.find(['a', 'b']) {
        Some(i) => (&v[..i], Some(&v[i + 1..])),
        None => (v, None),
    };
    let fields: Vec<&str> = numbers.split('.').collect();
    (2..=3).contains(&fields.len())
        && fields
            .iter()
            .all(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
        && pre.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Release numbers first; a pre-release (`-rc1`, `a1`, `.dev0`) sorts before its release.
fn release_then_pre(version: &str) -> (Vec<u64>, bool, Vec<Part>) {
    let version = version.trim().trim_start_matches(['v', 'V']);
    let version = version.split('+').next().unwrap_or_default();
    let all = parts(version);
    let release: Vec<u64> = all
        .iter()
        .map_while(|p| match p {
            Part::Number(n) => Some(*n),
            Part::Text(_) => None,
        })
        .collect();
    let mut trimmed = release.clone();
    while trimmed.len() > 1 && trimmed.last() == Some(&0) {
        trimmed.pop();
    }
    let pre: Vec<Part> = all[release.len()..].to_vec();
    (trimmed, pre.is_empty(), pre)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn loose_versions() {
        assert_eq!(
            compare_versions("1.2", "1.10", "loose").unwrap(),
            Ordering::Less
        );
        assert_eq!(
            compare_versions("2.0", "2.0", "loose").unwrap(),
            Ordering::Equal
        );
        assert_eq!(
            compare_versions("1.0a", "1.0.1", "loose").unwrap(),
            Ordering::Less
        );
    }

    #[test]
    fn semver_prerelease_sorts_first() {
        assert_eq!(
            compare_versions("1.0.0-rc1", "1.0.0", "semver").unwrap(),
            Ordering::Less
        );
        assert_eq!(
            compare_versions("v1.2.0", "1.2", "semver").unwrap(),
            Ordering::Equal
        );
    }

    #[test]
    fn strict_rejects_free_text() {
        assert!(compare_versions("1.2.3.4", "1.0", "strict").is_err());
        assert!(compare_versions("1.2b3", "1.0", "strict").is_ok());
    }
}
