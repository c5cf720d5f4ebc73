//! YAML (and JSON) inventory files, as Ansible's `yaml` inventory plugin reads them:
//! `all: {hosts: {h: {var: v}}, vars: {…}, children: {g: {hosts, vars, children}}}`, top-level
//! groups other than `all`, host keys with ranges and ports (`pve[1:3]:2222`), null host vars.

use crate::error::{Diagnostic, Span};
use crate::yaml::{Node, Yaml};

use super::hostnames;
use super::Inventory;

/// For files without an extension: a mapping whose values look like group definitions.
pub fn looks_like_inventory(doc: &Node) -> bool {
    let Some(entries) = doc.as_map() else {
        return false;
    };
    !entries.is_empty()
        && entries
            .iter()
            .all(|(_, v)| matches!(v.value, Yaml::Map(_) | Yaml::Null))
}

pub fn parse(inv: &mut Inventory, doc: &Node) -> Result<(), Diagnostic> {
    let Some(entries) = doc.as_map() else {
        return Err(Diagnostic::parse(
            format!(
                "YAML inventory has invalid structure: it should be a mapping of groups, got {}",
                doc.type_name()
            ),
            Some(doc.span.clone()),
        ));
    };
    if let Some(plugin) = doc.get("plugin").filter(|p| !p.is_null()) {
        return Err(Diagnostic::parse("inventory plugin configuration files are not supported", Some(plugin.span.clone()))
            .with_hint("orch reads static INI/YAML inventories; export a dynamic inventory with `ansible-inventory --list -y`"));
    }
    for (key, value) in entries {
        parse_group(inv, key, value)?;
    }
    Ok(())
}

fn name_of(key: &Node, what: &str) -> Result<String, Diagnostic> {
    match &key.value {
        Yaml::Str(s) => Ok(s.clone()),
        _ => Err(Diagnostic::parse(
            format!("{what} name must be a string, got {}", key.type_name()),
            Some(key.span.clone()),
        )
        .with_hint("enclose numbers in quotation marks")),
    }
}

/// A section given as one string (`hosts: web1`) means a mapping with that single null entry.
fn section_entries(section: &Node) -> Vec<(Node, Node)> {
    match &section.value {
        Yaml::Map(entries) => entries.clone(),
        Yaml::Str(_) => vec![(
            section.clone(),
            Node {
                value: Yaml::Null,
                span: section.span.clone(),
            },
        )],
        _ => Vec::new(),
    }
}

fn parse_group(inv: &mut Inventory, key: &Node, data: &Node) -> Result<String, Diagnostic> {
    let group = name_of(key, "group")?;
    if !matches!(data.value, Yaml::Map(_) | Yaml::Null) {
        inv.warnings.push(format!(
            "{}: Skipping '{group}' as this is not a valid group definition",
            key.span
        ));
        return Ok(group);
    }
    inv.add_group(&group, Some(key.span.clone()));
    let Some(entries) = data.as_map() else {
        return Ok(group);
    };
    for (section_key, section) in entries {
        let section_name = section_key.key_string().unwrap_or_default();
        let known = matches!(section_name.as_str(), "vars" | "children" | "hosts");
        if known && !matches!(section.value, Yaml::Map(_) | Yaml::Null | Yaml::Str(_)) {
            return Err(Diagnostic::parse(
                format!("invalid \"{section_name}\" entry for \"{group}\" group: it requires a mapping, found {} instead", section.type_name()),
                Some(section.span.clone()),
            )
            .with_hint(format!("write `{section_name}:` entries as `name:` keys, e.g. `hosts: {{web1: {{}}, web2: {{}}}}`")));
        }
        if !known {
            let message = if matches!(section.value, Yaml::Map(_) | Yaml::Null) {
                format!("Skipping unexpected key ({section_name}) in group ({group}), only \"vars\", \"children\" and \"hosts\" are valid")
            } else {
                format!("Skipping key ({section_name}) in group ({group}) as it is not a mapping, it is {}", section.type_name())
            };
            inv.warnings
                .push(format!("{}: {message}", section_key.span));
            continue;
        }
        match section_name.as_str() {
            "vars" => {
                for (var, value) in section_entries(section) {
                    let name = var.key_string().unwrap_or_default();
                    inv.set_group_var(&group, &name, value.to_json(), Some(&var.span))?;
                }
            }
            "children" => {
                for (child_key, child_data) in section_entries(section) {
                    let child = parse_group(inv, &child_key, &child_data)?;
                    if inv.groups.contains_key(&child) {
                        inv.add_child(&group, &child, Some(&child_key.span))?;
                    }
                }
            }
            _ => {
                for (host_key, host_vars) in section_entries(section) {
                    parse_host(inv, &group, &host_key, &host_vars)?;
                }
            }
        }
    }
    Ok(group)
}

fn parse_host(inv: &mut Inventory, group: &str, key: &Node, vars: &Node) -> Result<(), Diagnostic> {
    let pattern = name_of(key, "host")?;
    let span: Span = key.span.clone();
    let (names, port) = hostnames::expand_host_pattern(&pattern).map_err(|e| {
        Diagnostic::parse(
            format!("bad host range in `{pattern}`: {e}"),
            Some(span.clone()),
        )
    })?;
    let var_entries = match &vars.value {
        Yaml::Null => Vec::new(),
        Yaml::Map(entries) => entries.clone(),
        _ => {
            return Err(Diagnostic::parse(
                format!(
                    "variables of host `{pattern}` must be a mapping, got {}",
                    vars.type_name()
                ),
                Some(vars.span.clone()),
            ))
        }
    };
    for name in names {
        inv.add_host(&name, Some(group), port, Some(span.clone()));
        for (var, value) in &var_entries {
            inv.set_host_var(
                &name,
                &var.key_string().unwrap_or_default(),
                value.to_json(),
            );
        }
    }
    Ok(())
}
