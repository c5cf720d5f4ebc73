//! `orch inventory`: the same output as `ansible-inventory`.

use super::InventoryArgs;
use crate::error::Diagnostic;
use crate::inventory::Inventory;

pub fn run(args: InventoryArgs) -> Result<i32, Diagnostic> {
    let mut inventory = Inventory::load(&args.inventory)?;
    if let Some(dir) = &args.playbook_dir {
        inventory.add_vars_dir(dir)?;
    }
    if let Some(host) = &args.host {
        let value = inventory
            .host_json(host)
            .ok_or_else(|| Diagnostic::options(format!("You must pass a single valid host to --host parameter: {host} is not in the inventory")))?;
        println!("{}", pretty(&value));
    } else if args.graph {
        print!("{}", inventory.graph(args.group.as_deref())?);
    } else {
        println!("{}", pretty(&inventory.list_json()));
    }
    Ok(0)
}

fn pretty(v: &serde_json::Value) -> String {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    if serde::Serialize::serialize(v, &mut ser).is_err() {
        return v.to_string();
    }
    String::from_utf8(buf).unwrap_or_default()
}
