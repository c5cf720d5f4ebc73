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
        println!("{}", crate::inventory::to_ansible_json(&value));
    } else if args.graph {
        print!("{}", inventory.graph(args.group.as_deref())?);
    } else {
        println!(
            "{}",
            crate::inventory::to_ansible_json(&inventory.list_json())
        );
    }
    Ok(0)
}
