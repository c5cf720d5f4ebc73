//! A private docker network per fleet, with a subnet that docker chose but that is pinned on the
//! network, so containers get fixed addresses (`--ip`) and keep them across stop/start.
//! (On a network created without `--subnet`, docker refuses `--ip` and a restarted container
//! may come back with another host's old address, which would break inventory and known_hosts.)

use super::docker::{docker, docker_ok};
use std::net::Ipv4Addr;

/// Labels that let `cleanup.sh` find what a killed test process left behind.
pub fn ownership_labels(label: &str) -> Vec<String> {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    vec![
        format!("{label}=1"),
        format!("{label}.pid={}", std::process::id()),
        format!("{label}.created={created}"),
    ]
}

#[derive(Debug, Clone)]
pub struct PinnedNetwork {
    pub name: String,
    network: Ipv4Addr,
    prefix_len: u32,
    gateway: Ipv4Addr,
}

impl PinnedNetwork {
    /// Lets docker pick a free subnet, then recreates the network with that subnet stated
    /// explicitly. A parallel test may grab the subnet in between: then we simply try again.
    pub fn create(name: &str, label: &str) -> Result<PinnedNetwork, String> {
        let mut label_args = Vec::new();
        for value in ownership_labels(label) {
            label_args.push("--label".to_string());
            label_args.push(value);
        }
        let mut last_error = String::new();
        for _attempt in 0..10 {
            let mut args = vec!["network", "create"];
            args.extend(label_args.iter().map(String::as_str));
            args.push(name);
            docker(&args)?;
            let ipam = docker(&[
                "network",
                "inspect",
                "-f",
                "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}\n{{end}}",
                name,
            ]);
            docker_ok(&["network", "rm", name]);
            let (subnet, gateway) = parse_ipam(&ipam?)?;
            let mut args = vec![
                "network",
                "create",
                "--subnet",
                &subnet,
                "--gateway",
                &gateway,
            ];
            args.extend(label_args.iter().map(String::as_str));
            args.push(name);
            match docker(&args) {
                Ok(_) => return PinnedNetwork::from_strings(name, &subnet, &gateway),
                Err(error) => last_error = error,
            }
        }
        Err(format!("cannot create network {name}: {last_error}"))
    }

    fn from_strings(name: &str, subnet: &str, gateway: &str) -> Result<PinnedNetwork, String> {
        let (address, prefix_len) = subnet
            .split_once('/')
            .ok_or_else(|| format!("subnet without prefix length: {subnet}"))?;
        let network: Ipv4Addr = address
            .parse()
            .map_err(|error| format!("bad subnet {subnet}: {error}"))?;
        let prefix_len: u32 = prefix_len
            .parse()
            .map_err(|error| format!("bad subnet {subnet}: {error}"))?;
        let gateway: Ipv4Addr = gateway
            .parse()
            .map_err(|error| format!("bad gateway {gateway}: {error}"))?;
        Ok(PinnedNetwork {
            name: name.to_string(),
            network,
            prefix_len,
            gateway,
        })
    }

    /// The fixed address of the `index`-th host (0-based): network+2+index, skipping the gateway.
    pub fn host_address(&self, index: usize) -> Result<Ipv4Addr, String> {
        let base = u32::from(self.network);
        let size = 1u64 << (32 - self.prefix_len.min(32));
        let mut offset = 2 + index as u64;
        let gateway_offset = u64::from(u32::from(self.gateway).wrapping_sub(base));
        if (2..=offset).contains(&gateway_offset) {
            offset += 1;
        }
        if offset + 1 >= size {
            return Err(format!(
                "subnet {}/{} too small for host {index}",
                self.network, self.prefix_len
            ));
        }
        Ok(Ipv4Addr::from(base + offset as u32))
    }

    pub fn remove(&self) -> Result<(), String> {
        docker(&["network", "rm", &self.name]).map(|_| ())
    }
}

/// Picks the IPv4 subnet and gateway from `network inspect` output (one "SUBNET GATEWAY" per line).
fn parse_ipam(text: &str) -> Result<(String, String), String> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .find(|(subnet, _)| subnet.contains('.'))
        .ok_or_else(|| format!("no IPv4 subnet in network inspect output: {text:?}"))
}
